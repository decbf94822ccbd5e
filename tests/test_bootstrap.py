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
