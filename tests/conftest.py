"""Shared fixtures: where the real SBU data is (skip with a reason when it is absent); one XLA
compilation cache for the whole test session."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """A fresh compilation cache shared by every test, xdist worker and subprocess of this session:
    many tests compile the same small programs, and XLA's compile time dominates them. XLA's
    backend compiles at optimisation level 0 for the same reason (tiny shapes run in microseconds
    either way; the MRMP and baseline tests take 22 % less time). Level 0 rounds differently in the
    last bits (5 synthetic MRMP epochs: 4e-5 in a parameter, same accuracies), so tests compare
    runs made under the same flags, never with figures of an optimised build. (The controlling
    process sets both before the workers start; they and the tests' subprocesses inherit them.)"""
    if hasattr(config, "workerinput"):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    config._jaxprune_cache = tempfile.mkdtemp(prefix="jaxprune-test-compile-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = config._jaxprune_cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")


def pytest_unconfigure(config):
    cache = getattr(config, "_jaxprune_cache", None)
    if cache:
        shutil.rmtree(cache, ignore_errors=True)


def sbu_dir() -> Path | None:
    """$JAXPRUNE_SBU_DIR, else ../shared/data/sbu beside the repository, if it exists."""
    env = os.environ.get("JAXPRUNE_SBU_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "sbu"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def sbu_path() -> Path:
    path = sbu_dir()
    if path is None:
        pytest.skip("real SBU data not found: set JAXPRUNE_SBU_DIR or place it at ../shared/data/sbu")
    return path


@pytest.fixture(scope="session")
def sbu(sbu_path):
    from jaxprune.data.sbu import load_sbu
    return load_sbu(sbu_path)


# Tests whose subject is not the attention's gradient train with XLA's own backward: the default
# per-pair backward (model.attention_backward=edges) adds 15-20 s of compilation to every train
# program (3 blocks, SBU graph; it unrolls the graph's 88 pairs), which runs of a few epochs never
# earn back (a 40-epoch magnitude run beside a training on the 2-core CPU: 49 s with it, 17 s
# without). The methods, run folders, checkpoints, processes, command line, experiments and
# hostile input all take it. The methods
# only mask the parameters the blocks read, so nothing of theirs depends on the backward's form:
# test_edge_attention shows the two forms give the same loss and gradients (also under the vmap
# over masked parameter copies MRMP takes), and the default stays on in it, in the multi-device
# MRMP test (test_parallel) and in the real-data run of the default network (test_sbu_end_to_end).
CHEAP_SETTING = "model.attention_backward=autodiff"
CHEAP_COMPILE = ["--set", CHEAP_SETTING]
TINY_RUN = ["--set", "train.epochs=20", "--set", "model.channels=4", "--set", "model.hidden=16", "--quiet",
            *CHEAP_COMPILE]


@pytest.fixture(scope="session")
def tiny_mrmp_run(tmp_path_factory) -> Path:
    """A finished MRMP run on the synthetic data at rates 0.5 and 0.9 (C = 4, 20 epochs), its
    folder with results.json and fold1/model.npz. Shared: tests read it and never write there."""
    from jaxprune.cli import main
    out = tmp_path_factory.mktemp("tiny_mrmp") / "run"
    assert main(["train", "--dataset", "synthetic", "--method", "mrmp", "--rates", "0.5,0.9",
                 "--out", str(out), *TINY_RUN]) == 0
    return out


class Stopped(Exception):
    """Stands for a process that died right after writing one epoch's checkpoint."""


def train_until(argv, epoch: int) -> None:
    """Runs ``jaxprune`` with ``argv`` and stops it right after epoch ``epoch``'s checkpoint, as a
    killed process leaves its run folder (``runner.fit`` patched for the call only)."""
    from jaxprune import runner
    from jaxprune.cli import main
    real_fit = runner.fit

    def stopping_fit(*args, on_epoch_end, **kwargs):
        def end(done, state):
            on_epoch_end(done, state)
            if done == epoch:
                raise Stopped
        return real_fit(*args, on_epoch_end=end, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "fit", stopping_fit)
        with pytest.raises(Stopped):
            main(argv)
