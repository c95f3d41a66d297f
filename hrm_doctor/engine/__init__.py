"""The rule engine: YAML rule packs, pure detectors, one incremental evaluator, findings.

>>> from hrm_doctor.engine import RuleEngine, load_rule_set
>>> engine = RuleEngine(load_rule_set(), reader.config, reader.meta)
>>> findings = engine.feed(*reader.poll(with_mask=True))

Modules: `schema` (the pack format), `yamlpos` (YAML with positions), `expr` (the expression
language), `packs` (loading and patching packs), `detectors` (the registry), `episodes`
(for / keep-firing / repeat), `engine` (`RuleEngine`), `finding` (`Finding`), `suggest`
(overrides and messages), `report` and `render` (explain), `ruletest` (rule unit tests),
`synth` (synthetic HRM runs). Names below load on first use, so importing the package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Finding", "RuleEngine", "RuleSet", "load_rule_set"]

if TYPE_CHECKING:
    from hrm_doctor.engine.engine import RuleEngine
    from hrm_doctor.engine.finding import Finding
    from hrm_doctor.engine.packs import RuleSet, load_rule_set

_WHERE = {
    "RuleEngine": "hrm_doctor.engine.engine",
    "Finding": "hrm_doctor.engine.finding",
    "RuleSet": "hrm_doctor.engine.packs",
    "load_rule_set": "hrm_doctor.engine.packs",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'hrm_doctor.engine' has no attribute {name!r}")
