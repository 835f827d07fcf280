"""The papers' skeleton GCN (METHOD.md §5) as two pure functions, ``init`` and ``apply``.

    features (B, J, F)
      -> blocks x [single-head attention over nodes -> graph convolution (C filters) -> ReLU]
      -> flatten (B, J*C) -> fully connected (hidden) -> ReLU -> linear classifier (B, classes)

Params pytree (all float32)::

    {"block0": {"attention": {"query": (F, d), "key": (F, d), "bias": (J, J)},
                "conv": {"kernel": (F, C), "bias": (C,)}},
     "block1": ... (input C), "block2": ...,
     "fc": {"kernel": (J*C, hidden), "bias": (hidden,)},
     "classifier": {"kernel": (hidden, classes), "bias": (classes,)}}

Attention modes (``GCNConfig.attention``):
  "bones"  -- attention restricted to the skeleton graph with self-loops (a graph attention);
  "biased" -- attention over all nodes, logits biased toward bones at initialisation
              (bias 0 on bones and self-loops, ``-bone_bias`` elsewhere), the bias learned;
  "free"   -- attention over all nodes, no graph prior.

Two forms of the blocks in ``bones`` mode: "dense", the (B, J, J) products as written
(``apply_block``), and "edges", the same blocks computed pair by pair over the graph's allowed
pairs (``jaxprune.models.edge_attention``; equal to float rounding, no forward-mode autodiff).
``GCNConfig.attention_forward`` picks the form of calls that are not differentiated (default
"dense": served logits as written; "edges": faster forward passes at C = 8 and batch >= 256 on
CPUs, about 5 s longer to compile), ``attention_backward`` the form of train steps, computed and
differentiated ("edges", default: faster train steps; "autodiff": XLA's transpose of "dense").
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.graphs import adjacency
from jaxprune.models.edge_attention import edge_blocks
from jaxprune.models.layers import attention, attention_init, dense, dense_init, graph_conv

ATTENTION_MODES = ("bones", "biased", "free")
ATTENTION_BACKWARDS = ("edges", "autodiff")
ATTENTION_FORWARDS = ("dense", "edges")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Architecture settings of the GCN that do not depend on the data."""

    channels: int = 8
    num_blocks: int = 3
    attention_dim: int = 8
    hidden: int = 64
    attention: str = "bones"
    bone_bias: float = 4.0
    dropout: float = 0.0
    attention_backward: str = "edges"
    attention_forward: str = "dense"

    def __post_init__(self):
        for name, most in (("channels", 4096), ("num_blocks", 64), ("attention_dim", 4096), ("hidden", 65536)):
            if not 1 <= getattr(self, name) <= most:   # far past any skeleton GCN; XLA would abort on more
                raise ValueError(f"model setting {name} must be in [1, {most}], got {getattr(self, name)}")
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"model setting attention must be one of {ATTENTION_MODES}, "
                             f"got {self.attention!r}")
        if self.attention_backward not in ATTENTION_BACKWARDS:
            raise ValueError(f"model setting attention_backward must be one of {ATTENTION_BACKWARDS}, "
                             f"got {self.attention_backward!r}")
        if self.attention_forward not in ATTENTION_FORWARDS:
            raise ValueError(f"model setting attention_forward must be one of {ATTENTION_FORWARDS}, "
                             f"got {self.attention_forward!r}")
        if not np.isfinite(self.bone_bias):
            raise ValueError(f"model setting bone_bias must be a finite number, got {self.bone_bias}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model setting dropout must be in [0, 1), got {self.dropout}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GCNConfig(ModelConfig):
    """The whole shape of one GCN: architecture plus the data's graph, feature and class sizes.

    ``edges`` are the skeleton bones (pairs of joint indices, no self-loops).
    """

    num_nodes: int
    num_features: int
    num_classes: int
    edges: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        super().__post_init__()
        for name in ("num_nodes", "num_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")

    def graph(self) -> np.ndarray:
        """0/1 adjacency with self-loops (J, J)."""
        return adjacency(self.edges, self.num_nodes, self_loops=True)


def init(key: jax.Array, config: GCNConfig) -> dict:
    """Fresh parameters (see the module docstring for the pytree)."""
    keys = jax.random.split(key, 2 * config.num_blocks + 2)
    graph = config.graph()
    bias = np.zeros_like(graph) if config.attention != "biased" else (graph - 1.0) * config.bone_bias
    params, width = {}, config.num_features
    for b in range(config.num_blocks):
        params[f"block{b}"] = {
            "attention": attention_init(keys[2 * b], width, config.attention_dim, bias),
            "conv": dense_init(keys[2 * b + 1], width, config.channels),
        }
        width = config.channels
    params["fc"] = dense_init(keys[-2], config.num_nodes * config.channels, config.hidden)
    params["classifier"] = dense_init(keys[-1], config.hidden, config.num_classes)
    return params


def apply(params: dict, features: jax.Array, config: GCNConfig, dropout_key: jax.Array | None = None) -> jax.Array:
    """Logits (B, classes) of node features (B, J, F).

    With ``dropout_key`` (training) and ``config.dropout`` > 0, inverted dropout at that rate on
    the FC layer's input and on its output (the two places holding most of the weights).
    """
    chex.assert_rank(features, 3)
    chex.assert_axis_dimension(features, 1, config.num_nodes)
    chex.assert_axis_dimension(features, 2, config.num_features)
    return apply_head(params, apply_blocks(params, features, config), config, dropout_key)


def attention_mask(config: GCNConfig) -> jax.Array | None:
    """The attention's allowed node pairs (J, J) bool in ``bones`` mode, else None (all pairs)."""
    return jnp.asarray(config.graph(), bool) if config.attention == "bones" else None


def apply_block(block: dict, h: jax.Array, mask: jax.Array | None) -> jax.Array:
    """One block, relu(graph_conv(attention(h), h)): h (B, J, F) -> (B, J, C); ``mask`` as
    ``attention_mask``. Named scopes: profiles (``benchmarks.op_profile``) read them."""
    with jax.named_scope("attention"):
        a = attention(block["attention"], h, mask)
    with jax.named_scope("graph_conv"):
        return jax.nn.relu(graph_conv(block["conv"], a, h))


def apply_blocks(params: dict, h: jax.Array, config: GCNConfig) -> jax.Array:
    """Every block in turn: features (B, J, F) -> (B, J, C). In ``bones`` mode a call that is not
    differentiated (serving, evaluation) computes the form ``config.attention_forward``, and a
    differentiated one (a train step) computes and differentiates ``config.attention_backward``'s
    (module docstring); elsewhere both are ``apply_block``'s."""
    mask = attention_mask(config)
    blocks = [params[f"block{b}"] for b in range(config.num_blocks)]

    def as_written(blocks, h):
        for block in blocks:
            h = apply_block(block, h, mask)
        return h
    if config.attention != "bones":
        return as_written(blocks, h)
    by_pairs = edge_blocks(config.graph())
    value = by_pairs if config.attention_forward == "edges" else as_written
    differentiated = by_pairs if config.attention_backward == "edges" else as_written
    if value is differentiated:
        return value(blocks, h)
    stack = jax.custom_vjp(value)
    stack.defvjp(lambda blocks, h: jax.vjp(differentiated, blocks, h), lambda vjp, g: vjp(g))
    return stack(blocks, h)


def apply_head(params: dict, h: jax.Array, config: GCNConfig, dropout_key: jax.Array | None = None) -> jax.Array:
    """Flatten, FC, ReLU, classifier: the last block's output (B, J, C) -> logits (B, classes);
    dropout as in ``apply``."""
    h = h.reshape(h.shape[0], -1)
    drop = dropout_key is not None and config.dropout > 0
    if drop:
        key_in, key_out = jax.random.split(dropout_key)
        h = _dropout(key_in, h, config.dropout)
    with jax.named_scope("fc"):
        h = jax.nn.relu(dense(params["fc"], h))
    if drop:
        h = _dropout(key_out, h, config.dropout)
    with jax.named_scope("classifier"):
        return dense(params["classifier"], h)


def _dropout(key: jax.Array, x: jax.Array, rate: float) -> jax.Array:
    """Inverted dropout: zeroes each entry with probability ``rate``, scales the rest by 1/(1 − rate)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def prunable(params: dict) -> dict:
    """Pytree of bools like ``params``: True for weight matrices that pruning may mask.

    Every attention projection and kernel except the classifier's; biases never (METHOD.md §1).
    """
    def leaf(path, _):
        names = [getattr(p, "key", None) for p in path]
        return names[0] != "classifier" and names[-1] in ("kernel", "query", "key")
    return jax.tree_util.tree_map_with_path(leaf, params)


def ctf_blocks(params: dict) -> tuple[tuple[str, tuple], ...]:
    """The GCN's block structure for CTF (``jaxprune.masks.ctf`` spec): the FC layer's rows
    (node-major flatten of J nodes × C channels) in C blocks, one per channel of the last graph
    convolution across all nodes; no block factor elsewhere (there a block would be a row)."""
    last = sorted(k for k in params if str(k).startswith("block"))[-1]
    channels = int(np.shape(params[last]["conv"]["kernel"])[1])
    return (("['fc']['kernel']", ("row_mod", channels)),)
