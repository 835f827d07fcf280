"""Dataset names -> loaders (each dataset's settings: ``jaxprune.presets``)."""

from __future__ import annotations

from pathlib import Path

from jaxprune.data.arrays import load_npz
from jaxprune.data.dataset import SkeletonDataset
from jaxprune.data.errors import DataError
from jaxprune.data.fpha import load_fpha
from jaxprune.data.sbu import load_sbu
from jaxprune.data.synthetic import make_synthetic

DATASETS = ("synthetic", "sbu", "fpha", "npz")


def recorded_loader(record: dict) -> str:
    """The loader (a name in DATASETS) that rebuilds the data of a saved run's run.json or
    results.json: its ``loader`` key; runs written before that key existed name their loader in
    ``dataset`` (an ``npz`` run then names its file stem, which no loader rebuilds)."""
    return record.get("loader") or record["dataset"]


def load_dataset(name: str, data_dir: str | None = None, seed: int = 0) -> SkeletonDataset:
    """Loads ``name`` in DATASETS. ``data_dir`` is the dataset root (sbu, fpha) or the .npz file."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if name == "synthetic":
        return make_synthetic(seed=seed)
    if not data_dir:
        what = "the .npz file" if name == "npz" else f"the {name.upper()} dataset root"
        raise DataError(f"dataset {name!r} needs --data-dir pointing to {what}")
    if name == "sbu":
        return load_sbu(data_dir)
    if name == "fpha":
        return load_fpha(data_dir)
    return load_npz(Path(data_dir))
