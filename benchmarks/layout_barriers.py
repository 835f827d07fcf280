"""The per-pair blocks with and without their layout barriers, timed side by side.

    python -m benchmarks.layout_barriers --out benchmarks/results

``jaxprune.models.edge_attention`` transposes the blocks' input to the feature-major layout and
the last block's output back, each behind ``jax.lax.optimization_barrier`` (``feature_major``,
``batch_major``). This benchmark swaps those two helpers for bare transposes while a program is
traced, so both forms are the library's own blocks and differ only in the barriers: the per-pair
forward pass (``model.attention_forward=edges``) at batch 256 and 4096 and train steps at batch
256 (``model.attention_backward=edges``), for the C = 8 and C = 64 networks, in interleaved
rounds (``timing.interleaved_medians``). Writes ``layout_barriers.json`` and ``layout_barriers.md``.
"""

from __future__ import annotations

import argparse
import contextlib

import jax
import jax.numpy as jnp

from benchmarks.attention_share import forward_call
from benchmarks.mrmp_step import RATE_SETS, step_call
from benchmarks.timing import device_line, interleaved_medians, write_report
from jaxprune.models import edge_attention

FORMS = ("barriers", "bare")


@contextlib.contextmanager
def bare_transposes():
    """While open, programs traced with the per-pair blocks transpose without barriers (same values)."""
    kept = edge_attention.feature_major, edge_attention.batch_major
    edge_attention.feature_major = edge_attention.batch_major = lambda x: jnp.transpose(x, (2, 1, 0))
    try:
        yield
    finally:
        edge_attention.feature_major, edge_attention.batch_major = kept


def programs(preset: str, batches) -> dict:
    """{name: maker} of the ``preset`` network's per-pair programs; ``maker()`` traces, compiles and
    returns ``(call, args)`` for ``timing.interleaved_medians``."""
    made = {f"forward, batch {b}": (lambda b=b: forward_call(preset, b, "edges")) for b in batches}
    for method, label in (("dense", "dense"), ("mrmp", "MRMP K = 6")):
        rates = RATE_SETS[6] if method == "mrmp" else (0.9,)
        made[f"{label} train step, batch 256"] = lambda method=method, rates=rates: step_call(
            method, rates, 256, preset, extra=("model.attention_backward=edges",))
    return made


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--presets", default="c8,wide")
    p.add_argument("--batches", default="256,4096", help="forward-pass batches")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=6, help="calls per round of each form")
    a = p.parse_args(argv)
    rows = []
    for preset in a.presets.split(","):
        for name, make in programs(preset, [int(b) for b in a.batches.split(",")]).items():
            calls = {"barriers": make()}
            with bare_transposes():
                calls["bare"] = make()
            ms = {k: 1e3 * v for k, v in interleaved_medians(calls, rounds=a.rounds, repeats=a.repeats).items()}
            rows.append({"preset": preset, "program": name, **{f"{f}_ms": ms[f] for f in FORMS}})
            print(f"{preset} {name}: barriers {ms['barriers']:.3f} ms, bare {ms['bare']:.3f} ms", flush=True)
    record = {"benchmark": "layout_barriers", "device": device_line(), "jax": jax.__version__,
              "rounds": a.rounds, "repeats": a.repeats, "rows": rows}
    lines = [f"# Per-pair blocks with and without their layout barriers ({record['device']}, jax {jax.__version__})", "",
             "Median ms per call, the two forms of a program timed in interleaved rounds; the same blocks, their "
             "input and output transposes behind `jax.lax.optimization_barrier` or bare. SBU shape (30 joints); "
             "c8: C = 8, wide: C = 64.", "",
             "| network | program | barriers ms | bare ms | barriers ÷ bare |", "|---|---|---|---|---|"]
    lines += [f"| {r['preset']} | {r['program']} | {r['barriers_ms']:.3f} | {r['bare_ms']:.3f} | "
              f"{r['barriers_ms'] / r['bare_ms']:.2f} |" for r in rows]
    write_report(a.out, "layout_barriers", record, lines)


if __name__ == "__main__":
    main()
