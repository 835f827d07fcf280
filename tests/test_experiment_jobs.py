"""experiments.jobs: an output folder is used by one experiment at a time; finished jobs of another folder stand in for identical ones."""

import os
from pathlib import Path

import pytest

from experiments.jobs import FolderInUse, Job, lock_folder, run_jobs

fcntl = pytest.importorskip("fcntl", reason="folder locks need fcntl (POSIX)")


def test_a_second_experiment_in_the_same_folder_is_refused(tmp_path):
    first = lock_folder(tmp_path / "out")
    with pytest.raises(FolderInUse, match="is in use by another experiment"):
        lock_folder(tmp_path / "out")
    job = Job("sbu", "unused", "dense", "dense", (), 1, str(tmp_path / "out"))
    with pytest.raises(FolderInUse):       # refused before any job is looked at or trained
        run_jobs([job], workers=0)
    lock_folder(tmp_path / "other").close()   # other folders are free
    first.close()
    lock_folder(tmp_path / "out").close()     # released with its holder


def test_done_jobs_of_another_folder_stand_in_for_identical_ones(tmp_path):
    """reuse_done copies a finished job's rows.json only for the same method, fold, validation
    fold and settings; a job with any other setting is left to train."""
    import json
    from experiments.jobs import job_config, reuse_done
    other, here = tmp_path / "width", tmp_path / "compare"
    theirs = Job("sbu", "d", "dense_c64_s1", "dense", ("model.channels=64", "seed=1"), 2, str(other))
    theirs.rows_path().parent.mkdir(parents=True)
    theirs.rows_path().write_text(json.dumps({"fold": 2, "rates": [], "train_seconds": 1.0,
                                              "config": job_config(theirs).to_dict()}))
    same = Job("sbu", "d", "dense_s1", "dense", ("seed=1",), 2, str(here))              # the preset's C = 64
    other_seed = Job("sbu", "d", "dense_s2", "dense", ("seed=2",), 2, str(here))
    other_fold = Job("sbu", "d", "dense_s1", "dense", ("seed=1",), 3, str(here))
    validation = Job("sbu", "d", "dense_s1", "dense", ("seed=1",), 2, str(here), None, 3)
    assert reuse_done([same, other_seed, other_fold, validation], [other]) == 1
    assert same.rows_path().read_text() == theirs.rows_path().read_text()
    assert not any(j.rows_path().exists() for j in (other_seed, other_fold, validation))
    assert reuse_done([same], [other]) == 0                                             # done already


def test_a_run_saved_before_a_setting_existed_is_not_taken_for_todays(tmp_path):
    """The width grid kept CTF runs saved before prune.ctf_floor existed (trained without the
    floor); the comparison's --reuse copied them as today's CTF, whose floor is 0.005 (0.99: 14 %
    against 93 %). A saved config without such a setting reads back with the value it had then
    (run_config.SAVED_BEFORE): not reused, refused as done, and loaded with the floor off."""
    import json
    from experiments.jobs import check_done, job_config, reuse_done
    from jaxprune.run_config import load_run_config
    other, here = tmp_path / "width", tmp_path / "compare"
    for name, drop in (("ctf_paper_r0.99_s0", True), ("ctf_r0.99_s0", False)):   # the old run sorts first
        job = Job("sbu", "d", name, "ctf", ("prune.rate=0.99",), 1, str(other))
        config = job_config(job).to_dict()
        if drop:
            del config["prune"]["ctf_floor"]
        job.rows_path().parent.mkdir(parents=True)
        job.rows_path().write_text(json.dumps({"fold": 1, "rates": [], "train_seconds": 1.0, "config": config,
                                               "old": drop}))
    wanted = Job("sbu", "d", "ctf_r0.99_s0", "ctf", ("prune.rate=0.99",), 1, str(here))
    assert reuse_done([wanted], [other]) == 1
    assert json.loads(wanted.rows_path().read_text())["old"] is False            # today's run, not the old one
    old = json.loads((other / "ctf_paper_r0.99_s0" / "fold1" / "rows.json").read_text())
    wanted.rows_path().write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"prune.ctf_floor=0.0 there, 0.005 here"):
        check_done(wanted)
    assert load_run_config(old, wanted.rows_path()).prune.ctf_floor == 0.0
    mrmp = job_config(Job("sbu", "d", "mrmp_s0", "mrmp", (), 1, str(here))).to_dict()
    del mrmp["prune"]["kl_shift"], mrmp["prune"]["ctf_floor"]                      # before the grid's shift
    config = load_run_config({"config": mrmp}, wanted.rows_path())
    assert config.prune.kl_shift is False and config.prune.ctf_floor == 0.005   # mrmp never reads the floor


def test_a_run_saved_before_a_setting_existed_is_taken_at_its_default_then(tmp_path):
    """A setting added switched off reads back from a config that lacks it as its default: an MRMP
    run saved before prune.rate_weights was reused (and passed as done) for a job asking for
    weights 4,2 (2026-12-07, a validation round); now only for a job without weights."""
    import json
    from experiments.jobs import check_done, job_config, reuse_done
    other, here = tmp_path / "round", tmp_path / "probe"
    old = Job("sbu", "d", "split_long_s0", "mrmp", ("prune.rate_weights=",), 3, str(other), None, 4)
    config = job_config(old).to_dict()
    del config["prune"]["rate_weights"]
    old.rows_path().parent.mkdir(parents=True)
    old.rows_path().write_text(json.dumps({"fold": 3, "validation": 4, "rates": [], "train_seconds": 1.0,
                                           "config": config}))
    weighted = Job("sbu", "d", "weighted_s0", "mrmp", ("prune.rate_weights=4,2",), 3, str(here), None, 4)
    plain = Job("sbu", "d", "split_long_s0", "mrmp", ("prune.rate_weights=",), 3, str(here), None, 4)
    assert reuse_done([weighted, plain], [other]) == 1
    assert plain.rows_path().exists() and not weighted.rows_path().exists()
    check_done(plain)
    weighted.rows_path().parent.mkdir(parents=True)
    weighted.rows_path().write_text(old.rows_path().read_text())
    with pytest.raises(ValueError, match=r"prune.rate_weights=\[\] there, \[4.0, 2.0\] here"):
        check_done(weighted)


def test_pool_seeds_summarises_seeds_times_folds():
    from experiments.jobs import pairs_at, pool_seeds, seed_list
    row = lambda acc: {"target_rate": 0.9, "achieved_rate": 0.9, "accuracy": acc, "kept_params": 10, "flops": 100}  # noqa: E731
    results = {f"srmp_s{s}": {"runs": [{"fold": k, "rates": [row(80.0 + 10 * s + k)]} for k in (1, 2)],
                              "train_seconds": 5.0, "config": {"seed": s}} for s in (0, 1)}
    pooled = pool_seeds(results, ["srmp", "ctf"], [0, 1, 2])
    assert list(pooled) == ["srmp"] and pooled["srmp"]["seeds"] == [0, 1]          # seed 2 not done, no ctf
    (summary,) = pooled["srmp"]["summary"]
    assert summary["folds"] == 4 and summary["accuracy_mean"] == 86.5 and pooled["srmp"]["train_seconds"] == 10.0
    assert [r["seed"] for r in pooled["srmp"]["runs"]] == [0, 0, 1, 1]
    assert pairs_at(pooled["srmp"], 0.9) == {(0, 1): 81.0, (0, 2): 82.0, (1, 1): 91.0, (1, 2): 92.0}
    assert pairs_at(pooled["srmp"], 0.5) == {} and pairs_at(pooled.get("ctf"), 0.9) == {}
    assert seed_list("0, 1,2") == [0, 1, 2]
    with pytest.raises(SystemExit, match="--seeds: expected comma-separated integers"):
        seed_list("a,b")


def _cache_settings(env: dict) -> list[str]:
    """What experiments.compile_cache.use_compile_cache sets in a fresh process with ``env``."""
    import subprocess
    import sys
    code = ("import jax; from experiments.compile_cache import use_compile_cache; f = use_compile_cache(); "
            "print(f); print(jax.config.jax_compilation_cache_dir if jax.config.jax_enable_compilation_cache "
            "else None); print(jax.config.jax_persistent_cache_min_compile_time_secs)")
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "JAXPRUNE_COMPILE"))}
    done = subprocess.run([sys.executable, "-c", code], env={**keep, **env}, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], check=True)
    return done.stdout.split()


def test_grids_share_compiled_programs_through_a_per_machine_cache(tmp_path):
    from importlib.metadata import version
    folder, in_jax, min_secs = _cache_settings({"XDG_CACHE_HOME": str(tmp_path)})
    assert folder == in_jax and folder.startswith(str(tmp_path / "jaxprune" / f"xla-{version('jax')}-"))
    assert float(min_secs) == 0.0                           # every program, however quick its compile
    mine = str(tmp_path / "mine")
    assert _cache_settings({"JAX_COMPILATION_CACHE_DIR": mine})[:2] == [mine, mine]   # the user's folder wins
    assert _cache_settings({"JAXPRUNE_COMPILE_CACHE": "0", "XDG_CACHE_HOME": str(tmp_path)})[:2] == ["None", "None"]
    assert _cache_settings({"JAXPRUNE_COMPILE_CACHE": "0", "JAX_COMPILATION_CACHE_DIR": mine})[:2] == ["None", "None"]
