"""Write tests/golden/digests.json from the cases in tests/test_digest.py.

Changing a golden digest is a digest-scheme version bump (DESIGN.md §4): bump
``smttask.digest.SCHEME``, add a CHANGELOG entry, and only then regenerate with::

    python tests/golden/make_golden.py --force

Without ``--force`` an existing file is never overwritten; the script prints which
cases would change and exits with status 1.
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "digests.json"


def build() -> dict:
    sys.path.insert(0, str(HERE.parent))
    import test_digest  # noqa: PLC0415 - the builders live with the tests

    from smttask import digest

    return {
        "scheme": digest.SCHEME,
        "note": "Pinned digests of scheme v1; inputs are built by CASES in tests/test_digest.py. "
                "Changing a digest here is a scheme-version bump.",
        "cases": {
            cid: {"description": desc, "digest": builder()}
            for cid, (desc, builder) in test_digest.CASES.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing digests.json (a scheme-version bump)")
    args = parser.parse_args(argv)
    data = build()
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if TARGET.exists() and not args.force:
        old = json.loads(TARGET.read_text(encoding="utf-8"))
        old_cases, new_cases = old.get("cases", {}), data["cases"]
        changed = sorted(cid for cid in set(old_cases) | set(new_cases)
                         if old_cases.get(cid) != new_cases.get(cid))
        print(f"{TARGET} exists; refusing to overwrite without --force.")
        print("cases that would change: " + (", ".join(changed) if changed else "none"))
        return 1
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {len(data['cases'])} cases to {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
