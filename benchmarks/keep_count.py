"""Exact keep counts without a sort: ``masks.hard.top_count`` against the argsort it replaced.

    python -m benchmarks.keep_count --out benchmarks/results

Every magnitude rule keeps exactly round((1 − r)·n) weights, the largest first, ties by position.
That was a stable argsort and its inverse permutation; ``top_count`` finds the count-th largest
key bit by bit (32 counting passes) and takes the ties at it in order, with the same result
(``tests/test_top_count.py``). Rows: the mask alone on n random magnitudes (n = the prunable
weights of the c8 and wide SBU networks, and 2M), and one jitted STE train step (its magnitude
masks, layer by layer as the comparison runs it, are recomputed from the weights after every
step) on the ``wide`` network, batch 256, with each form, beside a dense step. All rows timed in
interleaved rounds (``timing.interleaved_medians``). Writes ``keep_count.json`` and
``keep_count.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
from unittest import mock

import jax
import jax.numpy as jnp

from benchmarks.mrmp_step import step_call
from benchmarks.timing import device_line, interleaved_medians, write_report
from jaxprune.masks import hard

SIZES = {"c8 network": 31_680, "wide network": 257_920, "2M weights": 2_000_000}


def by_sort(scores: jax.Array, count) -> jax.Array:
    """The former rule: rank by a stable argsort of −scores, then invert the permutation."""
    order = jnp.argsort(-scores, stable=True)
    rank = jnp.zeros(scores.shape, jnp.int32).at[order].set(jnp.arange(scores.size, dtype=jnp.int32))
    return rank < count


FORMS = {"top_count": hard.top_count, "argsort": by_sort}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=10)
    a = p.parse_args(argv)
    plan = {}
    for label, n in SIZES.items():
        scores = jnp.abs(jax.random.normal(jax.random.key(0), (n,)))
        count = jnp.int32(round(0.1 * n))
        for name, form in FORMS.items():
            plan[(f"mask alone, {label} (n = {n:,})", name)] = (jax.jit(form), (scores, count))
    for name, form in FORMS.items():
        with mock.patch.object(hard, "top_count", form):      # traced (and compiled) inside step_call
            plan[("STE train step, wide network, batch 256", name)] = step_call("ste", (0.9,), 256, "wide")
    plan[("dense train step, wide network, batch 256", "-")] = step_call("dense", (0.0,), 256, "wide")
    seconds = interleaved_medians(plan, rounds=a.rounds, repeats=a.repeats)
    rows = [{"program": prog, "form": form, "seconds": t,
             "vs_argsort": t / seconds[(prog, "argsort")] if (prog, "argsort") in seconds else None}
            for (prog, form), t in seconds.items()]
    device = device_line()
    record = {"benchmark": "keep_count", "device": device, "jax": jax.__version__, "rounds": a.rounds,
              "repeats": a.repeats, "rows": rows}
    lines = [f"# Exact keep counts: top_count against a stable argsort ({device})", "",
             f"Median ms of {a.rounds} interleaved rounds of {a.repeats} calls; keep 10 % of n.", "",
             "| program | form | ms | ÷ argsort |", "|---|---|---|---|"]
    for r in rows:
        ratio = "" if r["vs_argsort"] is None else f"{r['vs_argsort']:.2f}"
        lines.append(f"| {r['program']} | {r['form']} | {1e3 * r['seconds']:.2f} | {ratio} |")
    write_report(a.out, "keep_count", record, lines)


if __name__ == "__main__":
    main()
