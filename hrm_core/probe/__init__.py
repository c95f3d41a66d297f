"""The HRM probe: the telemetry catalogue's model quantities, computed on the device during
training (no extra forward, no host sync), one small class per quantity; docs/probe.md.

Imports only torch, numpy and (for `Probe.attach`) hrm_doctor: usable around any HRM-like
model without the rest of hrm_core.
"""

from hrm_core.probe.act import (
    HaltAtMaxFrac,
    HaltDelay,
    HaltSteps,
    PrematureHaltFrac,
    QSamples,
    QValueSummary,
    SupervisionStepLoss,
    TargetQMean,
)
from hrm_core.probe.embedding import PuzzleEmbNorm, PuzzleEmbRowsTouched, PuzzleEmbSignFlip
from hrm_core.probe.gradients import BlockGradNorm, GradNorm, GroupGradNorm, NonfiniteCount
from hrm_core.probe.host import metrics_to_host
from hrm_core.probe.probe import QUANTITIES, Probe
from hrm_core.probe.quantity import Quantity, Ragged, Tier
from hrm_core.probe.state import StateDelta, StateRMS
from hrm_core.probe.system import MemPeak
from hrm_core.probe.target import ProbeTarget, parameter_group_names
from hrm_core.probe.weights import BlockParamNorm, EMADistance, GroupParamNorm, UpdateRatio

__all__ = [
    "QUANTITIES",
    "BlockGradNorm",
    "BlockParamNorm",
    "EMADistance",
    "GradNorm",
    "GroupGradNorm",
    "GroupParamNorm",
    "HaltAtMaxFrac",
    "HaltDelay",
    "HaltSteps",
    "MemPeak",
    "NonfiniteCount",
    "PrematureHaltFrac",
    "Probe",
    "ProbeTarget",
    "PuzzleEmbNorm",
    "PuzzleEmbRowsTouched",
    "PuzzleEmbSignFlip",
    "QSamples",
    "QValueSummary",
    "Quantity",
    "Ragged",
    "StateDelta",
    "SupervisionStepLoss",
    "StateRMS",
    "TargetQMean",
    "Tier",
    "UpdateRatio",
    "metrics_to_host",
    "parameter_group_names",
]
