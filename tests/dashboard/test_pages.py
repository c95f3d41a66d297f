"""Each page run alone through AppTest, on the fixture runs, asserting what a user would see."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
from streamlit.testing.v1 import AppTest

APP_DIR = Path(__file__).resolve().parents[2] / "dashboards"


def texts(at) -> str:
    """Everything a user reads on the page: markdown, titles, alerts, captions, code, badges."""
    parts = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "error",
        "warning",
        "info",
        "success",
        "code",
    ):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def charts(at) -> list:
    return list(at.get("echarts_chart"))


def spec(chart) -> dict:
    return json.loads(chart.proto.spec)


def series_frames(chart) -> list[pd.DataFrame]:
    """Each series' data as the browser gets it: its Arrow dataset, decoded."""
    tables = {
        d.name: pa.ipc.open_stream(d.data.data).read_all().to_pandas() for d in chart.proto.datasets
    }
    s = spec(chart)
    return [
        tables[s["dataset"][x["datasetIndex"]]["source"]["name"]]
        for x in s["series"]
        if "datasetIndex" in x
    ]


def test_runs_page_shows_each_run_with_its_status_and_newest_finding(open_page):
    at = open_page("runs")
    table = at.dataframe[0].value
    table = getattr(table, "data", table)  # a pandas Styler carries the frame in .data
    status = dict(zip([r.split("run=", 1)[-1] for r in table["run"]], table["status"]))
    assert status == {
        "explosion": "critical",
        "healthy": "healthy",
        "sweep/undiagnosed": "not diagnosed",
    }
    assert list(table["status"])[0] == "critical"  # the most severe run comes first
    newest = dict(zip(status, table["newest finding"]))
    assert newest["explosion"].startswith("Loss became NaN at step 396")
    assert {m.label: m.value for m in at.metric}["Critical"] == "1"
    page = texts(at)
    assert "Needs attention" in page
    assert "Gradient norm exploded: grad/norm rose from a median of 2.0" in page
    assert "`lr=3.5e-05 grad_clip_norm=1.0`" in page


def test_run_page_shows_status_badge_newest_finding_and_theme_charts(open_page):
    at = open_page("run", run="explosion")
    page = texts(at)
    assert ":red-badge[:material/error: critical]" in page
    assert "**critical** since step 396: Loss became NaN" in at.error[0].value
    assert "2 rank(s)" in page and "last step **399**" in page
    assert [t.label for t in at.tabs][:3] == ["Losses", "Accuracy", "Learning rates"]
    assert len(charts(at)) == 4  # only the open tab's panels render: LM loss, Q losses, ...
    assert at.slider(key="steps").value == (0, 399)


def test_run_page_log_toggle_and_step_range_rerender(open_page):
    at = open_page("run", run="healthy")
    assert ":green-badge[:material/check_circle: healthy]" in texts(at)
    log = at.toggle(key="log:lm_loss")
    assert log.value is True
    log.set_value(False).run()
    at.slider(key="steps").set_value((100, 200)).run()
    assert not at.exception
    chart = charts(at)[0]
    assert spec(chart)["yAxis"]["type"] == "value"
    xs = series_frames(chart)[0]["step"]
    assert xs.min() == 100 and xs.max() == 200 and len(xs) == 101


def test_run_page_gradients_tab_has_block_heatmap(open_page, app_env):
    at = AppTest.from_file(str(APP_DIR / "app_pages" / "run.py"), default_timeout=30)
    at.query_params["run"] = "explosion"
    at.query_params["theme"] = "Gradients"
    at.run()
    assert not at.exception
    specs = [spec(c) for c in charts(at)]
    heat = next(s for s in specs if s["series"][0]["type"] == "heatmap")
    assert heat["yAxis"]["data"][:2] == ["H.0", "H.1"]
    # grad/norm went +inf at the end: those steps are marked, not dropped
    marks = [x for s in specs for x in s["series"] if x["name"].startswith("non-finite")]
    assert marks and marks[0]["name"] == "non-finite (4)"  # the last 4 steps


def test_act_page_shows_halting_heatmap_q_distributions_and_accuracy(open_page):
    at = open_page("act", run="explosion")
    page = texts(at)
    assert "ACT · explosion" in page
    for title in (
        "Halting-step distribution",
        "Q-halt logits",
        "Q-continue logits and target",
        "Q-halt accuracy",
        "Halting at the maximum",
    ):
        assert title in page
    specs = [spec(c) for c in charts(at)]
    heat = next(s for s in specs if s["series"][0]["type"] == "heatmap")
    assert heat["yAxis"]["data"] == [str(i) for i in range(1, 17)]  # ACT steps 1..16
    assert ["5–95%", "25–75%", "median", "target"] in [
        s.get("legend", {}).get("data") for s in specs
    ]


def test_embeddings_page_shows_sign_flips_rows_and_norm(open_page):
    at = open_page("embeddings", run="healthy")
    page = texts(at)
    for title in ("Sign-flip fraction", "Rows touched per step", "Mean row norm"):
        assert title in page
    assert len(charts(at)) >= 3


def test_diagnosis_page_shows_finding_evidence_suggestion_and_patch_history(open_page):
    at = open_page("diagnosis", run="explosion")
    page = texts(at)
    assert "Gradient norm exploded: grad/norm rose from a median of 2.0" in page
    assert "lr=3.5e-05 grad_clip_norm=1.0" in [c.value for c in at.code]
    assert "HRM trains stably at lr 7e-5..1e-4 only with warm-up" in page
    assert "**Then monitor:** grad/norm back under 10 within 200 steps" in page
    assert "**If it fails:** roll back to the last checkpoint" in page
    assert "**hot**" in page and "**restart**" in page
    assert "start the dashboard with `--allow-apply`" in page
    assert not [b for b in at.button if b.label == "Apply patch"]
    history = at.dataframe[0].value
    assert list(history["state"]) == ["proposed", "applied"]
    # the explosion (the root cause) is listed before the later NaN, both critical
    order = [m.value for m in at.markdown if m.value.startswith("##### ")]
    assert order[0].startswith("##### Gradient norm exploded")
    assert order[1].startswith("##### Loss became NaN")
    evidence = spec(charts(at)[1])  # after the timeline: the first finding's evidence
    onset = evidence["series"][0]["markLine"]["data"][0]
    assert onset["xAxis"] == 300 and onset["label"]["formatter"] == "onset @ 300"


def test_diagnosis_apply_button_only_with_allow_apply(open_page, monkeypatch, dash_root):
    monkeypatch.setenv("HRM_DOCTOR_ALLOW_APPLY", "1")
    at = open_page("diagnosis", run="explosion")
    applied = [b for b in at.button if b.key == "apply:grad-explosion@300"]
    assert applied and applied[0].disabled  # its patch was applied already
    button = next(b for b in at.button if b.key == "apply:nonfinite@396")
    button.click().run()
    assert "Proposed: this patch needs a rollback and restart" in texts(at)
    ledger = (dash_root / "explosion" / "patches.jsonl").read_text()
    record = json.loads(ledger.splitlines()[-1])
    assert record["finding_id"] == "nonfinite@396"
    assert record["overrides"] == ["lr=2e-05", "grad_clip_norm=1.0"]
    assert record["apply"] == "restart" and record["state"] == "proposed"


def test_diagnosis_page_healthy_and_undiagnosed_runs(open_page):
    at = open_page("diagnosis", run="healthy")
    assert "No findings" in at.success[0].value
    at = open_page("diagnosis", run="sweep/undiagnosed")  # nobody watched it: one engine pass
    assert "No findings" in at.success[0].value
    assert "diagnosed once by the rule engine" in texts(at)


def test_compare_page_overlays_runs_and_diffs_configs(open_page):
    at = open_page("compare")
    specs = [spec(c) for c in charts(at)]
    assert len(specs) == 2  # train/lm_loss and grad/norm by default
    assert [d["name"] for d in specs[0]["series"][:2]] == ["explosion", "healthy"]
    diff = at.dataframe[0].value
    assert list(diff["key"]) == ["lr"]
    assert list(diff.iloc[0][["explosion", "healthy"]]) == ["0.0003", "0.0001"]


def test_full_app_navigates_from_runs_to_diagnosis(app_env):
    at = AppTest.from_file(str(APP_DIR / "streamlit_app.py"), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "Runs"
    at.query_params["run"] = "explosion"
    at.switch_page("app_pages/diagnosis.py").run()
    assert not at.exception
    assert "Gradient norm exploded" in texts(at)


def test_a_run_being_written_shows_new_steps_on_the_next_refresh(app_env, tmp_path, monkeypatch):
    """The live path: the page re-reads only what the writer appended since the last run."""
    from hrm_doctor import RunWriter

    monkeypatch.setenv(
        "HRM_DOCTOR_ROOT", str(tmp_path)
    )  # its own root: the fixtures stay as they are
    run = tmp_path / "live"
    with RunWriter(run, config={"lr": 1e-4}) as w:
        for i in range(50):
            w.log({"train/lm_loss": 2.0, "grad/norm": 1.0}, step=i)
        w.flush()
        at = AppTest.from_file(str(APP_DIR / "app_pages" / "run.py"), default_timeout=30)
        at.query_params["run"] = "live"
        at.run()
        assert "last step **49**" in texts(
            at
        ) and ":blue-badge[:material/play_circle: running]" in texts(at)
        assert at.slider(key="steps").value == (0, 49)
        for i in range(50, 120):
            w.log({"train/lm_loss": 1.0, "grad/norm": 1.0}, step=i)
        w.flush()
        at.run()  # what the fragment's timer does every refresh_s
        assert "last step **119**" in texts(at)
        assert at.slider(key="steps").value == (0, 119)  # the range follows the newest step
        at.toggle(key="live").set_value(False).run()  # paused: no timer, the page stays
        assert not at.exception and "last step **119**" in texts(at)
