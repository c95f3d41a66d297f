"""Helpers shared by the tests in tests/hrm_core/ (imported by name: conftest modules are not)."""

from __future__ import annotations

from pathlib import Path

import pytest


def reference_fixture() -> Path:
    """`shared/fixtures/reference-arc-mini`, next to or inside the checkout."""
    for root in Path(__file__).resolve().parents:
        candidate = root / "shared" / "fixtures" / "reference-arc-mini"
        if candidate.is_dir():
            return candidate
    pytest.skip("shared/fixtures/reference-arc-mini not found")
