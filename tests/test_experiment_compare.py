"""experiments.sbu_compare end to end on real SBU data, tiny: the table (markdown and CSV) with
dense, MRMP and two baselines through the common code path."""

import csv

from experiments import sbu_compare


def test_tiny_comparison(sbu_path, tmp_path):
    out = tmp_path / "cmp"
    sbu_compare.main(["--data-dir", str(sbu_path), "--out", str(out), "--preset", "c8", "--folds", "1",
                      "--rates", "0.9", "--methods", "mrmp,magnitude_global", "--workers", "0",
                      "--set", "train.epochs=3"])
    table = (out / "table.md").read_text()
    assert "Dense:" in table and "| MRMP |" in table and "| magnitude, global |" in table
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert [r["method"] for r in rows] == ["dense", "MRMP", "magnitude, global"]     # the chosen methods only
    for r in rows[1:]:
        assert float(r["target_rate"]) == 0.9 and abs(float(r["achieved_rate"]) - 0.9) < 0.02
    assert (out / "magnitude_global_r0.9" / "results.json").exists()


def fake_results(accuracies: dict[int, float], rate: float) -> dict:
    """A results.json object with one row at ``rate`` per fold."""
    return {"runs": [{"fold": k, "rates": [{"target_rate": rate, "accuracy": a}]} for k, a in accuracies.items()]}


def test_verdicts_pair_folds_against_the_best_baseline():
    base = {1: 90.0, 2: 85.0, 3: 92.0, 4: 88.0, 5: 80.0}
    results = {
        "snip_r0.9": fake_results(base, 0.9),
        "random_r0.9": fake_results({k: a - 10 for k, a in base.items()}, 0.9),     # not the best
        "mrmp": fake_results({k: a + 3 + 0.1 * k for k, a in base.items()}, 0.9),  # consistently ahead
        "srmp_r0.9": fake_results({k: a + (4 if k % 2 else -4) for k, a in base.items()}, 0.9),  # noise
        "ctf_r0.9": fake_results({k: a - 2 - 0.1 * k for k, a in base.items()}, 0.9),  # consistently behind
    }
    rows = {line.split("|")[3].strip(): line for line in sbu_compare.verdicts(results, [0.9]).splitlines()[2:]}
    assert all("SNIP (87.00)" in line for line in rows.values())
    assert rows["MRMP"].rstrip(" |").endswith("win") and "+3.30" in rows["MRMP"]
    assert rows["SRMP"].rstrip(" |").endswith("tie")
    assert rows["CTF"].rstrip(" |").endswith("loss") and "-2.30" in rows["CTF"]
