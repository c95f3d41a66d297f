"""Shared factories for the rule-engine tests: synthetic runs, in memory or written to disk."""

from __future__ import annotations

import pytest

from hrm_doctor.engine.packs import load_rule_set


@pytest.fixture(scope="session")
def rule_set():
    return load_rule_set()
