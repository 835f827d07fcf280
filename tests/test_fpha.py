"""FPHA loader: small fixtures written in the official layout, checked value by value."""

import re
import warnings

import numpy as np
import pytest

from jaxprune.data.errors import DataError
from jaxprune.data.fpha import ANNOTATION_DIR, FPHA_CLASS_NAMES, SPLIT_FILE, load_fpha
from jaxprune.graphs import FPHA_BONES

# Real action names at their real labels, so class_names[label] must give the folder name back.
ACTIONS = {"open_juice_bottle": 0, "charge_cell_phone": 34, "high_five": 44}
NUM_TRAIN = 10  # of 18 sequences; split lines: header 1, train 2..11, header 12, test 13..20


def skeleton_path(root, seq_id):
    return root / ANNOTATION_DIR / seq_id / "skeleton.txt"


def write_skeleton(path, coords, newline="\n"):
    """coords (T, 21, 3) with 2 decimals -> official rows: frame id, then 63 values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{i:04d} " + " ".join(f"{v:.2f}" for v in frame.ravel())
            for i, frame in enumerate(coords)]
    path.write_bytes((newline.join(rows) + newline).encode())


def write_split(root, train, test, newline="\n"):
    lines = ([f"Training {len(train)}"] + [f"{s} {lab}" for s, lab in train]
             + [f"Test {len(test)}"] + [f"{s} {lab}" for s, lab in test])
    (root / SPLIT_FILE).write_bytes((newline.join(lines) + newline).encode())


def make_fpha(root, newline="\n", seed=0):
    """3 subjects x 3 actions x 2 sequences of 5-20 frames; a random (not parity) split.

    Returns (coords by sequence id, training [(id, label)], test [(id, label)]).
    """
    rng = np.random.default_rng(seed)
    coords, labelled = {}, []
    for subject in (1, 2, 3):
        for action, label in ACTIONS.items():
            for seq in (1, 2):
                seq_id = f"Subject_{subject}/{action}/{seq}"
                t = int(rng.integers(5, 21))
                coords[seq_id] = rng.integers(-50000, 50000, (t, 21, 3)) / 100  # mm, 2 decimals
                write_skeleton(skeleton_path(root, seq_id), coords[seq_id], newline)
                labelled.append((seq_id, label))
    order = rng.permutation(len(labelled))
    train = [labelled[i] for i in order[:NUM_TRAIN]]
    test = [labelled[i] for i in order[NUM_TRAIN:]]
    write_split(root, train, test, newline)
    return coords, train, test


def edit_split_line(root, line, text):
    path = root / SPLIT_FILE
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


def edit_skeleton_line(path, line, edit):
    lines = path.read_text().splitlines()
    tokens = lines[line - 1].split()
    lines[line - 1] = " ".join(edit(tokens))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_loads_exact_values(tmp_path, newline):
    coords, train, test = make_fpha(tmp_path, newline)
    ds = load_fpha(tmp_path)
    entries = train + test
    assert ds.name == "fpha" and ds.units == "mm" and ds.edges == FPHA_BONES
    assert ds.sample_ids == tuple(s for s, _ in entries)
    t_max = max(len(c) for c in coords.values())
    assert ds.x.shape == (18, t_max, 21, 3) and ds.x.dtype == np.float32
    for arr in (ds.lengths, ds.labels, ds.folds):
        assert arr.dtype == np.int32
    np.testing.assert_array_equal(ds.labels, [lab for _, lab in entries])
    np.testing.assert_array_equal(ds.folds, [0] * len(train) + [1] * len(test))
    for i, (seq_id, _) in enumerate(entries):
        t = len(coords[seq_id])
        assert ds.lengths[i] == t
        np.testing.assert_array_equal(ds.x[i, :t], coords[seq_id].astype(np.float32))
        assert not ds.x[i, t:].any()
    train_idx, test_idx = ds.split(1)
    assert list(train_idx) == list(range(NUM_TRAIN))
    assert list(test_idx) == list(range(NUM_TRAIN, 18))


def test_class_names_by_label(tmp_path):
    make_fpha(tmp_path)
    ds = load_fpha(tmp_path)
    assert len(FPHA_CLASS_NAMES) == 45 and len(set(FPHA_CLASS_NAMES)) == 45
    assert ds.class_names == FPHA_CLASS_NAMES
    assert FPHA_CLASS_NAMES[29] == "take_letter_from_enveloppe"
    for seq_id, label in zip(ds.sample_ids, ds.labels):
        assert ds.class_names[label] == seq_id.split("/")[1]


def test_split_order_and_labels_come_from_the_file(tmp_path):
    coords, train, test = make_fpha(tmp_path)
    first = load_fpha(tmp_path)
    # Reorder both sections, move one sequence from test to training, relabel one sequence.
    moved = test[0]
    relabelled = (train[0][0], 7)
    new_train = [relabelled] + train[1:][::-1] + [moved]
    new_test = test[1:][::-1]
    write_split(tmp_path, new_train, new_test)
    second = load_fpha(tmp_path)
    assert second.sample_ids == tuple(s for s, _ in new_train + new_test)
    before = {s: i for i, s in enumerate(first.sample_ids)}
    for j, seq_id in enumerate(second.sample_ids):
        i = before[seq_id]
        assert second.lengths[j] == first.lengths[i]
        np.testing.assert_array_equal(second.x[j], first.x[i, : second.x.shape[1]])
    labels = dict(zip(second.sample_ids, second.labels))
    folds = dict(zip(second.sample_ids, second.folds))
    assert labels[relabelled[0]] == 7 and folds[moved[0]] == 0
    assert second.class_names[7] == "scoop_spoon"


def test_files_not_in_split_are_never_read(tmp_path):
    make_fpha(tmp_path)
    (skeleton_path(tmp_path, "Subject_4/high_five/1")).parent.mkdir(parents=True)
    skeleton_path(tmp_path, "Subject_4/high_five/1").write_bytes(b"")
    skeleton_path(tmp_path, "Subject_4/high_five/2").parent.mkdir(parents=True)
    skeleton_path(tmp_path, "Subject_4/high_five/2").write_bytes(b"\xff garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_fpha(tmp_path)
    assert len(ds.sample_ids) == 18


def test_empty_file_in_split_is_skipped_with_warning(tmp_path):
    _, train, test = make_fpha(tmp_path)
    empty_id = train[3][0]
    skeleton_path(tmp_path, empty_id).write_bytes(b"")
    with pytest.warns(UserWarning, match=re.escape(str(skeleton_path(tmp_path, empty_id)))):
        ds = load_fpha(tmp_path)
    assert empty_id not in ds.sample_ids and len(ds.sample_ids) == 17
    assert ds.sample_ids == tuple(s for s, _ in train + test if s != empty_id)


def test_all_test_files_empty_raises(tmp_path):
    _, _, test = make_fpha(tmp_path)
    for seq_id, _ in test:
        skeleton_path(tmp_path, seq_id).write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(DataError, match=f"{SPLIT_FILE}.*no test fold"):
        load_fpha(tmp_path)


def test_every_listed_file_empty_raises(tmp_path):
    _, train, test = make_fpha(tmp_path)
    for seq_id, _ in train + test:
        skeleton_path(tmp_path, seq_id).write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(DataError, match=f"{SPLIT_FILE}: no samples"):
        load_fpha(tmp_path)


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="no_such_dir: FPHA data directory not found"):
        load_fpha(tmp_path / "no_such_dir")


def test_missing_split_file(tmp_path):
    make_fpha(tmp_path)
    (tmp_path / SPLIT_FILE).unlink()
    with pytest.raises(DataError, match=f"{SPLIT_FILE}: FPHA split file not found"):
        load_fpha(tmp_path)


def test_missing_annotation_dir(tmp_path):
    (tmp_path / SPLIT_FILE).write_text("Training 0\nTest 0\n")
    with pytest.raises(DataError, match=f"{ANNOTATION_DIR}: FPHA annotation directory not found"):
        load_fpha(tmp_path)


SPLIT_ERRORS = [
    # (line to replace, its new text, expected line in the message, expected message text)
    (1, "Training six", 1, "expected header 'Training <count>', got 'Training six'"),
    (1, "Train 10", 1, "expected header 'Training <count>'"),
    (12, "Testing 8", 12, "expected header 'Test <count>', got 'Testing 8'"),
    (3, "Subject_1/high_five/1", 3, "expected '<Subject_k/action_name/seq> <label>'"),
    (3, "Subject_1/high_five/1 3 4", 3, "expected '<Subject_k/action_name/seq> <label>'"),
    (3, "high_five/1 3", 3, "expected a sequence path 'Subject_k/action_name/seq'"),
    (4, "Subject_1/high_five/1 three", 4, "expected an integer label, got 'three'"),
    (4, "Subject_1/high_five/1 4.0", 4, "expected an integer label, got '4.0'"),
    (5, "Subject_1/high_five/1 45", 5, r"label 45 out of range \[0, 45\)"),
    (5, "Subject_1/high_five/1 -1", 5, r"label -1 out of range \[0, 45\)"),
    (1, "Training 11", 12, r"announces 11 entries, found 10"),
    (12, "Test 9", None, r"announces 9 entries, found 8"),
    (12, "Test 7", 20, r"unexpected line after the Test section"),
]


@pytest.mark.parametrize("line,text,at,message", SPLIT_ERRORS)
def test_bad_split_file(tmp_path, line, text, at, message):
    make_fpha(tmp_path)
    edit_split_line(tmp_path, line, text)
    where = re.escape(str(tmp_path / SPLIT_FILE)) + (f", line {at}" if at else "")
    with pytest.raises(DataError, match=f"^{where}: .*{message}") as info:
        load_fpha(tmp_path)
    assert info.value.line == at


def test_duplicate_split_entry(tmp_path):
    _, train, test = make_fpha(tmp_path)
    write_split(tmp_path, train, test[:-1] + [train[2]])
    message = rf"{SPLIT_FILE}, line 20: duplicate entry .*first on line 4"
    with pytest.raises(DataError, match=message):
        load_fpha(tmp_path)


def test_split_names_missing_sequence(tmp_path):
    make_fpha(tmp_path)
    edit_split_line(tmp_path, 14, "Subject_9/high_five/1 44")
    missing = re.escape(str(skeleton_path(tmp_path, "Subject_9/high_five/1")))
    with pytest.raises(DataError, match=rf"{SPLIT_FILE}, line 14: .*missing {missing}"):
        load_fpha(tmp_path)


def test_non_utf8_split_file(tmp_path):
    make_fpha(tmp_path)
    path = tmp_path / SPLIT_FILE
    path.write_bytes(path.read_bytes().replace(b"Subject_2", b"Subject_\xe92", 1))
    with pytest.raises(DataError, match=f"{SPLIT_FILE}, line \\d+: not UTF-8"):
        load_fpha(tmp_path)


SKELETON_ERRORS = [
    # (line, edit of the row's tokens, expected message text)
    (3, lambda tok: tok[:-1], "expected 64 columns .* got 63"),
    (4, lambda tok: tok + ["1.0"], "expected 64 columns .* got 65"),
    (2, lambda tok: tok[:5] + ["abc"] + tok[6:], "expected 64 numbers .*; column 6: got 'abc'"),
    (2, lambda tok: tok[:5] + ["1,5"] + tok[6:], "expected 64 numbers .*; column 6: got '1,5'"),
    (5, lambda tok: tok[:7] + ["nan"] + tok[8:], "non-finite coordinate"),
    (1, lambda tok: tok[:7] + ["-inf"] + tok[8:], "non-finite coordinate"),
    (3, lambda tok: tok[:7] + ["1e400"] + tok[8:], "non-finite coordinate"),
    (3, lambda tok: tok[:7] + ["1e39"] + tok[8:], "non-finite coordinate"),  # float32 overflow
]


@pytest.mark.parametrize("line,edit,message", SKELETON_ERRORS)
def test_bad_skeleton_row(tmp_path, line, edit, message):
    _, train, _ = make_fpha(tmp_path)
    path = skeleton_path(tmp_path, train[1][0])
    edit_skeleton_line(path, line, edit)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}, line {line}: {message}"):
        load_fpha(tmp_path)


def test_non_utf8_skeleton(tmp_path):
    _, _, test = make_fpha(tmp_path)
    path = skeleton_path(tmp_path, test[0][0])
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2] + b" \xff"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}, line 3: not UTF-8"):
        load_fpha(tmp_path)


@pytest.mark.parametrize("content", [b"\n", b"  \r\n\r\n"])
def test_skeleton_without_rows(tmp_path, content):
    _, _, test = make_fpha(tmp_path)
    path = skeleton_path(tmp_path, test[0][0])
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: no rows"):
        load_fpha(tmp_path)


@pytest.mark.parametrize("keep,word", [(0, "Training"), (11, "Test")])
def test_split_file_cut_before_a_header(tmp_path, keep, word):
    make_fpha(tmp_path)
    path = tmp_path / SPLIT_FILE
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:keep]))
    with pytest.raises(DataError, match=f"{SPLIT_FILE}: missing header line '{word} <count>'"):
        load_fpha(tmp_path)
