"""Trained models on disk: one ``.npz`` of named arrays (params and a method's artefacts).

Leaves are stored under readable names ('params/block0/conv/kernel', 'prior_scale[...]'); loading
fills a template pytree (a fresh ``init`` of the same config) and refuses a file whose names or
shapes do not match it, naming the file and the leaf.
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


def save_model(path: str | os.PathLike, params: PyTree, artefacts: dict[str, np.ndarray]) -> None:
    """Writes params and artefacts to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    arrays = {"params/" + leaf_name(p): np.asarray(w) for p, w in flat}
    arrays.update({k: np.asarray(v) for k, v in artefacts.items()})
    write_atomic(path, lambda f: np.savez(f, **arrays), binary=True)


def load_model(path: str | os.PathLike, template: PyTree) -> tuple[PyTree, dict[str, np.ndarray]]:
    """(params shaped like ``template``, the other arrays of the file). ValueError on mismatch."""
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

    params = jax.tree_util.tree_map_with_path(fill, template)
    return params, {k: v for k, v in arrays.items() if not k.startswith("params/")}
