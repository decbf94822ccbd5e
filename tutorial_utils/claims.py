"""Result sentences checked by the run: the evidence decides, not the author.

Every sentence of a chapter that states a result sits next to a call that takes the **raw
per-unit evidence** and computes the verdict itself::

    claims.greater("GradTrust ranks wrong predictions better than MSP (AUAC)",
                   gradtrust, msp, labels=correct, statistic="auac", units=base_image)
    ✓ GradTrust ranks wrong predictions better than MSP (AUAC) (Δ AUAC = 0.027 [0.004, 0.051],
      70 units (840 rows), 2,000 resamples)

=================  ======================================================================
function           the sentence it checks, and when it holds
=================  ======================================================================
:func:`greater`    "A beats B": the 95% interval of Δ = stat(A) − stat(B) lies above 0
:func:`less`       "A is lower than B": the interval lies below 0
:func:`tie`        "no clear difference": the interval contains 0
:func:`above`      "above chance (0.5)": the interval of stat(A) lies above a round threshold
:func:`below`      "below 0.1": the interval lies below a round threshold
:func:`over_seeds` "for every ensemble member": the direction holds at every seed (mean ± SD)
:func:`mixed`      "some, not all": named parts, each side holds for ≥ 20% of them
:func:`claim`      an exact fact of this run (a count, an equality to a reference)
=================  ======================================================================

**Evidence and units.** ``a`` and ``b`` hold one value per row (a sample, an image, a pair),
paired row by row; a *unit* is what was drawn independently (a base image with its challenged,
augmented and attacked copies is one unit, not many) and ``units`` (N,) gives each row its
unit's integer id. ``statistic`` is ``"mean"`` (default), ``"accuracy"``, ``"auroc"``,
``"auac"``, ``"curve_auc"`` / ``"deletion_auc"`` / ``"insertion_auc"`` or a weighted callable;
``paired=False`` compares two different sets. The interval is the 95% percentile interval of
a cluster bootstrap over units, computed by :func:`tutorial_utils.bootstrap.estimate` (also
importable as ``claims.estimate``; its docstring defines every argument and statistic).

**Seeds.** The resamples derive from the course seed (``TUTORIAL_SEED``, see
:func:`tutorial_utils.utils.derive_seed`) and the statement, so a run is reproducible, another
course seed draws other resamples, and claims do not share draws.

**Failures.** A claim the evidence does not support raises :class:`ClaimError` with the
interval and a suggested rewording: "no clear difference" when the interval straddles the
reference, "reversed" when it lies on the other side. Executing the notebook (nbval in CI)
then fails instead of printing a sentence its own numbers contradict.

**Sweeps.** Two environment variables serve ``scripts/check_claims.py``:
``TUTORIAL_CLAIMS_REPORT=<path>`` appends one JSON line per claim (statement, kind, verdict,
numbers, interval, course seed) to ``<path>``, whatever the verdict; ``TUTORIAL_CLAIMS_RAISE=0``
prints a failed claim as ``✗ statement (…) → suggested: …`` instead of raising, so a sweep sees
every claim of a chapter. By default (CI) a failed claim raises. Bad input (a length mismatch,
NaNs, an unknown statistic) always raises ``ValueError``/``TypeError``: it is a broken call,
not a verdict.

**Identities are not claims.** A statement that holds by construction (aleatoric + epistemic =
predictive, a negated score's AUROC = 1 − AUROC, a map compared with itself) cannot fail, so it
checks nothing about the data: it belongs in a unit test under ``tests/``, or is shown as a
demonstration without a ``✓``. :func:`tie` and :func:`greater` refuse ``a`` identical to ``b``.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterable, Mapping

import numpy as np

# the statistics and their intervals live in tutorial_utils.bootstrap; these names stay
# importable from here (chapters and tests use claims.estimate, claims.Estimate, …)
from tutorial_utils.bootstrap import (  # noqa: F401
    _MAX_CELLS,
    LEVEL,
    RESAMPLES,
    STATISTICS,
    Estimate,
    _as_numbers,
    _binary,
    _counts,
    _cumsum_rows,
    _decimals,
    _fixed,
    _is_number,
    _Side,
    _statistic,
    _strata,
    _unit_index,
    estimate,
)
from tutorial_utils.utils import course_seed, derive_seed  # noqa: F401

__all__ = ["ClaimError", "Estimate", "estimate", "greater", "less", "tie", "above", "below",
           "over_seeds", "mixed", "claim", "format_number", "STATISTICS", "RESAMPLES",
           "MIXED_MIN_SHARE", "REPORT_ENV", "RAISE_ENV"]

MIXED_MIN_SHARE = 0.2  # "mixed": each side holds for at least this share of the parts
REPORT_ENV = "TUTORIAL_CLAIMS_REPORT"  # path: append one JSON line per claim
RAISE_ENV = "TUTORIAL_CLAIMS_RAISE"  # "0": print ✗ and go on instead of raising


class ClaimError(AssertionError):
    """A result sentence of a chapter is contradicted by the numbers of this run.

    ``statement``, ``kind`` (``"greater"``, ``"tie"``, …), ``verdict`` (what the evidence
    says instead, e.g. ``"no clear difference"``), ``suggestion`` (a rewording) and
    ``estimate`` (the :class:`Estimate`, or None) say why.
    """

    def __init__(self, message: str, *, statement: str = "", kind: str = "", verdict: str = "",
                 suggestion: str = "", estimate: Estimate | None = None):
        super().__init__(message)
        self.statement, self.kind, self.verdict = statement, kind, verdict
        self.suggestion, self.estimate = suggestion, estimate


# --------------------------------------------------------------------------- numbers


def format_number(value: object) -> str:
    """A short, readable rendering of a number (tensors and NumPy scalars included)."""
    if hasattr(value, "numel") and hasattr(value, "item") and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def _round_enough(threshold: float) -> bool:
    """At most two significant digits (0.5, 0.85, 10, 0.05): a number a sentence states."""
    return threshold == 0 or math.isclose(float(f"{threshold:.2g}"), threshold, rel_tol=1e-9)


# --------------------------------------------------------------------------- verdicts


def _statement(statement: object) -> str:
    if not isinstance(statement, str) or not statement.strip():
        raise TypeError("statement must be a non-empty string: the sentence being checked")
    return statement


def _raising() -> bool:
    return os.environ.get(RAISE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _report(record: dict) -> None:
    path = os.environ.get(REPORT_ENV, "").strip()
    if path:
        record = {"seed": course_seed(), **record}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float, ensure_ascii=False) + "\n")


def _verdict(kind: str, statement: str, holds: bool, evidence: str, *, mark: str = "✓",
             verdict: str = "", suggestion: str = "", est: Estimate | None = None,
             numbers: dict | None = None) -> None:
    """Print the ✓ line, or raise/print the failure; record it either way."""
    record = {"statement": statement, "kind": kind, "holds": holds,
              "verdict": "holds" if holds else verdict, "evidence": evidence,
              "numbers": numbers or {}}
    if est is not None:
        record.update(value=est.value, low=est.low, high=est.high, statistic=est.statistic,
                      units=list(est.units), rows=list(est.rows), resamples=est.resamples)
    if holds:
        _report(record)
        print(f"{mark} {statement}" + (f" ({evidence})" if evidence else ""))
        return
    record["suggestion"] = suggestion
    _report(record)
    message = (f"the chapter says {statement!r}, but this run does not support it: {verdict}"
               + (f" ({evidence})" if evidence else "")
               + (f". Suggested: {suggestion}" if suggestion else
                  ". Rewrite the sentence to match the numbers."))
    if _raising():
        raise ClaimError(message, statement=statement, kind=kind, verdict=verdict,
                         suggestion=suggestion, estimate=est)
    print(f"✗ {statement}" + (f" ({evidence})" if evidence else "")
          + f" → {verdict}" + (f"; suggested: {suggestion}" if suggestion else ""))


def _recorded_errors(fn):
    """Bad input still raises, but a sweep's report sees the broken call too."""
    @functools.wraps(fn)
    def wrapper(statement, *args, **kwargs):
        try:
            return fn(statement, *args, **kwargs)
        except (ValueError, TypeError) as error:
            _report({"statement": str(statement), "kind": fn.__name__, "holds": False,
                     "verdict": "error", "evidence": f"{type(error).__name__}: {error}"})
            raise
    return wrapper


def _side_claim(kind: str, statement: str, est: Estimate, side: str, reference: float) -> None:
    """Decide ``side`` ("greater" / "less" / "tie") of the interval against ``reference``."""
    evidence = est.describe()
    ref = f"{float(reference):g}"
    if reference != 0 or not est.difference:
        evidence += f"; {'threshold' if kind in ('above', 'below') else 'reference'} {ref}"
    above_ref, below_ref = est.low > reference, est.high < reference
    holds = {"greater": above_ref, "less": below_ref, "tie": not (above_ref or below_ref)}[side]
    if holds:
        _verdict(kind, statement, True, evidence, est=est, numbers={"reference": reference})
        return
    what = "difference" if est.difference and reference == 0 else f"difference from {ref}"
    if side == "tie":
        direction = "above" if above_ref else "below"
        verdict = f"a clear {what}: the 95% interval lies {direction} {ref}"
        fix = "claims.greater" if above_ref else "claims.less"
        suggestion = (f"state the direction ('{'higher' if above_ref else 'lower'}'), "
                      f"checked with {fix}")
    elif not (above_ref or below_ref):
        verdict = f"no clear {what}: the 95% interval contains {ref}"
        suggestion = (f"'no clear {what}' (claims.tie), or gather more units")
    else:
        verdict = f"reversed: the 95% interval lies {'below' if side == 'greater' else 'above'}" \
                  f" {ref}"
        suggestion = "state the reverse direction (swap the sides or use " + (
            "claims.less)" if side == "greater" else "claims.greater)")
    _verdict(kind, statement, False, evidence, verdict=verdict, suggestion=suggestion,
             est=est, numbers={"reference": reference})


def _compare(kind: str, statement: str, a, b, side: str, **evidence) -> None:
    """stat(A) − stat(B) against 0, or stat(A) against a number ``b`` (a stated reference)."""
    statement = _statement(statement)
    reference = 0.0
    if b is not None and _is_number(b):
        reference, b = float(_as_numbers(b, "b")), None
    est = estimate(a, b, key=statement, **evidence)
    _side_claim(kind, statement, est, side, reference)


# The evidence arguments of every interval claim (a, b, units, statistic, labels, paired,
# resamples) are those of :func:`estimate`; ``b`` may also be a number (a stated reference,
# e.g. a paper's value) or None (stat(A) against 0). Each prints
# ``✓ statement (Δ = … [low, high], U units, R resamples)`` or raises :class:`ClaimError`.


@_recorded_errors
def greater(statement: str, a: object, b: object = None, *, units: object = None,
            statistic: object = "mean", labels: object = None, paired: bool = True,
            resamples: int = RESAMPLES) -> None:
    """"A beats B": holds when the whole 95% interval of stat(A) − stat(B) lies above 0.

    Example: ``claims.greater("ODIN separates snow 5 better than MSP", odin, msp,
    labels=is_clean, statistic="auroc", units=base_id)``.
    """
    _compare("greater", statement, a, b, "greater", units=units, statistic=statistic,
             labels=labels, paired=paired, resamples=resamples)


@_recorded_errors
def less(statement: str, a: object, b: object = None, *, units: object = None,
         statistic: object = "mean", labels: object = None, paired: bool = True,
         resamples: int = RESAMPLES) -> None:
    """"A is lower than B": holds when the whole 95% interval of stat(A) − stat(B) lies
    below 0 (e.g. a deletion AUC, where lower is better).

    Example: ``claims.less("Grad-CAM's deletion AUC is lower than the random map's",
    cam_curves, random_curves, statistic="deletion_auc")``.
    """
    _compare("less", statement, a, b, "less", units=units, statistic=statistic,
             labels=labels, paired=paired, resamples=resamples)


@_recorded_errors
def tie(statement: str, a: object, b: object = None, *, units: object = None,
        statistic: object = "mean", labels: object = None, paired: bool = True,
        resamples: int = RESAMPLES) -> None:
    """"No clear difference": holds when the 95% interval of stat(A) − stat(B) contains 0
    (with ``b`` a number, e.g. 0.5 for "at chance": when it contains that number).

    A wide interval passes too, and the printed interval shows how little that says.
    Example: ``claims.tie("the random score sits at chance", random_scores, 0.5,
    labels=is_clean, statistic="auroc")``.
    """
    _compare("tie", statement, a, b, "tie", units=units, statistic=statistic,
             labels=labels, paired=paired, resamples=resamples)


def _threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer,
                                                                  np.floating)):
        raise TypeError(f"threshold must be a number the sentence states (e.g. 0.5), got "
                        f"{type(threshold).__name__}")
    t = float(threshold)
    if not math.isfinite(t):
        raise ValueError(f"threshold must be finite, got {t}")
    if not _round_enough(t):
        raise ValueError(f"threshold {t!r} is not a round number: state one with at most two "
                         f"significant digits (e.g. {float(f'{t:.1g}'):g}), never a value placed "
                         f"just under the observed one")
    return t


def _threshold_claim(kind, statement, a, b, threshold, side, **evidence) -> None:
    statement = _statement(statement)
    t = _threshold(threshold)
    if b is not None and _is_number(b):
        raise TypeError("b must be per-row values (for a difference above the threshold) or "
                        "None; the number goes into threshold=")
    est = estimate(a, b, key=statement, **evidence)
    _side_claim(kind, statement, est, side, t)


@_recorded_errors
def above(statement: str, a: object, b: object = None, *, threshold: float,
          units: object = None, statistic: object = "mean", labels: object = None,
          paired: bool = True, resamples: int = RESAMPLES) -> None:
    """"Above chance (0.5)": holds when the whole 95% interval of stat(A) (or of
    stat(A) − stat(B)) lies above ``threshold``, a round number the sentence states (at most
    two significant digits). A threshold inside the interval fails.

    Example: ``claims.above("MSP separates the GO sign from clean signs above chance (0.5)",
    msp, labels=is_clean, statistic="auroc", threshold=0.5)``.
    """
    _threshold_claim("above", statement, a, b, threshold, "greater", units=units,
                     statistic=statistic, labels=labels, paired=paired, resamples=resamples)


@_recorded_errors
def below(statement: str, a: object, b: object = None, *, threshold: float,
          units: object = None, statistic: object = "mean", labels: object = None,
          paired: bool = True, resamples: int = RESAMPLES) -> None:
    """"Below 0.1": holds when the whole 95% interval lies below ``threshold`` (a round
    number the sentence states). A threshold inside the interval fails.

    Example: ``claims.below("GradNorm is reversed on textures (AUROC below 0.5)", gradnorm,
    labels=is_clean, statistic="auroc", threshold=0.5)``.
    """
    _threshold_claim("below", statement, a, b, threshold, "less", units=units,
                     statistic=statistic, labels=labels, paired=paired, resamples=resamples)


@_recorded_errors
def over_seeds(statement: str, values_by_seed: object, *, side: str = "greater",
               threshold: float = 0.0) -> None:
    """"For every seed": holds when every seed's value lies on ``side`` of ``threshold``.

    Args:
        values_by_seed: one number per seed (e.g. Δ AUAC of GradTrust − MSP for each of the
            five ensemble members): a mapping seed → value, a pandas Series, or a sequence.
            At least 2 seeds.
        side: ``"greater"`` (every value > threshold) or ``"less"`` (every value <).
        threshold: 0 (a difference) or a round number the sentence states.

    Prints ``✓ statement (0.021 ± 0.004 over 5 seeds, every seed > 0: min 0.015)`` (mean ±
    SD). Example: ``claims.over_seeds("GradTrust beats MSP for every ensemble member",
    {m: gt[m] - msp[m] for m in members})``.
    """
    statement = _statement(statement)
    if side not in ("greater", "less"):
        raise ValueError(f"side must be 'greater' or 'less', got {side!r}")
    t = _threshold(threshold)
    if isinstance(values_by_seed, Mapping):
        seeds, raw = list(values_by_seed.keys()), list(values_by_seed.values())
    elif hasattr(values_by_seed, "index") and hasattr(values_by_seed, "to_numpy"):
        seeds, raw = list(values_by_seed.index), values_by_seed.to_numpy()
    else:
        raw = values_by_seed
        seeds = None
    v = _as_numbers(raw, "values_by_seed")
    if v.ndim != 1:
        raise ValueError(f"values_by_seed must give one number per seed, got shape {v.shape}")
    if len(v) < 2:
        raise ValueError(f"values_by_seed needs at least 2 seeds, got {len(v)}: one seed says "
                         f"nothing about the others")
    seeds = list(range(len(v))) if seeds is None else seeds
    ok = v > t if side == "greater" else v < t
    sign = ">" if side == "greater" else "<"
    sd = float(v.std(ddof=1))
    d = _decimals(*v, width=max(sd, float(v.max() - v.min())))
    worst = float(v.min() if side == "greater" else v.max())
    evidence = (f"{_fixed(float(v.mean()), d)} ± {_fixed(sd, d)} over {len(v)} seeds, every "
                f"seed {sign} {t:g}: {'min' if side == 'greater' else 'max'} "
                f"{_fixed(worst, d)}")
    numbers = {"by_seed": {str(s): float(x) for s, x in zip(seeds, v, strict=True)},
               "mean": float(v.mean()), "sd": sd, "threshold": t}
    if ok.all():
        _verdict("over_seeds", statement, True, evidence, numbers=numbers)
        return
    failing = ", ".join(f"{s}: {_fixed(float(x), d)}" for s, x, o in zip(seeds, v, ok,
                                                                        strict=True) if not o)
    evidence = evidence.replace("every seed", f"{int(ok.sum())} of {len(v)} seeds")
    verdict = f"holds at {int(ok.sum())} of {len(v)} seeds (not at {failing})"
    suggestion = ("say that it depends on the seed, or state the mean ± SD without a direction"
                  if ok.any() else "reversed at every seed: state the other direction")
    _verdict("over_seeds", statement, False, evidence, verdict=verdict,
             suggestion=suggestion, numbers=numbers)


def _truth(holds: object, name: str = "holds") -> bool:
    if hasattr(holds, "numel") and hasattr(holds, "item"):
        if holds.numel() != 1:
            raise TypeError(f"{name} must be a single truth value, got a tensor of shape "
                            f"{tuple(holds.shape)}; reduce it with .all() or .any()")
        holds = holds.item()
    if isinstance(holds, np.ndarray):
        if holds.size != 1:
            raise TypeError(f"{name} must be a single truth value, got an array of shape "
                            f"{holds.shape}; reduce it with .all() or .any()")
        holds = holds.item()
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (the result of a comparison), got "
                        f"{type(holds).__name__}")
    return bool(holds)


def _numbers(numbers: dict) -> str:
    return ", ".join(f"{k}={format_number(v)}" for k, v in numbers.items())


def _parts(outcomes: object, parts: object) -> tuple[list[str], list[bool]]:
    """Named outcomes: a mapping, a pandas Series, or a sequence with ``parts=`` names."""
    if isinstance(outcomes, Mapping):
        names, flags = list(outcomes.keys()), list(outcomes.values())
    elif hasattr(outcomes, "index") and hasattr(outcomes, "to_numpy") and parts is None:
        names, flags = list(outcomes.index), list(outcomes.to_numpy())
    elif parts is not None and isinstance(outcomes, Iterable):
        if hasattr(outcomes, "detach"):
            outcomes = outcomes.detach().cpu().numpy()
        flags = list(np.asarray(outcomes).reshape(-1)) if isinstance(outcomes, np.ndarray) \
            else list(outcomes)
        names = list(parts)
        if len(names) != len(flags):
            raise ValueError(f"parts must name every outcome: {len(names)} names for "
                             f"{len(flags)} outcomes")
    else:
        raise TypeError("outcomes must name its parts: a dict {part: bool}, a pandas Series "
                        "of bools, or a sequence of bools with parts=[names]")
    if len(flags) < 2:
        raise ValueError("outcomes must hold at least two parts: one part cannot be mixed")
    return [str(n) for n in names], [_truth(f, f"outcomes[{n!r}]") for n, f in
                                     zip(names, flags, strict=True)]


@_recorded_errors
def mixed(statement: str, outcomes: object, *, yes: str, no: str, most: str | None = None,
          expected: Mapping | None = None, parts: Iterable | None = None,
          min_share: float = MIXED_MIN_SHARE, **numbers: object) -> None:
    """"Some, not all": the parts go both ways, each side for at least 20% of them.

    Args:
        outcomes: which way each *named* part goes: a dict ``{part: bool}``, a pandas Series
            of bools (index = parts), or a sequence of bools with ``parts=`` names. True means
            the ``yes`` direction.
        yes, no: what True and False mean, as the sentence says it (e.g. ``yes="the gradient
            score wins"``, ``no="reconstruction error wins"``); printed with their parts.
        most: ``"yes"`` or ``"no"`` when the sentence says "most …": that side must hold for
            more than half of the parts.
        expected: ``{part: bool}`` for the parts the sentence names ("wins on snow 5, loses on
            the GO sign"): each of them must go the stated way.
        min_share: the smallest share each side needs (at least :data:`MIXED_MIN_SHARE` =
            0.2, at most 0.5): "mixed" at 1 of 12 is "all but one", an exact count for
            :func:`claim`.
        numbers: further evidence printed with the verdict.

    Prints ``≈ statement (yes: k of n [parts]; no: n-k of n [parts])``.
    """
    statement = _statement(statement)
    for arg, value in (("yes", yes), ("no", no)):
        if not isinstance(value, str) or not value.strip():
            raise TypeError(f"{arg} must be a non-empty str saying what a "
                            f"{'True' if arg == 'yes' else 'False'} outcome means")
    if most not in (None, "yes", "no"):
        raise ValueError(f"most must be None, 'yes' or 'no', got {most!r}")
    if isinstance(min_share, (bool, np.bool_)) or not isinstance(
            min_share, (int, float, np.integer, np.floating)) \
            or not MIXED_MIN_SHARE <= min_share <= 0.5:
        raise ValueError(f"min_share must lie in [{MIXED_MIN_SHARE}, 0.5], got {min_share!r}")
    names, flags = _parts(outcomes, parts)
    n, k = len(flags), sum(flags)
    need = math.ceil(min_share * n - 1e-9)

    def listing(side):
        chosen = [p for p, f in zip(names, flags, strict=True) if f == side]
        shown = ", ".join(chosen[:8]) + (", …" if len(chosen) > 8 else "")
        return f"{len(chosen)} of {n}" + (f" [{shown}]" if chosen else "")

    evidence = f"{yes}: {listing(True)}; {no}: {listing(False)}"
    if numbers:
        evidence += "; " + _numbers(numbers)
    problems = []
    if k < need or n - k < need:
        thin, count = (yes, k) if k < n - k else (no, n - k)
        problems.append(f"'{thin}' holds for only {count} of {n} parts (< {min_share:.0%})")
    if most == "yes" and not k > n / 2:
        problems.append(f"'most' {yes}, but only {k} of {n}")
    if most == "no" and not n - k > n / 2:
        problems.append(f"'most' {no}, but only {n - k} of {n}")
    if expected is not None:
        if not isinstance(expected, Mapping):
            raise TypeError("expected must be a dict {part: bool} of the parts the sentence "
                            "names")
        lookup = dict(zip(names, flags, strict=True))
        for part, way in expected.items():
            if str(part) not in lookup:
                raise ValueError(f"expected names the part {part!r}, which is not among the "
                                 f"outcomes ({', '.join(names[:8])})")
            if lookup[str(part)] != _truth(way, f"expected[{part!r}]"):
                problems.append(f"{part} goes the other way ({yes if lookup[str(part)] else no})")
    record = {"yes": k, "no": n - k, "parts": n,
              "outcomes": dict(zip(names, flags, strict=True))}
    if not problems:
        _verdict("mixed", statement, True, evidence, mark="≈", numbers=record)
        return
    if k in (0, n):
        suggestion = f"not mixed: every part says '{yes if k else no}'; state that"
    elif k < need or n - k < need:
        suggestion = ("state the exact count with claims.claim (e.g. 'all but one') instead "
                      "of 'mixed'")
    else:
        suggestion = "name the parts as they went"
    _verdict("mixed", statement, False, evidence, verdict="; ".join(problems),
             suggestion=suggestion, numbers=record)


@_recorded_errors
def claim(statement: str, holds: object, **numbers: object) -> None:
    """An exact fact of this run: print ``✓ statement (numbers)``, or raise :class:`ClaimError`.

    Only for facts that need no interval: a count ("3 of the 14 classes …"), an equality to a
    reference ("matches captum to 1e-6"), a property of this run's data ("every image is in
    [0, 1]"). A comparison ("A beats B"), a threshold ("above chance") or "no difference" goes
    through :func:`greater`, :func:`tie`, :func:`above`, … on the raw per-unit values; an
    identity that holds by construction goes into a unit test, not here.

    Args:
        statement: the sentence as the chapter states it.
        holds: a single bool computed from this run's numbers (a 1-element tensor or array is
            accepted; anything else is a ``TypeError``, so a forgotten ``.all()`` cannot pass).
        numbers: the evidence, printed next to the statement either way.

    Returns nothing (so a claim at the end of a cell adds no second output line).
    """
    statement = _statement(statement)
    evidence = _numbers(numbers)
    _verdict("claim", statement, _truth(holds), evidence, verdict="false in this run",
             numbers={k: format_number(v) for k, v in numbers.items()})
