"""What the GCN's node-to-node attention costs, and what other layouts of it would cost.

    python -m benchmarks.attention_cost --out benchmarks/results

The whole GCN (3 blocks, C = 8 and 64 (``--channels``), FC 128; ``bones`` attention) at three skeleton shapes: SBU
(30 nodes), FPHA (21) and an NTU-like 2 x 25-node chain (50), batches 1 / 256 / 4096, jitted
forward and jitted gradient of a squared-logit loss (the backward pass of a train step, without
masks or optimizer). Forms of the same network:

- ``as written``: ``jaxprune.models.gcn.apply`` (logits and softmax over all J x J pairs, the bone
  mask folded into the bias) differentiated by XLA (``model.attention_backward=autodiff``);
- ``slots``: only the allowed pairs, each node's neighbours in padded slots (self first) and the
  activations laid out feature-major (F, J, B), so gathering a neighbour copies rows of B floats;
  the gathers' backward pass is made of gathers, not XLA:CPU's slow scatter-add, and sums over
  the attention dimension are a small matmul, not a major-axis reduction (``apply_slots``);
  checked equal to ``as written`` (logits and gradients) before it is timed;
- ``edges``: only the allowed pairs, feature-major (F, J, B), written out pair by pair (each
  node's neighbours are static slices, so nothing is gathered or materialised) with a
  hand-written backward pass in the same per-pair form (``apply_edges``); XLA's own transpose of
  the per-pair slices was a pad-and-add of the whole activation per pair. The program is large
  (thousands of HLO ops), so the table also gives each form's compile seconds. Since then it is
  the library's (``jaxprune.models.edge_attention``): ``gcn.apply`` differentiates it by default;
- ``fixed adjacency``: the attention replaced by the constant row-normalised graph: the cost of
  everything else, the floor that the issue's target ("attention no dearer than the rest") reads
  against. Attention share = (form - fixed) / form.

Reports the median after compilation; the forms of one cell are timed in ``--rounds`` interleaved
rounds (``timing.interleaved_medians``: a slow spell of the shared machine falls on every form
alike), ``--repeats`` calls of each in all. Each form's output (logits, or gradients) is checked
against ``as written`` before it is timed. Writes ``attention_cost.json``
and ``attention_cost.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import device_line, interleaved_medians, write_report
from jaxprune.graphs import FPHA_BONES, SBU_BONES
from jaxprune.models import gcn
from jaxprune.models.edge_attention import edge_blocks, neighbour_lists, project
from jaxprune.models.layers import dense

NTU_LIKE = tuple((i, i + 1) for i in range(24)) + tuple((i + 25, i + 26) for i in range(24))
SHAPES = {"SBU (30 nodes)": (30, SBU_BONES), "FPHA (21)": (21, FPHA_BONES), "NTU-like (50)": (50, NTU_LIKE)}


def neighbour_slots(graph: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(J, D) int32 neighbour index per slot (self in slot 0, padding repeats self) and (J, D) bool valid."""
    lists = neighbour_lists(graph)
    width = max(map(len, lists))
    index = np.array([row + [row[0]] * (width - len(row)) for row in lists], np.int32)
    valid = np.array([[s < len(row) for s in range(width)] for row in lists])
    return index, valid


def _classify(params: dict, h: jax.Array) -> jax.Array:
    """FC and classifier of node features h (B, J, C)."""
    h = jax.nn.relu(dense(params["fc"], h.reshape(h.shape[0], -1)))
    return dense(params["classifier"], h)


def _inverse_table(index: np.ndarray, rows: int) -> np.ndarray:
    """For a gather x[index] (M,) of ``rows`` rows: (rows, R) positions in 0..M-1 that read each row,
    padded with M (a zero row appended to the cotangent)."""
    where = [[] for _ in range(rows)]
    for m, i in enumerate(index):
        where[i].append(m)
    width = max(1, max(map(len, where)))
    return np.array([w + [len(index)] * (width - len(w)) for w in where], np.int32)


def node_gather(x: jax.Array, index: np.ndarray) -> jax.Array:
    """x (F, J, B) -> x[:, index] (F, M, B) for a static index (M,), with a backward pass made of
    gathers too (through the inverse table): XLA:CPU's scatter-add, jax's default transpose of a
    gather, made the slot form slower than the dense one in the gradient."""
    inverse = _inverse_table(np.asarray(index), x.shape[1])

    @jax.custom_vjp
    def gather(x):
        return jnp.take(x, index, axis=1)

    def backward(_, ct):
        ct = jnp.concatenate([ct, jnp.zeros_like(ct[:, :1])], axis=1)
        return (sum(jnp.take(ct, inverse[:, r], axis=1) for r in range(inverse.shape[1])),)
    gather.defvjp(lambda x: (gather(x), None), backward)
    return gather(x)


def _sum_first(x: jax.Array) -> jax.Array:
    """Σ over axis 0 of (d, ...) as a (1, d) @ (d, n) product: XLA:CPU's reduction over a major axis
    was 55x slower at batch 4096 (42 ms against 0.77 ms for the same sum)."""
    return (jnp.ones((1, x.shape[0]), x.dtype) @ x.reshape(x.shape[0], -1)).reshape(x.shape[1:])


def apply_slots(params: dict, features: jax.Array, config: gcn.GCNConfig) -> jax.Array:
    """``gcn.apply`` for ``bones`` attention over neighbour slots, feature-major (F, J, B).

    Each node's D slots (itself, then its neighbours) are gathered at once (``node_gather``); the
    q·k sums over the attention dimension are one small matmul (``_sum_first``); the softmax over
    slots and the mixing of the values are elementwise over (J, B) planes, one per slot.
    """
    index, valid = neighbour_slots(config.graph())
    nodes, (j, slots) = np.arange(index.shape[0])[:, None], index.shape
    blocked = np.where(valid, 0.0, -np.inf).astype(np.float32)
    by_slot = index.T.ravel()                                     # slot-major (D·J,)
    h = jnp.transpose(features, (2, 1, 0))                        # (F, J, B)
    for b in range(config.num_blocks):
        att, conv = params[f"block{b}"]["attention"], params[f"block{b}"]["conv"]
        q = project(att["query"] / np.sqrt(att["query"].shape[1]), h)
        k, v = node_gather(project(att["key"], h), by_slot), node_gather(project(conv["kernel"], h), by_slot)
        bias = (att["bias"][nodes, index] + blocked).T            # (D, J)
        logits = [_sum_first(q * k[:, s * j:(s + 1) * j]) + bias[s][:, None] for s in range(slots)]
        top = logits[0]
        for z in logits[1:]:
            top = jnp.maximum(top, z)
        weights = [jnp.exp(z - jax.lax.stop_gradient(top)) for z in logits]
        mixed = sum(w * v[:, s * j:(s + 1) * j] for s, w in enumerate(weights)) / sum(weights)
        h = jax.nn.relu(mixed + conv["bias"][:, None, None])
    return _classify(params, jnp.transpose(h, (2, 1, 0)))


def apply_edges(params: dict, features: jax.Array, config: gcn.GCNConfig) -> jax.Array:
    """``gcn.apply`` for ``bones`` attention, pair by pair over the graph's pairs, feature-major: the
    library's ``edge_attention.edge_blocks`` (what ``gcn.apply`` differentiates), here also forward."""
    blocks = [params[f"block{b}"] for b in range(config.num_blocks)]
    return _classify(params, edge_blocks(config.graph())(blocks, features))


def apply_fixed(params: dict, features: jax.Array, config: gcn.GCNConfig) -> jax.Array:
    """``gcn.apply`` with every attention replaced by the row-normalised graph (a constant)."""
    graph = config.graph()
    a = jnp.asarray(graph / graph.sum(1, keepdims=True))
    h = features
    for b in range(config.num_blocks):
        conv = params[f"block{b}"]["conv"]
        h = jax.nn.relu(a @ (h @ conv["kernel"]) + conv["bias"])
    return _classify(params, h)


def _loss(apply):
    return lambda p, x, config: jnp.mean(apply(p, x, config) ** 2)


def _close(a, b, tol=1e-4) -> bool:
    return all(float(jnp.max(jnp.abs(x - y))) <= tol * (1 + float(jnp.max(jnp.abs(x))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def measure(shape: str, batches, repeats: int, channels: int = 8, rounds: int = 5) -> list[dict]:
    nodes, edges = SHAPES[shape]
    config = gcn.GCNConfig(num_nodes=nodes, num_features=12, num_classes=8, edges=edges, hidden=128,
                           channels=channels, attention_backward="autodiff")   # "as written": XLA's gradient
    params = gcn.init(jax.random.key(0), config)
    params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(1), a.shape), params)
    forms = {"as written": gcn.apply, "slots": apply_slots, "edges": apply_edges, "fixed adjacency": apply_fixed}
    compared = [name for name in forms if name != "fixed adjacency"]
    rows = []
    for batch in batches:
        x = jax.random.normal(jax.random.key(2), (batch, nodes, 12))
        ref_out, ref_grad = gcn.apply(params, x, config), jax.grad(_loss(gcn.apply))(params, x, config)
        for what in ("forward", "gradient"):
            calls, compile_s = {}, {}
            for name, apply in forms.items():
                fn = apply if what == "forward" else jax.grad(_loss(apply))
                started = time.perf_counter()
                calls[name] = (jax.jit(lambda p, x, fn=fn: fn(p, x, config)).lower(params, x).compile(), (params, x))
                compile_s[name] = time.perf_counter() - started
            for name in compared[1:]:
                assert _close(calls[name][0](params, x), ref_out if what == "forward" else ref_grad), \
                    f"{name}: {'logits' if what == 'forward' else 'gradients'} differ"
            seconds = interleaved_medians(calls, rounds=rounds, repeats=max(1, repeats // rounds), min_seconds=0.05)
            ms = {name: 1e3 * t for name, t in seconds.items()}
            for name in compared:
                rows.append({"shape": shape, "channels": channels, "batch": batch, "pass": what, "form": name,
                             "median_ms": ms[name], "compile_s": compile_s[name],
                             "fixed_ms": ms["fixed adjacency"],
                             "attention_share": 1 - ms["fixed adjacency"] / ms[name]})
            print(f"{shape} C {channels} batch {batch} {what}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items()), flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--batches", default="1,256,4096")
    p.add_argument("--repeats", type=int, default=10, help="timed calls of each form (default 10)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds the calls are split into (default 5)")
    p.add_argument("--channels", default="8,64", help="GCN widths C (default 8, the papers', and 64, the default preset's)")
    a = p.parse_args(argv)
    batches = [int(b) for b in a.batches.split(",")]
    rows = [row for c in (int(c) for c in a.channels.split(",")) for shape in SHAPES
            for row in measure(shape, batches, a.repeats, c, a.rounds)]
    record = {"benchmark": "attention_cost", "device": device_line(), "jax": jax.__version__,
              "repeats": a.repeats, "rounds": a.rounds, "rows": rows}
    lines = [f"# The GCN's attention: cost and share of the network ({record['device']}, jax {jax.__version__})", "",
             "Whole GCN, bones attention, C as given, FC 128. Median ms per jitted call; attention share = "
             "1 - (time with a fixed adjacency) / (time of the form). Target: share <= 0.5.", "",
             "| shape | C | batch | pass | form | median ms | fixed adjacency ms | attention share | compile s |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['shape']} | {r['channels']} | {r['batch']} | {r['pass']} | {r['form']} | {r['median_ms']:.3f} | "
              f"{r['fixed_ms']:.3f} | {r['attention_share']:.2f} | {r['compile_s']:.1f} |" for r in rows]
    write_report(a.out, "attention_cost", record, lines)


if __name__ == "__main__":
    main()
