"""hrm_core: an instrumented HRM-ACT trainer (model, losses, optimizers, data, probe).

Kept import-light on purpose: import the subpackages (`hrm_core.model`, `hrm_core.optim`) you
need; nothing here pulls in torch.
"""

__version__ = "0.1.0"
