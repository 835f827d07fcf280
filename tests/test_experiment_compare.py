"""experiments.sbu_compare end to end on real SBU data, tiny: the table and summary.csv with dense,
MRMP and a baseline at two seeds through the common code path; the pooling over seeds × folds and
the paired verdicts on results made up so that every figure is known."""

import csv
import importlib.util

import pytest

from conftest import CHEAP_COMPILE
from experiments import sbu_compare


def test_tiny_comparison_over_two_seeds(sbu_path, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    calls, real = [], sbu_compare.run_jobs
    monkeypatch.setattr(sbu_compare, "run_jobs", lambda jobs, *a: calls.append(jobs) or real(jobs, *a))
    sbu_compare.main(["--data-dir", str(sbu_path), "--out", str(out), "--preset", "c8", "--folds", "1",
                      "--rates", "0.9", "--methods", "mrmp,magnitude_global", "--workers", "0", "--seeds", "0,1",
                      "--unseen-rates", "0.93,0.9", "--set", "train.epochs=3", *CHEAP_COMPILE])
    # one pool, seed-major, MRMP (the longest job) first within a seed: no barrier between seeds
    assert [[(j.run[-2:], j.method) for j in jobs] for jobs in calls] == [
        [("s0", "mrmp"), ("s0", "dense"), ("s0", "magnitude"), ("s1", "mrmp"), ("s1", "dense"), ("s1", "magnitude")]]
    table = (out / "table.md").read_text()
    assert "network: preset c8, C = 8" in table and "Dense:" in table and "over 2 seed(s) × 1 fold(s)" in table
    assert "| MRMP |" in table and "| magnitude, global |" in table
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert list(rows[0])[:9] == list(sbu_compare.SUMMARY_COLUMNS)
    assert [(r["method"], r["target_rate"], r["trained"]) for r in rows] == [          # the chosen methods only,
        ("dense", "0.0", "True"), ("mrmp", "0.9", "True"), ("mrmp", "0.93", "False"),   # MRMP also where it
        ("magnitude prune.scope=global", "0.9", "True")]                               # never trained
    assert all(r["seeds"] == "2" and r["folds"] == "1" for r in rows)
    for r in rows[1:]:
        assert abs(float(r["achieved_rate_mean"]) - float(r["target_rate"])) < 0.02
    assert (out / "magnitude_global_r0.9_s1" / "results.json").exists() and (out / "mrmp_s0" / "results.json").exists()
    plot = out / "accuracy_vs_rate.png"           # needs the optional [plot] extra
    assert plot.exists() == (importlib.util.find_spec("matplotlib") is not None)
    seeds = [(out / f"dense_s{s}" / "fold1" / "rows.json").read_text() for s in (0, 1)]
    assert seeds[0] != seeds[1]                                     # each seed is its own training
    with pytest.raises(SystemExit, match="--methods: unknown"):
        sbu_compare.main(["--data-dir", str(sbu_path), "--out", str(out), "--methods", "mrmp,nope", "--report"])


def fake_results(accuracies: dict[int, float], rate: float) -> dict:
    """A results.json object with one row at ``rate`` per fold."""
    return {"runs": [{"fold": k, "rates": [{"target_rate": rate, "accuracy": a, "achieved_rate": rate,
                                            "kept_params": 100, "flops": 1000}]} for k, a in accuracies.items()],
            "train_seconds": 1.0}


def test_verdicts_pair_seeds_and_folds_against_the_best_baseline_and_srmp():
    base = {1: 90.0, 2: 85.0, 3: 92.0, 4: 88.0, 5: 80.0}
    results = {}
    for s in (0, 1):                                                # seed 1: everything 2 points lower
        shifted = {k: a - 2 * s for k, a in base.items()}
        results |= {
            f"snip_r0.9_s{s}": fake_results(shifted, 0.9),
            f"random_r0.9_s{s}": fake_results({k: a - 10 for k, a in shifted.items()}, 0.9),     # not the best
            f"mrmp_s{s}": fake_results({k: a + 3 + 0.1 * k for k, a in shifted.items()}, 0.9),  # ahead
            f"srmp_r0.9_s{s}": fake_results({k: a + (4 if k % 2 else -4) for k, a in shifted.items()}, 0.9),  # noise
            f"ctf_r0.9_s{s}": fake_results({k: a - 2 - 0.1 * k for k, a in shifted.items()}, 0.9),  # behind
            f"dense_s{s}": fake_results({k: a + 1 for k, a in shifted.items()}, 0.0),     # one point above SNIP
        }
    lines = sbu_compare.verdicts(results, [0.9], [0, 1]).splitlines()[2:]
    rows = {(line.split("|")[2].strip(), line.split("|")[3].strip().split(":")[0]): line for line in lines}
    assert all("SNIP (86.00)" in line for (_, against), line in rows.items() if against == "best baseline")
    mrmp = rows[("MRMP", "best baseline")]
    assert mrmp.rstrip(" |").endswith("win") and "+3.30" in mrmp and "| 10 |" in mrmp       # 2 seeds × 5 folds
    assert rows[("SRMP", "best baseline")].rstrip(" |").endswith("tie")
    assert rows[("CTF", "best baseline")].rstrip(" |").endswith("loss") and "-2.30" in rows[("CTF", "best baseline")]
    assert rows[("MRMP", "SRMP")].rstrip(" |").endswith("tie")      # +3.3 ± 4 against SRMP's noise
    assert "+2.30" in rows[("MRMP", "dense")] and rows[("MRMP", "dense")].rstrip(" |").endswith("win")
    assert "-3.30" in rows[("CTF", "dense")] and rows[("CTF", "dense")].rstrip(" |").endswith("loss")
    # a grid in progress: a baseline done for one seed only is not the best baseline, however lucky
    lucky = {"structured_columns_r0.9_s0": fake_results({k: a + 20 for k, a in base.items()}, 0.9)}
    lines = sbu_compare.verdicts({**results, **lucky}, [0.9], [0, 1]).splitlines()[2:]
    assert all("SNIP (86.00)" in line for line in lines if "best baseline" in line)
    summary = {(r["method"], r["target_rate"]): r for r in sbu_compare.summary_rows(results, [0.9], [0, 1])}
    assert summary[("snip", 0.9)]["accuracy_mean"] == 86.0 and summary[("snip", 0.9)]["seeds"] == 2
    assert summary[("snip", 0.9)]["folds"] == 5 and summary[("snip", 0.9)]["kept_params_mean"] == 100
    assert summary[("mrmp", 0.9)]["accuracy_std"] > 0 and summary[("dense", 0.0)]["accuracy_mean"] == 87.0


def test_unseen_rates_are_set_against_their_trained_neighbours():
    row = lambda r, acc, trained: {"label": "MRMP", "target_rate": r, "accuracy_mean": acc, "accuracy_std": 1.0,
                                   "achieved_rate_mean": r, "trained": trained}
    rows = [row(0.9, 80.0, True), row(0.93, 83.0, False), row(0.95, 90.0, True), row(0.97, 70.0, False)]
    text = sbu_compare.unseen_table(rows, [0.9, 0.95])
    assert "| 0.93 | 83.00 ± 1.00 | 0.930 | 0.9: 80.00, 0.95: 90.00 | -2.00 |" in text
    assert "| 0.97 |" not in text                                  # no trained rate above it
    assert sbu_compare.unseen_table(rows[:1], [0.9]) == ""


def test_by_fold_separates_a_fold_effect_from_seed_noise():
    base = {1: 90.0, 2: 85.0}
    results = {}
    for s in (0, 1):
        results |= {
            f"dense_s{s}": fake_results({k: a + 1 for k, a in base.items()}, 0.0),     # one point above SRMP
            f"srmp_r0.9_s{s}": fake_results(base, 0.9),
            # fold 1: -2 at 0.9, -4 at 0.99 on both seeds; fold 2: +4 on seed 0, -4 on seed 1
            f"mrmp_s{s}": {"runs": [{"fold": k, "rates": [
                {"target_rate": r, "accuracy": a + (-2 - 2 * (r > 0.95) if k == 1 else 4 - 8 * s),
                 "achieved_rate": r, "kept_params": 1, "flops": 1} for r in (0.9, 0.99)]}
                for k, a in base.items()], "train_seconds": 1.0},
        }
    results["srmp_r0.99_s0"] = fake_results(base, 0.99)             # a grid in progress: seed 1 not done at 0.99
    text = sbu_compare.by_fold(results, [0.9, 0.99], [0, 1], [1, 2])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]]
            for line in text.splitlines() if line.startswith("| MRMP") or line.startswith("| SRMP")}
    # against SRMP each seed is averaged over 0.9 only, the rate both seeds have (not -3 against -2)
    assert rows["MRMP − SRMP"] == ["-2.00 [-2.0, -2.0]", "+0.00 [-4.0, +4.0]"]
    assert rows["MRMP − dense"] == ["-4.00 [-4.0, -4.0]", "-1.00 [-5.0, +3.0]"]      # both rates, every seed
    assert rows["SRMP − dense"] == ["-1.00 [-1.0, -1.0]"] * 2
    assert "CTF" not in text                                        # no CTF runs: no row
    assert sbu_compare.by_fold({}, [0.9], [0], [1]) == ""


def test_readme_table_is_what_the_committed_grid_gives(sbu_path, tmp_path, capsys):
    """experiments.readme_table: the README's three-seed table and dense figure are rendered from
    the committed grid's rows (a hand edit or a changed row is caught, naming the README's line),
    and --write puts them back."""
    from experiments import readme_table
    readme = readme_table.REPO / "README.md"
    assert readme_table.main(["--data-dir", str(sbu_path)]) == 0
    text = readme.read_text()
    block = text[text.index(readme_table.START):]
    line = next(x for x in block.splitlines() if x.startswith("| SRMP (one model per rate) |"))
    tampered = tmp_path / "README.md"
    cells = line.split(" | ")
    cells[2] = "99.99 ± 0.00"                                  # SRMP at 0.5, edited by hand
    assert " | ".join(cells) != line
    tampered.write_text(text.replace(line, " | ".join(cells), 1))
    assert readme_table.main(["--data-dir", str(sbu_path), "--readme", str(tampered)]) == 1
    number = text[:text.index(readme_table.START)].count("\n") + block.splitlines().index(line) + 1
    assert f"README.md:{number}: differs" in capsys.readouterr().err
    assert readme_table.main(["--data-dir", str(sbu_path), "--readme", str(tampered), "--write"]) == 0
    assert tampered.read_text() == text
    with pytest.raises(ValueError, match="no table starting with"):
        readme_table.with_table("no table here", "", "", tampered)
