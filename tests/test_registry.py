"""The method registry (issue 15): one builder signature, a user's own pruner through the same
training, results and serving paths, and settings of another method refused by name."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CHEAP_SETTING
from jaxprune.config import SettingError, override
from jaxprune.datasets import load_dataset
from jaxprune.methods import REGISTRY, check_settings, make_pruner, register
from jaxprune.methods.config import PruneConfig
from jaxprune.run_config import RunConfig
from jaxprune.runner import run
from jaxprune.serving import evaluate_run


# A user's method as its own module: zeroes every other entry of each prunable kernel (rate 0.5,
# fixed); importing it registers 'halves'.
PLUGIN = '''
import jax, jax.numpy as jnp, flax.struct
from typing import Any
from jaxprune.methods import register
from jaxprune.methods.base import Stateless, at_trained_rate


@flax.struct.dataclass
class Halves(Stateless):
    prunable: Any = flax.struct.field(pytree_node=False)
    trained_rates: tuple = flax.struct.field(pytree_node=False, default=(0.5,))
    serves_any_rate: bool = flax.struct.field(pytree_node=False, default=False)

    def masks(self, params):
        return jax.tree.map(lambda w, k: (jnp.arange(w.size).reshape(w.shape) % 2).astype(w.dtype) if k else None,
                            params, self.prunable)

    def train_masks(self, params, prune_state, key, step):
        return self.masks(params)

    def hard_masks(self, params, rates):
        return at_trained_rate(self.masks(params), rates, 0.5, "halves")

    def layer_rates(self, params, rates):
        return None


register("halves", lambda params, prunable, prune, total_steps, blocks: Halves(prunable),
         trained_rates=lambda prune: (0.5,))
'''


@pytest.fixture
def halves(tmp_path, monkeypatch):
    """The user's method module (PLUGIN), imported: its import registers 'halves'."""
    import importlib
    import sys
    (tmp_path / "halves_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("halves_plugin", None)
    importlib.import_module("halves_plugin")
    yield
    REGISTRY.pop("halves", None)
    sys.modules.pop("halves_plugin", None)


def test_a_registered_method_trains_saves_and_serves_through_the_runner(halves, tmp_path):
    config = override(RunConfig(method="halves"),
                      ["train.epochs=2", "model.channels=4", "model.hidden=8", CHEAP_SETTING])
    data = load_dataset("synthetic", None, seed=0)          # as evaluate_run reloads it
    results = run(data, config, folds=[1], out_dir=tmp_path / "run", progress=False, loader="synthetic")
    (row,) = results["runs"][0]["rates"]
    assert row["target_rate"] == 0.5 and row["achieved_rate"] == pytest.approx(0.5, abs=0.01)
    again = evaluate_run(tmp_path / "run", [0.5])             # restored from model.npz by the registry
    assert again["runs"][0]["rates"][0]["accuracy"] == row["accuracy"]


def test_a_setting_of_another_method_is_refused_with_its_name():
    with pytest.raises(ValueError, match=r"method mrmp does not read prune\.ctf_weight.*mrmp reads prune\.rates"):
        RunConfig(method="mrmp", prune=PruneConfig(ctf_weight=1.0))
    with pytest.raises(SettingError, match=r"prune\.kl_weight"):
        override(RunConfig(method="ctf"), ["prune.kl_weight=3"])
    with pytest.raises(ValueError, match="dense reads no prune setting"):
        make_pruner("dense", {"w": np.ones((2, 2))}, prune=PruneConfig(rate=0.5))
    check_settings("ctf", PruneConfig(rate=0.5, ctf_weight=3.0, sigma_end=50.0))   # its own: accepted
    with pytest.raises(ValueError, match=r"\['nonsense'\] are not PruneConfig settings"):
        register("bad", lambda *a: None, settings=("rate", "nonsense"))
    assert "bad" not in REGISTRY


def test_an_experiments_set_applies_to_the_methods_that_read_it():
    """experiments.jobs: one --set over several methods goes to those that read it; a prune
    setting that none of them reads is refused, naming it."""
    from experiments.jobs import Job, check_read, for_method
    overrides = ("train.epochs=3", "prune.eval_rates=0.7", "prune.nonsense=1")
    assert for_method("dense", overrides) == ["train.epochs=3", "prune.nonsense=1"]   # unknown: left to refuse
    assert for_method("mrmp", overrides) == list(overrides)
    jobs = [Job("sbu", "", "r", m, ("prune.ctf_weight=3",), 1, "out") for m in ("dense", "mrmp")]
    with pytest.raises(ValueError, match=r"prune.ctf_weight=3: none of this experiment's methods \(dense, mrmp\)"):
        check_read(jobs)
    check_read([*jobs, Job("sbu", "", "c", "ctf", (), 1, "out")])


def test_an_installed_plugin_adds_a_method_to_the_command_line(tmp_path, monkeypatch, capsys):
    """A package's entry point in the 'jaxprune.methods' group registers its method on import:
    `jaxprune train --method <it>` then trains it; a plugin that fails to import is one error line."""
    import importlib.metadata
    import json
    from jaxprune.cli import main
    import sys
    (tmp_path / "halves_plugin.py").write_text(PLUGIN)
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('missing weights file')\n")
    sys.modules.pop("halves_plugin", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = [importlib.metadata.EntryPoint("halves", "halves_plugin", "jaxprune.methods")]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: plugins if group == "jaxprune.methods" else [])
    try:
        assert main(["train", "--method", "halves", "--epochs", "1", "--fold", "1", "--set", "model.channels=4",
                     "--out", str(tmp_path / "run"), "--quiet"]) == 0
        results = json.loads((tmp_path / "run" / "results.json").read_text())
        assert results["method"] == "halves" and results["summary"][0]["achieved_rate"] == pytest.approx(0.5, abs=0.01)
        plugins.append(importlib.metadata.EntryPoint("broken", "broken_plugin", "jaxprune.methods"))
        capsys.readouterr()
        assert main(["settings"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["jaxprune: error: jaxprune method plugin 'broken' (broken_plugin) failed to load: "
                       "missing weights file"]
    finally:
        REGISTRY.pop("halves", None)
        sys.modules.pop("halves_plugin", None)


@pytest.mark.parametrize("name", ["dense", "mrmp", "ctf", "magnitude"])
def test_every_methods_hard_masks_are_jittable_in_the_rates(name):
    """(issue 15) masks at a traced vector of rates, for every kind of method: one compiled call
    gives the same masks as the eager one, None at the dense leaves."""
    params = {"hidden": {"kernel": jax.random.normal(jax.random.key(0), (6, 5)), "bias": jnp.zeros(5)},
              "out": {"kernel": jax.random.normal(jax.random.key(1), (5, 3)), "bias": jnp.zeros(3)}}
    prune = {"dense": PruneConfig(), "mrmp": PruneConfig(rates=(0.5, 0.9)),
             "ctf": PruneConfig(rate=0.9, ctf_blocks="none")}.get(name, PruneConfig(rate=0.9))
    pruner = make_pruner(name, params, prune=prune, total_steps=10)
    pruner = pruner.finish(pruner.init(params, jax.random.key(2)))
    rates = jnp.array([0.0 if name == "dense" else 0.9] * 2)
    eager, jitted = pruner.hard_masks(params, rates), jax.jit(pruner.hard_masks)(params, rates)
    jax.tree.map(np.testing.assert_array_equal, eager, jitted)
    assert jax.tree.leaves(jitted)[0].shape[0] == 2
