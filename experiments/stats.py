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


PAIRED_NOTE = ("Paired: mean difference in points over the (seed, fold) pairs both ran, ± the half-width of "
               "its 95 % t-interval, and the verdict (win / loss when the interval excludes 0).")


def paired_text(result: tuple[float, float, str, int]) -> str:
    """'+1.23 ± 0.45 tie' of a ``paired`` result (mean a − b in points, 95 % half-width, verdict);
    without the interval below two pairs; '-' without a pair."""
    diff, half, verdict, n = result
    if not n:
        return "-"
    return f"{diff:+.2f}" + ("" if np.isnan(half) else f" ± {half:.2f}") + f" {verdict}"


def paired_cell(a: dict, b: dict) -> str:
    """``paired_text(paired(a, b))``."""
    return paired_text(paired(a, b))


def seed_range_cells(diffs: dict, groups) -> list[str]:
    """For each group, '-1.23 [-2.0, -0.5]': the mean over seeds of each seed's mean difference
    (points), with the range of those seed means (no range for one seed, '-' for none).

    ``diffs``: {(group, seed, rate): a − b}. Each seed is averaged over the rates that every seed
    of the group has, so that a grid in progress (a rate done for one seed only) does not mix rates
    into the seeds' range. A range that excludes 0 says the difference holds on every seed of
    that group (its fold or split), whatever its cause; one that straddles 0 moves with the seed."""
    cells = []
    for g in groups:
        by_seed: dict = {}
        for (gg, seed, rate), d in diffs.items():
            if gg == g:
                by_seed.setdefault(seed, {})[rate] = d
        common = set.intersection(*(set(v) for v in by_seed.values())) if by_seed else set()
        means = [float(np.mean([v[r] for r in sorted(common)])) for _, v in sorted(by_seed.items())] if common else []
        cell = "-" if not means else f"{np.mean(means):+.2f}"
        cells.append(cell + (f" [{min(means):+.1f}, {max(means):+.1f}]" if len(means) > 1 else ""))
    return cells
