"""The cluster bootstrap (tutorial_utils.bootstrap): its names, as tests/test_claims.py uses
them through tutorial_utils.claims, are the same objects in both modules."""

from __future__ import annotations

import numpy as np
import pytest

from tutorial_utils import bootstrap, claims


def test_claims_keeps_every_public_name_of_the_bootstrap():
    for name in bootstrap.__all__:
        assert getattr(claims, name) is getattr(bootstrap, name)
    for name in claims.__all__:  # every public name of claims still imports
        assert getattr(claims, name) is not None


def test_estimate_knows_nothing_about_sentences_and_names_bad_arguments():
    x = np.random.default_rng(0).normal(0.5, 1.0, 60)
    est = bootstrap.estimate(x, key="a stream")
    assert est.low < 0.5 < est.high and est.resamples == bootstrap.RESAMPLES
    assert bootstrap.estimate(x, key="a stream").draws.tolist() == est.draws.tolist()
    assert bootstrap.estimate(x, key="another").draws.tolist() != est.draws.tolist()
    with pytest.raises(ValueError, match="statistic"):
        bootstrap.estimate(x, statistic="median")
    with pytest.raises(ValueError, match="resamples"):
        bootstrap.estimate(x, resamples=10)


def test_mutual_information_matches_the_information_table_on_every_resample():
    import torch

    from tutorial_utils import information

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.6, y, rng.integers(0, 5, 300))
    units = np.arange(300) // 3
    stat = bootstrap.STATISTICS["mutual_information"].prepare(np.c_[y, pred].astype(float),
                                                              None, units)
    counts = rng.multinomial(100, np.full(100, 1 / 100), size=6).astype(float)
    for c, value in zip(np.r_[np.ones((1, 100)), counts], stat(np.r_[np.ones((1, 100)), counts]),
                        strict=True):
        rows = np.repeat(np.arange(300), c[units].astype(int))
        table = information.information_table(torch.from_numpy(y[rows]),
                                              torch.from_numpy(pred[rows]))
        assert value == pytest.approx(table["I(A;B)"], abs=1e-9)
    with pytest.raises(ValueError, match="integer pairs"):
        bootstrap.estimate(np.c_[y, pred, y], statistic="mutual_information")
