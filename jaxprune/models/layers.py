"""Functional layers of the skeleton GCN: parameters are dicts of arrays, layers pure functions.

Every weight matrix is stored (inputs, outputs) under the key ``kernel`` (or ``query`` / ``key``
for attention projections), so that a mask of the same shape can multiply it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def glorot_normal(key: jax.Array, fan_in: int, fan_out: int) -> jax.Array:
    """Glorot (Xavier) normal weights (fan_in, fan_out), std = sqrt(2 / (fan_in + fan_out))."""
    std = jnp.sqrt(2.0 / (fan_in + fan_out))
    return std * jax.random.normal(key, (fan_in, fan_out), jnp.float32)


def dense_init(key: jax.Array, fan_in: int, fan_out: int) -> dict:
    """{'kernel': (fan_in, fan_out), 'bias': (fan_out,)} with Glorot-normal kernel, zero bias."""
    return {"kernel": glorot_normal(key, fan_in, fan_out), "bias": jnp.zeros((fan_out,), jnp.float32)}


def dense(params: dict, x: jax.Array) -> jax.Array:
    """x (..., fan_in) -> (..., fan_out)."""
    return x @ params["kernel"] + params["bias"]


def attention_init(key: jax.Array, num_features: int, dim: int, graph_bias: jax.Array) -> dict:
    """Single-head node-to-node attention parameters.

    Returns {'query': (F, dim), 'key': (F, dim), 'bias': (J, J)}; ``bias`` is a learned additive
    logit initialised to ``graph_bias`` (e.g. 0 on bones, negative elsewhere).
    """
    kq, kk = jax.random.split(key)
    return {"query": glorot_normal(kq, num_features, dim), "key": glorot_normal(kk, num_features, dim),
            "bias": jnp.asarray(graph_bias, jnp.float32)}


def attention(params: dict, h: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Row-stochastic attention (..., J, J) of node features h (..., J, F).

    A_ij = softmax_j(q_i . k_j / sqrt(dim) + bias_ij), restricted to mask_ij = True when a mask
    (J, J) is given (every row of the mask must have at least one True, e.g. a self-loop).
    """
    q = h @ params["query"]
    k = h @ params["key"]
    logits = jnp.einsum("...id,...jd->...ij", q, k) / jnp.sqrt(q.shape[-1]) + masked_bias(params["bias"], mask)
    return jax.nn.softmax(logits, axis=-1)


def masked_bias(bias: jax.Array, mask: jax.Array | None) -> jax.Array:
    """The attention's additive logit bias (J, J) with -inf where ``mask`` (J, J) is False.

    Adding it masks the logits: on XLA:CPU (jax 0.10.2) this made the GCN's forward pass 1.5x
    faster at batch 256 than ``jnp.where(mask, logits, -inf)`` over every (B, J, J) logit, for
    the same softmax (``benchmarks.attention_cost``).
    """
    return bias if mask is None else jnp.where(mask, bias, -jnp.inf)


def graph_conv(params: dict, adjacency: jax.Array, h: jax.Array) -> jax.Array:
    """Graph convolution A H W + b: adjacency (..., J, J), h (..., J, F) -> (..., J, C)."""
    return adjacency @ (h @ params["kernel"]) + params["bias"]
