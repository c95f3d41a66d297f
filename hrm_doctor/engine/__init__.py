"""The rule engine: YAML rule packs, pure detectors, one incremental evaluator, findings.

>>> from hrm_doctor.engine.engine import RuleEngine
>>> from hrm_doctor.engine.packs import load_rule_set
>>> engine = RuleEngine(load_rule_set(), reader.config, reader.meta)
>>> findings = engine.feed(*reader.poll(with_mask=True))

Modules: `schema` (the pack format), `yamlpos` (YAML with positions), `expr` (the expression
language), `packs` (loading and patching packs), `detectors` (the registry), `episodes`
(for / keep-firing / repeat), `rows` (one rank's rows, guards), `context` (config, task and
recipe names), `active` (a rule applied to one run), `engine` (`RuleEngine`), `finding` (`Finding`), `suggest` (overrides and
messages). Beside the engine, not in it: `hrm_doctor.diagnosis` (`diagnose` -> `Report`),
`hrm_doctor.render` (explain's formats), `hrm_doctor.ruletest` (rule unit tests) and
`hrm_doctor.synth` (synthetic HRM runs).
"""
