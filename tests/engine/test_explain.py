"""`hrm-doctor explain` and `hrm-doctor rules` through `main([...])` (and the console script
once): formats, exit codes, baseline, determinism, one-line errors naming the file."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from engine_helpers import healthy, sick

from hrm_doctor.cli import main
from hrm_doctor.synth import write_run

CONTRACT_KEYS = [
    "id",
    "rule",
    "pack",
    "category",
    "severity",
    "first_step",
    "last_step",
    "rank",
    "metric",
    "message",
    "evidence",
    "suggestion",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "healthy": write_run(healthy(3000, seed=4), root / "healthy"),
        "spike": write_run(sick("loss_spike", steps=3000, onset=2000, seed=4), root / "spike"),
        "nan": write_run(sick("nonfinite", steps=3000, onset=2000, seed=4), root / "nan"),
    }


def explain(capsys, *argv):
    rc = main(["explain", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_json_follows_the_contract(runs, capsys):
    rc, out, _ = explain(capsys, "--run", str(runs["spike"]), "--format", "json")
    report = json.loads(out)
    assert rc == 0  # a warning is below the default --fail-on critical
    assert list(report)[:4] == ["run", "status", "steps", "findings"]
    assert report["status"] == "warning" and report["steps"] == 3000
    spike = next(f for f in report["findings"] if f["category"] == "loss_spike")
    assert list(spike) == CONTRACT_KEYS and spike["id"] == f"loss-spike@{spike['first_step']}"
    assert list(spike["suggestion"]) == ["overrides", "apply", "rationale", "monitor", "fallback"]
    assert spike["suggestion"]["apply"] in ("hot", "restart")


@pytest.mark.parametrize(
    ("fail_on", "code"), [("critical", 0), ("warning", 1), ("info", 1), ("never", 0)]
)
def test_exit_code_follows_fail_on(runs, capsys, fail_on, code):
    assert (
        explain(capsys, "--run", str(runs["spike"]), "--format", "json", "--fail-on", fail_on)[0]
        == code
    )


def test_a_critical_finding_fails_by_default(runs, capsys):
    rc, out, _ = explain(capsys, "--run", str(runs["nan"]), "--format", "json")
    assert rc == 1 and json.loads(out)["status"] == "critical"


def test_a_healthy_run_passes_at_fail_on_warning(runs, capsys):
    rc, out, _ = explain(
        capsys, "--run", str(runs["healthy"]), "--format", "json", "--fail-on", "warning"
    )
    report = json.loads(out)
    assert rc == 0 and report["status"] in ("healthy", "info")
    assert all(f["severity"] == "info" for f in report["findings"])


def test_missing_run_and_bad_pack_are_one_line_errors_exit_2(runs, capsys, tmp_path):
    rc, _, err = explain(capsys, "--run", str(tmp_path / "nope"))
    assert rc == 2 and err.count("\n") == 1 and "nope" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "schema: 1\npack: bad\nversion: '1'\nrules:\n  - id: x\n    category: nonsense\n"
    )
    rc, _, err = explain(capsys, "--run", str(runs["healthy"]), "--rules", str(bad))
    assert rc == 2 and err.count("\n") == 1 and f"{bad}:6:15" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "--run", str(runs["healthy"]), "--format", "pdf"])
    assert exit_info.value.code == 2


def test_output_is_deterministic_and_out_writes_a_file(runs, capsys, tmp_path):
    for fmt in ("json", "markdown", "junit", "github", "text", "html"):
        a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
        for path in (a, b):
            explain(
                capsys,
                "--run",
                str(runs["spike"]),
                "--format",
                fmt,
                "--out",
                str(path),
                "--fail-on",
                "never",
            )
        assert a.read_bytes() == b.read_bytes(), fmt
    assert capsys.readouterr().out == ""


def test_markdown_text_and_github(runs, capsys):
    _, md, _ = explain(capsys, "--run", str(runs["spike"]), "--format", "markdown")
    assert (
        md.startswith("## hrm-doctor:") and "| severity | finding |" in md and "`loss-spike@" in md
    )
    _, text, _ = explain(capsys, "--run", str(runs["spike"]), "--format", "text")
    assert "WARNING loss-spike@" in text and "suggestion (hot)" in text
    _, gh, _ = explain(capsys, "--run", str(runs["spike"]), "--format", "github")
    line = next(ln for ln in gh.splitlines() if "loss-spike@" in ln)
    assert line.startswith("::warning title=hrm-doctor warning%3A loss-spike@") and "\n" not in line


def test_junit_has_one_case_per_rule_failing_when_it_fired(runs, capsys, rule_set):
    _, xml, _ = explain(capsys, "--run", str(runs["nan"]), "--format", "junit")
    root = ET.fromstring(xml)
    cases = root.findall(".//testcase")
    assert len(cases) == len(rule_set.rules)
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert "nonfinite-value" in failed or "nonfinite-count" in failed
    assert int(root.get("failures")) == len(failed)
    assert any(c.find("skipped") is not None for c in cases)  # e.g. the distributed rules


def test_html_is_one_self_contained_page_with_charts(runs, capsys):
    _, page, _ = explain(capsys, "--run", str(runs["spike"]), "--format", "html")
    assert page.startswith("<!DOCTYPE html>") and "Plotly.newPlot" in page
    assert "<script src=" not in page and 'id="finding-0"' in page


def test_baseline_reports_what_got_worse_and_the_config_diff(runs, capsys):
    rc, out, _ = explain(
        capsys, "--run", str(runs["nan"]), "--baseline", str(runs["healthy"]), "--format", "json"
    )
    b = json.loads(out)["baseline"]
    assert b["run"] == str(runs["healthy"]) and b["new_findings"]
    assert any(m["metric"] == "train/lm_loss" for m in b["metrics"])
    _, md, _ = explain(
        capsys,
        "--run",
        str(runs["nan"]),
        "--baseline",
        str(runs["healthy"]),
        "--format",
        "markdown",
    )
    assert "### Compared with" in md


def test_rules_list_lint_and_test(capsys, tmp_path):
    assert main(["rules", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"id": "grad-explosion", "pack": "core"}.items() <= next(
        r for r in listed if r["id"] == "grad-explosion"
    ).items()
    assert main(["rules", "lint", "core"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: 1\npack: bad\nversion: '1'\nrules:\n  - {id: Bad Id}\n")
    capsys.readouterr()
    assert main(["rules", "lint", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out and all(line.startswith(f"{bad}:") for line in out)
    tests = tmp_path / "t.yaml"
    tests.write_text(
        "tests:\n  - name: nan\n    rules: [nonfinite-value]\n    series: {train/lm_loss: '1x10 NaN'}\n"
        "    expect: [{rule: nonfinite-value, step: 11, severity: critical}]\n"
        "  - name: wrong\n    rules: [nonfinite-value]\n    series: {train/lm_loss: '1x10 NaN'}\n    expect: []\n"
    )
    assert main(["rules", "test", str(tests)]) == 1
    out = capsys.readouterr().out
    assert (
        "FAIL" in out
        and "unexpected finding nonfinite-value@11" in out
        and "1 passed, 1 failed" in out
    )


def test_the_console_script_runs_explain(runs):
    exe = Path(sys.executable).parent / "hrm-doctor"
    out = subprocess.run(
        [str(exe), "explain", "--run", str(runs["nan"]), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and json.loads(out.stdout)["status"] == "critical"
