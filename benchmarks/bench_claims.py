"""Claims: each checked sentence within its 50 ms budget, and the naive loop as the peer.

The headline case (issue 20): one ``claims.greater`` comparing the AUROC of two detectors on
the same 280 images (140 ID + 140 OOD, one unit each) with 2,000 paired resamples. The limit
is the budget, 50 ms per claim: a chapter states dozens of claims and the sweep runs every
chapter at several seeds. The peer is what one would write without the engine: a Python loop
over the resamples with scikit-learn's ``roc_auc_score`` for both detectors; it is fed the
very resamples our call drew, and its 2,000 values of Δ must equal ours (to 1e-12) before
anything is timed. The second headline case is the AUAC (GradTrust's pool: 840 rows in 70
units of 12 rows, two trust scores, 2,000 paired resamples); its peer is a Python loop calling
``metrics.auac`` on every resample's repeated rows, again on our draws and equal to 1e-12.
Other kinds of claim are timed against the same budget: a mean over 70 units, a deletion AUC
over 70 curves of 21 points, an AUROC against 0.5, an over-seeds and a mixed claim. Medians
of interleaved repeats; the call prints its ✓ line into a buffer.
Run: ``python benchmarks/bench_claims.py``.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from _timing import medians, paired_ratio, timings

from tutorial_utils import bootstrap, claims, metrics

LIMIT_S = 0.050
REPEATS, PEER_REPEATS = 30, 3


def quiet(fn):
    def run():
        with contextlib.redirect_stdout(io.StringIO()):
            fn()
    return run


def detectors(n_id=140, n_ood=140, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n_id), np.zeros(n_ood)]
    return labels, rng.normal(size=n_id + n_ood) + 1.2 * labels, \
        rng.normal(size=n_id + n_ood) + 0.6 * labels


def peer_auroc_loop(a, b, labels, rows_per_resample):
    """Δ AUROC per resample, one scikit-learn call per detector and resample."""
    from sklearn.metrics import roc_auc_score

    return np.array([roc_auc_score(labels[rows], a[rows]) - roc_auc_score(labels[rows], b[rows])
                     for rows in rows_per_resample])


def peer_auac_loop(a, b, correct, rows_per_resample):
    """Δ AUAC per resample, one ``metrics.auac`` call per trust score and resample."""
    return np.array([metrics.auac(a[rows], correct[rows]).area
                     - metrics.auac(b[rows], correct[rows]).area for rows in rows_per_resample])


def drawn_rows(statement, a, b, labels, statistic="auroc", units=None):
    """The row indices of each resample our claim draws (same seed, same strata)."""
    est = claims.estimate(a, b, labels=labels, statistic=statistic, units=units, key=statement)
    side = bootstrap._Side(bootstrap.STATISTICS[statistic], a, labels, units, "a", "labels",
                           "units")
    seq = np.random.SeedSequence(bootstrap.derive_seed("claims-bootstrap", statement))
    rng = np.random.default_rng(seq.spawn(2)[0])
    counts = bootstrap._counts(rng, side.strata, side.n_units, claims.RESAMPLES).astype(int)
    return est, [np.repeat(np.arange(len(a)), c[side.cols]) for c in counts]


def main() -> None:
    labels, a, b = detectors()
    statement = "detector A separates ID from OOD better than detector B"
    est, rows = drawn_rows(statement, a, b, labels)
    peer_draws = peer_auroc_loop(a, b, labels, rows)
    assert np.allclose(peer_draws, est.draws, rtol=0, atol=1e-12), "peer disagrees with ours"
    ours = quiet(lambda: claims.greater(statement, a, b, labels=labels, statistic="auroc"))
    peer = lambda: peer_auroc_loop(a, b, labels, rows)  # noqa: E731
    t = timings({"ours": ours, "peer": peer}, PEER_REPEATS)
    t_ours = timings({"ours": ours}, REPEATS)["ours"]
    m = medians({"ours": t_ours})["ours"]
    print(f"claims.greater, AUROC, 280 units, {claims.RESAMPLES:,} resamples "
          f"({est.describe()}):")
    print(f"  ours {1000 * m:.1f} ms = {m / LIMIT_S:.2f} x the 50 ms limit; "
          f"sklearn loop / ours = {paired_ratio(t['peer'], t['ours']):.0f}x "
          f"(results equal to 1e-12)")

    rng = np.random.default_rng(1)
    base = np.repeat(np.arange(70), 12)
    trust_a, trust_b = rng.random(840), rng.random(840)
    correct = rng.random(840) < 0.4 + 0.5 * trust_a
    statement = "trust A ranks wrong predictions better than trust B (AUAC)"
    est, rows = drawn_rows(statement, trust_a, trust_b, correct, "auac", base)
    peer_draws = peer_auac_loop(trust_a, trust_b, correct, rows)
    assert np.allclose(peer_draws, est.draws, rtol=0, atol=1e-12), "AUAC peer disagrees"
    ours = quiet(lambda: claims.greater(statement, trust_a, trust_b, labels=correct,
                                        statistic="auac", units=base))
    peer = lambda: peer_auac_loop(trust_a, trust_b, correct, rows)  # noqa: E731
    t = timings({"ours": ours, "peer": peer}, PEER_REPEATS)
    m = medians(timings({"ours": ours}, REPEATS))["ours"]
    print(f"claims.greater, AUAC, 840 rows in 70 units, {claims.RESAMPLES:,} resamples "
          f"({est.describe()}):")
    print(f"  ours {1000 * m:.1f} ms = {m / LIMIT_S:.2f} x the 50 ms limit; "
          f"metrics.auac loop / ours = {paired_ratio(t['peer'], t['ours']):.0f}x "
          f"(results equal to 1e-12)")

    curves_a, curves_b = rng.random((70, 21)) * 0.8, rng.random((70, 21))
    x, y = rng.normal(0.3, 1, 70), rng.normal(0, 1, 70)
    cases = {
        "greater, mean, 70 units": lambda: claims.greater("mean", x, y),
        "less, deletion AUC, 70 curves x 21": lambda: claims.less(
            "deletion", curves_a, curves_b, statistic="deletion_auc"),
        "above, AUROC vs 0.5, 280 units": lambda: claims.above(
            "above", a, labels=labels, statistic="auroc", threshold=0.5),
        "over_seeds, 5 seeds": lambda: claims.over_seeds("seeds", [0.1, 0.2, 0.15, 0.3, 0.2]),
        "mixed, 12 parts": lambda: claims.mixed("mixed", {str(i): i % 3 == 0 for i in
                                                          range(12)}, yes="y", no="n"),
    }
    t = medians(timings({k: quiet(fn) for k, fn in cases.items()}, REPEATS))
    print("other claims (median, ours / the 50 ms limit):")
    for name, s in t.items():
        print(f"  {name:<40} {1000 * s:6.1f} ms = {s / LIMIT_S:.2f} x")


if __name__ == "__main__":
    main()
