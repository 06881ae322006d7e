"""benchmarks/defaults.py's quick mode: the suite, every method installed here, the table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("defaults", ROOT / "benchmarks" / "defaults.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["defaults"] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.benchmark
@pytest.mark.slow
def test_quick_mode_runs_and_writes_its_section(tmp_path, capsys) -> None:
    defaults = _load()
    results_md = tmp_path / "results.md"
    results_md.write_text("# Accuracy results\n\nkept\n")
    results = defaults.main(
        ["--quick", "--methods", "graia", "logreg", "--results", str(results_md)]
    )
    assert len(results) == 5 and all({"graia", "logreg"} <= set(r) for r in results.values())
    assert all(0.0 <= r["graia"]["val"] <= 1.0 for r in results.values())
    text = results_md.read_text()
    assert text.startswith("# Accuracy results\n\nkept\n") and defaults.SECTION in text
    assert "| **mean** |" in capsys.readouterr().out
    # A second run replaces the section instead of adding one.
    defaults.write_section(results_md, "again")
    assert results_md.read_text().count(defaults.SECTION) == 1


def test_suite_splits_are_fixed_stratified_and_scaled() -> None:
    defaults = _load()
    splits = defaults.suite(quick=True)
    assert [s.name for s in splits] == ["iris", "wine", "breast_cancer", "moons_noisy", "digits"]
    again = defaults.suite(quick=True)
    for a, b in zip(splits, again):
        assert (a.x_val == b.x_val).all() and (a.y_test == b.y_test).all()
        assert a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0
        assert set(a.y_val.tolist()) == set(a.y_train.tolist())
