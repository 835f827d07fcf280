"""Paired comparisons of two methods' accuracies on the same (seed, fold) splits."""

from __future__ import annotations

import numpy as np
from scipy.stats import t as student_t   # scipy is a dependency of jax


def paired(a: dict, b: dict) -> tuple[float, float, str, int]:
    """(mean of a − b over their common keys, half-width of its 95 % t-interval, verdict, pairs).

    ``a``, ``b``: {split key, e.g. (seed, fold): accuracy %}. The verdict is "win" / "loss" when
    the interval excludes 0, "tie" otherwise, "one pair: no verdict" below two pairs.
    """
    keys = sorted(set(a) & set(b))
    d = np.array([a[k] - b[k] for k in keys])
    if len(d) < 2:
        return (float(d.mean()) if len(d) else float("nan")), float("nan"), "one pair: no verdict", len(d)
    half = float(student_t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return float(d.mean()), half, "tie" if abs(d.mean()) <= half else ("win" if d.mean() > 0 else "loss"), len(d)


def paired_cell(a: dict, b: dict) -> str:
    """'+1.23 ± 0.45 tie' (mean a − b in points, 95 % half-width, verdict) of ``paired(a, b)``;
    without the interval below two pairs; '-' without a common key."""
    diff, half, verdict, n = paired(a, b)
    if not n:
        return "-"
    return f"{diff:+.2f}" + ("" if np.isnan(half) else f" ± {half:.2f}") + f" {verdict}"


def seed_range_cell(per_seed: list[float]) -> str:
    """'-1.23 [-2.0, -0.5]': the mean of each seed's mean difference in points, with the range of
    the seeds' means (none for one seed, '-' for none). Seeds that all agree in sign mark an effect
    of the split itself (its subjects), which more seeds do not average away."""
    if not per_seed:
        return "-"
    cell = f"{np.mean(per_seed):+.2f}"
    return cell + (f" [{min(per_seed):+.1f}, {max(per_seed):+.1f}]" if len(per_seed) > 1 else "")
