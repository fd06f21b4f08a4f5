"""The Kaesong evaluation (benchmarks/evaluate_detector.py) rewrites only its own block."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from _benchmarks import load_benchmark


@pytest.fixture(scope="module")
def ed() -> ModuleType:
    return load_benchmark("evaluate_detector")


STRESS = "<!-- stress:a:start -->\n## A\n<!-- stress:a:end -->\n"
NOTE = "\n### A note written between the sections\n\nIt must survive.\n\n"


def test_the_notes_between_stress_sections_survive_a_new_kaesong_block(
    ed: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "detector.md"
    out.write_text(f"{ed.START}\n# old\n{ed.END}\n\n{STRESS}{NOTE}{STRESS.replace(':a:', ':b:')}")
    ed.write_block(out, "# new\n\ntable")
    text = out.read_text()
    assert text.startswith(f"{ed.START}\n# new\n\ntable\n{ed.END}\n")
    assert "# old" not in text
    assert text.endswith(f"{STRESS}{NOTE}{STRESS.replace(':a:', ':b:')}")
    assert not (tmp_path / "detector.md.tmp").exists()


def test_a_file_from_before_the_markers_keeps_everything_after_its_first_section(
    ed: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "detector.md"
    out.write_text(f"# Detector evaluation\n\nold table\n\n{STRESS}{NOTE}")
    ed.write_block(out, "# new")
    assert out.read_text() == f"{ed.START}\n# new\n{ed.END}\n\n{STRESS}{NOTE}"
    fresh = tmp_path / "fresh.md"
    ed.write_block(fresh, "# new")
    assert fresh.read_text() == f"{ed.START}\n# new\n{ed.END}\n"
