"""Checkers for the exercises: one call tells a learner what is wrong with an attempt.

Every chapter's exercises end with a line such as ``exercises.gradcam_weights(my_alpha)``. A
checker runs the learner's function (or reads their answer) on cases with known answers and
prints one of

* ``○ not attempted`` — the placeholder ``None`` / ``...`` is still there;
* ``✓ correct`` — every case passed;
* ``✗ <what is wrong>`` and a hint — the first failed case, named (a sign error, a wrong axis,
  a missing normalisation, natural instead of binary logarithm, ...).

It returns a :class:`Verdict` that is truthy when correct (``None`` when not attempted), so the
hidden reference solutions, which CI executes, assert that their own checker accepts them; a
verdict displays nothing, so a checker cell shows the printed verdict and no ``Out[n]: True``.
Checkers never raise on a wrong answer; an exception inside the learner's function is reported
as feedback.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

__all__ = [
    "Verdict",
    "gradcam_weights",
    "contrast_weights",
    "occlusion_patch",
    "softmax_temperature",
    "entropy_bits",
    "fisher_matrix",
    "choice",
    "deletion_auc",
    "fgsm_step",
    "tpr_at_fpr",
]


class _NotAttempted(Exception):
    """The learner's function still returns ``None`` (its body is the ``...`` placeholder)."""


class _Wrong(Exception):
    """A failed case: ``str(self)`` says what is wrong, ``hint`` how to fix it."""

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(what)
        self.hint = hint


class Verdict:
    """A checker's result: ``bool(verdict)`` is whether the answer is correct; ``ok`` the same
    as a plain bool. It displays nothing in a notebook (the checker has printed the verdict),
    so the last line of a checker cell leaves no stray ``Out[n]: True``."""

    __slots__ = ("ok",)

    def __init__(self, ok: bool) -> None:
        self.ok = bool(ok)

    def __bool__(self) -> bool:
        return self.ok

    def __eq__(self, other: object) -> bool:
        return self.ok == (other.ok if isinstance(other, Verdict) else other)

    def __hash__(self) -> int:
        return hash(self.ok)

    def __repr__(self) -> str:
        return f"Verdict({self.ok})"

    def _ipython_display_(self) -> None:
        """Nothing to show: the verdict line is printed already."""


def _attempted(answer: object) -> bool:
    return answer is not None and answer is not Ellipsis


def _run(name: str, answer: object, check: Callable[[object], None]) -> Verdict | None:
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
        return Verdict(False)
    except Exception as error:  # the learner's code raised: report, don't crash the notebook
        print(f"✗ {name}: your code raised {type(error).__name__}: {error}")
        return Verdict(False)
    print(f"✓ {name}: correct.")
    return Verdict(True)


def _copy(value: object) -> object:
    return value.clone() if isinstance(value, torch.Tensor) else (
        value.copy() if isinstance(value, np.ndarray) else value)


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b))
    return True


def _invoke(fn: object, *args: object) -> object:
    """``fn(*args)`` on copies of the tensor/array arguments; ``_Wrong`` when ``fn`` changed
    one of them in place (its answer would then be compared with a changed input)."""
    if not callable(fn):
        raise _Wrong(f"expected a function, got {type(fn).__name__}",
                     "define it with def my_fn(...): ... and pass my_fn itself (no parentheses)")
    given = [_copy(a) for a in args]
    out = fn(*given)
    changed = [i for i, (a, g) in enumerate(zip(args, given, strict=True)) if not _same(a, g)]
    if changed:
        raise _Wrong(f"your function changed its input in place (argument {changed[0] + 1}), "
                     "e.g. with /=, += or an out= / trailing-underscore operation",
                     "compute a new tensor instead: z / T rather than z /= T")
    return out


def _finite(value: float, what: str = "your answer") -> float:
    if not math.isfinite(value):
        raise _Wrong(f"{what} is {value}: NaN or infinity is never a correct answer",
                     "look for a 0/0, a log of 0 or an empty selection")
    return value


def _call(fn: object, *args: object, nan_ok: bool = False) -> torch.Tensor:
    """The learner's answer as a float64 tensor; NaN/inf is a wrong answer (``nan_ok``: the
    caller diagnoses it itself and calls :func:`_no_nan` afterwards)."""
    out = _invoke(fn, *args)
    if out is None:
        raise _NotAttempted
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(np.asarray(out), dtype=torch.float64)
    out = out.detach().double()
    if not nan_ok:
        _no_nan(out)
    return out


def _no_nan(out: torch.Tensor) -> None:
    if not torch.isfinite(out).all():
        raise _Wrong("your answer contains NaN or infinite values",
                     "look for a 0/0, a log of 0 or an empty selection")


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-6))


# --------------------------------------------------------------------------------------
# Chapter 1
# --------------------------------------------------------------------------------------


def softmax_temperature(fn: object) -> Verdict | None:
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


def entropy_bits(fn: object) -> Verdict | None:
    """``fn(p)`` -> Shannon entropy in **bits** of each row of probabilities ``p`` (N, K)."""
    def check(f: object) -> None:
        p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25] * 4, [1.0, 0.0, 0.0, 0.0]],
                         dtype=torch.float64)
        want = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
        got = _call(f, p, nan_ok=True)
        if got.shape != want.shape:
            raise _Wrong(f"expected one entropy per row, shape (3,), got {tuple(got.shape)}",
                         "sum over the classes: dim=1")
        if torch.isnan(got).any():
            raise _Wrong("a row with zeros gave NaN", "use the convention 0·log 0 = 0: a class "
                         "with p = 0 adds nothing, so keep its term at 0 instead of computing it")
        _no_nan(got)
        if _close(got, -want):
            raise _Wrong("sign error: entropy is −Σ p log p, non-negative")
        if _close(got, want * math.log(2)):
            raise _Wrong("these are nats, not bits", "use log2, or divide by ln 2")
        if not _close(got, want):
            raise _Wrong(f"expected {want.tolist()} bits, got {got.numpy().round(4).tolist()}")
    return _run("entropy in bits", fn, check)


def fisher_matrix(fn: object) -> Verdict | None:
    """``fn(U)`` -> ``E[U Uᵀ]`` (P, P) from per-sample score vectors ``U`` (N, P)."""
    def check(f: object) -> None:
        gen = torch.Generator().manual_seed(0)
        u = torch.randn(7, 3, generator=gen, dtype=torch.float64) + 1.0  # non-zero mean
        want = u.T @ u / len(u)
        got = _call(f, u)
        if got.shape == (7, 7):
            raise _Wrong("you built an (N, N) matrix: U Uᵀ over samples",
                         "the Fisher is over parameters: one (P, P) matrix, averaged over the "
                         "samples")
        if _close(got, u.T @ u):
            raise _Wrong("you summed the outer products; the Fisher is their mean (divide by N)")
        centred = u - u.mean(0)
        if _close(got, centred.T @ centred / len(u)) or _close(got, torch.cov(u.T)):
            raise _Wrong("that is the covariance Var(U): it equals E[U Uᵀ] only when the mean "
                         "score is zero (labels drawn from the model)",
                         "average the raw outer products u uᵀ, without centring")
        if not _close(got, want):
            raise _Wrong("expected the mean over the N samples of u uᵀ, shape (P, P)")
    return _run("Fisher information E[U Uᵀ]", fn, check)


# --------------------------------------------------------------------------------------
# Chapter 2
# --------------------------------------------------------------------------------------


def gradcam_weights(fn: object) -> Verdict | None:
    """``fn(acts, grads)`` -> Grad-CAM's ``α`` (B, C): the gradients averaged over u, v."""
    def check(f: object) -> None:
        gen = torch.Generator().manual_seed(1)
        acts = torch.rand(2, 5, 3, 4, generator=gen, dtype=torch.float64)
        grads = torch.randn(2, 5, 3, 4, generator=gen, dtype=torch.float64)
        want = grads.mean(dim=(2, 3))
        got = _call(f, acts, grads)
        if got.shape in ((2, 3, 4), (3, 4), (2, 12)):
            raise _Wrong(f"wrong axis: you averaged over the channels (shape {tuple(got.shape)})",
                         "average over the spatial positions (height and width): one weight "
                         "per image and channel, (B, C)")
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
            raise _Wrong("expected the mean of the gradients over the spatial positions")
    return _run("Grad-CAM channel weights", fn, check)


def contrast_weights(fn: object) -> Verdict | None:
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


def choice(name: str, answer: object, correct: object, feedback: dict) -> Verdict | None:
    """A multiple-choice question: ``feedback`` maps each wrong option to what is wrong."""
    def check(a: object) -> None:
        if a != correct:
            raise _Wrong(feedback.get(a, f"{a!r} is not one of the options "
                                         f"{[correct, *feedback]}"))
    return _run(name, answer, check)


def occlusion_patch(answer: object) -> Verdict | None:
    """Which occlusion patch carries no evidence for the digit model: 'grey', 'mean', 'white'?"""
    return choice("occlusion patch for digits", answer, "mean", {
        "grey": "grey (0.5) is +1.2σ in the digit model's normalisation: bright ink on a black "
                "ground, so the map lands on the background",
        "white": "white is the strongest ink there is: it adds evidence instead of removing it",
    })


# --------------------------------------------------------------------------------------
# Chapter 3
# --------------------------------------------------------------------------------------


def energy_score(fn: object) -> Verdict | None:
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


def mutual_information_split(fn: object) -> Verdict | None:
    """``fn(probs)`` -> (aleatoric, epistemic) per sample from MC/ensemble probabilities
    ``probs`` (T, B, K): mean entropy of the passes, and entropy of the mean minus it."""
    def check(f: object) -> None:
        probs = torch.tensor([[[0.9, 0.1], [0.5, 0.5]], [[0.1, 0.9], [0.5, 0.5]]],
                             dtype=torch.float64)  # sample 0: disagreement; 1: agree on 50/50
        h = lambda p: -(p * p.clamp_min(1e-12).log()).sum(-1)  # noqa: E731
        alea, epi = h(probs).mean(0), h(probs.mean(0)) - h(probs).mean(0)
        out = _invoke(f, probs) if callable(f) else f
        if out is None:
            raise _NotAttempted
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _Wrong("return a pair (aleatoric, epistemic), each of shape (B,)")
        a, e = (torch.as_tensor(v).double() for v in out)
        if not (torch.isfinite(a).all() and torch.isfinite(e).all()):
            raise _Wrong("your answer contains NaN or infinite values",
                         "use the convention 0·log 0 = 0 (clamp p before the log)")
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


def detection_orientation(answer: object) -> Verdict | None:
    """A detector's AUROC is 0.2 on ID (positive) vs OOD: what does that mean?"""
    return choice("an AUROC of 0.2", answer, "reversed", {
        "useless": "0.5 would be useless (chance); 0.2 ranks most OOD inputs *above* the ID ones",
        "good": "with ID as the positive class and higher = ID, a good score has AUROC near 1",
    })


# --------------------------------------------------------------------------------------
# Chapter 4
# --------------------------------------------------------------------------------------


def deletion_auc(fn: object) -> Verdict | None:
    """``fn(fractions, probs)`` -> the area under each curve of ``probs`` (B, S+1) over
    ``fractions`` (S+1,) by the trapezoid rule, with the x-axis rescaled to [0, 1]: (B,)."""
    def check(f: object) -> None:
        fractions = torch.tensor([0.0, 196.0, 392.0, 588.0, 784.0], dtype=torch.float64)
        probs = torch.tensor([[0.9, 0.5, 0.3, 0.2, 0.1], [1.0, 1.0, 0.8, 0.2, 0.0]],
                             dtype=torch.float64)
        x = (fractions - fractions[0]) / (fractions[-1] - fractions[0])
        want = torch.trapezoid(probs, x, dim=1)
        got = _call(f, fractions, probs)
        if got.numel() == 1 and got.numel() != want.numel():
            raise _Wrong("expected one area per curve (per image), shape (2,); got one number",
                         "integrate along the last axis: dim=1 (or dim=-1)")
        if _close(got, torch.trapezoid(probs, fractions, dim=1)):
            raise _Wrong("the x-axis is in pixels (0 … 784), so the area is 784× too large",
                         "rescale the x-axis to [0, 1] first: (f − f[0]) / (f[-1] − f[0])")
        if _close(got, probs.mean(dim=1)):
            raise _Wrong("that is the mean of the S+1 values: it gives the end points full "
                         "weight", "the trapezoid rule gives each end point half a step")
        if _close(got, probs[:, :-1].mean(dim=1)) or _close(got, probs[:, 1:].mean(dim=1)):
            raise _Wrong("that is a left/right Riemann sum (rectangles), not the trapezoid rule",
                         "average neighbouring values: Σ (p_k + p_{k+1}) / 2 · Δx")
        if not _close(got, want):
            raise _Wrong(f"expected {want.numpy().round(4)}, got {got.numpy().round(4)}")
    return _run("deletion AUC (trapezoid rule)", fn, check)


def fgsm_step(fn: object) -> Verdict | None:
    """``fn(x, grad, eps)`` -> the FGSM image ``clamp(x + ε·sign(∇ₓCE), 0, 1)`` from images
    ``x`` (B, C, H, W) in [0, 1] and the loss gradient ``grad`` of the same shape."""
    def check(f: object) -> None:
        gen = torch.Generator().manual_seed(4)
        x = torch.rand(2, 1, 4, 4, generator=gen, dtype=torch.float64)
        x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.99, 0.01  # pixels the step pushes out of [0, 1]
        grad = torch.randn(2, 1, 4, 4, generator=gen, dtype=torch.float64)
        grad[0, 0, 0, 0], grad[0, 0, 0, 1], grad[1, 0, 0, 0] = 0.5, -0.5, 0.0
        eps = 0.05
        want = (x + eps * grad.sign()).clamp(0, 1)
        got = _call(f, x, grad, eps)
        if got.shape != want.shape:
            raise _Wrong(f"expected images of shape {tuple(want.shape)}, got {tuple(got.shape)}")
        if _close(got, (x - eps * grad.sign()).clamp(0, 1)):
            raise _Wrong("sign error: stepping against the gradient *lowers* the loss (a "
                         "targeted step towards y); the untargeted attack climbs it: x + ε·sign")
        if _close(got, x + eps * grad.sign()):
            raise _Wrong("two pixels left [0, 1]: an adversarial image must stay an image",
                         "clamp the stepped image back into the valid pixel range")
        if _close(got, (x + eps * grad).clamp(0, 1)) or _close(got, x + eps * grad):
            raise _Wrong("you stepped along the gradient itself; FGSM uses its sign, so every "
                         "pixel moves by exactly ε (the L∞ budget)", "use grad.sign()")
        if not _close(got, want):
            raise _Wrong("expected one ε-sized signed step up the loss, kept inside [0, 1]")
    return _run("FGSM step", fn, check)


def tpr_at_fpr(fn: object) -> Verdict | None:
    """``fn(member_scores, nonmember_scores, fpr)`` -> the largest share of members flagged by a
    threshold (flag ``score ≥ t``, higher = member) that flags at most ``fpr`` of non-members."""
    def check(f: object) -> None:
        nonmembers = torch.arange(100, dtype=torch.float64)  # 0, 1, …, 99
        members = torch.tensor([150, 120, 99.5, 99, 98.5, 97.5, 60, 40, 20, 10],
                               dtype=torch.float64)
        for fpr, want in ((0.01, 0.5), (0.05, 0.6), (0.5, 0.7)):
            got = _call(f, members, nonmembers, fpr)
            if got.numel() != 1:
                raise _Wrong(f"expected one number (a rate), got shape {tuple(got.shape)}")
            got = _finite(float(got))
            if fpr == 0.01 and math.isclose(got, 0.3, abs_tol=1e-6):
                raise _Wrong("you required FPR < 1%; the definition allows FPR ≤ 1%, i.e. one "
                             "non-member of these 100 may be flagged",
                             "let the threshold sit just above the (k+1)-th highest non-member "
                             "score, k = ⌊fpr · N⌋")
            if fpr == 0.01 and math.isclose(got, 5.0, abs_tol=1e-6):
                raise _Wrong("that is the number of members flagged; the TPR is their share")
            if fpr == 0.01 and got < 0.1:
                raise _Wrong("almost no member is flagged: check the direction (higher score = "
                             "more likely a member, flag score ≥ t)")
            if not math.isclose(got, want, abs_tol=1e-6):
                raise _Wrong(f"for fpr = {fpr} expected TPR {want}, got {got:.4g}",
                             "k = ⌊fpr · N_non⌋ non-members may be flagged: threshold just above "
                             "the (k+1)-th highest non-member score")
    return _run("TPR at a fixed FPR", fn, check)


# --------------------------------------------------------------------------------------
# Chapter 5
# --------------------------------------------------------------------------------------


def tta_average(fn: object) -> Verdict | None:
    """``fn(probs)`` -> TTA's prediction (B, K) from per-copy probabilities (A, B, K)."""
    def check(f: object) -> None:
        probs = torch.tensor([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.4, 0.6]],
                              [[0.7, 0.3], [0.3, 0.7]]], dtype=torch.float64)
        got = _call(f, probs)
        if got.shape == (3, 2):
            raise _Wrong("wrong axis: you averaged over the images; average over the copies "
                         "(dim 0)", "probs is (copies, B, K); the result is (B, K)")
        if got.shape != (2, 2):
            raise _Wrong(f"expected (B, K) = (2, 2), got {tuple(got.shape)}")
        if _close(got, probs.log().mean(0).softmax(-1)):
            raise _Wrong("you averaged log-probabilities (a geometric mean); TTA averages the "
                         "probabilities")
        if not _close(got, probs.mean(0)):
            raise _Wrong("expected the mean of the probabilities over the copies")
    return _run("test-time augmentation", fn, check)


def handover_accuracy(fn: object) -> Verdict | None:
    """``fn(trust, correct, share)`` -> accuracy of the predictions kept after handing over
    the ``share`` (0..1) least trusted ones."""
    def check(f: object) -> None:
        trust = np.array([0.9, 0.1, 0.8, 0.3, 0.6, 0.2, 0.7, 0.4, 0.5, 0.95])
        correct = np.array([1, 0, 1, 0, 1, 1, 1, 0, 1, 1], dtype=bool)
        for share, want in ((0.0, 0.7), (0.3, 6 / 7), (0.5, 1.0)):
            got = _invoke(f, trust, correct, share)
            if got is None:
                raise _NotAttempted
            got = _finite(float(got))
            order = np.argsort(-trust, kind="stable")
            wrong_end = float(correct[order[int(share * 10):]].mean())
            if share and abs(got - wrong_end) < 1e-9 and abs(got - want) > 1e-9:
                raise _Wrong(f"for share {share} you handed over the *most* trusted predictions",
                             "sort by trust ascending: the least trusted go to the human")
            if abs(got - want) > 1e-9:
                raise _Wrong(f"for share {share} expected the kept accuracy {want:.3f}, got "
                             f"{got:.3f}")
    return _run("handover accuracy", fn, check)
