"""The in-memory form every loader returns: padded skeleton sequences with labels and folds."""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxprune.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class SkeletonDataset:
    """Skeleton sequences, zero-padded in time.

    Attributes:
      name: dataset name ("sbu", "fpha", "synthetic", or the .npz file stem).
      x: float32 (N, T, J, 3) joint positions; frames at index >= lengths[n] are zero padding.
      lengths: int32 (N,) number of real frames of each sequence, >= 1.
      labels: int32 (N,) class index in [0, len(class_names)).
      class_names: tuple of C class names.
      folds: int32 (N,) evaluation group of each sample. Fold 0 means "always in training";
        each fold f >= 1 is the test set of one split (train = every other fold). So SBU has
        folds 1..5 (5-fold cross-validation) and a fixed train/test split has folds 0 and 1.
      edges: tuple of (i, j) bones between joints (0-based, i != j), without self-loops.
      sample_ids: tuple of N strings naming where each sample came from (e.g. its file).
      units: what the coordinates are in ("mm" or "arbitrary").
    """

    name: str
    x: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    folds: np.ndarray
    edges: tuple[tuple[int, int], ...]
    sample_ids: tuple[str, ...] = ()
    units: str = "arbitrary"

    def __post_init__(self):
        validate(self)

    @property
    def num_joints(self) -> int:
        return int(self.x.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def test_folds(self) -> tuple[int, ...]:
        """The fold ids that are a test set of some split, ascending (e.g. (1, 2, 3, 4, 5))."""
        return tuple(int(f) for f in np.unique(self.folds) if f >= 1)

    def split(self, test_fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (train, test) of the split whose test set is ``test_fold``."""
        if test_fold not in self.test_folds:
            raise DataError(
                f"dataset {self.name!r} has no test fold {test_fold}; its folds are {list(self.test_folds)}"
            )
        test = np.flatnonzero(self.folds == test_fold)
        train = np.flatnonzero(self.folds != test_fold)
        return train, test

    def subset(self, index: np.ndarray) -> "SkeletonDataset":
        """A new dataset holding the samples at ``index`` (time padding trimmed to the longest)."""
        index = np.asarray(index)
        t = int(self.lengths[index].max()) if index.size else 1
        ids = tuple(self.sample_ids[i] for i in index) if self.sample_ids else ()
        return dataclasses.replace(
            self, x=self.x[index, :t], lengths=self.lengths[index], labels=self.labels[index],
            folds=self.folds[index], sample_ids=ids,
        )


def validate(ds: SkeletonDataset) -> None:
    """Checks shapes, dtypes and ranges; raises DataError naming the dataset and what is wrong."""
    where = f"dataset {ds.name!r}"
    x = ds.x
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(f"{where}: x must be an array (N, T, J, 3), got shape {getattr(x, 'shape', None)}")
    n, t, j, _ = x.shape
    if n == 0:
        raise DataError(f"{where}: no samples")
    for field, arr in (("lengths", ds.lengths), ("labels", ds.labels), ("folds", ds.folds)):
        if not isinstance(arr, np.ndarray) or arr.shape != (n,):
            raise DataError(f"{where}: {field} must have shape ({n},), got {getattr(arr, 'shape', None)}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{where}: {field} must be integers, got dtype {arr.dtype}")
    if x.dtype != np.float32:
        raise DataError(f"{where}: x must be float32, got {x.dtype}")
    if ds.lengths.min() < 1 or ds.lengths.max() > t:
        raise DataError(f"{where}: lengths must be in [1, {t}], got range [{ds.lengths.min()}, {ds.lengths.max()}]")
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x))[0][0])
        name = ds.sample_ids[bad] if ds.sample_ids else f"sample {bad}"
        raise DataError(f"{where}: non-finite coordinates (NaN or inf) in {name}")
    c = len(ds.class_names)
    if c < 2:
        raise DataError(f"{where}: need at least 2 classes, got {c}")
    if ds.labels.min() < 0 or ds.labels.max() >= c:
        raise DataError(f"{where}: labels must be in [0, {c}), got range [{ds.labels.min()}, {ds.labels.max()}]")
    if ds.folds.min() < 0:
        raise DataError(f"{where}: folds must be >= 0, got {ds.folds.min()}")
    if not (ds.folds >= 1).any():
        raise DataError(f"{where}: no test fold (every fold is 0); mark test samples with fold >= 1")
    for e in ds.edges:
        if len(e) != 2 or not (0 <= e[0] < j and 0 <= e[1] < j) or e[0] == e[1]:
            raise DataError(f"{where}: edge {e} is not a pair of distinct joints in [0, {j})")
    if ds.sample_ids and len(ds.sample_ids) != n:
        raise DataError(f"{where}: {len(ds.sample_ids)} sample_ids for {n} samples")


def check_splits(ds: SkeletonDataset) -> None:
    """Loaders' check that every split has training data: a DataError if every sample is in one
    test fold (not part of ``validate``, so that ``subset`` may still hold one fold's samples)."""
    test_folds = np.unique(ds.folds[ds.folds >= 1])
    if len(test_folds) == 1 and (ds.folds == test_folds[0]).all():
        raise DataError(f"dataset {ds.name!r}: every sample is in test fold {test_folds[0]}, so its "
                        "split has no training data; put training samples in fold 0 or in other folds")
