"""Which recorded runs made a result: a record and the upstream records it used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..provenance import RecordDetails
from ..view import RecordStoreView, RecordView

__all__ = ["Step", "lineage"]


@dataclass(eq=False)
class Step:
    """One record in the crate, with the upstream steps feeding each of its inputs."""

    record: RecordView
    details: RecordDetails
    feeds: dict[str, list[Step]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.record.label


def lineage(view: RecordStoreView, records: list[RecordView]) -> list[Step]:
    """Every record and its recorded upstream records, upstream first, each once. An
    upstream record is the newest finished one of its digest made before its consumer."""
    by_digest: dict[str, list[RecordView]] = {}
    for rec in view.filter.status("finished"):  # newest first
        by_digest.setdefault(rec.digest, []).append(rec)
    steps: dict[str, Step] = {}

    def upstream_of(desc: dict[str, Any], before: Any) -> list[Step]:
        found = []
        for value in desc.get("inputs", {}).values():
            if not (isinstance(value, dict) and value.get("smttask")):
                continue
            rec = next((r for r in by_digest.get(value.get("digest", ""), [])
                        if r.timestamp <= before), None)
            found += [visit(rec)] if rec is not None else upstream_of(value, before)
        return found

    def visit(record: RecordView) -> Step:
        if record.label not in steps:
            step = Step(record, record.details())
            for name, value in record.description.get("inputs", {}).items():
                if isinstance(value, dict) and value.get("smttask"):
                    step.feeds[name] = upstream_of({"inputs": {name: value}}, record.timestamp)
            steps[record.label] = step  # after its upstream: upstream first
        return steps[record.label]

    for record in records:
        visit(record)
    return list(steps.values())
