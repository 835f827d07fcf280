"""``results.json``: the schema of DESIGN.md ("Results files"), fold summaries, atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Callable

import numpy as np


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
    the new one is complete."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Writes ``obj`` as indented JSON to ``path`` atomically (``write_atomic``)."""

    def write(f):
        json.dump(obj, f, indent=2)
        f.write("\n")
    write_atomic(path, write)
