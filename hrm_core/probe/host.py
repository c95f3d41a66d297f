"""`metrics_to_host`: the one host-device sync per logged step.

All 0-d tensors are stacked and all 1-D tensors concatenated into one flat buffer per device,
copied with one non_blocking copy, and read after one synchronize.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from hrm_core.probe.quantity import Ragged

HostValue = float | int | np.ndarray
"""A scalar (Python float; ints and floats given as such pass through) or a float32 array."""

# Pinned host buffers for CUDA copies, per device, grown geometrically: a non_blocking copy
# into pageable memory would be synchronous, and pinning a fresh buffer each step is slow.
_PINNED: dict[torch.device, torch.Tensor] = {}


def _pinned_buffer(device: torch.device, n: int, dtype: torch.dtype) -> torch.Tensor:
    buf = _PINNED.get(device)
    if buf is None or buf.numel() < n or buf.dtype != dtype:
        buf = torch.empty(max(n, 2 * (0 if buf is None else buf.numel()), 256), dtype=dtype)
        buf = buf.pin_memory()
        _PINNED[device] = buf
    return buf[:n]


class _DeviceBucket:
    """The tensors of one device: 0-d ones by dtype (one stack per dtype: stacking mixed dtypes
    takes a slow promotion path, ~4x slower), and the 1-D parts in order."""

    def __init__(self) -> None:
        self.scalars: dict[torch.dtype, tuple[list[str], list[torch.Tensor]]] = {}
        self.arrays: list[tuple[str, bool, tuple[torch.Tensor, ...]]] = []


def metrics_to_host(metrics: Mapping[str, Any]) -> dict[str, HostValue]:
    """Device metrics -> host values, with one copy and one sync per device.

    0-d tensors become Python floats; 1-D tensors float32 numpy arrays; a `Ragged` its kept
    values as a float32 array; Python and numpy numbers and numpy arrays pass through as they
    are. Raises ValueError naming the metric for a tensor of more than one dimension.
    """
    host: dict[str, HostValue] = {}
    buckets: dict[torch.device, _DeviceBucket] = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor):
            bucket = buckets.get(value.device) or buckets.setdefault(value.device, _DeviceBucket())
            if value.ndim == 0:
                names, tensors = bucket.scalars.setdefault(value.dtype, ([], []))
                names.append(name)
                tensors.append(value)
            elif value.ndim == 1:
                bucket.arrays.append((name, False, (value,)))
            else:
                raise ValueError(
                    f"metric {name!r}: only 0-d and 1-D tensors can be logged, got shape "
                    f"{tuple(value.shape)}"
                )
        elif isinstance(value, Ragged):
            device = value.values.device
            bucket = buckets.get(device) or buckets.setdefault(device, _DeviceBucket())
            parts = (value.values.reshape(-1), value.keep.reshape(-1))
            bucket.arrays.append((name, True, parts))
        else:
            host[name] = value
    if not buckets:
        return host
    with torch.no_grad():  # trainer metrics may still require grad: no graph for the copy
        for device, bucket in buckets.items():
            host.update(_to_host(device, bucket))
    return {name: host[name] for name in metrics}  # the caller's order


def _to_host(device: torch.device, bucket: _DeviceBucket) -> dict[str, HostValue]:
    scalar_names: list[str] = []
    pieces: list[torch.Tensor] = []
    for names, tensors in bucket.scalars.values():
        scalar_names.extend(names)
        pieces.append(torch.stack(tensors))  # (n,) of one dtype
    for _, _, parts in bucket.arrays:
        pieces.extend(parts)
    # One flat buffer (cat promotes dtypes; float64 keeps counts and fp64 losses exact; MPS
    # has no float64).
    dtype = torch.float32 if device.type == "mps" else torch.float64
    flat = (torch.cat(pieces) if len(pieces) > 1 else pieces[0]).to(dtype)
    if device.type == "cpu":
        values = flat.numpy()
    elif device.type == "cuda":
        buf = _pinned_buffer(device, flat.numel(), flat.dtype)
        buf.copy_(flat, non_blocking=True)
        torch.cuda.current_stream(device).synchronize()  # THE host sync of the logged step
        values = buf.numpy().copy()  # the pinned buffer is reused by the next call
    else:
        values = flat.cpu().numpy().astype(np.float64)  # MPS, XLA: a blocking copy (host sync)
    offset = len(scalar_names)
    out: dict[str, HostValue] = dict(zip(scalar_names, values[:offset].tolist(), strict=True))
    for name, ragged, parts in bucket.arrays:
        size = parts[0].numel()
        array = values[offset : offset + size]
        offset += size
        if ragged:
            keep = values[offset : offset + size] != 0
            offset += size
            array = array[keep]
        out[name] = array.astype(np.float32)
    return out
