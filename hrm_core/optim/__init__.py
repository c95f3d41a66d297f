"""Optimizers of HRM: Adam-atan2 (model), sign-SGD (sparse puzzle embeddings), the lr schedule,
the weights' moving average (TRM)."""

from hrm_core.optim.adam_atan2 import AdamAtan2
from hrm_core.optim.ema import WeightEMA
from hrm_core.optim.schedule import lr_at, set_lr
from hrm_core.optim.sparse_signsgd import CastedSparseEmbeddingSignSGD

__all__ = ["AdamAtan2", "CastedSparseEmbeddingSignSGD", "WeightEMA", "lr_at", "set_lr"]
