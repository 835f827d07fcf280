"""experiments.sbu_dense end to end on real SBU data, tiny: two seeds of one fold, the table pooled
over them, resuming without retraining, and a nested choice refused for a fold it has no runs for."""

import json

import pytest

from conftest import CHEAP_COMPILE
from experiments import sbu_dense


def test_tiny_sbu_dense_over_two_seeds(sbu_path, tmp_path, capsys):
    out = tmp_path / "dense"
    argv = ["--data-dir", str(sbu_path), "--out", str(out), "--preset", "c8", "--folds", "1", "--seeds", "0,1",
            "--workers", "0", "--set", "train.epochs=2", "--set", "model.hidden=16", *CHEAP_COMPILE]
    sbu_dense.main(argv)
    runs = {s: json.loads((out / f"dense_s{s}" / "results.json").read_text()) for s in (0, 1)}
    assert [runs[s]["config"]["seed"] for s in (0, 1)] == [0, 1]
    acc = {s: runs[s]["runs"][0]["rates"][0]["accuracy"] for s in (0, 1)}
    table = (out / "table.md").read_text()
    assert "seeds 0, 1" in table and "preset c8 + --set" in table
    assert f"| 0 | {acc[0]:.2f} |" in table and f"| 1 | {acc[1]:.2f} |" in table
    mean = (acc[0] + acc[1]) / 2
    assert f"**{mean:.2f} ± {abs(acc[0] - acc[1]) / 2:.2f} %** (mean ± std over 2 seed(s) × 1 folds)" in table
    assert len((out / "table.csv").read_text().splitlines()) == 3
    assert len((out / "dense_s1" / "fold1" / "metrics.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    sbu_dense.main(argv)                                   # resumed: nothing left to train
    assert "[1/" not in capsys.readouterr().out

    log = tmp_path / "validation.jsonl"
    log.write_text(json.dumps({"outer": 2, "candidate": "base", "overrides": [], "val_accuracy": 90.0}) + "\n")
    with pytest.raises(SystemExit, match=r"validation.jsonl: no tuning runs for outer fold\(s\) \[1\]"):
        sbu_dense.main([*argv[:4], "--folds", "1", "--select-from", str(log)])


def test_bad_folds_and_tuning_logs_are_refused_naming_the_option_and_line(tmp_path):
    from experiments.jobs import fold_list
    from jaxprune.data.synthetic import make_synthetic
    data = make_synthetic(per_class=2, seed=0)
    assert fold_list(data, "all") == list(data.test_folds) and fold_list(data, "1") == [1]
    for text in ("x", "", "1,9"):
        with pytest.raises(SystemExit, match=f"--folds: .*test folds of synthetic.*got {text!r}"):
            fold_list(data, text)
    log = tmp_path / "validation.jsonl"
    good = json.dumps({"outer": 1, "candidate": "a", "overrides": ["x=1"], "val_accuracy": 90.0})
    for bad in ("{not json", json.dumps({"outer": 1, "candidate": "a"}), "[1, 2]"):
        log.write_text(good + "\n\n" + bad + "\n")
        with pytest.raises(SystemExit, match=r"validation.jsonl, line 3: not a row of experiments.tune_dense"):
            sbu_dense.select_per_fold(log)
    with pytest.raises(SystemExit, match="missing.jsonl: cannot be read"):
        sbu_dense.select_per_fold(tmp_path / "missing.jsonl")
