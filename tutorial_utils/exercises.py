"""Checkers for the exercises: one call tells a learner what is wrong with an attempt.

Every chapter's exercises end with a line such as ``exercises.gradcam_weights(my_alpha)``. A
checker runs the learner's function (or reads their answer) on cases with known answers and
prints one of

* ``○ not attempted`` — the placeholder ``None`` / ``...`` is still there;
* ``✓ correct`` — every case passed;
* ``✗ <what is wrong>`` and a hint — the first failed case, named (a sign error, a wrong axis,
  a missing normalisation, natural instead of binary logarithm, ...).

It returns ``True``/``False`` (``None`` when not attempted), so the hidden reference solutions,
which CI executes, assert that their own checker accepts them. Checkers never raise on a wrong
answer; an exception inside the learner's function is reported as feedback.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

__all__ = ["gradcam_weights", "contrast_weights", "occlusion_patch", "softmax_temperature",
           "entropy_bits", "fisher_matrix", "choice"]


class _NotAttempted(Exception):
    """The learner's function still returns ``None`` (its body is the ``...`` placeholder)."""


class _Wrong(Exception):
    """A failed case: ``str(self)`` says what is wrong, ``hint`` how to fix it."""

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(what)
        self.hint = hint


def _attempted(answer: object) -> bool:
    return answer is not None and answer is not Ellipsis


def _run(name: str, answer: object, check: Callable[[object], None]) -> bool | None:
    """Print the verdict of ``check(answer)`` for exercise ``name``; return it."""
    message = f"○ {name}: not attempted — replace the None/... placeholder with your answer."
    if not _attempted(answer):
        print(message)
        return None
    try:
        check(answer)
    except _NotAttempted:
        print(message)
        return None
    except _Wrong as wrong:
        print(f"✗ {name}: {wrong}" + (f"\n  hint: {wrong.hint}" if wrong.hint else ""))
        return False
    except Exception as error:  # the learner's code raised: report, don't crash the notebook
        print(f"✗ {name}: your code raised {type(error).__name__}: {error}")
        return False
    print(f"✓ {name}: correct.")
    return True


def _call(fn: object, *args: object) -> torch.Tensor:
    if not callable(fn):
        raise _Wrong(f"expected a function, got {type(fn).__name__}",
                     "define it with def my_fn(...): ... and pass my_fn itself (no parentheses)")
    out = fn(*args)
    if out is None:
        raise _NotAttempted
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(np.asarray(out), dtype=torch.float64)
    return out.detach().double()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-6))


# --------------------------------------------------------------------------------------
# Chapter 1
# --------------------------------------------------------------------------------------


def softmax_temperature(fn: object) -> bool | None:
    """``fn(z, T)`` -> ``softmax(z / T)`` for logits ``z`` (K,) and a temperature ``T > 0``."""
    def check(f: object) -> None:
        z = torch.tensor([2.0, 0.5, -1.0, 0.0], dtype=torch.float64)
        for t in (1.0, 4.0, 0.25):
            got, want = _call(f, z, t), (z / t).softmax(0)
            if _close(got, (z * t).softmax(0)) and t != 1.0:
                raise _Wrong(f"for T = {t} you multiplied the logits by T",
                             "temperature divides: softmax(z / T); T > 1 flattens")
            if _close(got, z.softmax(0)) and t != 1.0:
                raise _Wrong(f"for T = {t} the temperature had no effect")
            if not _close(got, want):
                raise _Wrong(f"for z = {z.tolist()}, T = {t} expected {want.numpy().round(4)}, "
                             f"got {got.numpy().round(4)}", "softmax(z / T) = exp(z/T) / Σ exp")
    return _run("softmax with temperature", fn, check)


def entropy_bits(fn: object) -> bool | None:
    """``fn(p)`` -> Shannon entropy in **bits** of each row of probabilities ``p`` (N, K)."""
    def check(f: object) -> None:
        p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25] * 4, [1.0, 0.0, 0.0, 0.0]],
                         dtype=torch.float64)
        want = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
        got = _call(f, p)
        if got.shape != want.shape:
            raise _Wrong(f"expected one entropy per row, shape (3,), got {tuple(got.shape)}",
                         "sum over the classes: dim=1")
        if torch.isnan(got).any():
            raise _Wrong("a row with zeros gave NaN", "use the convention 0·log 0 = 0, e.g. "
                         "torch.where(p > 0, p * torch.log2(p), 0)")
        if _close(got, -want):
            raise _Wrong("sign error: entropy is −Σ p log p, non-negative")
        if _close(got, want * math.log(2)):
            raise _Wrong("these are nats, not bits", "use log2, or divide by ln 2")
        if not _close(got, want):
            raise _Wrong(f"expected {want.tolist()} bits, got {got.numpy().round(4).tolist()}")
    return _run("entropy in bits", fn, check)


def fisher_matrix(fn: object) -> bool | None:
    """``fn(U)`` -> ``E[U Uᵀ]`` (P, P) from per-sample score vectors ``U`` (N, P)."""
    def check(f: object) -> None:
        gen = torch.Generator().manual_seed(0)
        u = torch.randn(7, 3, generator=gen, dtype=torch.float64) + 1.0  # non-zero mean
        want = u.T @ u / len(u)
        got = _call(f, u)
        if got.shape == (7, 7):
            raise _Wrong("you built an (N, N) matrix: U Uᵀ over samples",
                         "the Fisher is over parameters: U.T @ U / N, shape (P, P)")
        if _close(got, u.T @ u):
            raise _Wrong("you summed the outer products; the Fisher is their mean (divide by N)")
        centred = u - u.mean(0)
        if _close(got, centred.T @ centred / len(u)) or _close(got, torch.cov(u.T)):
            raise _Wrong("that is the covariance Var(U): it equals E[U Uᵀ] only when the mean "
                         "score is zero (labels drawn from the model)", "use U.T @ U / N")
        if not _close(got, want):
            raise _Wrong("expected U.T @ U / N")
    return _run("Fisher information E[U Uᵀ]", fn, check)


# --------------------------------------------------------------------------------------
# Chapter 2
# --------------------------------------------------------------------------------------


def gradcam_weights(fn: object) -> bool | None:
    """``fn(acts, grads)`` -> Grad-CAM's ``α`` (B, C): the gradients averaged over u, v."""
    def check(f: object) -> None:
        gen = torch.Generator().manual_seed(1)
        acts = torch.rand(2, 5, 3, 4, generator=gen, dtype=torch.float64)
        grads = torch.randn(2, 5, 3, 4, generator=gen, dtype=torch.float64)
        want = grads.mean(dim=(2, 3))
        got = _call(f, acts, grads)
        if got.shape in ((2, 3, 4), (3, 4), (2, 12)):
            raise _Wrong(f"wrong axis: you averaged over the channels (shape {tuple(got.shape)})",
                         "average over the spatial positions: grads.mean(dim=(2, 3)) -> (B, C)")
        if got.shape != want.shape:
            raise _Wrong(f"expected one weight per image and channel, (2, 5); got "
                         f"{tuple(got.shape)}")
        if _close(got, -want):
            raise _Wrong("sign error: Grad-CAM keeps the gradient's sign (the *negated* weights "
                         "are CounterfactualCAM)")
        if _close(got, want * 12):
            raise _Wrong("you summed over the 3 × 4 positions; α is their mean (divide by h·w)")
        if _close(got, (acts * grads).mean(dim=(2, 3))):
            raise _Wrong("you weighted by the activations: that is the map Σ α A, not α")
        if not _close(got, want):
            raise _Wrong("expected grads.mean(dim=(2, 3))")
    return _run("Grad-CAM channel weights", fn, check)


def contrast_weights(fn: object) -> bool | None:
    """``fn(p, J, q)`` -> ContrastCAM's ``α_Q = (p − e_Q)ᵀ J`` (C,) from probabilities ``p``
    (K,), pooled logit gradients ``J`` (K, C) and a contrast class ``q``."""
    def check(f: object) -> None:
        gen = torch.Generator().manual_seed(2)
        p = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
        jac = torch.randn(3, 4, generator=gen, dtype=torch.float64)
        for q in (1, 0):
            e = torch.zeros(3, dtype=torch.float64)
            e[q] = 1
            want = (p - e) @ jac
            got = _call(f, p, jac, q)
            if _close(got, -want):
                raise _Wrong(f"sign error for Q = {q}: ContrastCAM backpropagates CE(z, Q) itself, "
                             "∂CE/∂z = p − e_Q (no sign flip)")
            if _close(got, jac[int(p.argmax())] - jac[q]):
                raise _Wrong("that is the p ≈ e_P approximation J_P − J_Q; use the probabilities")
            if not _close(got, want):
                raise _Wrong(f"for Q = {q} expected (p − e_Q) @ J = {want.numpy().round(3)}, "
                             f"got {got.numpy().round(3)}")
    return _run("ContrastCAM channel weights", fn, check)


def choice(name: str, answer: object, correct: object, feedback: dict) -> bool | None:
    """A multiple-choice question: ``feedback`` maps each wrong option to what is wrong."""
    def check(a: object) -> None:
        if a != correct:
            raise _Wrong(feedback.get(a, f"{a!r} is not one of the options "
                                         f"{[correct, *feedback]}"))
    return _run(name, answer, check)


def occlusion_patch(answer: object) -> bool | None:
    """Which occlusion patch carries no evidence for the digit model: 'grey', 'mean', 'white'?"""
    return choice("occlusion patch for digits", answer, "mean", {
        "grey": "grey (0.5) is +1.2σ in the digit model's normalisation: bright ink on a black "
                "ground, so the map lands on the background",
        "white": "white is the strongest ink there is: it adds evidence instead of removing it",
    })


# --------------------------------------------------------------------------------------
# Chapter 3
# --------------------------------------------------------------------------------------


def energy_score(fn: object) -> bool | None:
    """``fn(z, T)`` -> the Energy score ``T·logsumexp(z/T)`` per row of logits ``z`` (B, K)."""
    def check(f: object) -> None:
        z = torch.tensor([[4.0, 1.0, 0.0], [0.5, 0.4, 0.3]], dtype=torch.float64)
        for t in (1.0, 2.0):
            want = t * torch.logsumexp(z / t, dim=1)
            got = _call(f, z, t)
            if got.shape != want.shape:
                raise _Wrong(f"expected one score per row, shape (2,), got {tuple(got.shape)}",
                             "logsumexp over the classes: dim=1")
            if _close(got, -want):
                raise _Wrong("sign error: the course's scores are higher = more in-distribution, "
                             "so use +T·logsumexp(z/T) (the free energy is its negative)")
            if _close(got, torch.logsumexp(z / t, dim=1)) and t != 1.0:
                raise _Wrong(f"for T = {t} you forgot the factor T in front")
            if _close(got, z.max(1).values):
                raise _Wrong("that is the maximum logit (the T → 0 limit), not the energy")
            if not _close(got, want):
                raise _Wrong(f"for T = {t} expected {want.numpy().round(4)}, got "
                             f"{got.numpy().round(4)}")
    return _run("Energy score", fn, check)


def mutual_information_split(fn: object) -> bool | None:
    """``fn(probs)`` -> (aleatoric, epistemic) per sample from MC/ensemble probabilities
    ``probs`` (T, B, K): mean entropy of the passes, and entropy of the mean minus it."""
    def check(f: object) -> None:
        probs = torch.tensor([[[0.9, 0.1], [0.5, 0.5]], [[0.1, 0.9], [0.5, 0.5]]],
                             dtype=torch.float64)  # sample 0: disagreement; 1: agree on 50/50
        h = lambda p: -(p * p.clamp_min(1e-12).log()).sum(-1)  # noqa: E731
        alea, epi = h(probs).mean(0), h(probs.mean(0)) - h(probs).mean(0)
        out = f(probs) if callable(f) else f
        if out is None:
            raise _NotAttempted
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _Wrong("return a pair (aleatoric, epistemic), each of shape (B,)")
        a, e = (torch.as_tensor(v).double() for v in out)
        if _close(a, epi) and _close(e, alea):
            raise _Wrong("you swapped them: aleatoric is the mean entropy of the passes, "
                         "epistemic the mutual information (what the passes disagree on)")
        if not _close(a, alea):
            raise _Wrong(f"aleatoric should be the mean over passes of each pass's entropy: "
                         f"{alea.numpy().round(3)}, got {a.numpy().round(3)}")
        if _close(e, -epi):
            raise _Wrong("sign error: epistemic = H(mean p) − mean H(p) ≥ 0")
        if not _close(e, epi):
            raise _Wrong(f"epistemic should be H(mean p) − mean H(p): {epi.numpy().round(3)}; "
                         "sample 1's passes agree (50/50 both times), so its epistemic part is 0")
    return _run("aleatoric + epistemic split", fn, check)


def detection_orientation(answer: object) -> bool | None:
    """A detector's AUROC is 0.2 on ID (positive) vs OOD: what does that mean?"""
    return choice("an AUROC of 0.2", answer, "reversed", {
        "useless": "0.5 would be useless (chance); 0.2 ranks most OOD inputs *above* the ID ones",
        "good": "with ID as the positive class and higher = ID, a good score has AUROC near 1",
    })
