"""Multi-host training for real: two local processes (one CPU device each, gloo collectives) as two
hosts. A run launched as two processes, with one of them killed mid-run and the run resumed as two
processes again, ends with the parameters and accuracies of one process with two devices trained
without a stop; process 0 alone wrote the run's files; the survivor of the kill ends with one error
line; a start whose peer never comes ends with one error line."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from conftest import CHEAP_COMPILE

EPOCHS, EVERY = 20, 10
ARGS = ["--dataset", "synthetic", "--method", "dense", "--epochs", str(EPOCHS), "--fold", "1",
        "--set", "model.channels=4", "--set", "model.hidden=16",
        "--set", "train.batch_size=64", "--set", f"train.checkpoint_every={EVERY}", "--quiet", *CHEAP_COMPILE]


def _env(devices: int, cache: Path) -> dict:   # the resumed processes reuse the first ones' compilations
    return {**os.environ, "JAX_PLATFORMS": "cpu", "JAXPRUNE_PEER_TIMEOUT": "10", "JAX_COMPILATION_CACHE_DIR": str(cache),
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(args: list[str], i: int, n: int, port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jaxprune.cli", "train", *args, "--coordinator",
                             f"localhost:{port}", "--num-processes", str(n), "--process-id", str(i)],
                            stdout=open(log.with_suffix(".out"), "w"), stderr=open(log.with_suffix(".err"), "w"),
                            env=_env(1, log.parent / "cache"))


def _files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and "checkpoints" not in p.parts)


def test_two_processes_train_resume_and_survive_a_dead_peer(tmp_path):
    ref = tmp_path / "one_process"
    proc = subprocess.run([sys.executable, "-m", "jaxprune.cli", "train", *ARGS, "--out", str(ref)],
                          capture_output=True, text=True, env=_env(2, tmp_path / "cache"), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    run = tmp_path / "two_processes"
    port = _free_port()
    procs = [_start([*ARGS, "--out", str(run)], i, 2, port, tmp_path / f"p{i}") for i in range(2)]
    first = run / "fold1" / "checkpoints" / str(EVERY)
    deadline = time.time() + 300
    while not first.is_dir() and time.time() < deadline and procs[0].poll() is None:
        time.sleep(0.05)
    assert first.is_dir(), (tmp_path / "p0.err").read_text()[-3000:]
    procs[1].kill()
    procs[1].wait()
    killed = time.time()
    assert procs[0].wait(timeout=120) == 2
    assert time.time() - killed < 60   # bounded by the peer timeout of 10 s plus the collective's failure
    err = (tmp_path / "p0.err").read_text()
    assert err.count("jaxprune: error: process 0:") == 1 and "Traceback" not in err and "stack trace" not in err, err
    assert not (run / "results.json").exists()

    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "jaxprune.cli", "train", "--resume", str(run), "--coordinator",
                               f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(1, tmp_path / "cache"))
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "results.json" in outs[0][0] and outs[1][0] == ""   # process 0 reports; no gloo lines on stdout
    assert "[Gloo]" not in outs[0][0]

    assert _files(run) == _files(ref)   # one set of output files, as one process writes them
    rows = [json.loads(line) for line in (run / "fold1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    a, b = np.load(ref / "fold1" / "model.npz"), np.load(run / "fold1" / "model.npz")
    assert sorted(a.files) == sorted(b.files)
    diff = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a.files)
    assert diff <= 1e-5, diff   # measured: 0 (the same reductions in the same order)
    got, want = (json.loads((r / "results.json").read_text())["runs"][0]["rates"] for r in (run, ref))
    assert [(r["target_rate"], r["accuracy"], r["kept_params"]) for r in got] == \
        [(r["target_rate"], r["accuracy"], r["kept_params"]) for r in want]


def test_a_peer_that_never_starts_ends_the_start_with_one_line(tmp_path):
    env = {**_env(1, tmp_path / "cache"), "JAXPRUNE_START_TIMEOUT": "1"}
    proc = subprocess.run([sys.executable, "-m", "jaxprune.cli", "train", *ARGS, "--out", str(tmp_path / "run"),
                           "--coordinator", f"localhost:{_free_port()}", "--num-processes", "2", "--process-id", "0"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("jaxprune: error:") == 1, proc.stderr
    assert "multi-host start with coordinator" in proc.stderr and "JAXPRUNE_START_TIMEOUT" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
