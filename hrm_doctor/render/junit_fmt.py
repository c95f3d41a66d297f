"""``--format junit``: one test case per rule, a failure when it fired, skipped when it could
not apply; CI systems show these like unit tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hrm_doctor.diagnosis import Report
from hrm_doctor.render.common import evidence_text, steps_text


def render(report: Report) -> str:
    root = ET.Element("testsuites", name=f"hrm-doctor explain {report.run}")
    packs: dict[str, list] = {}
    for o in report.outcomes:
        packs.setdefault(o.pack, []).append(o)
    total = fails = skips = 0
    for pack, outcomes in packs.items():
        suite = ET.SubElement(root, "testsuite", name=pack)
        n_fail = n_skip = 0
        for o in outcomes:
            case = ET.SubElement(suite, "testcase", classname=f"hrm-doctor.{pack}", name=o.rule)
            if o.findings:
                n_fail += 1
                worst = max(o.findings, key=lambda f: f.severity_rank)
                body = []
                for f in o.findings:
                    body.append(f"{f.id} [{f.severity}] steps {steps_text(f)}: {f.message}")
                    body.append(f"  evidence: {evidence_text(f)}")
                    if f.suggestion.overrides:
                        body.append(
                            f"  suggestion ({f.suggestion.apply}): {' '.join(f.suggestion.overrides)}"
                        )
                fail = ET.SubElement(case, "failure", type=worst.severity, message=worst.message)
                fail.text = "\n".join(body)
            elif o.skipped:
                n_skip += 1
                ET.SubElement(case, "skipped", message=o.skipped)
        suite.set("tests", str(len(outcomes)))
        suite.set("failures", str(n_fail))
        suite.set("errors", "0")
        suite.set("skipped", str(n_skip))
        total, fails, skips = total + len(outcomes), fails + n_fail, skips + n_skip
    root.set("tests", str(total))
    root.set("failures", str(fails))
    root.set("errors", "0")
    root.set("skipped", str(skips))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
