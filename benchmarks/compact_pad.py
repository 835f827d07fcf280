"""A lever ``benchmarks.ctf_inference`` measures: a compact GCN's widths zero-padded to a multiple.

Compaction leaves widths such as 63 or 55 channels, and XLA:CPU runs one GCN block alone slower
per FLOP at such widths than at multiples of 8 (batch 256, one thread: 63 channels 1.51 ms, 64
channels 1.40 ms). Padding the whole compact network did not pay on the 2-core CPU (see
``benchmarks/results/ctf_inference.md``), so it is a benchmark form, not part of the library.
``pad_widths(net, multiple)`` appends zero output channels, attention dimensions and hidden units
until each width is a multiple of ``multiple``:

- a padded graph-conv channel has a zero kernel column and zero bias, so it is relu(0) = 0 at every
  node, and the next layer's rows for it are zero;
- a padded attention dimension has zero query and key columns and zero query bias: it adds 0 to
  every logit;
- a padded hidden unit has a zero FC column and bias, and a zero classifier row.

The FC's ``index`` into the flattened last block output (node-major, J × C') is remapped to the
padded flatten (J × C''). Inputs are not padded: block 0 already reads the full feature vector.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from jaxprune.models.compact import CompactGCN


def padded(width: int, multiple: int) -> int:
    """The least multiple of ``multiple`` that is >= ``width`` (0 stays 0)."""
    return -(-width // multiple) * multiple


def _pad(a, *shape: int | None) -> np.ndarray:
    """``a`` zero-padded at the end of each axis to ``shape`` (None: that axis as it is)."""
    a = np.asarray(a)
    return np.pad(a, [(0, 0 if n is None else n - s) for s, n in zip(a.shape, shape)])


def pad_widths(net: CompactGCN, multiple: int = 8) -> CompactGCN:
    """``net`` with every channel, attention dimension and hidden width zero-padded to a multiple
    of ``multiple`` (module docstring); the logits are unchanged. Dense kernels only (pad before
    ``to_bcoo``); ``multiple`` = 1 returns ``net`` as it is."""
    if isinstance(multiple, bool) or not isinstance(multiple, (int, np.integer)) or multiple < 1:
        raise ValueError(f"the width multiple must be a positive integer, got {multiple!r}")
    multiple = int(multiple)
    if multiple == 1:
        return net
    p = net.params
    if any(isinstance(leaf, sparse.BCOO) for leaf in jax.tree.leaves(p, is_leaf=lambda x: isinstance(x, sparse.BCOO))):
        raise ValueError("pad_widths needs dense kernels: pad the compact network before to_bcoo")
    out = {"input_index": np.asarray(p["input_index"])}
    rows = None                                           # block 0 keeps its rows (the kept inputs)
    for b in range(net.num_blocks):
        att, conv = p[f"block{b}"]["attention"], p[f"block{b}"]["conv"]
        if "constant" in att:
            attention = {"constant": np.asarray(att["constant"])}
        else:
            d = padded(np.shape(att["query"])[1], multiple)
            attention = {"query": _pad(att["query"], rows, d), "query_bias": _pad(att["query_bias"], d),
                         "key": _pad(att["key"], rows, d), "bias": np.asarray(att["bias"])}
        channels = np.shape(conv["kernel"])[1]
        cols = padded(channels, multiple)
        out[f"block{b}"] = {"attention": attention,
                            "conv": {"kernel": _pad(conv["kernel"], rows, cols), "bias": _pad(conv["bias"], cols)}}
        rows = cols
    index = np.asarray(p["fc"]["index"])
    hidden = padded(np.shape(p["fc"]["kernel"])[1], multiple)
    out["fc"] = {"index": (index // channels * cols + index % channels).astype(np.int32) if channels else index,
                 "kernel": _pad(p["fc"]["kernel"], None, hidden), "bias": _pad(p["fc"]["bias"], hidden)}
    out["classifier"] = {"kernel": _pad(p["classifier"]["kernel"], hidden, None),
                         "bias": np.asarray(p["classifier"]["bias"])}
    return net.replace(params=jax.tree.map(jnp.asarray, out))

