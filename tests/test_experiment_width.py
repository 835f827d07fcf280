"""experiments.width_pruning: which runs it trains, and how it compares networks of one size.

The training itself is the jobs machinery that the other experiment tests run on real data; here
the aggregation is checked on results made up so that every figure is known."""

from experiments.width_pruning import METHODS, budgets, method_budgets, networks, plan


def _result(rows, accuracies):
    """A results.json object: one run per fold, each with ``rows`` (target, kept, flops) at every fold."""
    runs = [{"fold": k + 1, "rates": [{"target_rate": t, "accuracy": acc[i]} for i, (t, _, _) in enumerate(rows)]}
            for k, acc in enumerate(accuracies)]
    summary = [{"target_rate": t, "achieved_rate": t, "kept_params_mean": kept, "flops_mean": flops}
               for t, kept, flops in rows]
    return {"runs": runs, "summary": summary, "train_seconds": 60.0 * len(runs) * len(rows)}


def test_the_plan_trains_seed_by_seed_dense_first():
    runs = plan(["SRMP", "MRMP"], (0.9, 0.99), (8, 64), (0, 1))
    names = [name for name, _, _, _ in runs]
    assert names == ["dense_c8_s0", "dense_c64_s0", "srmp_r0.9_s0", "srmp_r0.99_s0", "mrmp_s0",
                     "dense_c8_s1", "dense_c64_s1", "srmp_r0.9_s1", "srmp_r0.99_s1", "mrmp_s1"]
    settings = dict((name, extra) for name, _, extra, _ in runs)
    assert settings["dense_c8_s1"] == ("model.channels=8", "seed=1")
    assert "prune.rates=0.9,0.99" in settings["mrmp_s0"] and "prune.rate=0.99" in settings["srmp_r0.99_s1"]


def test_pruned_runs_are_named_as_the_comparison_names_them():
    from experiments import sbu_compare
    names = {name for name, method, _, _ in plan(list(METHODS), (0.9,), (64,), (1,)) if method != "dense"}
    assert names == {sbu_compare.run_name(label, None if label == "MRMP" else 0.9, 1) for label in METHODS}


def test_networks_pool_seeds_and_folds_and_budgets_compare_equal_sizes():
    results = {
        "dense_c8_s0": _result([(0.0, 30000, 2e5)], [[80.0], [90.0]]),
        "dense_c8_s1": _result([(0.0, 30000, 2e5)], [[70.0], [80.0]]),
        "dense_c64_s0": _result([(0.0, 250000, 1.6e6)], [[95.0], [95.0]]),
        "dense_c64_s1": _result([(0.0, 250000, 1.6e6)], [[97.0], [97.0]]),
        "mrmp_s0": _result([(0.9, 25000, 8e5), (0.99, 2500, 4e5)], [[90.0, 60.0], [92.0, 62.0]]),
        "mrmp_s1": _result([(0.9, 27000, 8e5), (0.99, 2500, 4e5)], [[88.0, 64.0], [90.0, 66.0]]),
    }
    rows = networks(results, ["MRMP", "SNIP"], (0.9, 0.99), (8, 64), (0, 1))
    by = {(r["network"], r["target_rate"]): r for r in rows}
    assert set(by) == {("dense C = 8", 0.0), ("dense C = 64", 0.0), ("MRMP", 0.9), ("MRMP", 0.99)}   # no SNIP runs
    assert by[("dense C = 8", 0.0)]["accuracy_mean"] == 80.0 and by[("dense C = 8", 0.0)]["seeds"] == 2
    assert by[("MRMP", 0.9)]["kept_params"] == 26000 and by[("MRMP", 0.9)]["accuracy_mean"] == 90.0
    assert by[("MRMP", 0.9)]["train_minutes_per_fold"] == 2.0 and by[("dense C = 8", 0.0)]["train_minutes_per_fold"] == 1.0
    table = budgets(rows).splitlines()
    # C = 8 keeps 30000 weights: the best pruned network within them is MRMP at 0.9 (26000 weights)
    # paired by (seed, fold): differences 10, 2, 18, 10, so t(0.975, 3)·s/√4 = 3.182·6.53/2 = 10.39
    assert table[2] == "| dense C = 8 | 30000 | 80.00 ± 7.07 | MRMP at 0.9 | 26000 | 90.00 ± 1.41 | +10.00 | ±10.39, tie (4 pairs) |"
    assert table[3].startswith("| dense C = 64 | 250000 | 96.00 ± 1.00 | MRMP at 0.9 |") and table[3].endswith(
        "-6.00 | ±4.11, loss (4 pairs) |")
    rows_small = networks({k: v for k, v in results.items() if k.startswith("mrmp")} |
                          {"dense_c1_s0": _result([(0.0, 2000, 1e5)], [[50.0], [50.0]])},
                          ["MRMP"], (0.99,), (1,), (0,))
    assert "| dense C = 1 | 2000 | 50.00 ± 0.00 | none this small | - | - | - | - |" in budgets(rows_small)


def test_each_method_meets_a_dense_width_at_its_least_sparse_rate_within_its_weights():
    results = {
        "dense_c8_s0": _result([(0.0, 30000, 2e5)], [[80.0], [90.0]]),
        "dense_c8_s1": _result([(0.0, 30000, 2e5)], [[70.0], [80.0]]),
        "dense_c1_s0": _result([(0.0, 2000, 1e5)], [[50.0], [50.0]]),
        "mrmp_s0": _result([(0.9, 25000, 8e5), (0.99, 2500, 4e5)], [[60.0, 90.0], [62.0, 92.0]]),
        "mrmp_s1": _result([(0.9, 27000, 8e5), (0.99, 2500, 4e5)], [[64.0, 88.0], [66.0, 90.0]]),
    }
    table = method_budgets(networks(results, ["MRMP"], (0.9, 0.99), (1, 8), (0, 1))).splitlines()
    # C = 8 (30000 weights) meets MRMP at 0.9 (26000), not its better 0.99: differences -20, -28, -6, -14
    # over (seed, fold), mean -17, t(0.975, 3)·s/√4 = 3.182·9.31/2 = 14.81
    assert table[3] == "| dense C = 8 | 80.00 ± 7.07 | 0.9: -17.00 ± 14.81 loss |"
    assert table[2] == "| dense C = 1 | 50.00 ± 0.00 | - |"          # 2000 weights: no MRMP rate keeps so few
