"""Bring-your-own skeleton data as one ``.npz`` file.

Keys (N samples, T frames, J joints, E bones, C classes):
  x            (N, T, J, 3) float or int: joint positions (cast to float32).
  y            (N,) integer labels in [0, C) (integer-valued floats are accepted). Without
               class_names, C = max(y) + 1 and every label 0..max(y) must have a sample (a
               label with none, e.g. 1-based labels, is an error: give class_names to declare
               classes without samples).
  lengths      optional (N,) real frames per sample in [1, T]; default T for all. Frames at
               index >= lengths[n] are treated as padding and zeroed.
  folds        optional (N,) >= 0 (0 = always training, f >= 1 = test set of split f);
               default: 5 folds stratified by label (each class's samples, in order, get
               folds 1, 2, 3, 4, 5, 1, ...).
  edges        optional (E, 2) integer bones (0-based joints, i != j); default none, so the
               GCN uses self-loops only.
  class_names  optional (C,) distinct strings; default "class_0" .. "class_{max(y)}".
  sample_ids   optional (N,) strings naming each sample; default none.
  units        optional scalar string ("mm", ...); default "arbitrary".
Integer values (y, lengths, folds, edges) must fit in int32. Every test fold must leave some
training samples. Other keys are ignored. The dataset name is the file stem.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from jaxprune.data.dataset import SkeletonDataset, check_splits
from jaxprune.data.errors import DataError
from jaxprune.npy_headers import check_declared_sizes

DEFAULT_NUM_FOLDS = 5


def load_npz(path: str | os.PathLike) -> SkeletonDataset:
    """Loads a SkeletonDataset from an ``.npz`` in the format above (loaded without pickle).

    Raises:
      DataError: naming the file and the key at fault and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("not a regular file (a folder, a named pipe or a device)" if path.exists()
                        else "file not found", path=path)
    arrays = _read_npz(path)

    def fail(key: str, message: str):
        raise DataError(f"key {key!r}: {message}", path=path)

    for key in ("x", "y"):
        if key not in arrays:
            fail(key, f"missing (the file has keys {sorted(arrays)})")
    x = arrays["x"]
    if not _is_real_number(x.dtype):
        fail("x", f"expected a numeric array, got dtype {x.dtype}")
    if x.ndim != 4 or x.shape[-1] != 3:
        fail("x", f"expected shape (N, T, J, 3), got {x.shape}")
    n, t, j, _ = x.shape
    if n == 0 or t == 0 or j == 0:
        fail("x", f"expected at least one sample, frame and joint, got shape {x.shape}")

    labels = _integers(arrays["y"], (n,), "y", fail)
    if labels.min() < 0:
        fail("y", f"labels must be >= 0, got {labels.min()}")

    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.dtype.kind not in "US" or names.ndim != 1:
            fail("class_names", f"expected a 1-D array of strings, got dtype {names.dtype}, "
                                f"shape {names.shape}")
        class_names = tuple(_to_str(s, "class_names", fail) for s in names)
        if len(set(class_names)) != len(class_names):
            dup = next(c for i, c in enumerate(class_names) if c in class_names[:i])
            fail("class_names", f"duplicate class name {dup!r}")
        if labels.max() >= len(class_names):
            fail("y", f"label {labels.max()} out of range for {len(class_names)} class_names")
    else:
        present = np.unique(labels)
        if len(present) != int(labels.max()) + 1:  # some label in 0..max(y) has no sample
            # len(present) labels in [0, max]: at least one of 0..len(present) is absent
            upto = min(int(labels.max()) + 1, len(present) + 6)
            absent = np.setdiff1d(np.arange(upto), present)[:5].tolist()
            fail("y", f"no sample has label {absent[0]}" + (f" (nor {absent[1:]})" if absent[1:] else "")
                 + f", yet labels go up to {labels.max()}: without class_names the classes are "
                 f"0..max(y), each needing samples. Use labels 0..C-1 (are they 1-based?) or give "
                 f"class_names")
        class_names = tuple(f"class_{c}" for c in range(int(labels.max()) + 1))

    if "lengths" in arrays:
        lengths = _integers(arrays["lengths"], (n,), "lengths", fail)
        if lengths.min() < 1 or lengths.max() > t:
            fail("lengths", f"must be in [1, {t}] (T), got range "
                            f"[{lengths.min()}, {lengths.max()}]")
    else:
        lengths = np.full(n, t, np.int64)

    if "folds" in arrays:
        folds = _integers(arrays["folds"], (n,), "folds", fail)
        if folds.min() < 0:
            fail("folds", f"must be >= 0, got {folds.min()}")
    else:
        folds = stratified_folds(labels)

    edges: tuple[tuple[int, int], ...] = ()
    if "edges" in arrays:
        e = arrays["edges"]
        if e.size == 0 and e.ndim <= 2:
            e = e.reshape(0, 2)
        e = _integers(e, None, "edges", fail)
        if e.ndim != 2 or e.shape[1] != 2:
            fail("edges", f"expected shape (E, 2), got {e.shape}")
        if e.size and (e.min() < 0 or e.max() >= j):
            fail("edges", f"joint indices must be in [0, {j}) (J), got range "
                          f"[{e.min()}, {e.max()}]")
        edges = tuple((int(a), int(b)) for a, b in e)
        loops = [(a, b) for a, b in edges if a == b]
        if loops:
            fail("edges", f"self-loop {loops[0]}: bones join distinct joints")

    sample_ids: tuple[str, ...] = ()
    if "sample_ids" in arrays:
        ids = arrays["sample_ids"]
        if ids.dtype.kind not in "US" or ids.shape != (n,):
            fail("sample_ids", f"expected ({n},) strings, got dtype {ids.dtype}, shape {ids.shape}")
        sample_ids = tuple(_to_str(s, "sample_ids", fail) for s in ids)
    units = "arbitrary"
    if "units" in arrays:
        u = arrays["units"]
        if u.dtype.kind not in "US" or u.ndim != 0:
            fail("units", f"expected a scalar string, got dtype {u.dtype}, shape {u.shape}")
        units = _to_str(u[()], "units", fail)

    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(np.float32)  # a copy: safe to zero the padding
    valid = np.arange(t)[None, :] < lengths[:, None]  # (N, T)
    x[~valid] = 0.0
    finite = np.isfinite(x).all(axis=(2, 3))  # (N, T)
    if not finite.all():
        s, f = np.argwhere(~finite)[0]
        fail("x", f"non-finite value (NaN or inf, or beyond float32 range) in sample {s}, "
                  f"frame {f}")

    try:
        ds = SkeletonDataset(
            name=path.stem, x=x, lengths=lengths.astype(np.int32), labels=labels.astype(np.int32),
            class_names=class_names, folds=folds.astype(np.int32), edges=edges,
            sample_ids=sample_ids, units=units,
        )
        check_splits(ds)
        return ds
    except DataError as e:  # remaining checks (e.g. fewer than 2 classes): name the file
        raise DataError(str(e), path=path) from e


def save_npz(path: str | os.PathLike, dataset: SkeletonDataset) -> None:
    """Writes ``dataset`` to ``path`` (exactly that name) in the format ``load_npz`` reads.

    Loading it back gives an equal dataset, except that the name becomes the file stem.
    """
    arrays = dict(
        x=dataset.x, y=dataset.labels, lengths=dataset.lengths, folds=dataset.folds,
        edges=np.array(dataset.edges, np.int32).reshape(-1, 2),
        class_names=np.array(dataset.class_names, dtype=str), units=np.array(dataset.units),
    )
    if dataset.sample_ids:
        arrays["sample_ids"] = np.array(dataset.sample_ids, dtype=str)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def stratified_folds(labels: np.ndarray, num_folds: int = DEFAULT_NUM_FOLDS) -> np.ndarray:
    """int32 (N,) folds in 1..num_folds: each class's samples, in order, get 1, 2, ..., k, 1, ..."""
    labels = np.asarray(labels)
    folds = np.zeros(labels.shape, np.int32)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        folds[idx] = np.arange(idx.size) % num_folds + 1
    return folds


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array in the archive, loaded without pickle; DataError if it is not a valid .npz."""
    with open(path, "rb") as f:  # our handle, so it is closed even when np.load fails
        head = f.read(6)
        f.seek(0)
        if not head:
            raise DataError("not a valid .npz file: the file is empty", path=path)
        if not head.startswith((b"PK", b"\x93NUMPY")):  # np.load would try pickle next
            raise DataError(f"not a valid .npz file: it starts with {head!r}, not like a zip archive "
                            "(an .npz is a zip of .npy arrays, as numpy.savez writes)", path=path)
        try:
            check_declared_sizes(f)
            npz = np.load(f, allow_pickle=False)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
            raise DataError(f"not a valid .npz file: {e}", path=path) from e
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DataError("not an .npz archive (a single .npy array?)", path=path)
        arrays = {}
        with npz:
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except ValueError as e:  # object arrays need pickle
                    raise DataError(f"key {key!r}: cannot load without pickle (object array?): "
                                    f"{e}", path=path) from e
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as e:
                    raise DataError(f"key {key!r}: not a valid .npz entry (damaged or truncated "
                                    f"file?): {e}", path=path) from e
    return arrays


def _is_real_number(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)


def _integers(a: np.ndarray, shape, key: str, fail) -> np.ndarray:
    """``a`` as int64 after checking dtype (integer, or integer-valued finite float), shape, and
    that every value fits in int32 (so that no later cast wraps it around)."""
    if not _is_real_number(a.dtype):
        fail(key, f"expected integers, got dtype {a.dtype}")
    if shape is not None and a.shape != shape:
        fail(key, f"expected shape {shape} (N from x), got {a.shape}")
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            bad = a[~np.isfinite(a) | (a != np.round(a))].flat[0]
            fail(key, f"expected integer values, got {bad}")
    if a.size:
        info = np.iinfo(np.int32)
        big = a[(a < info.min) | (a > info.max)]
        if big.size:
            fail(key, f"value {big.flat[0]} does not fit in int32")
    return a.astype(np.int64)


def _to_str(s, key: str = "", fail=None) -> str:
    if not isinstance(s, bytes):
        return str(s)
    try:
        return s.decode("utf-8")
    except UnicodeDecodeError as e:
        if fail is None:
            raise
        fail(key, f"not UTF-8 text: byte {s[e.start]:#04x} in {s[:40]!r}")
