"""The findings of the full-history engine on every built-in scenario, kept as a golden file.

`golden_findings.json` was written by the engine as it was before rule state became bounded
(issue 15: the engine then kept each update's whole arrays); the bounded engine must give the
very same findings, evidence included, in any chunking (tests/engine/test_bounded.py).

    python tests/engine/golden.py            # check, print a summary
    python tests/engine/golden.py --write    # regenerate (only when findings change on purpose)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden_findings.json"


def scenarios() -> Iterator[tuple[str, Callable[[], object]]]:
    """(name, factory of a SynthRun) for every synthetic scenario of the golden file."""
    from hrm_doctor import synth

    for p in synth.PATHOLOGIES:
        for seed in (0, 1):
            ws = 4 if p == "straggler" else 1

            def sick(p=p, seed=seed, ws=ws):
                base = synth.healthy_run(5000, seed=seed, world_size=ws)
                return synth.inject(base, p, 2500, seed=seed)

            yield f"{p}/seed{seed}", sick
    for seed, ws, task in (
        (101, 1, "sudoku"),
        (102, 2, "sudoku"),
        (103, 1, "arc"),
        (104, 1, "maze"),
    ):
        yield (
            f"healthy/{task}/seed{seed}/ws{ws}",
            lambda seed=seed, ws=ws, task=task: synth.healthy_run(
                5000, seed=seed, world_size=ws, task=task
            ),
        )

    def mixed():
        run = synth.healthy_run(2400, seed=3, world_size=2)
        for i, p in enumerate(
            ("loss_spike", "halting_collapse", "sign_thrash", "straggler", "q_divergence")
        ):
            extra = {"rank": 1} if p == "straggler" else {}
            run = synth.inject(run, p, 700 + 300 * i, seed=i, **extra)
        return run

    yield "mixed", mixed


def run_scenario(rule_set, run, cuts=()) -> dict:
    """Feed a run (in one pass, or split at row offsets) and return emitted and reported findings."""
    from hrm_doctor.engine.engine import RuleEngine

    engine = RuleEngine(rule_set, run.config, run.meta)
    emitted = []
    bounds = [0, *cuts, len(run.frame)]
    for a, b in zip(bounds, bounds[1:]):
        emitted += engine.feed(run.frame.iloc[a:b].reset_index(drop=True), run.logged[a:b])
    emitted += engine.finish()
    return {
        "emitted": [f.to_json() for f in emitted],
        "report": [f.to_json() for f in engine.report()],
    }


def rule_test_findings(chunks=None) -> dict[str, list[dict]]:
    """Every case of the built-in rule tests: the findings the engine reports."""
    from hrm_doctor.ruletest import builtin_test_sources, run_test_file

    out: dict[str, list[dict]] = {}
    for source, text in builtin_test_sources():
        for result in run_test_file(text, source, chunks=chunks):
            out[f"{Path(source).name}::{result.name}"] = [f.to_json() for f in result.findings]
    return out


def compute() -> dict:
    from hrm_doctor.engine.packs import load_rule_set

    rule_set = load_rule_set()
    return {
        "scenarios": {name: run_scenario(rule_set, make()) for name, make in scenarios()},
        "rule_tests": rule_test_findings(),
    }


def _without_suggestions(obj):
    """Suggestions come from the run's config alone (never from its data or its chunking), and
    are tuned on their own (issue 14: patches fitted to the run): the golden file judges what
    was detected, when, and the evidence."""
    if isinstance(obj, dict):
        return {k: _without_suggestions(v) for k, v in obj.items() if k != "suggestion"}
    if isinstance(obj, list):
        return [_without_suggestions(v) for v in obj]
    return obj


def canonical(obj) -> str:
    return json.dumps(_without_suggestions(obj), sort_keys=True, allow_nan=True)


def main(argv: list[str]) -> int:
    data = compute()
    n = sum(len(v["report"]) for v in data["scenarios"].values())
    n += sum(len(v) for v in data["rule_tests"].values())
    if "--write" in argv:
        GOLDEN.write_text(json.dumps(data, sort_keys=True, indent=1, allow_nan=True) + "\n")
        print(f"wrote {GOLDEN} ({n} findings)")
        return 0
    same = canonical(json.loads(GOLDEN.read_text())) == canonical(json.loads(canonical(data)))
    print(f"{n} findings; {'same as' if same else 'DIFFERENT from'} {GOLDEN.name}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    sys.exit(main(sys.argv[1:]))
