"""Checkpoints and resume (jaxprune.checkpoint, runner.resume, ``jaxprune train --resume``): a run
stopped in-process, killed by SIGKILL from outside, or killed while saving ends, once resumed, with
the same parameters bit for bit as an uninterrupted run; mismatched or damaged checkpoints are
refused with one clear line and left on disk; the same seed gives the same figures."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CHEAP_COMPILE, CHEAP_SETTING, train_until
from jaxprune import checkpoint, runner
from jaxprune.cli import main
from jaxprune.config import override
from jaxprune.data.synthetic import make_synthetic
from jaxprune.optim import make_optimizer
from jaxprune.run_config import RunConfig
from jaxprune.run_folder import RunExistsError
from jaxprune.runner import resume, run
from jaxprune.train import TrainConfig, init_state

REPO = Path(__file__).resolve().parents[1]
EPOCHS, EVERY, STOP = 40, 5, 20
SETTINGS = ["--set", "model.channels=4", "--set", "model.hidden=16", "--set", f"train.epochs={EPOCHS}",
            "--set", f"train.checkpoint_every={EVERY}", *CHEAP_COMPILE]


def train_args(out, *extra):
    return ["train", "--dataset", "synthetic", "--out", str(out), "--quiet", *SETTINGS, *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(train_args(out)) == 0
    return out


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A run stopped after epoch STOP (its checkpoint written), as a killed process leaves it."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    train_until(train_args(out), STOP)
    return out


def copy_of(src, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


def figures(results: dict):
    return [(r["fold"], r["rates"]) for r in results["runs"]], results["summary"]


def assert_same_run(out, ref):
    """Bit-identical params, the same results.json figures and the same metrics.jsonl."""
    with np.load(out / "fold1" / "model.npz") as a, np.load(ref / "fold1" / "model.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        worst = max(float(np.max(np.abs(a[k] - b[k]), initial=0.0)) for k in a.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert worst == 0.0
    print(f"{out}: max |param difference| to the uninterrupted run {worst}")
    got, want = (json.loads((d / "results.json").read_text()) for d in (out, ref))
    assert figures(got) == figures(want)
    assert got["config"] == want["config"] and got["epochs"] == EPOCHS
    lines = (out / "fold1" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(1, EPOCHS + 1))
    assert lines == (ref / "fold1" / "metrics.jsonl").read_text().splitlines()


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x.startswith("jaxprune: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_stopped_run_resumes_bit_identical(stopped, reference, tmp_path):
    out = copy_of(stopped, tmp_path)
    assert not (out / "results.json").exists()
    assert checkpoint.latest_epoch(out / "fold1" / "checkpoints") == STOP
    assert sorted(p.name for p in (out / "fold1" / "checkpoints").iterdir()) == [str(STOP - EVERY), str(STOP)]
    assert len((out / "fold1" / "metrics.jsonl").read_text().splitlines()) == STOP
    results = resume(out, progress=False)
    assert_same_run(out, reference)
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert checkpoint.latest_epoch(out / "fold1" / "checkpoints") == EPOCHS


def test_killed_process_resumes_bit_identical(reference, tmp_path, capsys):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "jaxprune.cli", *train_args(out)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = out / "fold1" / "checkpoints"
    try:
        deadline = time.monotonic() + 120
        while not (ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()          # killed mid-way
    killed_at = checkpoint.latest_epoch(ckpts)
    assert killed_at is not None and killed_at < EPOCHS
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert str(out / "results.json") in capsys.readouterr().out
    print(f"killed by SIGKILL with the checkpoint of epoch {killed_at} on disk")
    assert_same_run(out, reference)


KILL_WHILE_SAVING = r"""
import os, signal, sys
import orbax.checkpoint as ocp
from jaxprune import cli

real = ocp.JsonCheckpointHandler.async_save

async def async_save(self, directory, item=None, args=None):   # dies while orbax writes epoch KILL_AT
    if args is not None and args.item.get("epoch") == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return await real(self, directory, item, args)

ocp.JsonCheckpointHandler.async_save = async_save
sys.exit(cli.main(sys.argv[1:]))
"""


def test_kill_while_saving_keeps_previous_checkpoint(reference, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILL_WHILE_SAVING, *train_args(out)], cwd=REPO,
                          env={**os.environ, "KILL_AT": str(STOP)}, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    ckpts = out / "fold1" / "checkpoints"
    assert list(ckpts.glob(f"{STOP}.orbax-checkpoint-tmp*"))    # the half-written save is there
    assert not (ckpts / str(STOP)).exists()
    assert checkpoint.latest_epoch(ckpts) == STOP - EVERY        # and ignored
    resume(out, progress=False)
    assert_same_run(out, reference)


def test_other_method_checkpoint_is_refused_and_kept(stopped, tmp_path, capsys):
    out = copy_of(stopped, tmp_path)
    config = json.loads((out / "run.json").read_text())["config"]
    opt = make_optimizer(1e-3, "constant", 10)
    other = init_state({"w": jnp.ones((2, 3))}, opt, jax.random.key(0))   # the newest step: an mrmp run's
    checkpoint.save(out / "fold1" / "checkpoints", STOP + EVERY, other, method="mrmp",
                    config={**config, "method": "mrmp"})
    before = snapshot(out)
    line = error_line(capsys, ["train", "--resume", str(out)])
    assert str(out / "fold1" / "checkpoints" / str(STOP + EVERY)) in line
    assert "saved by method mrmp, this run is dense" in line
    assert snapshot(out) == before                       # nothing deleted or changed
    with pytest.raises(ValueError, match="method mrmp"):
        resume(out, progress=False)


def test_other_shapes_and_settings_are_refused(tmp_path):
    opt = make_optimizer(1e-3, "constant", 10)

    def state(n):
        return init_state({"w": jnp.ones((n, 3)), "b": jnp.zeros(3)}, opt, jax.random.key(0))
    cfg = {"method": "dense", "train": {"epochs": 10}}
    checkpoint.save(tmp_path, 4, state(2), method="dense", config=cfg)
    restored, meta = checkpoint.restore(tmp_path, state(2), method="dense", config=cfg)
    assert meta["epoch"] == 4
    assert jax.random.key_impl(restored.key) == jax.random.key_impl(state(2).key)
    np.testing.assert_array_equal(jax.random.key_data(restored.key), jax.random.key_data(state(2).key))
    with pytest.raises(ValueError, match=r"checkpoint .*4: leaf \['params'\]\['w'\] has shape \(2, 3\)"):
        checkpoint.restore(tmp_path, state(5), method="dense", config=cfg)
    with pytest.raises(ValueError, match=r"other settings: train.epochs=10 there, 20 here"):
        checkpoint.restore(tmp_path, state(2), method="dense", config={"method": "dense", "train": {"epochs": 20}})
    # a setting added since the checkpoint was saved (absent there) is not a difference
    newer = {"method": "dense", "train": {"epochs": 10, "added_later": 3}}
    assert checkpoint.restore(tmp_path, state(2), method="dense", config=newer)[1]["epoch"] == 4
    assert checkpoint.latest_epoch(tmp_path) == 4


@pytest.mark.parametrize("damage", ["arrays", "metadata"])
def test_damaged_checkpoint_is_refused_and_kept(stopped, tmp_path, capsys, damage):
    out = copy_of(stopped, tmp_path)
    step = out / "fold1" / "checkpoints" / str(STOP)
    files = [p for p in (step / "state").rglob("*") if p.is_file() and p.parent.name == "d"] \
        if damage == "arrays" else [step / "meta" / "metadata"]
    assert files
    for p in files:
        p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2] + b"garbage")
    before = snapshot(out)
    line = error_line(capsys, ["train", "--resume", str(out)])
    assert str(step) in line and "damaged" in line
    assert snapshot(out) == before


def test_same_seed_same_figures(reference, tmp_path):
    again = tmp_path / "again"
    assert main(train_args(again)) == 0
    got, want = (json.loads((d / "results.json").read_text()) for d in (again, reference))
    assert figures(got) == figures(want)
    assert (again / "fold1" / "metrics.jsonl").read_text() == (reference / "fold1" / "metrics.jsonl").read_text()


def test_finished_folds_are_skipped(tmp_path, monkeypatch):
    """Killed after fold 2's final checkpoint, before its rows.json: fold 1 is not retrained,
    fold 2 is only evaluated, and the figures are those of the uninterrupted run."""
    data = make_synthetic(per_class=6, num_classes=4, min_len=6, max_len=12)
    data = dataclasses.replace(data, folds=np.where(np.arange(len(data.labels)) % 2, 1, 2).astype(np.int32))
    config = override(RunConfig(train=TrainConfig(epochs=3, batch_size=8)),
                      ["model.channels=4", "model.hidden=16", CHEAP_SETTING])
    out = tmp_path / "run"
    first = run(data, config, out_dir=out, progress=False)
    (out / "results.json").unlink()
    (out / "fold2" / "rows.json").unlink()
    trained = []
    real = runner.train_fold
    monkeypatch.setattr(runner, "train_fold", lambda d, f, *a, **k: trained.append(f) or real(d, f, *a, **k))
    with pytest.raises(ValueError, match="other data"):
        resume(out, progress=False)                       # the run.json records which data it was
    again = resume(out, dataset=data, progress=False)
    assert trained == [2]
    assert figures(again) == figures(first)
    assert len((out / "fold2" / "metrics.jsonl").read_text().splitlines()) == 3


def test_refusals(stopped, reference, tmp_path, capsys):
    line = error_line(capsys, ["train", "--resume", str(tmp_path / "nothing")])
    assert "run.json" in line and "not found" in line
    line = error_line(capsys, ["train", "--resume", str(reference)])
    assert "finished" in line
    line = error_line(capsys, ["train", "--resume", str(reference), "--set", "train.epochs=3"])
    assert "--set" in line
    out = copy_of(stopped, tmp_path)
    before = snapshot(out)
    line = error_line(capsys, train_args(out))           # a fresh run over a stopped one
    assert "--resume" in line and "--overwrite" in line
    assert snapshot(out) == before
    line = error_line(capsys, train_args(tmp_path / "x", "--set", "train.checkpoint_every=-1"))
    assert "checkpoint_every" in line and ">= 0" in line
    with pytest.raises(RunExistsError):
        resume(reference, progress=False)


@pytest.mark.parametrize("method", ["lottery", "gradual"])
def test_baseline_state_survives_a_resume(tmp_path, method):
    """A baseline's masks (and the lottery's rewind point) live in the train state: a run stopped
    mid-way and resumed ends bit-identical to an uninterrupted one."""
    extra = ["--method", method, "--set", "prune.rate=0.8"]
    ref = tmp_path / "ref"
    assert main(train_args(ref, *extra)) == 0
    out = tmp_path / "stopped"
    train_until(train_args(out, *extra), 25)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, ref)
