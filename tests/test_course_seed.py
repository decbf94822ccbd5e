"""The course seed: one environment variable, named independent sub-seeds for every draw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_utils import utils


def test_the_default_course_seed_is_zero_and_the_variable_sets_it(monkeypatch):
    monkeypatch.delenv("TUTORIAL_SEED", raising=False)
    assert utils.course_seed() == 0
    monkeypatch.setenv("TUTORIAL_SEED", " 7 ")
    assert utils.course_seed() == 7
    monkeypatch.setenv("TUTORIAL_SEED", "")
    assert utils.course_seed() == 0


@pytest.mark.parametrize("value", ["one", "1.5", "-1"])
def test_a_bad_course_seed_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("TUTORIAL_SEED", value)
    with pytest.raises(ValueError, match="TUTORIAL_SEED must be a non-negative integer"):
        utils.course_seed()


def test_derived_seeds_are_stable_named_and_follow_the_course_seed(monkeypatch):
    monkeypatch.delenv("TUTORIAL_SEED", raising=False)
    masks = utils.derive_seed("rise-masks")
    assert masks == utils.derive_seed("rise-masks")  # stable (no salted hash)
    assert 0 <= masks < 2 ** 63
    others = {utils.derive_seed("shape-masks"), utils.derive_seed("rise-masks", 1),
              utils.derive_seed("rise-masks", "1"), utils.derive_seed("rise-masks", 1, 2)}
    assert masks not in others and len(others) == 4
    monkeypatch.setenv("TUTORIAL_SEED", "1")
    assert utils.derive_seed("rise-masks") != masks


def test_generators_draw_reproducibly_and_change_with_the_course_seed(monkeypatch):
    monkeypatch.setenv("TUTORIAL_SEED", "0")
    a = utils.generator("stream-order").permutation(10)
    assert np.array_equal(a, utils.generator("stream-order").permutation(10))
    t = torch.rand(5, generator=utils.torch_generator("noise"))
    assert torch.equal(t, torch.rand(5, generator=utils.torch_generator("noise")))
    state = torch.random.get_rng_state()
    monkeypatch.setenv("TUTORIAL_SEED", "1")
    assert not np.array_equal(a, utils.generator("stream-order").permutation(10))
    assert not torch.equal(t, torch.rand(5, generator=utils.torch_generator("noise")))
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched


@pytest.mark.parametrize("call, error", [
    (lambda: utils.derive_seed(""), TypeError),
    (lambda: utils.derive_seed(3), TypeError),
    (lambda: utils.derive_seed("x", 1.5), TypeError),
    (lambda: utils.derive_seed("x", True), TypeError),
    (lambda: utils.derive_seed("x", -1), ValueError),
])
def test_bad_names_and_keys_are_clear_errors(call, error):
    with pytest.raises(error, match="name|keys"):
        call()


def test_the_course_seed_reaches_the_chapters_draws(monkeypatch):
    # chapter 1 draws its GO signs and its challenge patterns from derived seeds
    from tutorial_utils import data

    def draws():
        go = data.load_ood("go", n=4, seed=utils.derive_seed("ood-go"))
        clean = torch.full((2, 3, 48, 48), 0.5)
        snow = data.apply_challenge(clean, "snow", 5, seed=utils.derive_seed("challenge-patterns"))
        return go, snow

    monkeypatch.setenv("TUTORIAL_SEED", "0")
    go0, snow0 = draws()
    assert all(torch.equal(a, b) for a, b in zip((go0, snow0), draws(), strict=True))
    monkeypatch.setenv("TUTORIAL_SEED", "1")
    go1, snow1 = draws()
    assert not torch.equal(go0, go1) and not torch.equal(snow0, snow1)


def test_no_chapter_states_a_literal_seed():
    import re
    from pathlib import Path

    import nbformat

    literal = re.compile(r"seed\s*=\s*[0-9]")
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                assert not literal.search(cell.source), f"{path.name} cell {i}: literal seed"
