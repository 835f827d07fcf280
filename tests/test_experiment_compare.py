"""experiments.sbu_compare end to end on real SBU data, tiny: the table (markdown and CSV) with
dense, MRMP and two baselines through the common code path."""

import csv

from experiments import sbu_compare


def test_tiny_comparison(sbu_path, tmp_path):
    out = tmp_path / "cmp"
    sbu_compare.main(["--data-dir", str(sbu_path), "--out", str(out), "--folds", "1", "--rates", "0.9",
                      "--methods", "mrmp,magnitude_global,snip", "--workers", "0", "--set", "train.epochs=3"])
    table = (out / "table.md").read_text()
    assert "Dense:" in table and "| MRMP |" in table and "| magnitude, global |" in table and "| SNIP |" in table
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert [r["method"] for r in rows] == ["dense", "MRMP", "magnitude, global", "SNIP"]
    for r in rows[1:]:
        assert float(r["target_rate"]) == 0.9 and abs(float(r["achieved_rate"]) - 0.9) < 0.02
    assert (out / "magnitude_global_r0.9" / "results.json").exists()
