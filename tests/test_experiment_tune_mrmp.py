"""experiments.tune_mrmp: nested-validation jobs never see the test fold; MRMP candidates against
SRMP at each rate, paired by (seed, test fold, validation fold); one tiny real-data round."""

import json

import numpy as np
import pytest

from conftest import CHEAP_COMPILE
from experiments import tune_mrmp
from experiments.jobs import Job, validation_split


def test_validation_split_leaves_the_test_fold_out_and_holds_out_the_validation_fold():
    import dataclasses
    from jaxprune.data.synthetic import make_synthetic
    data = make_synthetic(per_class=10, seed=0)
    data = dataclasses.replace(data, folds=(np.arange(len(data.labels)) % 5 + 1).astype(np.int32))   # 5 folds
    split = validation_split(data, 2, 3)
    ids = lambda d: {tuple(np.round(x[:3, 0, 0], 5)) for x in d.x}    # noqa: E731  a sample's fingerprint
    assert ids(split).isdisjoint(ids(data.subset(np.flatnonzero(data.folds == 2))))   # fold 2 is gone
    assert (split.folds == 1).sum() == (data.folds == 3).sum()        # fold 3 is the held-out fold
    assert (split.folds == 0).sum() == ((data.folds != 2) & (data.folds != 3)).sum()
    with pytest.raises(ValueError, match="validation fold 2: must be a fold .* other than the test fold 2"):
        validation_split(data, 2, 2)
    job = Job("sbu", "d", "base_s0", "mrmp", (), 2, "out", None, 3)
    assert str(job.rows_path()) == "out/base_s0/fold2_val3/rows.json"


def test_splits_plan_and_the_gap_to_srmp():
    assert tune_mrmp.splits([1, 5], "next", [1, 2, 3, 4, 5]) == [(1, 2), (5, 1)]
    assert tune_mrmp.splits([2], "all", [1, 2, 3]) == [(2, 1), (2, 3)]
    assert tune_mrmp.candidate("distill=prune.distill_weight=1; prune.distill_temperature=2") == (
        "distill", ("prune.distill_weight=1", "prune.distill_temperature=2"))
    with pytest.raises(SystemExit, match="expected NAME=override1;override2"):
        tune_mrmp.candidate("prune.distill_weight")
    jobs = tune_mrmp.plan([("base", ()), ("sw", ("prune.sandwich=true",))], (0.5, 0.9), [0, 1], [(1, 2)],
                          "sbu", "d", "out", "c8", ("train.epochs=3",))
    assert len(jobs) == 2 * (2 + 2)                                   # per seed: 2 candidates, SRMP at 2 rates
    sw = next(j for j in jobs if j.run == "sw_s1")
    assert sw.method == "mrmp" and sw.validation == 2 and sw.fold == 1 and sw.preset == "c8"
    assert sw.overrides == ("train.epochs=3", "prune.rates=0.5,0.9", "prune.eval_rates=0.5,0.9",
                            "prune.sandwich=true", "seed=1")
    found = {"base": {0.9: {(s, 1, 2 + i): (80.0 + i + s, 0.9) for s in (0, 1) for i in range(3)}},
             "srmp_r0.9": {0.9: {(s, 1, 2 + i): (82.0 + i + s + (0.5 if i % 2 else -0.5), 0.9)
                                 for s in (0, 1) for i in range(3)}}}
    (row,) = tune_mrmp.rows(found, ["base"], (0.5, 0.9))
    assert row["runs"] == 6 and row["pairs"] == 6 and row["verdict"] == "loss"
    assert row["gap_to_srmp"] == pytest.approx(-2.0 + 0.5 / 3)       # −2 on average, ∓0.5 by split
    assert "| base | 0.9 | 6 |" in tune_mrmp.markdown([row], "# t")
    (early,) = tune_mrmp.rows({"base": found["base"]}, ["base"], (0.9,))   # a round whose SRMP has not trained
    text = tune_mrmp.markdown([early], "# t")
    assert "| base | 0.9 | 6 | 81.50 ± 0.96 | not trained yet | - | - | - | 0.00 |" in text and "nan" not in text
    assert "none yet (no SRMP reference trained)" in text
    # by split: MRMP 80 everywhere; SRMP 81 + s at 0.5 and 83 + 2 s at 0.9, the latter not yet done for
    # seed 1 on split (1, 3), which is then averaged over 0.5 alone (seed 0: -1, seed 1: -2)
    found = {"base": {r: {(s, 1, j): (80.0, r) for s in (0, 1) for j in (2, 3)} for r in (0.5, 0.9)},
             "srmp_r0.5": {0.5: {(s, 1, j): (81.0 + s, 0.5) for s in (0, 1) for j in (2, 3)}},
             "srmp_r0.9": {0.9: {(s, 1, j): (83.0 + 2 * s, 0.9) for s, j in ((0, 2), (1, 2), (0, 3))}}}
    split_table = tune_mrmp.by_split(found, ["base"], (0.5, 0.9)).splitlines()
    assert split_table[3] == "| candidate | test 1, validation 2 | test 1, validation 3 |"
    assert split_table[-1] == "| base | -2.75 [-3.5, -2.0] | -1.50 [-2.0, -1.0] |"
    assert tune_mrmp.by_split({"base": found["base"]}, ["base"], (0.9,)) == ""


def test_tiny_round_on_sbu(sbu_path, tmp_path):
    out = tmp_path / "tune"
    args = ["--data-dir", str(sbu_path), "--out", str(out), "--preset", "c8", "--seeds", "0", "--outer", "1",
            "--rates", "0.9", "--candidate", "base=", "--workers", "0", "--set", "train.epochs=3", *CHEAP_COMPILE]
    tune_mrmp.main(args)
    rows = json.loads((out / "base_s0" / "fold1_val2" / "rows.json").read_text())
    assert rows["validation"] == 2 and rows["config"]["method"] == "mrmp"
    assert (out / "srmp_r0.9_s0" / "fold1_val2" / "rows.json").exists()
    text = (out / "validation.md").read_text()
    assert "preset c8" in text and "| base | 0.9 | 1 |" in text and "one pair: no verdict" in text
    assert not (out / "table.md").exists() and (out / "validation.csv").exists()
