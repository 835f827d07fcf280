"""A compact network on disk: one ``.npz`` of plain arrays plus the JSON metadata that runs it.

    save_compact("model.compact.npz", net, info={...})     # dense kernels, or BCOO ones
    net, info = load_compact("model.compact.npz")
    logits = net(features)                                  # features (B, J, F) as in training

Arrays are stored under their pytree path ('params/block0/conv/kernel'); a BCOO kernel as its
'…/data' and '…/indices' with its shape in the metadata. ``info`` is free JSON (the exporter
records the method, rate, feature settings and data scale needed to make the input features).
Writes are atomic (a temporary file, then a rename).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

from jaxprune.models.compact import CompactGCN
from jaxprune.models.gcn import ATTENTION_FORWARDS
from jaxprune.evaluate import leaf_name
from jaxprune.npy_headers import check_declared_sizes
from jaxprune.run_files import finite, whole
from jaxprune.results import write_atomic

FORMAT = "jaxprune-compact-gcn/1"


def save_compact(path: str | os.PathLike, net: CompactGCN, info: dict | None = None) -> None:
    """Writes ``net`` (dense or BCOO kernels) and ``info`` to ``path`` atomically."""
    path = Path(path)
    arrays, bcoo = {}, {}
    flat, _ = jax.tree_util.tree_flatten_with_path(net.params, is_leaf=lambda x: isinstance(x, sparse.BCOO))
    for p, a in flat:
        name = "params/" + leaf_name(p)
        if isinstance(a, sparse.BCOO):
            arrays[name + "/data"] = np.asarray(a.data)
            arrays[name + "/indices"] = np.asarray(a.indices)
            bcoo[name] = list(a.shape)
        else:
            arrays[name] = np.asarray(a)
    meta = {"format": FORMAT, "num_nodes": net.num_nodes, "num_blocks": net.num_blocks,
            "attention_scale": net.attention_scale,
            "graph": None if net.graph is None else [[int(v) for v in row] for row in net.graph],
            "attention_forward": net.attention_forward, "bcoo": bcoo, "info": info or {}}
    arrays["meta"] = np.array(json.dumps(meta))
    write_atomic(path, lambda f: np.savez(f, **arrays), binary=True)


def load_compact(path: str | os.PathLike) -> tuple[CompactGCN, dict]:
    """(the network, its ``info``) from a file written by ``save_compact``; ValueError naming the
    file if it is missing, unreadable or not such a file."""
    path = Path(path)
    try:
        check_declared_sizes(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(str(arrays.pop("meta")))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except KeyError:
        raise ValueError(f"{path}: not a jaxprune compact network (no 'meta' entry)") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable compact network ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its 'meta' entry holds a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {repr(meta.get('format'))[:60]}, expected {FORMAT!r}")
    _check_meta(path, meta, arrays)
    params: dict = {}

    def put(name: str, value):
        *parents, last = name.split("/")[1:]
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    try:
        for name, shape in meta["bcoo"].items():
            data, indices = arrays.pop(name + "/data"), arrays.pop(name + "/indices")
            put(name, sparse.BCOO((jnp.asarray(data), jnp.asarray(indices)), shape=tuple(shape)))
        for name, a in arrays.items():
            put(name, jnp.asarray(a))
        graph = meta["graph"]
        net = CompactGCN(params=params, num_nodes=int(meta["num_nodes"]), num_blocks=int(meta["num_blocks"]),
                         attention_scale=float(meta["attention_scale"]),
                         graph=None if graph is None else tuple(tuple(bool(v) for v in row) for row in graph),
                         attention_forward=meta.get("attention_forward", "dense"))   # files before it: dense
    except KeyError as e:
        raise ValueError(f"{path}: incomplete compact network (missing {e})") from None
    _check_shapes(path, net)
    return net, meta["info"]


def _check_meta(path: Path, meta: dict, arrays: dict) -> None:
    """The metadata's fields have the types and ranges ``load_compact`` builds the network from, and
    every array is named 'params/...' (ValueError naming the file and the field otherwise)."""
    j = whole(meta.get("num_nodes"), path, "meta.num_nodes", 1)
    blocks = whole(meta.get("num_blocks"), path, "meta.num_blocks")
    if blocks > 64:
        raise ValueError(f"{path}: field 'meta.num_blocks' is {blocks}, more than a compact GCN has (64)")
    finite(meta.get("attention_scale"), path, "meta.attention_scale")
    graph = meta.get("graph")
    if graph is not None and not (isinstance(graph, list) and len(graph) == j and all(
            isinstance(row, list) and len(row) == j and all(v in (0, 1) and not isinstance(v, float) for v in row)
            for row in graph)):
        raise ValueError(f"{path}: field 'meta.graph' must be null or {j} lists of {j} values 0 or 1")
    if meta.get("attention_forward", "dense") not in ATTENTION_FORWARDS:
        raise ValueError(f"{path}: field 'meta.attention_forward' must be one of {ATTENTION_FORWARDS}, "
                         f"got {str(meta.get('attention_forward'))[:40]!r}")
    if not isinstance(meta.get("info"), dict):
        raise ValueError(f"{path}: field 'meta.info' must be an object")
    bcoo = meta.get("bcoo")
    if not isinstance(bcoo, dict):
        raise ValueError(f"{path}: field 'meta.bcoo' must be an object of sparse kernels")
    for name, shape in bcoo.items():
        if not (isinstance(shape, list) and len(shape) == 2):
            raise ValueError(f"{path}: field 'meta.bcoo.{name[:60]}' must be a kernel shape [rows, columns]")
        for i, n in enumerate(shape):
            whole(n, path, f"meta.bcoo.{name[:60]}[{i}]", 1)
        if name + "/data" not in arrays or name + "/indices" not in arrays:
            raise ValueError(f"{path}: incomplete compact network (missing {name[:60]!r} data or indices)")
        indices = arrays[name + "/indices"]
        if indices.dtype.kind not in "iu" or indices.ndim != 2 or indices.shape[1] != 2 or \
                (indices.size and ((indices < 0).any() or (indices.max(0) >= np.asarray(shape)).any())):
            raise ValueError(f"{path}: {name[:60]!r}/indices must be (nnz, 2) whole numbers inside {shape}")
    for name, a in arrays.items():
        parts = name.split("/")
        if parts[0] != "params" or len(parts) < 2 or not all(parts):
            raise ValueError(f"{path}: entry {name[:60]!r} is not a 'params/...' array of a compact network")
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{path}: entry {name[:60]!r} has dtype {a.dtype}, not numbers")
    for name in ("params/input_index", "params/fc/index"):
        if name in arrays and (arrays[name].dtype.kind not in "iu" or arrays[name].ndim != 1
                               or (arrays[name] < 0).any()):
            raise ValueError(f"{path}: {name!r} must be a 1-D array of whole numbers >= 0, got {arrays[name].dtype} "
                             f"{arrays[name].shape}")


def _check_shapes(path: Path, net: CompactGCN) -> None:
    """Every leaf present and the widths chained (block b's outputs are block b+1's inputs, ...)."""
    p, j = net.params, net.num_nodes

    def get(name):
        node = p
        for part in name.split("/"):
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"{path}: incomplete compact network (missing 'params/{name}')")
            node = node[part]
        return np.shape(node)

    def expect(name, shape):
        got = get(name)
        if got != shape:
            raise ValueError(f"{path}: 'params/{name}' has shape {got}, expected {shape}")

    width = get("input_index")[0]
    for b in range(net.num_blocks):
        c = get(f"block{b}/conv/kernel")[1]
        if "constant" in p.get(f"block{b}", {}).get("attention", {}):
            expect(f"block{b}/attention/constant", (j, j))
        else:
            d = get(f"block{b}/attention/query")[1]
            expect(f"block{b}/attention/query", (width, d))
            expect(f"block{b}/attention/key", (width, d))
            expect(f"block{b}/attention/query_bias", (d,))
            expect(f"block{b}/attention/bias", (j, j))
        expect(f"block{b}/conv/kernel", (width, c))
        expect(f"block{b}/conv/bias", (c,))
        width = c
    k, hidden = get("fc/kernel")
    expect("fc/index", (k,))
    expect("fc/bias", (hidden,))
    classes = get("classifier/kernel")[1]
    expect("classifier/kernel", (hidden, classes))
    expect("classifier/bias", (classes,))
