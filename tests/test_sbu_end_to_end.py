"""A short dense training of the default network (preset wide, C = 64) on one real SBU fold must
land well above chance (12.5 %)."""

import json

from jaxprune.cli import main


def test_dense_sbu_one_fold_well_above_chance(sbu_path, tmp_path):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "sbu", "--data-dir", str(sbu_path), "--fold", "1",
                 "--epochs", "100", "--out", str(out), "--quiet"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "sbu" and results["runs"][0]["fold"] == 1
    accuracy = results["summary"][0]["accuracy_mean"]
    assert accuracy >= 60.0, f"dense SBU fold 1 reached only {accuracy:.1f} % after 100 epochs"
    lines = (out / "fold1" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 100 and json.loads(lines[-1])["epoch"] == 100
