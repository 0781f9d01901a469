"""The notebook runs: its code cells, executed in order, build the report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "rooms_report.ipynb"


def test_notebook_code_cells_run_and_write_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTEROOM_REPORT_OUT", str(tmp_path / "report"))
    monkeypatch.delenv("ANTEROOM_REPORT_INPUTS", raising=False)
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [("".join(c["source"]) if isinstance(c["source"], list) else c["source"]) for c in cells
            if c["cell_type"] == "code"]
    assert len(code) >= 8
    namespace: dict = {}
    for number, source in enumerate(code, start=1):
        try:
            exec(compile(source, f"{NOTEBOOK.name}[cell {number}]", "exec"), namespace)
        except Exception as error:  # name the failing cell
            pytest.fail(f"code cell {number} failed: {error!r}")
    assert (tmp_path / "report" / "report.html").exists()
    assert len(namespace["calls"]) > 0 and len(namespace["no_shows"]) > 0
