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


def test_repeats_are_refused_or_run_once_and_an_old_folder_is_kept(tmp_path, monkeypatch):
    from experiments import jobs
    from jaxprune.data.synthetic import make_synthetic
    with pytest.raises(SystemExit, match="--seeds: a seed is repeated"):
        jobs.seed_list("0,1,0")
    with pytest.raises(SystemExit, match="--outer: expected 'all' or distinct"):
        jobs.fold_list(make_synthetic(per_class=2, seed=0), "1,1", "--outer")
    trained = []

    def fake_train(job):
        trained.append(job)
        job.rows_path().parent.mkdir(parents=True, exist_ok=True)
        job.rows_path().write_text(json.dumps({"fold": job.fold, "rates": [], "train_seconds": 0.0,
                                               "config": jobs.job_config(job).to_dict()}))
        return str(job.rows_path())
    monkeypatch.setattr(jobs, "train_job", fake_train)
    job = jobs.Job("sbu", "unused", "dense_s0", "dense", ("seed=0",), 1, str(tmp_path / "grid"))
    jobs.run_jobs([job, job], workers=0)                  # two copies would share one fold folder
    assert trained == [job]

    log = tmp_path / "validation.jsonl"
    log.write_text(json.dumps({"outer": 1, "candidate": "a", "overrides": "x=1", "val_accuracy": 90.0}) + "\n")
    with pytest.raises(SystemExit, match="line 1: not a row .*overrides are a list"):
        sbu_dense.select_per_fold(log)
    old = tmp_path / "old"
    old.mkdir()
    (old / "results.json").write_text("{}")
    with pytest.raises(SystemExit, match="from before --seeds"):
        sbu_dense.main(["--data-dir", "unused", "--out", str(old)])
    assert sorted(p.name for p in old.iterdir()) == ["results.json"]
