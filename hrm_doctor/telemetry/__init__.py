"""Run telemetry: `RunWriter` appends per-step metrics, `RunReader` reads them back.

The byte layout lives in `schema` alone; docs/telemetry.md describes it.
"""

from hrm_doctor.telemetry.reader import RunReader
from hrm_doctor.telemetry.writer import RunWriter

__all__ = ["RunReader", "RunWriter"]
