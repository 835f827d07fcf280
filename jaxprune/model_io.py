"""Trained models on disk: one ``.npz`` of named arrays (the params and the pruner's arrays).

Leaves are stored under readable names ('params/block0/conv/kernel', and the pruner's as
``jaxprune.methods.pruner_arrays`` names them under 'pruner/', e.g. 'pruner/priors/fc/kernel/scale');
loading fills a template pytree (a fresh ``init`` of the same config) and refuses a file whose
names or shapes do not match it, naming the file and the leaf. Files of jaxprune 0.1 (model format
1, the pruner's arrays named like 'prior_scale[...]') are refused with their version named.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxprune.evaluate import leaf_name
from jaxprune.npy_headers import check_declared_sizes
from jaxprune.results import write_atomic

PyTree = Any


FORMAT = 2          # model format: 'params/...' and 'pruner/...' arrays (1: jaxprune 0.1's names)
_FORMAT_1 = ("prior_scale[", "ctf_scale[", "mask[")


def save_model(path: str | os.PathLike, params: PyTree, pruner_arrays: dict[str, np.ndarray]) -> None:
    """Writes params and the pruner's arrays to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    arrays = {"params/" + leaf_name(p): np.asarray(w) for p, w in flat}
    arrays.update({"pruner/" + k: np.asarray(v) for k, v in pruner_arrays.items()})
    arrays["format"] = np.asarray(FORMAT)
    write_atomic(path, lambda f: np.savez(f, **arrays), binary=True)


def load_model(path: str | os.PathLike, template: PyTree) -> tuple[PyTree, dict[str, np.ndarray]]:
    """(params shaped like ``template``, the pruner's arrays by name). ValueError on mismatch."""
    path = Path(path)
    try:
        check_declared_sizes(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no saved model here (was the run finished?)") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable model file ({e})") from None

    def fill(p, w):
        name = "params/" + leaf_name(p)
        if name not in arrays:
            raise ValueError(f"{path}: missing {name!r}; the model was saved with another configuration")
        a = arrays[name]
        if a.shape != np.shape(w) or a.dtype != np.asarray(w).dtype:
            raise ValueError(f"{path}: {name!r} has shape {a.shape} {a.dtype}, the configuration "
                             f"expects {np.shape(w)} {np.asarray(w).dtype}")
        return a

    old = [k for k in arrays if k.startswith(_FORMAT_1)]
    if "format" not in arrays and old:
        raise ValueError(f"{path}: saved by jaxprune 0.1 (model format 1, arrays named like {old[0]!r}); this "
                         f"version reads model format {FORMAT}: train the run again")
    if "format" in arrays and not (arrays["format"].shape == () and arrays["format"].dtype.kind in "iu"
                                   and int(arrays["format"]) == FORMAT):
        raise ValueError(f"{path}: model format {arrays['format']!r}, this version reads format {FORMAT}")
    params = jax.tree_util.tree_map_with_path(fill, template)
    return params, {k[len("pruner/"):]: v for k, v in arrays.items() if k.startswith("pruner/")}
