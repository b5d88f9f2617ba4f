"""Which of the spec's links the stateful rounds of ./ops/fuzz walked.

Reads schemathesis's NDJSON event reports (one per round) and prints the
number of distinct links whose transition was applied, out of the total the
first round's output names (`API Links: … (N inferred)`).

    python3 ops/fuzz_links.py REPORT_DIR TOTAL
"""

import json
import pathlib
import sys


def covered(report_dir: pathlib.Path) -> set[str]:
    links: set[str] = set()
    for report in sorted(report_dir.glob("ndjson-*.ndjson")):
        with report.open() as lines:
            for line in lines:
                if '"is_transition_applied":true' not in line.replace(" ", ""):
                    continue
                event = json.loads(line).get("ScenarioFinished")
                if not event or event.get("phase") != "stateful":
                    continue
                for case in (event.get("recorder") or {}).get("cases", {}).values():
                    transition = case.get("transition")
                    if case.get("is_transition_applied") and transition:
                        links.add(transition.get("id"))
    return links


def main() -> None:
    report_dir, total = pathlib.Path(sys.argv[1]), int(sys.argv[2])
    links = covered(report_dir)
    print(f"{len(links)} {total}")


if __name__ == "__main__":
    main()
