"""Loader for the First-Person Hand Action benchmark (FPHA, Garcia-Hernando et al., CVPR 2018).

Official layout under ``data_dir``::

    data_split_action_recognition.txt
    Hand_pose_annotation_v1/Subject_<k>/<action_name>/<seq>/skeleton.txt

The split file is a header ``Training <n>``, n lines ``Subject_k/<action_name>/<seq> <label>``,
then ``Test <m>`` and m such lines. Each ``skeleton.txt`` has one row per frame, 64
whitespace-separated columns: a frame id, then 21 joints x (x, y, z) world coordinates in mm.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from jaxprune.data.dataset import SkeletonDataset, check_splits
from jaxprune.data.errors import DataError
from jaxprune.graphs import FPHA_BONES

SPLIT_FILE = "data_split_action_recognition.txt"
ANNOTATION_DIR = "Hand_pose_annotation_v1"
NUM_JOINTS = 21
NUM_COLUMNS = 1 + 3 * NUM_JOINTS  # frame id + 21 x (x, y, z)

# Class names by label (0..44), as in the dataset's split file.
FPHA_CLASS_NAMES = (
    "open_juice_bottle", "close_juice_bottle", "pour_juice_bottle", "open_peanut_butter",
    "close_peanut_butter", "prick", "sprinkle", "scoop_spoon", "put_sugar", "stir", "open_milk",
    "close_milk", "pour_milk", "drink_mug", "put_tea_bag", "put_salt", "open_liquid_soap",
    "close_liquid_soap", "pour_liquid_soap", "wash_sponge", "flip_sponge", "scratch_sponge",
    "squeeze_sponge", "open_soda_can", "use_flash", "write", "tear_paper", "squeeze_paper",
    "open_letter", "take_letter_from_enveloppe", "read_letter", "flip_pages", "use_calculator",
    "light_candle", "charge_cell_phone", "unfold_glasses", "clean_glasses", "open_wallet",
    "give_coin", "receive_coin", "give_card", "pour_wine", "toast_wine", "handshake", "high_five",
)

_SECTIONS = (("Training", 0), ("Test", 1))  # header word, fold


def load_fpha(data_dir: str | os.PathLike) -> SkeletonDataset:
    """Loads FPHA hand skeletons in the official layout, with the official train/test split.

    Only the sequences named in the split file are read, in split-file order (training first).
    An empty (0-byte) ``skeleton.txt`` named in the split is skipped with a ``UserWarning``
    naming the file (the release has three empty files, none in the split); every other
    problem raises.

    Returns:
      SkeletonDataset "fpha": x float32 (N, T, 21, 3) in mm, zero-padded to the longest
      sequence; lengths int32 (N,); labels int32 (N,) from the split file, class names
      ``FPHA_CLASS_NAMES``; folds int32 (N,) 0 = training, 1 = test; edges ``FPHA_BONES``;
      sample_ids the split paths ("Subject_k/<action_name>/<seq>").

    Raises:
      DataError: naming the file (and line) at fault and what was expected; also (naming the
        split file) when a section is left empty, e.g. ``Training 0``.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError("FPHA data directory not found", path=root)
    split_path = root / SPLIT_FILE
    if not split_path.is_file():
        raise DataError(f"FPHA split file not found (expected {SPLIT_FILE} in the dataset root)",
                        path=split_path)
    entries = parse_split(split_path)
    ann_dir = root / ANNOTATION_DIR
    if not ann_dir.is_dir():
        raise DataError(f"FPHA annotation directory not found (expected {ANNOTATION_DIR}/ in the "
                        "dataset root)", path=ann_dir)

    sequences, labels, folds, ids = [], [], [], []
    for seq_id, label, fold, line in entries:
        skel_path = ann_dir / seq_id / "skeleton.txt"
        if not skel_path.is_file():
            raise DataError(f"sequence {seq_id!r} has no annotation file: missing {skel_path}",
                            path=split_path, line=line)
        joints = read_skeleton(skel_path)
        if joints is None:
            warnings.warn(f"{skel_path}: empty FPHA annotation file, sample {seq_id!r} skipped",
                          stacklevel=2)
            continue
        sequences.append(joints)
        labels.append(label)
        folds.append(fold)
        ids.append(seq_id)
    if not sequences:
        raise DataError("no samples left: every sequence named in the split has an empty "
                        "annotation file", path=split_path)

    lengths = np.array([len(s) for s in sequences], np.int32)
    x = np.zeros((len(sequences), int(lengths.max()), NUM_JOINTS, 3), np.float32)
    for i, s in enumerate(sequences):
        x[i, : len(s)] = s
    try:
        ds = SkeletonDataset(
            name="fpha", x=x, lengths=lengths, labels=np.array(labels, np.int32),
            class_names=FPHA_CLASS_NAMES, folds=np.array(folds, np.int32), edges=FPHA_BONES,
            sample_ids=tuple(ids), units="mm",
        )
        check_splits(ds)  # e.g. an empty Training section
        return ds
    except DataError as e:  # e.g. no test sample left after skipping empty files
        raise DataError(str(e), path=split_path) from e


def parse_split(path: str | os.PathLike) -> list[tuple[str, int, int, int]]:
    """Parses ``data_split_action_recognition.txt``.

    Returns:
      One (sequence path, label, fold, line number) per entry, in file order; fold is 0 for
      the ``Training`` section and 1 for ``Test``. Blank lines are ignored.
    """
    path = Path(path)
    lines = [(n, s.strip()) for n, s in enumerate(_read_text(path).splitlines(), 1)]
    lines = [(n, s) for n, s in lines if s]
    entries: list[tuple[str, int, int, int]] = []
    seen: dict[str, int] = {}
    pos = 0
    for word, fold in _SECTIONS:
        if pos >= len(lines):
            raise DataError(f"missing header line '{word} <count>' after the last line", path=path)
        line_no, header = lines[pos]
        parts = header.split()
        if len(parts) != 2 or parts[0] != word or not _is_int(parts[1]) or int(parts[1]) < 0:
            raise DataError(f"expected header '{word} <count>', got {header!r}", path=path,
                            line=line_no)
        count = int(parts[1])
        pos += 1
        for k in range(count):
            if pos >= len(lines) or (word == "Training" and lines[pos][1].split()[0] == "Test"):
                at = lines[pos][0] if pos < len(lines) else None
                raise DataError(f"header '{header}' (line {line_no}) announces {count} entries, "
                                f"found {k}", path=path, line=at)
            n, text = lines[pos]
            seq_id, label = _parse_entry(text, path, n)
            if seq_id in seen:
                raise DataError(f"duplicate entry {seq_id!r} (first on line {seen[seq_id]})",
                                path=path, line=n)
            seen[seq_id] = n
            entries.append((seq_id, label, fold, n))
            pos += 1
    if pos < len(lines):
        n, text = lines[pos]
        raise DataError(f"unexpected line after the Test section: {text!r}", path=path, line=n)
    return entries


def read_skeleton(path: str | os.PathLike) -> np.ndarray | None:
    """Reads one ``skeleton.txt``: float32 (T, 21, 3) joint positions in mm (frame ids dropped),
    or None if the file is empty (0 bytes). Raises DataError naming the line at fault."""
    path = Path(path)
    text = _read_text(path)
    if not text:
        return None
    lines = text.splitlines()
    if not any(s.strip() for s in lines):
        raise DataError(f"no rows (expected {NUM_COLUMNS} columns a frame)", path=path)
    try:
        rows = _parse_numbers(lines)
    except ValueError:
        rows = None
    if rows is None or rows.shape[1] != NUM_COLUMNS:
        _raise_first_bad_row(lines, path)  # slow path: find and name the bad line
    with np.errstate(over="ignore", invalid="ignore"):
        joints = rows[:, 1:].astype(np.float32).reshape(-1, NUM_JOINTS, 3)
    finite = np.isfinite(joints).reshape(len(joints), -1).all(axis=1)
    if not finite.all():
        bad_row = int(np.flatnonzero(~finite)[0])
        line = [n for n, s in enumerate(lines, 1) if s.strip()][bad_row]
        raise DataError("non-finite coordinate (NaN or inf, or beyond float32 range)",
                        path=path, line=line)
    return joints


def _raise_first_bad_row(lines: list[str], path: Path) -> None:
    for n, s in enumerate(lines, 1):
        tokens = s.split()
        if not tokens:
            continue
        if len(tokens) != NUM_COLUMNS:
            raise DataError(f"expected {NUM_COLUMNS} columns (frame id + {NUM_JOINTS} joints x 3), "
                            f"got {len(tokens)}", path=path, line=n)
        try:
            _parse_numbers([s])
        except ValueError:
            bad = [(c, t) for c, t in enumerate(tokens, 1) if not _is_number(t)][:1]
            what = f"column {bad[0][0]}: got {bad[0][1]!r}" if bad else f"got {s.strip()!r}"
            raise DataError(f"expected {NUM_COLUMNS} numbers separated by spaces or tabs; {what}",
                            path=path, line=n) from None
    raise DataError("could not parse the file as numbers", path=path)  # not reached in practice


def _parse_numbers(lines: list[str]) -> np.ndarray:
    """float64 (rows, columns) of whitespace-separated numbers; ValueError if any is not one."""
    return np.loadtxt(lines, dtype=np.float64, ndmin=2, comments=None)


def _is_number(token: str) -> bool:
    try:
        _parse_numbers([token])
    except ValueError:
        return False
    return True


def _parse_entry(text: str, path: Path, line: int) -> tuple[str, int]:
    parts = text.split()
    if len(parts) != 2:
        raise DataError(f"expected '<Subject_k/action_name/seq> <label>', got {text!r}",
                        path=path, line=line)
    seq_id, label = parts
    if len(seq_id.split("/")) != 3 or any(p in ("", ".", "..") for p in seq_id.split("/")):
        raise DataError(f"expected a sequence path 'Subject_k/action_name/seq', got {seq_id!r}",
                        path=path, line=line)
    if not _is_int(label):
        raise DataError(f"expected an integer label, got {label!r}", path=path, line=line)
    if not 0 <= int(label) < len(FPHA_CLASS_NAMES):
        raise DataError(f"label {label} out of range [0, {len(FPHA_CLASS_NAMES)})", path=path,
                        line=line)
    return seq_id, int(label)


def _read_text(path: Path) -> str:
    """The file decoded as UTF-8 (a leading BOM dropped); DataError on bad bytes or I/O errors."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read file: {e.strerror or e}", path=path) from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start})",
                        path=path, line=line) from None


def _is_int(token: str) -> bool:
    return re.fullmatch(r"[+-]?[0-9]+", token) is not None
