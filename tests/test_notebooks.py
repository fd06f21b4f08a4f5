"""The notebooks run top to bottom on a fresh kernel and are stored without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _kernel_spec(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec running this interpreter (the test venv), found through JUPYTER_PATH."""
    name = "kaesong-thermal-test"
    spec_dir = tmp / "jupyter" / "kernels" / name
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "kaesong-thermal tests",
        "language": "python",
        "env": {"MPLBACKEND": "Agg"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp / "jupyter"))
    monkeypatch.delenv("KAESONG_STORE", raising=False)
    return name


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == ["01_explore_kaesong.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = nbformat.read(path, as_version=4)
    kernel = _kernel_spec(tmp_path, monkeypatch)
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert errors == []
    # the exploration reaches its conclusions: figures were shown and the report written
    images = sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert images >= 3
    last = nb.cells[-1].outputs
    text = "".join(o.get("text", "") for o in last if o.output_type == "stream")
    assert text.strip().endswith("report.html")
