"""Compaction: a masked GCN becomes a genuinely smaller dense GCN with the same logits.

``compact(params, masks, config)`` removes every channel, attention dimension, hidden unit,
input feature and flattened FC input that the masked network does not need, whatever mask made
the zeros (CTF, MRMP, magnitude, ...), propagating removals through consecutive layers as
Torch-Pruning does:

- an attention with no dimension left (every key column zero, or query column and bias zero)
  is the same for every input: it is stored as its constant (J, J) matrix;
- forward: an output channel whose kernel column is zero is the constant relu(bias) at every
  node; it is removed and its constant folded into the next layer (graph conv: into its bias,
  since attention rows sum to 1; attention: into a query bias, a key constant being invariant
  under the row softmax; FC: into its bias; hidden unit: into the classifier's bias);
- backward: a channel whose rows are zero in every layer that reads it is removed together
  with the column that produced it (through the flatten: an FC row is one node × one channel;
  a channel is removed when all its FC rows are). An attention dimension goes when its key
  column is zero, or its query column and query bias are.

The result, ``CompactGCN``, is a pytree of plain arrays run by ``compact_apply``; the entry-wise
zeros left inside its kernels are unstructured sparsity (``to_bcoo`` stores them as BCOO). In
``bones`` mode its blocks run in the form the model's ``attention_forward`` names, as the GCN's
do: "dense", the (B, J, J) products, or "edges", over the graph's pairs only
(``jaxprune.models.edge_attention``). Compaction shrinks every product but the attention's
softmax over J × J logits, so the per-pair form pays more here than in the dense network
(``benchmarks/results/ctf_inference.md``, 2-core CPU: faster at batch 256, at 4096 faster or
slower by run and rate; time both).

Compact params::

    {"input_index": (F',) int32 -- features kept, gathered from the (B, J, F) input,
     "block<b>": {"attention": {"query": (F', d'), "query_bias": (d',), "key": (F', d'), "bias": (J, J)}
                                or {"constant": (J, J)} when d' = 0,
                  "conv": {"kernel": (F', C'), "bias": (C',)}},
     "fc": {"index": (K,) int32 into the flattened (J·C'_last) output, "kernel": (K, H'), "bias": (H',)},
     "classifier": {"kernel": (H', classes), "bias": (classes,)}}
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from jaxprune.masks.bandstop import apply_masks
from jaxprune.models.edge_attention import batch_major, edge_mix, feature_major, project
from jaxprune.models.gcn import ATTENTION_FORWARDS, GCNConfig
from jaxprune.models.layers import masked_bias

PyTree = Any


@flax.struct.dataclass
class CompactGCN:
    """A compacted GCN: ``params`` (module docstring) plus what running it needs (static).

    ``graph``: the attention's 0/1 node mask (J rows of J bools) when attention is restricted to
    the bones, else None; ``attention_scale``: 1 / sqrt(d) of the original attention dim d;
    ``attention_forward``: the blocks' form when ``graph`` is set (module docstring).
    """

    params: PyTree
    num_nodes: int = flax.struct.field(pytree_node=False)
    num_blocks: int = flax.struct.field(pytree_node=False)
    attention_scale: float = flax.struct.field(pytree_node=False)
    graph: tuple[tuple[bool, ...], ...] | None = flax.struct.field(pytree_node=False, default=None)
    attention_forward: str = flax.struct.field(pytree_node=False, default="dense")

    def __post_init__(self):
        if self.attention_forward not in ATTENTION_FORWARDS:
            raise ValueError(f"model setting attention_forward must be one of {ATTENTION_FORWARDS}, "
                             f"got {self.attention_forward!r}")

    def __call__(self, features: jax.Array) -> jax.Array:
        return compact_apply(self, features)


def _matmul(x: jax.Array, w) -> jax.Array:
    """x (..., p) @ w (p, q), for a dense or a BCOO ``w``."""
    if isinstance(w, sparse.BCOO):
        return (x.reshape(-1, x.shape[-1]) @ w).reshape(*x.shape[:-1], w.shape[1])
    return x @ w


def _expand_rows(w, index: jax.Array, rows: int):
    """The (rows, q) matrix whose rows ``index`` are ``w`` (K, q) and whose other rows are zero.

    Multiplying the full input by it replaces a gather of the input's columns, which XLA runs
    slowly on CPUs (a 4096-sample batch: 20 ms for the gather, against 0.1 ms for the extra rows).
    """
    if isinstance(w, sparse.BCOO):
        indices = w.indices.at[:, 0].set(index[w.indices[:, 0]])
        return sparse.BCOO((w.data, indices), shape=(rows, w.shape[1]))
    return jnp.zeros((rows, w.shape[1]), w.dtype).at[index].set(w)


def compact_apply(net: CompactGCN, features: jax.Array) -> jax.Array:
    """Logits (B, classes) of node features (B, J, F) (the original network's features)."""
    if net.graph is not None and net.attention_forward == "edges":
        return compact_head(net, compact_blocks_by_pairs(net, features))
    h = features
    for b in range(net.num_blocks):
        h = compact_block(net, b, h, features.shape[-1])
    return compact_head(net, h)


def _project(w, h: jax.Array) -> jax.Array:
    """Feature-major projection: w (F, X), dense or BCOO, of h (F, J, B) -> (X, J, B)."""
    if not isinstance(w, sparse.BCOO):
        return project(w, h)
    f, j, b = h.shape
    return _matmul(h.reshape(f, j * b).T, w).T.reshape(w.shape[1], j, b)


def compact_blocks_by_pairs(net: CompactGCN, features: jax.Array) -> jax.Array:
    """Every block of a compact ``bones``-mode network over the graph's pairs, feature-major
    ((·, J, B), as ``edge_attention.edge_blocks``): node features (B, J, F) -> (B, J, C'_last),
    equal to ``compact_block``'s to float rounding."""
    mix = edge_mix(np.asarray(net.graph, bool), scale=net.attention_scale)
    h = feature_major(features)                                          # (F, J, B)
    for b in range(net.num_blocks):
        att, conv = net.params[f"block{b}"]["attention"], net.params[f"block{b}"]["conv"]

        def kernel(w):
            return _expand_rows(w, net.params["input_index"], features.shape[-1]) if b == 0 else w
        with jax.named_scope("graph_conv"):
            v = _project(kernel(conv["kernel"]), h)
        with jax.named_scope("attention"):                                # including the product with v
            if "constant" in att:
                mixed = jnp.einsum("ij,cjb->cib", att["constant"], v)
            else:
                q = _project(kernel(att["query"]), h) + att["query_bias"][:, None, None]
                mixed = mix(q, _project(kernel(att["key"]), h), v, att["bias"])
        with jax.named_scope("graph_conv"):
            h = jax.nn.relu(mixed + conv["bias"][:, None, None])
    return batch_major(h)


def compact_block(net: CompactGCN, b: int, h: jax.Array, num_features: int) -> jax.Array:
    """Block ``b`` of the compact network: h (B, J, F'_b) -> (B, J, C'_b). Block 0 reads the
    original features (B, J, ``num_features``), of which it uses those of ``input_index``."""
    att, conv = net.params[f"block{b}"]["attention"], net.params[f"block{b}"]["conv"]

    def kernel(w):   # block 0 reads the kept input features only: their rows, zeros elsewhere
        return _expand_rows(w, net.params["input_index"], num_features) if b == 0 else w
    if "constant" in att:                            # no attention dimension left
        a = att["constant"]
    else:
        with jax.named_scope("attention"):
            mask = None if net.graph is None else jnp.asarray(net.graph, bool)
            q = _matmul(h, kernel(att["query"])) + att["query_bias"]
            k = _matmul(h, kernel(att["key"]))
            logits = jnp.einsum("...id,...jd->...ij", q, k) * net.attention_scale + masked_bias(att["bias"], mask)
            a = jax.nn.softmax(logits, axis=-1)
    with jax.named_scope("graph_conv"):
        return jax.nn.relu(a @ _matmul(h, kernel(conv["kernel"])) + conv["bias"])


def compact_head(net: CompactGCN, h: jax.Array) -> jax.Array:
    """Flatten, FC (its kept rows), ReLU, classifier: the last block's output (B, J, C') -> logits."""
    p = net.params
    h = h.reshape(h.shape[0], -1)
    with jax.named_scope("fc"):
        fc = _expand_rows(p["fc"]["kernel"], p["fc"]["index"], h.shape[-1])
        h = jax.nn.relu(_matmul(h, fc) + p["fc"]["bias"])
    with jax.named_scope("classifier"):
        return _matmul(h, p["classifier"]["kernel"]) + p["classifier"]["bias"]


def _nonzero(a: np.ndarray, axis: int) -> np.ndarray:
    return np.any(a != 0, axis=axis)


def _relu(x):
    return np.maximum(x, 0)


def _constant_attention(bias: np.ndarray, graph: np.ndarray | None) -> np.ndarray:
    """Row softmax (J, J) of the attention bias alone (restricted to ``graph`` when given)."""
    logits = np.where(graph, bias, -np.inf) if graph is not None else bias.astype(np.float64)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def compact(params: PyTree, masks: PyTree, config: GCNConfig) -> CompactGCN:
    """The smallest dense GCN computing the same logits as ``apply(params ⊙ masks)``.

    ``masks``: a mask pytree aligned with ``params`` (None at unmasked leaves), or None when
    ``params`` already holds the zeros. Its blocks run in ``config.attention_forward``'s form.
    Works on concrete arrays (not under jit).
    """
    w = params if masks is None else apply_masks(params, masks)
    w = jax.tree.map(lambda a: np.asarray(a, np.float32), w)
    nb, j = config.num_blocks, config.num_nodes
    live = np.ones(config.num_features, bool)           # input channels that vary across nodes
    const = np.zeros(config.num_features, np.float32)   # value of the others (same at every node)
    fwd = []
    for b in range(nb):                                  # forward: fold constants, find live outputs
        att, conv = w[f"block{b}"]["attention"], w[f"block{b}"]["conv"]
        query_bias = const @ att["query"]
        conv_bias = conv["bias"] + const @ conv["kernel"]
        out_live = _nonzero(conv["kernel"][live], 0)
        dims = _nonzero(att["key"][live], 0) & (_nonzero(att["query"][live], 0) | (query_bias != 0))
        fwd.append({"live": live, "dims": dims, "query_bias": query_bias, "conv_bias": conv_bias,
                    "out_live": out_live})
        live, const = out_live, np.where(out_live, 0, _relu(conv_bias)).astype(np.float32)
    channels = live.size
    fc_w, cls_w = w["fc"]["kernel"], w["classifier"]["kernel"]
    row_live = np.tile(live, j)                          # flatten is node-major: row j·C + c
    fc_bias = w["fc"]["bias"] + np.tile(const, j) @ fc_w
    hidden_live = _nonzero(fc_w[row_live], 0)
    cls_bias = w["classifier"]["bias"] + np.where(hidden_live, 0, _relu(fc_bias)) @ cls_w
    hidden = hidden_live & _nonzero(cls_w, 1)            # backward: keep only what is read
    fc_rows = row_live & _nonzero(fc_w[:, hidden], 1)
    used = fc_rows.reshape(j, channels).any(0)
    graph = config.graph().astype(bool) if config.attention == "bones" else None
    out = {}
    for b in reversed(range(nb)):
        f, att, conv = fwd[b], w[f"block{b}"]["attention"], w[f"block{b}"]["conv"]
        cols, dims = f["out_live"] & used, f["dims"]
        rows = f["live"] & (_nonzero(att["query"][:, dims], 1) | _nonzero(att["key"][:, dims], 1)
                            | _nonzero(conv["kernel"][:, cols], 1))
        if dims.any():
            attention = {"query": att["query"][np.ix_(rows, dims)], "query_bias": f["query_bias"][dims],
                         "key": att["key"][np.ix_(rows, dims)], "bias": att["bias"]}
        else:                                            # logits = bias: the same attention for every input
            attention = {"constant": _constant_attention(att["bias"], graph)}
        out[f"block{b}"] = {"attention": attention,
                            "conv": {"kernel": conv["kernel"][np.ix_(rows, cols)], "bias": f["conv_bias"][cols]}}
        if b == nb - 1:
            last_cols = cols
        used = rows
    kept_rows = fc_rows.reshape(j, channels)[:, last_cols].ravel()     # over the compact flatten
    out["input_index"] = np.flatnonzero(used).astype(np.int32)
    out["fc"] = {"index": np.flatnonzero(kept_rows).astype(np.int32),
                 "kernel": fc_w[np.ix_(fc_rows, hidden)], "bias": fc_bias[hidden]}
    out["classifier"] = {"kernel": cls_w[hidden], "bias": cls_bias}
    return CompactGCN(params=jax.tree.map(jnp.asarray, out), num_nodes=j, num_blocks=nb,
                      attention_scale=float(1.0 / np.sqrt(config.attention_dim)),
                      graph=None if graph is None else tuple(map(tuple, graph.tolist())),
                      attention_forward=config.attention_forward)


def _kernels(net: CompactGCN) -> dict[str, Any]:
    p = net.params
    out = {}
    for b in range(net.num_blocks):
        att = p[f"block{b}"]["attention"]
        if "constant" not in att:
            out[f"block{b}/attention/query"] = att["query"]
            out[f"block{b}/attention/key"] = att["key"]
        out[f"block{b}/conv/kernel"] = p[f"block{b}"]["conv"]["kernel"]
    out["fc/kernel"] = p["fc"]["kernel"]
    out["classifier/kernel"] = p["classifier"]["kernel"]
    return out


def _count(w, nonzero: bool) -> int:
    if isinstance(w, sparse.BCOO):
        return int(w.nse) if nonzero else int(np.prod(w.shape))
    return int(np.count_nonzero(np.asarray(w))) if nonzero else int(np.size(w))


def compact_size(net: CompactGCN, nonzero: bool = False) -> int:
    """Weights in the compact network's prunable kernels (attention, conv, FC; not the classifier):
    every entry of the smaller matrices, or only the non-zero ones."""
    return sum(_count(w, nonzero) for name, w in _kernels(net).items() if not name.startswith("classifier"))


def compact_flops(net: CompactGCN, nonzero: bool = False) -> int:
    """FLOPs (2 × MACs) of one sample's forward pass: kernels counted whole (dense matmuls) or
    by their non-zeros (a sparse kernel); attention products (q·k, A·H) counted dense."""
    return sum(compact_stage_flops(net, nonzero))


def compact_stage_flops(net: CompactGCN, nonzero: bool = False) -> list[int]:
    """``compact_flops`` stage by stage: [block 0, ..., block L-1, head (FC + classifier)]."""
    j, p, stages = net.num_nodes, net.params, []
    k = _kernels(net)
    for b in range(net.num_blocks):
        c, macs = p[f"block{b}"]["conv"]["kernel"].shape[1], 0
        if f"block{b}/attention/query" in k:
            d = p[f"block{b}"]["attention"]["query"].shape[1]
            macs += j * (_count(k[f"block{b}/attention/query"], nonzero)
                         + _count(k[f"block{b}/attention/key"], nonzero)) + j * j * d
        macs += j * _count(k[f"block{b}/conv/kernel"], nonzero) + j * j * c
        stages.append(2 * macs)
    stages.append(2 * (_count(k["fc/kernel"], nonzero) + _count(k["classifier/kernel"], nonzero)))
    return stages


def to_bcoo(net: CompactGCN) -> CompactGCN:
    """The same network with every non-empty kernel stored as a ``jax.experimental.sparse.BCOO``
    holding only its non-zero entries."""

    def convert(path, a):
        name = getattr(path[-1], "key", None)
        if name in ("query", "key", "kernel") and np.size(a) and not isinstance(a, sparse.BCOO):
            return sparse.BCOO.fromdense(np.asarray(a), nse=int(np.count_nonzero(np.asarray(a))))
        return a
    return net.replace(params=jax.tree_util.tree_map_with_path(convert, net.params))
