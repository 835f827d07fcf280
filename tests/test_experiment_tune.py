"""experiments.tune_dense: which runs a tuning round still needs, and its table over seeds."""

from experiments.tune_dense import plan, table


def test_plan_covers_every_candidate_seed_and_split_once():
    jobs = plan(["a=model.channels=16", "b="], [1, 2], "next", [], "data", 10)
    assert len(jobs) == 2 * 2 * 5
    assert {(j[1], j[3]) for j in jobs} == {("a", 1), ("a", 2), ("b", 1), ("b", 2)}
    assert all(j[5] == j[4] % 5 + 1 for j in jobs)                  # --inner next
    assert jobs[0][2] == ["model.channels=16"] and jobs[-1][2] == []
    assert len(plan(["a="], [0], "all", [], "data", 10)) == 20       # every inner fold j != k


def test_plan_skips_finished_runs_and_reads_old_rows_as_seed_0():
    done = [{"candidate": "a", "seed": 1, "outer": 1, "inner": 2},
            {"candidate": "a", "outer": 2, "inner": 3}]                # a row from before --seeds
    jobs = plan(["a="], [0, 1], "next", done, "data", 10)
    left = {(j[3], j[4]) for j in jobs}
    assert (1, 1) not in left and (0, 2) not in left and len(jobs) == 8


def test_table_gives_the_mean_over_runs_and_per_seed():
    rows = [{"candidate": "a", "seed": s, "outer": k, "inner": k % 5 + 1, "val_accuracy": 90.0 + s}
            for s in (1, 3) for k in range(1, 6)]
    text = table(rows)
    line = [l for l in text.splitlines() if l.startswith("| a |")][0]
    assert "| 92.00 |" in line and "s1 91.0, s3 93.0" in line and "92.0 (2)" in line


def test_a_preset_starts_every_candidate_and_separates_its_rows():
    from jaxprune.presets import preset_settings
    jobs = plan(["a=model.channels=16"], [0], "next", [], "data", 10, "c8")
    assert jobs[0][2] == [*preset_settings("sbu", "c8"), "model.channels=16"] and jobs[0][7] == "c8"
    done = [{"candidate": "a", "seed": 0, "outer": 1, "inner": 2}]   # a row from before --preset: preset none
    assert len(plan(["a="], [0], "next", done, "data", 10, "c8")) == 5
    assert len(plan(["a="], [0], "next", done, "data", 10)) == 4
    rows = [{"candidate": "a", "seed": 0, "outer": 1, "inner": 2, "val_accuracy": 80.0},
            {"candidate": "a", "preset": "c8", "seed": 0, "outer": 1, "inner": 2, "val_accuracy": 90.0}]
    text = table(rows)
    assert "| a [none] |" in text and "| a [c8] |" in text


def test_nested_selection_picks_per_fold_and_keeps_presets_apart(tmp_path):
    import json
    from experiments.sbu_dense import select_per_fold
    rows = [{"candidate": "a", "overrides": ["x=1"], "outer": 1, "inner": 2, "val_accuracy": 80.0},
            {"candidate": "a", "preset": "c8", "overrides": ["p=1", "x=1"], "outer": 1, "inner": 2, "val_accuracy": 90.0},
            {"candidate": "a", "overrides": ["x=1"], "outer": 2, "inner": 3, "val_accuracy": 95.0},
            {"candidate": "a", "preset": "c8", "overrides": ["p=1", "x=1"], "outer": 2, "inner": 3, "val_accuracy": 85.0}]
    log = tmp_path / "validation.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert select_per_fold(log) == {1: ("a [c8]", ["p=1", "x=1"]), 2: ("a", ["x=1"])}


def test_table_pairs_each_candidate_with_the_first_by_split():
    rows = [{"candidate": c, "seed": s, "outer": k, "inner": k % 5 + 1, "val_accuracy": 90.0 + k + d + 0.1 * s}
            for c, d in (("base", 0.0), ("b", 2.0)) for s in (0, 1) for k in range(1, 6)]
    rows.append({"candidate": "c", "seed": 0, "outer": 1, "inner": 2, "val_accuracy": 50.0})
    lines = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in table(rows).splitlines()[2:]}
    assert lines == {"base": "-", "b": "+2.00 ± 0.00 win", "c": "-41.00 one pair: no verdict"}
    assert "− base, paired |" in table(rows).splitlines()[0]
