"""Claims: a result sentence passes when its numbers support it and fails the notebook when not."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tutorial_utils import claims


def test_claim_prints_statement_and_numbers(capsys):
    assert claims.claim("MSP beats chance", 0.93 > 0.5, auroc=0.93, n=1_400) is None
    assert capsys.readouterr().out.strip() == "✓ MSP beats chance (auroc=0.930, n=1,400)"


def test_false_claim_raises_with_the_evidence():
    with pytest.raises(claims.ClaimError, match=r"'GradNorm wins'.*auroc=0.412"):
        claims.claim("GradNorm wins", 0.412 > 0.5, auroc=0.412)


def test_tensor_and_numpy_truth_values():
    claims.claim("tensor", torch.tensor(3.0) > 2, value=torch.tensor(3.0))
    claims.claim("numpy", np.float64(0.2) < 1, value=np.float32(0.2))
    with pytest.raises(TypeError, match="reduce it with .all"):
        claims.claim("a whole tensor", torch.rand(3) >= 0)
    with pytest.raises(TypeError, match="bool"):
        claims.claim("a number is not a truth value", 0.7)
    with pytest.raises(TypeError, match="statement"):
        claims.claim("", True)


def test_mixed_needs_evidence_both_ways(capsys):
    claims.mixed("the gradient score wins on some sets", [True, False, True], sets=3)
    assert capsys.readouterr().out.startswith(
        "≈ the gradient score wins on some sets (2 of 3 hold; sets=3)")
    with pytest.raises(claims.ClaimError, match="3 of 3"):
        claims.mixed("not really mixed", [True, True, True])
    with pytest.raises(ValueError):
        claims.mixed("nothing", [])


def test_format_number():
    assert claims.format_number(0.000123) == "0.000123"
    assert claims.format_number(123456.0) == "1.23e+05"
    assert claims.format_number(12) == "12"
    assert claims.format_number(float("nan")) == "nan"


def _notebook(path, condition: str) -> None:
    cell = {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
            "source": ["from tutorial_utils import claims\n",
                       "auroc = 0.61\n",
                       f"claims.claim('the score finds GO', {condition}, auroc=auroc)\n"]}
    nb = {"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                      "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def test_a_claim_made_false_fails_the_notebook_test(tmp_path):
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    _notebook(good, "auroc > 0.5")
    _notebook(bad, "auroc > 0.9")  # the comparison flipped: the run no longer supports it
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
           "--rootdir", str(tmp_path), "-c", "/dev/null"]
    passed = subprocess.run(cmd + [str(good)], capture_output=True, text=True, timeout=300)
    failed = subprocess.run(cmd + [str(bad)], capture_output=True, text=True, timeout=300)
    assert passed.returncode == 0, passed.stdout[-2000:]
    assert failed.returncode != 0
    assert "ClaimError" in failed.stdout
