"""The detector registry: the YAML `type:` of a rule's detector names one class here, never an
import path, so a rule pack cannot make hrm-doctor run code of its choosing."""

from __future__ import annotations

from hrm_doctor.engine.detectors.base import Detector, Signal
from hrm_doctor.engine.detectors.point import Fraction, NonFinite, Threshold
from hrm_doctor.engine.detectors.relation import ConfigCheck, EvalShare, Gap, RankDivergence, Stall
from hrm_doctor.engine.detectors.trend import (
    Decay,
    Growth,
    NoProgress,
    Plateau,
    Rebound,
    Spike,
)

REGISTRY: dict[str, type[Detector]] = {
    "nonfinite": NonFinite,
    "threshold": Threshold,
    "fraction": Fraction,
    "spike": Spike,
    "growth": Growth,
    "decay": Decay,
    "no_progress": NoProgress,
    "rebound": Rebound,
    "plateau": Plateau,
    "rank_divergence": RankDivergence,
    "gap": Gap,
    "eval_share": EvalShare,
    "config": ConfigCheck,
    "stall": Stall,
}

__all__ = ["REGISTRY", "Detector", "Signal"]
