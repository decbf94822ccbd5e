"""scripts/check_claims.py: a seed-fragile claim is reported, the shipped notebook untouched."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tutorial_utils import claims, utils

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_claims.py"
FRAGILE = "the draw is positive on average"
ROBUST = "a large shift is positive"
SOURCE = f"""\
from tutorial_utils import claims, utils
x = utils.generator("demo-draw").normal(0.25, 1.0, 40)
claims.greater({FRAGILE!r}, x)
claims.greater({ROBUST!r}, x + 3)
claims.claim("forty draws", len(x) == 40, n=len(x))
"""


def _load_script():
    spec = importlib.util.spec_from_file_location("check_claims", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fragile_holds(seed: int, monkeypatch) -> bool:
    """The fragile claim's verdict at ``seed``, computed in this process."""
    monkeypatch.setenv("TUTORIAL_SEED", str(seed))
    x = utils.generator("demo-draw").normal(0.25, 1.0, 40)
    return claims.estimate(x, key=FRAGILE).low > 0


@pytest.fixture
def notebook(tmp_path):
    cell = {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
            "source": SOURCE.splitlines(keepends=True)}
    nb = {"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                      "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "09_tiny.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_a_seed_fragile_claim_is_reported_and_fails_the_sweep(notebook, monkeypatch, tmp_path):
    verdicts = {s: _fragile_holds(s, monkeypatch) for s in range(20)}
    hold = next(s for s, v in verdicts.items() if v)
    fail = next(s for s, v in verdicts.items() if not v)
    before = hashlib.sha256(notebook.read_bytes()).hexdigest()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TUTORIAL_SEED", None)
    out_json = tmp_path / "sweep.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--seeds", str(hold), str(fail),
                          "--json", str(out_json), str(notebook)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 1, run.stdout + run.stderr
    rows = {line.split(maxsplit=1)[1][:40]: line for line in run.stdout.splitlines()
            if line[:4].strip().isdigit()}
    fragile = next(line for key, line in rows.items() if key.startswith(FRAGILE))
    robust = next(line for key, line in rows.items() if key.startswith(ROBUST))
    cells = fragile.split("  ")
    assert "✓ mean = " in fragile and "✗ mean = " in fragile
    assert fragile.index("✓") < fragile.index("✗"), cells  # seed order: holding, failing
    assert robust.count("✓") == 2 and "✗" not in robust
    assert f"seed {fail}: {FRAGILE!r}: no clear difference" in run.stdout
    assert "1 failure(s)" in run.stdout
    assert hashlib.sha256(notebook.read_bytes()).hexdigest() == before  # never written
    sweep = json.loads(out_json.read_text())["09_tiny.ipynb"]
    assert [len(sweep["records"][str(s)]) for s in (hold, fail)] == [3, 3]
    assert sweep["records"][str(fail)][0]["seed"] == fail

    single = subprocess.run([sys.executable, str(SCRIPT), "--seeds", str(hold), str(notebook)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert single.returncode == 0, single.stdout + single.stderr
    assert f"every claim holds at seeds {hold}" in single.stdout


def test_the_table_flags_claims_missing_at_a_seed_and_cell_errors():
    script = _load_script()

    def record(statement, holds=True):
        return {"statement": statement, "kind": "greater", "holds": holds,
                "verdict": "holds" if holds else "reversed", "low": 0.1,
                "evidence": "Δ = 0.2 [0.1, 0.3], 9 units, 2,000 resamples"}

    lines, failures = script.table("ch.ipynb", {0: [record("A"), record("B")],
                                                1: [record("A"), record("B", False)],
                                                2: [record("A")]},
                                   {0: None, 1: None, 2: "ValueError: boom"})
    assert "✓ Δ = 0.2 [0.1, 0.3]" in lines[2] and lines[2].count("✓") == 3
    assert "✗ Δ = 0.2 [0.1, 0.3]" in lines[3] and "– not stated" in lines[3]
    assert len(failures) == 3
    assert any("seed 2" in f and "not stated" in f for f in failures)
    assert any("stopped: ValueError: boom" in f for f in failures)


def test_bad_arguments_are_refused(tmp_path):
    script = _load_script()
    with pytest.raises(SystemExit):
        script.main(["--seeds", "-1", str(tmp_path / "x.ipynb")])
    with pytest.raises(SystemExit):
        script.main([str(tmp_path / "missing.ipynb")])
