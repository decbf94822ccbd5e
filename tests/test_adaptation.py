"""Test-time augmentation and adaptation: oracles, exact restoration, RNG hygiene, bad inputs."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from tutorial_utils import adaptation, models
from tutorial_utils.data import apply_challenge, stratified_indices


@pytest.fixture(scope="module")
def snowy(signs):
    """Two test signs per class under snow at level 3: (28, 3, 48, 48) and labels."""
    idx = stratified_indices(signs.y_test, 2, seed=0)
    return apply_challenge(signs.x_test[idx], "snow", 3, seed=0), signs.y_test[idx]


@pytest.fixture
def model(sign_model):
    """A private copy of the zoo sign model, so a failing test cannot spoil the session's."""
    return copy.deepcopy(sign_model)


def _snapshot(m):
    return ({k: v.clone() for k, v in m.state_dict().items()},
            {n: mod.training for n, mod in m.named_modules()},
            {n: (p.requires_grad, None if p.grad is None else p.grad.clone())
             for n, p in m.named_parameters()},
            {n: id(p) for n, p in m.named_parameters()})


def _assert_same(m, snap):
    state, modes, flags, ids = snap
    now = m.state_dict()
    assert now.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(now[k], v), f"{k} changed"
    assert {n: mod.training for n, mod in m.named_modules()} == modes
    for n, p in m.named_parameters():
        flag, grad = flags[n]
        assert p.requires_grad == flag, n
        assert (p.grad is None and grad is None) or torch.equal(p.grad, grad), n
        assert id(p) == ids[n]


def _entropy(p):
    return -(p * p.clamp_min(1e-12).log()).sum(1)


# --------------------------------------------------------------------------- TTA


def test_tta_with_identity_only_equals_predict_proba(model, snowy, tiny, x8):
    x, _ = snowy
    p = adaptation.tta_predict(model, x, augmentations=("identity",))
    torch.testing.assert_close(p, models.predict_proba(model, x), atol=1e-5, rtol=0)
    torch.testing.assert_close(adaptation.tta_predict(tiny, x8, "identity"),
                               models.predict_proba(tiny, x8), atol=1e-6, rtol=0)


def test_tta_is_the_mean_of_the_copies_and_chunk_invariant(model, snowy):
    x, _ = snowy
    mean, per = adaptation.tta_predict(model, x, per_augmentation=True)
    assert per.shape == (len(adaptation.DEFAULT_TTA), len(x), 14) and mean.shape == (len(x), 14)
    torch.testing.assert_close(mean, per.mean(0))
    torch.testing.assert_close(mean.sum(1), torch.ones(len(x)))
    for a, name in enumerate(adaptation.DEFAULT_TTA):
        copy_a = adaptation.AUGMENTATIONS[name](x)
        torch.testing.assert_close(per[a], models.predict_proba(model, copy_a), atol=1e-5, rtol=0)
    small = adaptation.tta_predict(model, x, batch_size=10)  # one image per forward
    torch.testing.assert_close(small, mean, atol=1e-5, rtol=0)


def test_default_augmentations_never_mirror_and_are_exact():
    assert "hflip" in adaptation.AUGMENTATIONS and "hflip" not in adaptation.DEFAULT_TTA
    x = torch.rand(2, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    right = adaptation.AUGMENTATIONS["shift_right"](x)
    torch.testing.assert_close(right[..., 2:], x[..., :-2])
    torch.testing.assert_close(right[..., :2], x[..., :1].expand(-1, -1, -1, 2))
    down = adaptation.AUGMENTATIONS["shift_down"](x)
    torch.testing.assert_close(down[..., 2:, :], x[..., :-2, :])
    up = adaptation.AUGMENTATIONS["shift_up"](x)
    torch.testing.assert_close(up[..., :-2, :], x[..., 2:, :])
    for name, fn in adaptation.AUGMENTATIONS.items():
        out = fn(x)
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1, name
    stack = adaptation.augment(x, ("identity", "hflip"))
    assert torch.equal(stack[:2], x) and torch.equal(stack[2:], x.flip(-1))
    const = torch.full((1, 1, 16, 16), 0.3)  # a constant image is a fixed point of every one
    for name, fn in adaptation.AUGMENTATIONS.items():
        torch.testing.assert_close(fn(const), const, msg=name)


def test_tta_accepts_callables_and_rejects_bad_augmentations(tiny, x8):
    p = adaptation.tta_predict(tiny, x8, [lambda x: x, "identity"])
    torch.testing.assert_close(p, models.predict_proba(tiny, x8), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        adaptation.tta_predict(tiny, x8, ("identity", "blur"))
    with pytest.raises(ValueError, match="must return a tensor of the input's shape"):
        adaptation.tta_predict(tiny, x8, [lambda x: x[:, :, :4]])
    with pytest.raises(TypeError, match="augmentations"):
        adaptation.tta_predict(tiny, x8, [])
    with pytest.raises(TypeError, match="augmentations"):
        adaptation.tta_predict(tiny, x8, [3])
    with pytest.raises(ValueError, match="batch_size"):
        adaptation.tta_predict(tiny, x8, batch_size=0)
    with pytest.raises(ValueError, match="x must hold pixels in"):
        adaptation.tta_predict(tiny, x8 * 3)


# --------------------------------------------------------------------------- BN / TENT


def test_bn_adapt_normalises_with_the_test_batch(model, snowy):
    x, _ = snowy
    p = adaptation.bn_adapt(model, x)
    oracle = copy.deepcopy(model).eval()
    for m in oracle.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.train()
    with torch.no_grad():
        expected = oracle(x).softmax(1)
    torch.testing.assert_close(p, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(p, models.predict_proba(model, x), atol=1e-3)
    # chunks are normalised separately: batch size matters
    assert not torch.allclose(adaptation.bn_adapt(model, x, batch_size=7), p, atol=1e-3)


def test_tent_with_zero_steps_equals_bn_adapt(model, snowy):
    x, _ = snowy
    assert torch.equal(adaptation.tent(model, x, steps=0), adaptation.bn_adapt(model, x))
    assert torch.equal(adaptation.tent(model, x, steps=0, batch_size=10),
                       adaptation.bn_adapt(model, x, batch_size=10))


def test_tent_one_step_matches_a_hand_written_adam_step(model, snowy):
    x, _ = snowy
    oracle = copy.deepcopy(model).eval()
    bns = [m for m in oracle.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.train()
    params = [p for m in bns for p in (m.weight, m.bias)]
    opt = torch.optim.Adam(params, lr=1e-3)
    logp = F.log_softmax(oracle(x), 1)
    (-(logp.exp() * logp).sum(1).mean()).backward()
    opt.step()
    with torch.no_grad():
        expected = oracle(x).softmax(1)
    torch.testing.assert_close(adaptation.tent(model, x, steps=1), expected, atol=1e-5, rtol=0)
    sgd = adaptation.tent(model, x, steps=1, lr=1e-3, optimizer="sgd")
    assert sgd.shape == expected.shape


def test_tent_lowers_the_entropy_of_the_batch_it_adapted_on(model, snowy):
    x, _ = snowy
    probs, history = adaptation.tent(model, x, steps=5, return_history=True)
    assert history.shape == (6,)
    assert history[-1] < history[0]
    assert torch.all(history[1:] < history[:-1])  # every Adam step lowered it on this batch
    base = adaptation.bn_adapt(model, x)
    assert _entropy(probs).mean() < _entropy(base).mean()
    torch.testing.assert_close(history[0].float(), _entropy(base).mean(), atol=1e-5, rtol=0)
    torch.testing.assert_close(history[-1].float(), _entropy(probs).mean(), atol=1e-5, rtol=0)


def test_tent_episodic_resets_between_chunks_and_online_does_not(model, snowy):
    x, _ = snowy
    episodic = adaptation.tent(model, x, steps=2, lr=1e-2, batch_size=14, episodic=True)
    alone = adaptation.tent(model, x[14:], steps=2, lr=1e-2, batch_size=14)
    torch.testing.assert_close(episodic[14:], alone, atol=1e-6, rtol=0)
    online = adaptation.tent(model, x, steps=2, lr=1e-2, batch_size=14)
    torch.testing.assert_close(online[:14], episodic[:14], atol=1e-6, rtol=0)
    assert not torch.allclose(online[14:], alone, atol=1e-4)


@pytest.mark.parametrize("method", ["tta", "bn", "tent", "tent-sgd-episodic"])
def test_model_is_bit_identical_afterwards(model, snowy, method):
    x, _ = snowy
    model.train()  # an unusual state: training mode, one frozen layer, a stale gradient
    model.fc.weight.requires_grad_(False)
    model.last_conv[0][1].weight.grad = torch.full_like(model.last_conv[0][1].weight, 0.5)
    snap = _snapshot(model)
    rng = torch.get_rng_state()
    call = {"tta": lambda: adaptation.tta_predict(model, x),
            "bn": lambda: adaptation.bn_adapt(model, x),
            "tent": lambda: adaptation.tent(model, x, steps=3, lr=1e-2),
            "tent-sgd-episodic": lambda: adaptation.tent(model, x, steps=2, optimizer="sgd",
                                                         episodic=True, batch_size=10)}[method]
    out = call()
    assert out.shape == (len(x), 14)
    _assert_same(model, snap)
    assert torch.equal(torch.get_rng_state(), rng)
    # nothing carried over from the first call: a second one gives the same answer
    again = call()
    torch.testing.assert_close(again, out, atol=0, rtol=0)


def test_restoring_undoes_everything_even_on_error(model):
    snap = _snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        with adaptation.restoring(model):
            model.train()
            for p in model.parameters():
                p.requires_grad_(False)
            with torch.no_grad():
                model.fc.weight.add_(1.0)
                for b in model.buffers():
                    b.add_(1)
            raise RuntimeError("boom")
    _assert_same(model, snap)


def test_adaptation_rejects_bad_inputs(model, tiny, x8, snowy):
    x, _ = snowy
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        adaptation.tent(tiny, x8)
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        adaptation.bn_adapt(tiny, x8)
    for bad, err, match in [(dict(steps=-1), ValueError, "steps"),
                            (dict(steps=1.5), TypeError, "steps"),
                            (dict(lr=0.0), ValueError, "lr"),
                            (dict(lr="big"), TypeError, "lr"),
                            (dict(optimizer="rmsprop"), ValueError, "optimizer"),
                            (dict(batch_size=0), ValueError, "batch_size")]:
        with pytest.raises(err, match=match):
            adaptation.tent(model, x, **bad)
    with pytest.raises(ValueError, match="must have 3 channel"):
        adaptation.tent(model, x[:, :1])
    with pytest.raises(TypeError, match="float"):
        adaptation.bn_adapt(model, x.double())


# --------------------------------------------------------------------------- evaluation


def test_evaluate_by_level_table(model, signs):
    idx = stratified_indices(signs.y_test, 4, seed=0)
    x, y = signs.x_test[idx], signs.y_test[idx]
    rng = torch.get_rng_state()
    snap = _snapshot(model)
    df = adaptation.evaluate_by_level(model, x, y, "snow", levels=(0, 4), progress=False)
    assert torch.equal(torch.get_rng_state(), rng)
    _assert_same(model, snap)
    assert list(df.columns) == ["kind", "level", "method", "accuracy", "confidence", "ece"]
    assert len(df) == 8 and set(df.method) == set(adaptation.METHODS)
    assert df.accuracy.between(0, 1).all() and df.ece.between(0, 1).all()
    row = df.set_index(["level", "method"])
    p = models.predict_proba(model, apply_challenge(x, "snow", 4, seed=0))
    accuracy = float((p.argmax(1) == y).float().mean())
    assert row.loc[(4, "none"), "accuracy"] == pytest.approx(accuracy)
    from tutorial_utils.metrics import expected_calibration_error

    assert row.loc[(4, "none"), "ece"] == pytest.approx(expected_calibration_error(p, y))
    # the chapter's observation: BatchNorm adaptation recovers most of what snow costs
    assert row.loc[(4, "bn"), "accuracy"] > row.loc[(4, "none"), "accuracy"] + 0.3
    again = adaptation.evaluate_by_level(model, x, y, "snow", levels=(0, 4), progress=False)
    assert again.equals(df)


def test_evaluate_by_level_rejects_bad_arguments(model, signs):
    x, y = signs.x_test[:6], signs.y_test[:6]
    with pytest.raises(ValueError, match="methods"):
        adaptation.evaluate_by_level(model, x, y, "snow", methods=("none", "mixup"))
    with pytest.raises(ValueError, match="level"):
        adaptation.evaluate_by_level(model, x, y, "snow", levels=(1, 6))
    with pytest.raises(ValueError, match="unknown challenge kind"):
        adaptation.evaluate_by_level(model, x, y, "fog")
    with pytest.raises(ValueError, match="y must give one class per sample"):
        adaptation.evaluate_by_level(model, x, y[:3], "snow")
    with pytest.raises(ValueError, match="y class 20 is out of range"):
        adaptation.evaluate_by_level(model, x, torch.full((6,), 20), "snow")
