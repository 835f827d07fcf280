"""Compaction of a chain of dense layers (an MLP): the smaller dense network with the same logits.

For layers ℓ = 0..L-1, h_{ℓ+1} = act(h_ℓ W_ℓ + b_ℓ) (no activation after the last), with masked
kernels W_ℓ ⊙ M_ℓ (p_ℓ inputs × q_ℓ outputs, q_ℓ = p_{ℓ+1}):

  - a hidden unit j of layer ℓ whose column of W_ℓ is all zero outputs the constant act(b_ℓj):
    it is removed and its contribution act(b_ℓj)·W_{ℓ+1}[j, :] folded into b_{ℓ+1};
  - a hidden unit whose row of W_{ℓ+1} is all zero is read by nobody: removed;
  - an input feature whose row of W_0 is all zero is removed (``input_index`` says which stay).

The output layer keeps every unit. Works on concrete arrays (not under jit), in float32; the
result is a ``CompactMLP`` of plain arrays, applied by ``compact_mlp_apply``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


@flax.struct.dataclass
class CompactMLP:
    """``layers``: [(kernel (p', q'), bias (q',)), ...]; ``input_index``: (p0',) kept input features."""

    layers: list
    input_index: jax.Array
    activation: Callable = flax.struct.field(pytree_node=False, default=jax.nn.relu)


def compact_mlp(kernels: Sequence[np.ndarray], biases: Sequence[np.ndarray], masks: Sequence | None = None,
                activation: Callable = jax.nn.relu) -> CompactMLP:
    """The compact form of the chain ``kernels[ℓ]`` (p_ℓ, q_ℓ), ``biases[ℓ]`` (q_ℓ,), masked by
    ``masks[ℓ]`` (like the kernel, or None for an unmasked layer; ``masks`` None: none masked).

    ``activation`` between layers must be elementwise (it is applied to folded constants too).
    Raises ValueError when the shapes do not chain.
    """
    kernels = [np.asarray(k, np.float32) for k in kernels]
    biases = [np.asarray(b, np.float32) for b in biases]
    masks = [None] * len(kernels) if masks is None else list(masks)
    if not (len(kernels) == len(biases) == len(masks)) or not kernels:
        raise ValueError(f"compact_mlp: {len(kernels)} kernels, {len(biases)} biases, {len(masks)} masks")
    w = [k if m is None else k * np.asarray(m, np.float32) for k, m in zip(kernels, masks)]
    for i, (k, b) in enumerate(zip(w, biases)):
        if k.ndim != 2 or b.shape != (k.shape[1],) or (i and k.shape[0] != w[i - 1].shape[1]):
            raise ValueError(f"compact_mlp: layer {i} has kernel {k.shape} and bias {b.shape}, which do not "
                             f"chain after {w[i - 1].shape if i else 'the input'}")
    b = [x.copy() for x in biases]
    act = lambda x: np.asarray(activation(jnp.asarray(x)))
    keep_out = []
    w = [k.copy() for k in w]
    for i in range(len(w) - 1):                          # forward: dead columns become constants
        dead = ~np.any(w[i] != 0, axis=0)
        b[i + 1] = b[i + 1] + np.where(dead, act(b[i]), 0.0) @ w[i + 1]
        w[i + 1][dead, :] = 0.0                          # now in the next bias
        keep_out.append(~dead)
    for i in reversed(range(len(w) - 1)):                # backward: units nobody reads
        read_by = w[i + 1] if i + 1 == len(w) - 1 else w[i + 1][:, keep_out[i + 1]]
        keep_out[i] &= np.any(read_by != 0, axis=1)
    keep_in = np.any(w[0] != 0, axis=1)
    rows = [keep_in] + keep_out
    cols = keep_out + [np.ones(w[-1].shape[1], bool)]
    layers = [(jnp.asarray(k[np.ix_(r, c)]), jnp.asarray(bb[c])) for k, bb, r, c in zip(w, b, rows, cols)]
    return CompactMLP(layers=layers, input_index=jnp.asarray(np.flatnonzero(keep_in), jnp.int32),
                      activation=activation)


def compact_mlp_apply(net: CompactMLP, x: jax.Array) -> jax.Array:
    """Logits (B, q_{L-1}) of inputs x (B, p_0): the same as the masked chain's."""
    h = jnp.take(x, net.input_index, axis=-1)
    for i, (k, b) in enumerate(net.layers):
        h = h @ k + b
        if i < len(net.layers) - 1:
            h = net.activation(h)
    return h


def mlp_size(net: CompactMLP) -> int:
    """Weights in the compact kernels (every entry of the smaller matrices)."""
    return sum(int(np.size(k)) for k, _ in net.layers)
