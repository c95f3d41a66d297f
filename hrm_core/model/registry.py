"""Architecture registry: a name from the config (`arch.name`) -> its config class and model.

Explicit on purpose (no import paths from YAML): `hrm_v1` (HRM-ACT v1) and `trm` (the Tiny
Recursive Model).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from hrm_core.model.config import ConfigError, HRMConfig, TRMConfig
from hrm_core.model.hrm import HRMACT
from hrm_core.model.trm import TRMACT

ARCHITECTURES: dict[str, Callable[[HRMConfig], nn.Module]] = {
    "hrm_v1": HRMACT,
    "trm": TRMACT,
}
CONFIG_CLASSES: dict[str, type[HRMConfig]] = {"hrm_v1": HRMConfig, "trm": TRMConfig}


def model_config(name: str, cfg: HRMConfig | Mapping[str, Any]) -> HRMConfig:
    """The typed config of architecture `name` from a config object or a trainer-style dict."""
    if name not in ARCHITECTURES:
        raise ConfigError(
            f"arch.name: unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})"
        )
    cls = CONFIG_CLASSES[name]
    if isinstance(cfg, HRMConfig):
        if type(cfg) is not cls:
            raise ConfigError(f"arch.name: {name} needs a {cls.__name__}, not {type(cfg).__name__}")
        return cfg
    return cls.from_dict(cfg)


def build_model(name: str, cfg: HRMConfig | Mapping[str, Any]) -> nn.Module:
    """Build architecture `name` from its config or a trainer-style dict (HRMConfig.from_dict)."""
    config = model_config(name, cfg)  # first: an unknown name is a ConfigError
    return ARCHITECTURES[name](config)
