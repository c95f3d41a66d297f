"""Study: an `hrm-doctor tune` study: the best healthy trials, the pruned ones and the finding
that pruned each, and Optuna's plots. Reads the `study.db` files under the root."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboards import ui

ui.page_config("Study")
root = ui.sidebar_root()
st.title("Study")


@st.cache_resource(max_entries=8)
def _storage(path: str):
    from hrm_doctor.tune.storage import open_storage

    return open_storage(f"sqlite:///{Path(path).resolve()}", heartbeat=False)


def _load(path: Path, name: str | None = None):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = _storage(str(path))
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if not names:
        return names, None
    return names, optuna.load_study(study_name=name or names[0], storage=storage)


from hrm_doctor.tune import report  # noqa: E402  (after page_config: optuna loads lazily)

files = report.find_study_files(root)
if not files:
    st.info(f"No study under {root}: `hrm-doctor tune -- hrm-train ...` writes ROOT/study.db.")
    st.stop()
labels = [str(p.relative_to(root)) for p in files]
picked = st.sidebar.selectbox("Study file", labels, key="study_file")
path = files[labels.index(picked)]
names, study = _load(path)
if study is None:
    st.info(f"{picked} holds no study yet.")
    st.stop()
if len(names) > 1:
    name = st.sidebar.selectbox("Study", names, key="study_name")
    names, study = _load(path, name)

s = report.summary(study)
c, steps = s["counts"], s["steps"]
st.caption(f"{study.study_name}: {s['direction']} {s['metric']} — {picked}")
cols = st.columns(5)
cols[0].metric("trials", s["trials"])
cols[1].metric("complete", c["COMPLETE"])
cols[2].metric("pruned by the doctor", c["PRUNED"])
cols[3].metric("failed", c["FAIL"])
cols[4].metric("steps run (pruned)", f"{sum(steps.values())} ({steps['PRUNED']})")

rows = pd.DataFrame(report.trial_rows(study))
best = report.healthy_best(study)
st.subheader("Best healthy trials")
if best:
    keep = [t.number for t in best]
    table = rows[rows["trial"].isin(keep)].set_index("trial").loc[keep]
    st.dataframe(table[["value", "steps", "health", "overrides"]], width="stretch")
    st.code(report.best_command(study, best[0]), language="bash")
else:
    st.info("No healthy complete trial yet.")

st.subheader("Pruned trials")
pruned = rows[rows["state"] == "pruned"]
if len(pruned):
    cols = ["trial", "steps", "pruned by", "category", "overrides", "message"]
    st.dataframe(pruned[cols], hide_index=True, width="stretch")
else:
    st.caption("None pruned.")

for title, fig in report.figures(study)[:3]:
    st.subheader(title)
    if isinstance(fig, str):
        st.caption(fig)
    else:
        st.plotly_chart(fig)
