"""How sure is a comparison? Intervals of an accuracy, McNemar's paired test, and summaries over seeds.

Introduced in notebook 04 (one run against a baseline on the same reviews); `benchmarks/seeds.py`
repeats the training over several seeds and summarises the runs with `over_seeds`. Notebook 07
adds Wilson's interval of a proportion (behaviour tests of 20 to 100 cases) and a bootstrap
interval of any statistic (its calibration error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def predicted_labels(positive: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return label 1 where P(positive) >= 0.5, else 0: the one decision rule of the series (a tie is positive)."""
    return (np.asarray(positive) >= 0.5).astype(int)


def accuracy_interval(accuracy: float, n: int) -> float:
    """Return the half-width of the normal-approximation 95 % confidence interval of an accuracy on `n` items."""
    return 1.96 * math.sqrt(accuracy * (1 - accuracy) / n)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Return the exact two-sided McNemar p-value of two models scored on the same items.

    `only_a` items only model A gets right, `only_b` only model B: if both were equally good, each
    such item would be a fair coin flip.
    """
    n, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0


def disagreements(right_a: np.ndarray, right_b: np.ndarray) -> tuple[int, int]:
    """Return (items only A gets right, items only B gets right) from two boolean arrays of correctness."""
    right_a, right_b = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    return int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))


def paired_difference(right_a: np.ndarray, right_b: np.ndarray) -> tuple[float, float]:
    """Return (accuracy of A minus accuracy of B, half-width of its 95 % interval) on the same items.

    Each item contributes +1 (only A right), -1 (only B right) or 0; the interval is the normal
    approximation to the mean of those, so the items both models agree on narrow it.
    """
    difference = np.asarray(right_a, dtype=float) - np.asarray(right_b, dtype=float)
    if len(difference) < 2:
        raise ValueError(f"A paired interval needs at least 2 items scored by both models (got {len(difference)}).")
    return float(difference.mean()), float(1.96 * difference.std(ddof=1) / math.sqrt(len(difference)))


def over_seeds(a: Sequence[float], b: Sequence[float]) -> dict:
    """Summarise paired scores of two recipes over the same seeds: means, spreads, mean difference, paired t-test.

    The 95 % interval of the mean difference uses Student's t with n - 1 degrees of freedom; with
    3 seeds it is wide, and says so.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"Paired scores need the same seeds on both sides, at least 2 (got {len(a)} and {len(b)}).")
    difference = a - b
    spread = difference.std(ddof=1)
    half_width = stats.t.ppf(0.975, len(a) - 1) * spread / math.sqrt(len(a))
    p = float(stats.ttest_rel(a, b).pvalue) if spread > 0 else (1.0 if difference.mean() == 0 else 0.0)
    return {"mean_a": float(a.mean()), "std_a": float(a.std(ddof=1)), "mean_b": float(b.mean()),
            "std_b": float(b.std(ddof=1)), "mean_difference": float(difference.mean()),
            "interval": (float(difference.mean() - half_width), float(difference.mean() + half_width)),
            "paired_t_p": p, "a_wins": int(np.sum(difference > 0)), "n": len(a)}


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """Return Wilson's 95 % interval of a proportion `successes / n`: unlike the normal one, sound at 0 of 20."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"Need 0 <= successes <= n and n >= 1 (got {successes} of {n}).")
    z, share = 1.96, successes / n
    centre = (share + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(share * (1 - share) / n + z**2 / (4 * n**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(statistic, *columns: Sequence, resamples: int = 1_000, seed: int = 0) -> tuple[float, float]:
    """Return the 95 % percentile-bootstrap interval of `statistic(*columns)`, resampling the rows together.

    Each resample draws as many rows as there are, with replacement, the same rows from every
    column: pass two models' outputs on the same reviews to get a paired interval.
    """
    columns = [np.asarray(column) for column in columns]
    n = len(columns[0])
    if n < 2 or any(len(column) != n for column in columns):
        raise ValueError(f"Need columns of one length, at least 2 rows (got {[len(c) for c in columns]}).")
    generator = np.random.default_rng(seed)
    found = [statistic(*(column[rows] for column in columns))
             for rows in generator.integers(0, n, size=(resamples, n))]
    low, high = np.percentile(found, [2.5, 97.5])
    return float(low), float(high)
