"""``--overwrite`` keeps the old run intact and loadable until the new one has finished (issue 18,
group 2): the new run trains in ``<out>.overwrite`` and replaces ``<out>`` only at its end. Killed
(SIGKILL) just after it started, after its first checkpoint and while it evaluates, it leaves
every file of the old run byte-identical; resumed, it finishes and takes the old run's place."""

import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import CHEAP_COMPILE
from jaxprune.cli import main

TINY = ["--dataset", "synthetic", "--method", "dense", "--quiet", "--set", "model.channels=4",
        "--set", "model.hidden=16", *CHEAP_COMPILE]


def _snapshot(run: Path) -> dict:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _kill_when(argv: list[str], marker: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "jaxprune.cli", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert marker.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "timed out"
    proc.kill()
    proc.wait()


def test_an_interrupted_overwrite_leaves_the_old_run_intact(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(run)]) == 0
    old = _snapshot(run)
    staged = tmp_path / "run.overwrite"
    new = ["train", *TINY, "--epochs", "20", "--set", "train.checkpoint_every=10", "--out", str(run), "--overwrite"]
    for marker in (staged / "run.json", staged / "fold1" / "checkpoints" / "10",
                   staged / "fold1" / "checkpoints" / "20"):   # started; first checkpoint; evaluating
        _kill_when(new, marker)
        assert _snapshot(run) == old, f"killed at {marker.relative_to(tmp_path)}"
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--rates", "0"]) == 0   # the old run still serves
    assert main(["train", "--resume", str(run)]) == 2
    assert f"continue that one with --resume {staged}" in capsys.readouterr().err

    assert main(["train", "--resume", str(staged), "--quiet"]) == 0   # the new run finishes and moves in
    assert f"results: {run}/results.json" in capsys.readouterr().out
    assert not staged.exists() and not (tmp_path / "run.replaced").exists()
    info = json.loads((run / "run.json").read_text())
    assert info["config"]["train"]["epochs"] == 20 and info["replaces"] == "run"
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 20 and len((run / "fold1" / "metrics.jsonl").read_text().splitlines()) == 20
    assert main(["eval", "--run", str(run), "--rates", "0"]) == 0


def test_an_overwrite_that_finishes_replaces_the_folder_whole(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(run)]) == 0
    assert main(["train", *TINY, "--epochs", "3", "--out", str(run), "--overwrite"]) == 0
    assert json.loads((run / "results.json").read_text())["epochs"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert len((run / "fold1" / "metrics.jsonl").read_text().splitlines()) == 3
