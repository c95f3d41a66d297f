"""docs/packs/ is generated from the built-in packs: regenerating it changes nothing."""

from pathlib import Path

from hrm_doctor.cli import main
from hrm_doctor.packdocs import write_pack_docs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "packs"


def test_pack_docs_are_up_to_date(tmp_path):
    fresh = write_pack_docs(tmp_path)
    assert sorted(p.name for p in fresh) == sorted(p.name for p in DOCS.glob("*.md"))
    for path in fresh:
        assert path.read_text() == (DOCS / path.name).read_text(), (
            f"docs/packs/{path.name} is stale: run `hrm-doctor rules docs`"
        )


def test_each_page_has_what_why_remedy_and_thresholds(tmp_path):
    assert main(["rules", "docs", "--out", str(tmp_path)]) == 0
    core = (tmp_path / "core.md").read_text()
    assert "## grad-explosion" in core and "**detector** `spike`" in core
    assert "Remedy" in core and "**if it does not help**" in core
