"""Print the newest record of the project in the working directory, briefly."""

import json

from smttask import config, provenance

project = config.find_project()
label = provenance.labels(project)[-1]
rec = provenance.get_record(project, label)
params = json.loads(rec.parameters.pretty())
for value in params["inputs"].values():
    if isinstance(value, dict) and "npy" in value:
        value["npy"] = value["npy"][:24] + "…"
deps = {d.name: d.version for d in rec.dependencies}
fields = {
    "label": rec.label,
    "status": ", ".join(sorted(rec.tags)),
    "reason": rec.reason,
    "code": f"{rec.main_file} at commit {rec.version[:12]}",
    "script": rec.script_arguments,
    "duration": f"{rec.duration * 1000:.1f} ms",
    "outputs": ", ".join(k.path for k in rec.output_data),
    "packages": ", ".join(f"{n} {deps[n]}" for n in ("numpy", "pydantic", "smttask") if n in deps)
    + f" (+{len(deps) - 3} more)",
    "platform": f"{rec.platforms[0].system_name} {rec.platforms[0].machine}",
    "parameters": json.dumps(params, ensure_ascii=False, indent=2).replace("\n", "\n" + " " * 13),
}
for key, value in fields.items():
    print(f"{key:>11}: {value}")
