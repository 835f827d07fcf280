"""The GCN's graph-restricted blocks as they are differentiated: over the graph's pairs only.

In ``bones`` mode a node attends to its skeleton neighbours and itself (SBU: 88 of 900 node
pairs). The forward pass as written (``gcn.apply_block``) computes every J × J logit, the graph
folded into the bias as -inf; XLA's transpose of it for the gradient works on all J² pairs in
tiny batched matrix products, which XLA:CPU runs slowly. Here the blocks are written pair by
pair, feature-major ((·, J, B): each pair's terms are products of contiguous rows of B floats),
with the attention's backward pass written out in the same form (``edge_mix``): XLA's own
transpose of the per-pair slices was a pad-and-add of the whole activation per pair.

``gcn.apply`` uses these blocks only under differentiation (a ``jax.custom_vjp`` whose primal is
the code as written), so served logits do not change; the train step's loss and gradients agree
with autodiff's to float rounding (tests). Reverse mode (``jax.grad``, ``jax.vjp``) and
``jax.vmap`` work; forward mode (``jax.jvp``, ``jax.hessian``) does not: set
``model.attention_backward=autodiff`` for it. Measured: benchmarks/README.md, "Train steps
differentiated over the graph's pairs" (``benchmarks.attention_share`` times the forms side by side).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def neighbour_lists(graph: np.ndarray) -> list[list[int]]:
    """Each node's allowed partners in a 0/1 graph (J, J) (self-loops included): itself first when
    allowed, then the others in index order."""
    graph = np.asarray(graph, bool)
    return [sorted(np.flatnonzero(graph[i]).tolist(), key=lambda n: (n != i, n)) for i in range(graph.shape[0])]


def project(w: jax.Array, h: jax.Array) -> jax.Array:
    """Feature-major projection: w (F, X) of h (F, J, B) -> (X, J, B), as one (X, F) @ (F, J·B) matmul."""
    f, j, b = h.shape
    return (w.T @ h.reshape(f, j * b)).reshape(w.shape[1], j, b)


def feature_major(x: jax.Array) -> jax.Array:
    """(B, J, F) -> (F, J, B) as a copy of its own: the barrier after the transpose keeps XLA from
    fusing it into the first block's projections, where on XLA:CPU it ran 2-3x slower than alone
    (C = 8, batch 4096: 5.7 against 2.0 ms). With ``batch_major`` the whole pass gains little:
    0.76-1.07x the time with bare transposes over four runs (benchmarks.layout_barriers;
    benchmarks/README.md, "Layout barriers"). Values are unchanged."""
    return jax.lax.optimization_barrier(jnp.transpose(x, (2, 1, 0)))


def batch_major(h: jax.Array) -> jax.Array:
    """(C, J, B) -> (B, J, C): the barrier before the transpose materialises the last block's
    output, so the transpose runs on its own instead of inside the block's last fusion."""
    return jnp.transpose(jax.lax.optimization_barrier(h), (2, 1, 0))


def edge_mix(graph: np.ndarray, scale: float | None = None):
    """``mix(q (d, J, B), k (d, J, B), v (C, J, B), bias (J, J)) -> (C, J, B)``: for each node i,
    Σ_j softmax_j(scale · q_i · k_j + bias_ij) v_j over the pairs (i, j) that the 0/1 ``graph``
    (J, J) allows, pair by pair, with its backward pass written out pair by pair too. ``scale``:
    1 / sqrt(d) when None (a compact network keeps its original d's)."""
    graph = np.asarray(graph, bool)
    if not graph.any(axis=1).all():
        raise ValueError("every node of the attention's graph needs an allowed pair (e.g. a self-loop)")
    nodes = graph.shape[0]
    neighbours = neighbour_lists(graph)
    pairs = [(i, j) for i in range(nodes) for j in neighbours[i]]
    of = [[(p, j) for p, (ii, j) in enumerate(pairs) if ii == i] for i in range(nodes)]     # pairs from i
    into = [[(p, i) for p, (i, jj) in enumerate(pairs) if jj == j] for j in range(nodes)]   # pairs into j
    rows, cols = np.array([i for i, _ in pairs]), np.array([j for _, j in pairs])

    def _scale(q):
        return 1.0 / np.sqrt(q.shape[0]) if scale is None else scale

    def forward(q, k, v, bias):
        factor = _scale(q)
        a, out = [None] * len(pairs), []                                 # a[p]: weight of pair p, (B,)
        for i in range(nodes):
            z = [factor * jnp.sum(q[:, i] * k[:, j], 0) + bias[i, j] for _, j in of[i]]
            top = z[0]
            for t in z[1:]:
                top = jnp.maximum(top, t)
            e = [jnp.exp(t - top) for t in z]
            total = sum(e)
            for (p, _), t in zip(of[i], e):
                a[p] = t / total
            out.append(sum(a[p] * v[:, j] for p, j in of[i]))
        return jnp.stack(out, 1), a

    @jax.custom_vjp
    def mix(q, k, v, bias):
        return forward(q, k, v, bias)[0]

    def saving(q, k, v, bias):
        out, a = forward(q, k, v, bias)
        return out, (q, k, v, a, out)

    def backward(saved, g):
        q, k, v, a, out = saved
        factor = _scale(q)
        gz = [None] * len(pairs)                                          # d loss / d logit, per pair (B,)
        for i in range(nodes):
            r = jnp.sum(g[:, i] * out[:, i], 0)
            for p, j in of[i]:
                gz[p] = a[p] * (jnp.sum(g[:, i] * v[:, j], 0) - r)
        gq = factor * jnp.stack([sum(gz[p] * k[:, j] for p, j in of[i]) for i in range(nodes)], 1)
        gk = factor * jnp.stack([sum(gz[p] * q[:, i] for p, i in into[j]) if into[j] else jnp.zeros_like(k[:, j])
                                for j in range(nodes)], 1)
        gv = jnp.stack([sum(a[p] * g[:, i] for p, i in into[j]) if into[j] else jnp.zeros_like(v[:, j])
                        for j in range(nodes)], 1)
        gbias = jnp.zeros((nodes, nodes), g.dtype).at[rows, cols].set(jnp.sum(jnp.stack(gz), 1))
        return gq, gk, gv, gbias

    mix.defvjp(saving, backward)
    return mix


def edge_blocks(graph: np.ndarray):
    """``blocks(block_params, h (B, J, F)) -> (B, J, C)``: the GCN's blocks (a list of
    ``{"attention", "conv"}`` dicts as in ``gcn``), relu(Σ_j A_ij (h W)_j + b) with A the
    graph-restricted attention, computed feature-major pair by pair (``edge_mix``)."""
    mix = edge_mix(graph)

    def blocks(block_params, h):
        h = feature_major(h)                                              # (F, J, B)
        for block in block_params:
            att, conv = block["attention"], block["conv"]
            with jax.named_scope("graph_conv"):          # the scopes of gcn.apply_block, for profiles
                v = project(conv["kernel"], h)
            with jax.named_scope("attention"):           # here including the product with v
                mixed = mix(project(att["query"], h), project(att["key"], h), v, att["bias"])
            with jax.named_scope("graph_conv"):
                h = jax.nn.relu(mixed + conv["bias"][:, None, None])
        return batch_major(h)
    return blocks
