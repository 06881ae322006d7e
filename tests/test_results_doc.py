"""docs/results.md is what ``benchmarks/accuracy.py`` writes from docs/results.json, plus the
hand-written notes it keeps after each dataset's figure: a rerun loses none of them. The README's
results table is written from the same file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_accuracy_script():
    spec = importlib.util.spec_from_file_location("accuracy", ROOT / "benchmarks" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


accuracy = _load_accuracy_script()


def test_results_md_is_rendered_from_results_json_and_its_notes() -> None:
    written = (ROOT / "docs" / "results.md").read_text()
    report = json.loads((ROOT / "docs" / "results.json").read_text())
    notes = accuracy.dataset_notes(written)
    assert set(notes) <= set(report)
    assert accuracy.render_results(report, notes) == written


def test_notes_survive_a_rerun_with_new_results() -> None:
    row = {
        "method": "graia dfa",
        "hidden": [8],
        "epochs": 1,
        "test_accuracy": 0.5,
        "train_accuracy": 0.5,
        "seconds": 1.0,
        "backend": "numba",
        "machine": "m",
    }
    report = {"digits": {"date": "2026-01-01", "results": [row]}}
    notes = {"digits": "More runs:\n\n| a | b |\n|---|---|\n| 1 | 2 |"}
    first = accuracy.render_results(report, notes)
    rerun = {"digits": {"date": "2026-01-02", "results": [row, {**row, "method": "x"}]}}
    second = accuracy.render_results(rerun, accuracy.dataset_notes(first))
    assert "| x |" in second and "2026-01-02" in second
    assert second.endswith(notes["digits"] + "\n")


def test_readme_results_table_is_rendered_from_results_json() -> None:
    readme = (ROOT / "README.md").read_text()
    report = json.loads((ROOT / "docs" / "results.json").read_text())
    assert accuracy.with_readme_table(readme, report) == readme
