"""``results.json``: the schema of DESIGN.md ("Results files"), fold summaries, atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable

import jax
import numpy as np

if TYPE_CHECKING:
    from jaxprune.data.dataset import SkeletonDataset
    from jaxprune.run_config import RunConfig


def summarise(runs: list[dict]) -> list[dict]:
    """Per target rate, the mean over folds of achieved rate and accuracy (and the accuracy std).

    ``runs`` is [{"fold": k, "rates": [{"target_rate", "achieved_rate", "accuracy", ...}]}].
    """
    by_rate: dict[float, list[dict]] = {}
    for run in runs:
        for row in run["rates"]:
            by_rate.setdefault(row["target_rate"], []).append(row)
    summary = []
    for rate in sorted(by_rate):
        rows = by_rate[rate]
        acc = np.array([r["accuracy"] for r in rows])
        summary.append({
            "target_rate": rate,
            "achieved_rate": float(np.mean([r["achieved_rate"] for r in rows])),
            "accuracy_mean": float(acc.mean()),
            "accuracy_std": float(acc.std()),
            "kept_params_mean": float(np.mean([r["kept_params"] for r in rows])),
            "flops_mean": float(np.mean([r["flops"] for r in rows])),
            "folds": len(rows),
        })
    return summary


def write_atomic(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = False) -> None:
    """Calls ``write(file)`` on a temporary file beside ``path``, then renames it over ``path``: a
    reader (or a crash) never sees a half-written file, and an existing file is replaced only when
    the new one is complete. A write the file system refuses (a full disk) is an OSError naming
    ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise naming(e, path)


def naming(error: BaseException, path: str | os.PathLike) -> BaseException:
    """``error``, or for an OSError that names no file (a refused write on an open file) the same
    error naming ``path``, chained to the original."""
    if isinstance(error, OSError) and error.filename is None and error.errno:
        named = OSError(error.errno, error.strerror or str(error), str(path))
        named.__cause__ = error
        return named
    return error


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Writes ``obj`` as indented JSON to ``path`` atomically (``write_atomic``)."""

    def write(f):
        json.dump(obj, f, indent=2)
        f.write("\n")
    write_atomic(path, write)


def check_writable_folder(path: str | os.PathLike, option: str) -> Path:
    """Creates the folder ``path`` if needed and checks that files can be written in it, before any
    work that would end there; ValueError naming ``option`` and the path otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: is a file, not a folder; choose a folder for the run's files")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{option} {path}: cannot write there ({e.strerror or type(e).__name__})") from None
    return path


def check_writable_file(path: str | os.PathLike, option: str) -> Path:
    """Checks, before any work, that a file can be written at ``path`` (its folder is created if
    needed; an existing ``path`` must be a file); ValueError naming ``option`` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give the name of the file to write")
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is a file, so no folder can hold the new file")
    check_writable_folder(path.parent, f"{option} {path}: its folder")
    return path


def protocol_name(dataset: SkeletonDataset) -> str:
    k = len(dataset.test_folds)
    return f"{k}-fold" if not (dataset.folds == 0).any() else "train/test split" if k == 1 else f"{k} splits"


def results_record(dataset: SkeletonDataset, config: RunConfig, runs: list[dict], seconds: float,
                   data_dir=None, loader: str | None = None) -> dict:
    """The ``results.json`` object (DESIGN.md schema) of per-fold ``runs`` trained under ``config``.

    ``loader``: the name in ``jaxprune.datasets.DATASETS`` that reads the data again (default: the
    dataset's name; an ``.npz`` dataset is named after its file but read by ``npz``). ``xla_flags``
    records $XLA_FLAGS: XLA's thread settings change the order of float reductions, so a run is
    reproduced bit for bit only under the same flags (experiment modules run single-threaded).
    """
    return {
        "method": config.method, "dataset": dataset.name, "loader": loader or dataset.name,
        "protocol": protocol_name(dataset),
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
        "seed": config.seed, "epochs": config.train.epochs, "config": config.to_dict(),
        "runs": runs, "summary": summarise(runs), "train_seconds": seconds,
        "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),   # threading flags change float rounding, hence figures
    }
