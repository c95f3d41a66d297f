"""hrm-doctor: telemetry, diagnosis and live fixes for Hierarchical Reasoning Model training.

`RunWriter` and `RunReader` are loaded on first use, so that `import hrm_doctor` (and the CLI)
stays light: no numpy, pandas or torch at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["RunReader", "RunWriter", "__version__"]

if TYPE_CHECKING:
    from hrm_doctor.telemetry import RunReader, RunWriter


def __getattr__(name: str) -> Any:
    if name in ("RunWriter", "RunReader"):
        from hrm_doctor import telemetry

        return getattr(telemetry, name)
    raise AttributeError(f"module 'hrm_doctor' has no attribute {name!r}")
