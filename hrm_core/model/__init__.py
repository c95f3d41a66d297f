"""The HRM-ACT and TRM models: configs, layers, the recurrent cores with ACT, the loss head, the
registry."""

from hrm_core.model.config import ConfigError, HRMConfig, TRMConfig
from hrm_core.model.hrm import HRMACT, ACTCarry, HRMReasoningCore, InnerCarry, module_groups
from hrm_core.model.losses import IGNORE_LABEL_ID, ACTLossHead
from hrm_core.model.registry import ARCHITECTURES, build_model, model_config
from hrm_core.model.sparse_embedding import CastedSparseEmbedding
from hrm_core.model.trm import TRMACT, TRMReasoningCore

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
    "TRMACT",
    "TRMConfig",
    "TRMReasoningCore",
    "build_model",
    "model_config",
    "module_groups",
]
