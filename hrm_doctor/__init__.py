"""hrm-doctor: telemetry, diagnosis and live fixes for Hierarchical Reasoning Model training.

    from hrm_doctor import RunWriter, RunReader, diagnose
    with RunWriter("runs/exp42", config=cfg) as w:      # log, like wandb.log
        w.log({"train/lm_loss": 1.9, "grad/norm": 3.2}, step=1)
    report = diagnose("runs/exp42")                      # findings, status, steps, notes

Every name here is loaded on first use, so that `import hrm_doctor` (and the CLI) stays light:
no numpy, pandas or torch at start-up. docs/architecture.md maps the packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Report", "RunReader", "RunWriter", "__version__", "diagnose"]

if TYPE_CHECKING:
    from hrm_doctor.diagnosis import Report, diagnose
    from hrm_doctor.telemetry import RunReader, RunWriter

_WHERE = {
    "RunWriter": "hrm_doctor.telemetry",
    "RunReader": "hrm_doctor.telemetry",
    "diagnose": "hrm_doctor.diagnosis",
    "Report": "hrm_doctor.diagnosis",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'hrm_doctor' has no attribute {name!r}")
