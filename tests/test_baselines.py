"""The baselines (jaxprune.masks.hard rules and jaxprune.methods.baselines): exact mask counts on
hand-made weights, the schedules, and every baseline trained briefly through the common runner,
landing on its rate, with its masks saved and served."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CHEAP_SETTING
from jaxprune.config import override
from jaxprune.data.synthetic import make_synthetic
from jaxprune.masks.hard import column_masks, magnitude_masks, random_masks, snip_masks
from jaxprune.methods import make_pruner
from jaxprune.methods.baselines import BASELINES
from jaxprune.methods.config import PruneConfig
from jaxprune.run_config import RunConfig
from jaxprune.runner import train_fold
from jaxprune.serving import evaluate_run

PARAMS = {"a": {"kernel": jnp.array([[0.1, -0.5], [0.3, 0.05]]), "bias": jnp.array([9.0, 9.0])},
          "b": {"kernel": jnp.array([[1.0, -2.0, 0.2], [0.01, 0.4, -0.35]]), "bias": jnp.zeros(3)}}
PRUNABLE = {"a": {"kernel": True, "bias": False}, "b": {"kernel": True, "bias": False}}


def test_magnitude_layer_and_global():
    layer = magnitude_masks(PARAMS, PRUNABLE, 0.5, "layer")
    assert layer["a"]["bias"] is None
    np.testing.assert_array_equal(layer["a"]["kernel"], [[0, 1], [1, 0]])
    np.testing.assert_array_equal(layer["b"]["kernel"], [[1, 1, 0], [0, 1, 0]])
    glob = magnitude_masks(PARAMS, PRUNABLE, 0.5, "global")      # 10 weights: keep the 5 largest
    np.testing.assert_array_equal(glob["a"]["kernel"], [[0, 1], [0, 0]])
    np.testing.assert_array_equal(glob["b"]["kernel"], [[1, 1, 0], [0, 1, 1]])
    traced = jax.jit(lambda r: magnitude_masks(PARAMS, PRUNABLE, r, "global"))(0.5)   # rate may be traced
    np.testing.assert_array_equal(traced["b"]["kernel"], glob["b"]["kernel"])


def test_random_snip_and_columns():
    rnd = random_masks(jax.random.key(0), PARAMS, PRUNABLE, 0.5)
    assert float(rnd["a"]["kernel"].sum()) == 2 and float(rnd["b"]["kernel"].sum()) == 3
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    snip = snip_masks(grads, PARAMS, PRUNABLE, 0.5)          # |g·w| = |w| here: global magnitude
    np.testing.assert_array_equal(snip["b"]["kernel"], magnitude_masks(PARAMS, PRUNABLE, 0.5, "global")["b"]["kernel"])
    cols = column_masks(PARAMS, PRUNABLE, 0.5)               # columns of 2 weights; keep <= 5 weights
    kept = float(cols["a"]["kernel"].sum() + cols["b"]["kernel"].sum())
    assert kept == 4                                          # two whole columns fit
    np.testing.assert_array_equal(cols["b"]["kernel"][:, :2], [[1, 1], [1, 1]])   # the largest columns


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(seed=0)


SMALL = ["model.channels=4", "model.hidden=32", "train.learning_rate=0.01", "train.epochs=40", CHEAP_SETTING]


@pytest.mark.parametrize("method", BASELINES)
def test_every_baseline_trains_to_its_rate(synthetic, tmp_path, method):
    regularised = ["prune.reg_weight=0.01"] if method in ("l1", "group_lasso") else []
    config = override(RunConfig(method=method), [*SMALL, "prune.rate=0.8", *regularised])
    result = train_fold(synthetic, 1, config, out_dir=tmp_path, progress=False)
    row = result["rates"][0]
    assert row["target_rate"] == 0.8
    tolerance = 0.06 if method in ("structured", "group_lasso") else 0.005      # whole columns: coarser
    assert abs(row["achieved_rate"] - 0.8) <= tolerance, row["achieved_rate"]
    assert row["accuracy"] > 100 / synthetic.num_classes + 5, row["accuracy"]
    if method in ("structured", "group_lasso"):
        assert row["structured_fraction"] > 0.95


def test_served_from_disk_and_rate_checked(synthetic, tmp_path):
    from jaxprune.runner import run
    config = override(RunConfig(method="magnitude"), [*SMALL, "train.epochs=10", "prune.rate=0.7"])
    results = run(synthetic, config, out_dir=tmp_path / "run", progress=False)
    again = evaluate_run(tmp_path / "run", [0.7])
    assert again["runs"][0]["rates"][0]["accuracy"] == results["runs"][0]["rates"][0]["accuracy"]
    with pytest.raises(ValueError, match="serves its trained rate"):
        evaluate_run(tmp_path / "run", [0.5])


def test_schedules_prune_at_the_right_steps():
    params = {"w": jax.random.normal(jax.random.key(0), (20, 10))}
    prunable = {"w": True}
    one_shot = make_pruner("magnitude", params, prunable, PruneConfig(rate=0.9, finetune_fraction=0.5), 100)
    state = one_shot.init(params, jax.random.key(1))
    _, before = one_shot.update_fn(params, state, 49)
    _, after = one_shot.update_fn(params, state, 50)
    assert float(before["masks"]["w"].mean()) == 1.0 and float(after["masks"]["w"].mean()) == pytest.approx(0.1)
    gradual = make_pruner("gradual", params, prunable, PruneConfig(rate=0.9, finetune_fraction=0.5, gradual_updates=4),
                          100)
    state = gradual.init(params, None)
    update = jax.jit(gradual.update_fn)                                    # as training runs it (eager: 15 s)
    kept = []
    for step in range(1, 101):
        _, state = update(params, state, step)
        kept.append(float(state["masks"]["w"].mean()))
    assert kept[9] == 1.0 and kept[19] < 1.0 and kept[48] > 0.1 and kept[49] == pytest.approx(0.1) and kept[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(kept, kept[1:]))                     # monotone: never regrows
    lottery = make_pruner("lottery", params, prunable, PruneConfig(rate=0.9, lottery_rounds=3, rewind_fraction=0.1), 99)
    state = lottery.init(params, None)
    trained = jax.tree.map(lambda w: w * 3.0, params)                      # "training" moved the weights
    p, state = lottery.update_fn(params, state, 3)                          # rewind point: step 3
    p, state = lottery.update_fn(trained, state, 33)                        # end of round 1: prune, rewind
    assert float(state["masks"]["w"].mean()) == pytest.approx(np.sqrt(0.1), abs=0.01)   # kept (1 − r)^(1/2)
    np.testing.assert_allclose(p["w"], params["w"] * state["masks"]["w"])    # survivors back at step 3
