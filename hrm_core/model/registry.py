"""Architecture registry: a name from the config (`arch.name`) -> the ACT model class.

Explicit on purpose (no import paths from YAML). A second architecture (TRM: one L stack, no
Q-continue, full-recursion gradient) plugs in as another core + wrapper registered here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from hrm_core.model.config import ConfigError, HRMConfig
from hrm_core.model.hrm import HRMACT

ARCHITECTURES: dict[str, Callable[[HRMConfig], nn.Module]] = {
    "hrm_v1": HRMACT,
}


def build_model(name: str, cfg: HRMConfig | Mapping[str, Any]) -> nn.Module:
    """Build architecture `name` from an HRMConfig or a trainer-style dict (see HRMConfig.from_dict)."""
    if name not in ARCHITECTURES:
        raise ConfigError(
            f"arch.name: unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})"
        )
    config = cfg if isinstance(cfg, HRMConfig) else HRMConfig.from_dict(cfg)
    return ARCHITECTURES[name](config)
