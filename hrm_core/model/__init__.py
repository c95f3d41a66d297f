"""The HRM-ACT model: config, layers, the recurrent core with ACT, the loss head, the registry."""

from hrm_core.model.config import ConfigError, HRMConfig
from hrm_core.model.hrm import HRMACT, ACTCarry, HRMReasoningCore, InnerCarry, module_groups
from hrm_core.model.losses import IGNORE_LABEL_ID, ACTLossHead
from hrm_core.model.registry import ARCHITECTURES, build_model
from hrm_core.model.sparse_embedding import CastedSparseEmbedding

__all__ = [
    "ACTCarry",
    "ACTLossHead",
    "ARCHITECTURES",
    "CastedSparseEmbedding",
    "ConfigError",
    "HRMACT",
    "HRMConfig",
    "HRMReasoningCore",
    "IGNORE_LABEL_ID",
    "InnerCarry",
    "build_model",
    "module_groups",
]
