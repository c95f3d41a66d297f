"""The one host-device sync per logged step: every 0-d and 1-D device tensor in one `.cpu()`.

`hrm_core.probe.metrics_to_host` does this when the probe package is installed; this module
holds the same operation for the trainer's own metrics (and the probe-off path), so that the
recipe never scatters `.item()` calls through the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def tensors_to_host(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Device tensors -> Python floats (0-d) and float32 numpy arrays (1-D); others unchanged.

    All tensors are flattened into one buffer per device and copied with a single `.cpu()`.
    """
    out: dict[str, Any] = {}
    by_device: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor):
            by_device.setdefault(value.device, []).append((name, value.detach()))
        else:
            out[name] = value
    for device, items in by_device.items():
        # fp64 keeps the stablemax loss sums exact; MPS has no fp64.
        dtype = torch.float32 if device.type == "mps" else torch.float64
        flat = torch.cat([t.reshape(-1).to(dtype) for _, t in items])
        values = flat.cpu().numpy()  # HOST SYNC: the one per step
        offset = 0
        for name, tensor in items:
            n = tensor.numel()
            if tensor.ndim == 0:
                out[name] = float(values[offset])
            else:
                out[name] = values[offset : offset + n].astype(np.float32)
            offset += n
    return {name: out[name] for name in metrics}


def load_metrics_to_host():
    """The probe's `metrics_to_host` when the probe package exists, else `tensors_to_host`."""
    try:
        from hrm_core.probe import metrics_to_host
    except ImportError:
        return tensors_to_host
    return metrics_to_host
