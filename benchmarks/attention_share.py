"""The attention's share of real programs, across its forms: forward passes and train steps.

    python -m benchmarks.attention_share --out benchmarks/results

Forms of the GCN's attention, swapped into ``jaxprune.models.gcn`` while a program is traced (so
every program is the library's own: ``gcn.apply``, or ``benchmarks.mrmp_step.train_step``):

- ``before``: the attention as it was until the masked bias, ``jnp.where(mask, logits, -inf)``
  over every (B, J, J) logit, differentiated by XLA;
- ``autodiff``: ``jaxprune.models.layers.attention`` (the bone mask folded into the bias once,
  ``layers.masked_bias``), differentiated by XLA (``model.attention_backward=autodiff``);
- ``edges``: the blocks computed over the graph's pairs (``jaxprune.models.edge_attention``): in
  a train step the library's default (``model.attention_backward=edges``), in a forward pass
  the option ``model.attention_forward=edges`` (the default serves ``autodiff``'s forward pass);
- ``fixed adjacency``: the attention replaced by the constant row-normalised graph, the cost of
  everything else. Attention share = 1 − fixed / form.

Programs: the jitted forward pass at batch 1 / 256 / 4096, and one train step at batch 256 of
dense, SRMP and MRMP at its six default rates, for the networks of ``--presets`` (default
``c8,wide``: C = 8 and C = 64). The three forms of one program are timed in interleaved rounds
(``timing.interleaved_medians``). Writes ``attention_share.json`` and ``attention_share.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import jax
import jax.numpy as jnp

from benchmarks.mrmp_step import RATE_SETS, step_call
from benchmarks.op_profile import forward_program
from benchmarks.timing import device_line, interleaved_medians, write_report
from jaxprune.models import gcn
from jaxprune.models.layers import attention

FORMS = ("before", "autodiff", "edges", "fixed adjacency")
BACKWARD = {"before": "autodiff", "autodiff": "autodiff", "edges": "edges", "fixed adjacency": "autodiff"}
FORWARD = {"before": "dense", "autodiff": "dense", "edges": "edges", "fixed adjacency": "dense"}


def attention_before(params: dict, h: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The attention until the masked bias: the mask applied to every logit."""
    q, k = h @ params["query"], h @ params["key"]
    logits = jnp.einsum("...id,...jd->...ij", q, k) / jnp.sqrt(q.shape[-1]) + params["bias"]
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
    return jax.nn.softmax(logits, axis=-1)


def attention_fixed(params: dict, h: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The constant row-normalised graph (J, J) (uniform over all nodes without a mask)."""
    j = h.shape[-2]
    graph = jnp.ones((j, j), h.dtype) if mask is None else mask.astype(h.dtype)
    return graph / graph.sum(-1, keepdims=True)


@contextlib.contextmanager
def attention_form(form: str):
    """``gcn``'s attention is ``form`` while the block runs (programs traced in it keep it)."""
    gcn.attention = {"before": attention_before, "fixed adjacency": attention_fixed}.get(form, attention)
    try:
        yield
    finally:
        gcn.attention = attention


def forward_call(preset: str, batch: int, form: str):
    """(compiled ``gcn.apply`` of the ``preset`` network, (params, features)): ``op_profile``'s program."""
    compiled, args = forward_program(preset, batch, (f"model.attention_forward={FORWARD[form]}",))
    return compiled, args()


def measure(preset: str, batches, rounds: int, repeats: int) -> list[dict]:
    programs = {f"forward, batch {b}": (lambda form, b=b: forward_call(preset, b, form)) for b in batches}
    for method in ("dense", "srmp", "mrmp"):
        rates = RATE_SETS[6] if method == "mrmp" else (0.9,)
        label = {"dense": "dense", "srmp": "SRMP", "mrmp": "MRMP K = 6"}[method]
        programs[f"{label} train step, batch 256"] = lambda form, method=method, rates=rates: step_call(
            method, rates, 256, preset, extra=(f"model.attention_backward={BACKWARD[form]}",))
    rows = []
    for name, make in programs.items():
        calls, build = {}, {}
        for form in FORMS:
            with attention_form(form):
                start = time.perf_counter()
                calls[form] = make(form)
                build[form] = time.perf_counter() - start   # trace + compile (train steps: + 3 warm-up steps)
        ms = {k: 1e3 * v for k, v in interleaved_medians(calls, rounds=rounds, repeats=repeats).items()}
        saved_ms = ms["autodiff"] - ms["edges"]
        extra_s = build["edges"] - build["autodiff"]
        rows.append({"preset": preset, "program": name, **{f"{f}_ms": ms[f] for f in FORMS},
                     **{f"share_{f}": 1 - ms["fixed adjacency"] / ms[f] for f in FORMS[:-1]},
                     **{f"{f}_compile_s": build[f] for f in FORMS},
                     # calls after which the per-pair program's longer compilation has paid for itself
                     "edges_break_even_calls": 1e3 * extra_s / saved_ms if saved_ms > 0 else None})
        print(f"{preset} {name}: " + ", ".join(f"{f} {ms[f]:.3f} ms ({build[f]:.1f} s to build)" for f in FORMS),
              flush=True)
    return rows


def report_lines(record: dict) -> list[str]:
    """The markdown table of a ``record`` (as written to attention_share.json)."""
    lines = [f"# The attention's share of forward passes and train steps, across its forms "
             f"({record['device']}, jax {record['jax']})", "",
             "SBU-shaped GCN (30 nodes, bones attention), networks of the presets (c8: C = 8; wide: C = 64). "
             "Median ms per call; the forms of a program timed in interleaved rounds. before: the mask on "
             "every logit; autodiff: the masked bias, XLA's gradient (the default forward pass); edges: "
             "the blocks computed over the graph's pairs (train steps: the default, "
             "`model.attention_backward=edges`; forward passes: `model.attention_forward=edges`). "
             "Share = 1 − fixed adjacency / form; target: ≤ 0.5. Compile s: building the program, tracing "
             "and compiling it (train steps: and 3 warm-up steps); break-even: calls after which edges' "
             "longer compilation has paid for itself (— where edges saves nothing).", "",
             "| network | program | before ms | autodiff ms | edges ms | edges ÷ autodiff | fixed adjacency ms | "
             "share before | share autodiff | share edges | compile s autodiff | compile s edges | break-even calls |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['preset']} | {r['program']} | {r['before_ms']:.3f} | {r['autodiff_ms']:.3f} | "
              f"{r['edges_ms']:.3f} | {r['edges_ms'] / r['autodiff_ms']:.2f} | {r['fixed adjacency_ms']:.3f} | "
              + " | ".join(f"{max(0.0, r[f'share_{f}']):.2f}" for f in FORMS[:-1])
              + f" | {r['autodiff_compile_s']:.1f} | {r['edges_compile_s']:.1f} | "
              + ("—" if r["edges_break_even_calls"] is None else f"{max(0.0, r['edges_break_even_calls']):.0f}")
              + " |" for r in record["rows"]]
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--presets", default="c8,wide")
    p.add_argument("--batches", default="1,256,4096", help="forward-pass batches")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=6, help="calls per round of each form")
    a = p.parse_args(argv)
    rows = [r for preset in a.presets.split(",")
            for r in measure(preset, [int(b) for b in a.batches.split(",")], a.rounds, a.repeats)]
    record = {"benchmark": "attention_share", "device": device_line(), "jax": jax.__version__,
              "rounds": a.rounds, "repeats": a.repeats, "rows": rows}
    write_report(a.out, "attention_share", record, report_lines(record))


if __name__ == "__main__":
    main()
