"""The CTF method (jaxprune.methods.ctf): the budget drives the achieved rate to the target in a short
run, for the full mask and both ablations; it serves its trained rate only; save, eval and export."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CHEAP_COMPILE, CHEAP_SETTING
from jaxprune.cli import main
from jaxprune.config import override
from jaxprune.data.synthetic import make_synthetic
from jaxprune.methods import make_pruner, pruner_arrays, restore_pruner
from jaxprune.methods.config import PruneConfig
from jaxprune.models import gcn
from jaxprune.models.export import load_compact
from jaxprune.run_config import RunConfig
from jaxprune.runner import train_fold
from jaxprune.serving import evaluate_run
from jaxprune.task.loss import task_loss

SMALL = ["model.channels=4", "model.hidden=32", "train.learning_rate=0.01"]


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(seed=0)


@pytest.mark.parametrize("rate,factors", [(0.9, "block,column,row,entry"), (0.5, "block,column,row,entry"),
                                          (0.9, "entry"), (0.9, "block,column,row")])
def test_budget_reaches_the_target_rate(synthetic, rate, factors):
    # structured factors alone on this 4-channel net: the paper's objective (floor 0). With the
    # default floor, seed 0 went to chance (12.5 %, the floor binding for a while in training);
    # seeds 1-3 gave the paper's result bit for bit (README "Measured", CTF floor)
    floor = ["prune.ctf_floor=0"] if factors == "block,column,row" else []
    config = override(RunConfig(method="ctf"), [*SMALL, "train.epochs=80", f"prune.rate={rate}",
                                                 f"prune.ctf_factors={factors}", *floor, CHEAP_SETTING])
    result = train_fold(synthetic, 1, config, progress=False)
    row = result["rates"][0]
    assert row["target_rate"] == rate and row["trained"]
    assert abs(row["achieved_rate"] - rate) <= 0.01, row["achieved_rate"]
    assert abs(result["history"][-1]["soft_kept"] - (1 - rate)) <= 0.01
    assert row["accuracy"] > 100 / synthetic.num_classes          # it still learns
    if factors == "entry":
        assert row["structured_fraction"] < 0.5
    if factors == "block,column,row":                              # whole rows and columns only:
        assert row["structured_fraction"] > 0.95                   # nearly all of it compacts away


def test_loss_budget_and_gradients():
    cfg = gcn.GCNConfig(num_nodes=6, num_features=5, num_classes=3, channels=4, hidden=8, edges=((0, 1),))
    params = gcn.init(jax.random.key(0), cfg)
    pruner = make_pruner("ctf", params, gcn.prunable(params), PruneConfig(rate=0.7), 100, gcn.ctf_blocks(params))

    def forward(p, chunks, key, train):
        return gcn.apply(p, chunks, cfg)
    batch = {"chunks": jax.random.normal(jax.random.key(1), (4, 6, 5)), "labels": jnp.array([0, 1, 2, 0])}
    loss = task_loss(pruner, forward)
    (value, metrics), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, batch, jax.random.key(2), 0)
    expected = metrics["ce"] + 100.0 * (metrics["soft_kept"] - 0.3) ** 2
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["fc"]["kernel"]).sum()) > 0
    with pytest.raises(ValueError, match="serves its trained rate 0.7 only"):
        pruner.hard_masks(params, np.array([0.5]))
    assert pruner.layer_rates(params, np.array([0.7])) is None
    restored = restore_pruner("ctf", params, gcn.prunable(params), PruneConfig(rate=0.7), pruner_arrays(pruner),
                              blocks=gcn.ctf_blocks(params))
    jax.tree.map(np.testing.assert_array_equal, restored.hard_masks(params, np.array([0.7])),
                 pruner.hard_masks(params, np.array([0.7])))
    with pytest.raises(ValueError, match="not a ctf model"):
        restore_pruner("ctf", params, gcn.prunable(params), PruneConfig(rate=0.7), {}, blocks=gcn.ctf_blocks(params))


def test_the_floor_term_holds_every_layer_above_its_least_kept_fraction():
    """ctf_floor f adds λ·Σ_ℓ (max(0, f − kept_ℓ) / f)²: zero while every layer keeps at least f,
    and then it pushes only the layers below f back up (their mask entries get a negative gradient
    from it, the others none)."""
    cfg = gcn.GCNConfig(num_nodes=6, num_features=5, num_classes=3, channels=4, hidden=8, edges=((0, 1),))
    params = gcn.init(jax.random.key(0), cfg)
    plain = make_pruner("ctf", params, gcn.prunable(params), PruneConfig(rate=0.7, ctf_floor=0), 100,
                        gcn.ctf_blocks(params))
    floored = make_pruner("ctf", params, gcn.prunable(params), PruneConfig(rate=0.7, ctf_floor=0.2), 100,
                          gcn.ctf_blocks(params))
    masks = jax.tree.map(lambda m: None if m is None else jnp.full(m.shape, 0.5), plain.train_masks(params, None, None, 0),
                         is_leaf=lambda m: m is None)
    (budget,), _ = plain.penalty(params, masks, None, None, 0)
    terms, _ = floored.penalty(params, masks, None, None, 0)
    assert len(terms) == 2 and float(terms[0]) == pytest.approx(float(budget)) and float(terms[1]) == 0.0
    masks["fc"]["kernel"] = jnp.full(masks["fc"]["kernel"].shape, 0.05)    # the FC keeps 5 %, below f = 20 %
    grads = jax.grad(lambda m: floored.penalty(params, m, None, None, 0)[0][1])(masks)
    assert float(floored.penalty(params, masks, None, None, 0)[0][1]) == pytest.approx(100.0 * (0.15 / 0.2) ** 2, rel=1e-5)
    assert float(jnp.max(grads["fc"]["kernel"])) < 0
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for path, g in jax.tree_util.tree_leaves_with_path(grads)
               if "fc" not in jax.tree_util.keystr(path))
    with pytest.raises(ValueError, match="ctf_floor must be in"):
        PruneConfig(ctf_floor=1.0)


def test_channel_blocks_come_from_the_model_and_are_refused_where_it_declares_none():
    """(issue 15) CTF reads no parameter names: the model declares its blocks (the GCN's FC rows by
    channel, gcn.ctf_blocks); ctf_blocks=channels without them is an error naming the setting,
    not a silent "no blocks"; ctf_blocks=none works on any model."""
    params = {"dense": {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}}
    prunable = {"dense": {"kernel": True, "bias": False}}
    with pytest.raises(ValueError, match=r"ctf_blocks=channels .* use prune.ctf_blocks=none"):
        make_pruner("ctf", params, prunable, PruneConfig(rate=0.5), 10)
    pruner = make_pruner("ctf", params, prunable, PruneConfig(rate=0.5, ctf_blocks="none"), 10)
    assert pruner.mask.blocks == ()
    cfg = gcn.GCNConfig(num_nodes=6, num_features=5, num_classes=3, channels=4, hidden=8, edges=((0, 1),))
    gcn_params = gcn.init(jax.random.key(0), cfg)
    assert gcn.ctf_blocks(gcn_params) == (("['fc']['kernel']", ("row_mod", 4)),)
    pruner = make_pruner("ctf", gcn_params, gcn.prunable(gcn_params), PruneConfig(rate=0.5), 10, gcn.ctf_blocks(gcn_params))
    assert pruner.mask.blocks == gcn.ctf_blocks(gcn_params)


def test_hard_masks_are_jittable_in_the_rates():
    """(issue 15) CTF's hard masks under jit, like MRMP's: the trained rate gives its masks (R,) deep;
    another rate still fails with the method's message when the computation runs."""
    cfg = gcn.GCNConfig(num_nodes=6, num_features=5, num_classes=3, channels=4, hidden=8, edges=((0, 1),))
    params = gcn.init(jax.random.key(0), cfg)
    pruner = make_pruner("ctf", params, gcn.prunable(params), PruneConfig(rate=0.7), 100, gcn.ctf_blocks(params))
    hard = jax.jit(pruner.hard_masks)
    jax.tree.map(np.testing.assert_array_equal, hard(params, jnp.array([0.7, 0.7])),
                 pruner.hard_masks(params, np.array([0.7, 0.7])))
    with pytest.raises(Exception, match="a ctf run serves its trained rate 0.7 only"):
        jax.block_until_ready(hard(params, jnp.array([0.5])))


def test_prune_settings_for_ctf_are_checked():
    assert PruneConfig(ctf_factors=("entry", "entry")).ctf_factors == ("entry",)
    for bad in ({"ctf_factors": ("rows",)}, {"ctf_factors": ()}, {"ctf_blocks": "tiles"}, {"ctf_shift": 0.0},
                {"ctf_weight": -1.0}):
        with pytest.raises(ValueError, match="ctf_"):
            PruneConfig(**bad)


def test_train_eval_export_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "ctf"
    assert main(["train", "--method", "ctf", "--rate", "0.8", "--out", str(run), "--quiet",
                 "--set", "train.epochs=30", *[f"--set={s}" for s in SMALL], *CHEAP_COMPILE]) == 0
    results = json.loads((run / "results.json").read_text())
    row = results["runs"][0]["rates"][0]
    assert results["method"] == "ctf" and row["target_rate"] == 0.8
    assert {"compact_params", "compact_flops", "structured_fraction"} <= set(row)
    again = evaluate_run(run, [0.8])
    assert again["runs"][0]["rates"][0]["accuracy"] == row["accuracy"]
    with pytest.raises(ValueError, match="serves its trained rate"):
        evaluate_run(run, [0.5])
    capsys.readouterr()
    out = tmp_path / "net.npz"
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and "max |logit difference|" in printed
    difference = float(printed.split("masked network ")[1].split()[0])
    assert difference <= 1e-5
    assert main(["export", "--run", str(run), "--out", str(out)]) == 2          # refuses to overwrite
    assert "exists" in capsys.readouterr().err
    assert main(["export", "--run", str(run), "--out", str(out), "--overwrite", "--bcoo"]) == 0
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "b.npz"), "--rate", "0.5"]) == 2
    assert "serves its trained rate 0.8 only" in capsys.readouterr().err
    assert main(["train", "--method", "ctf", "--rates", "0.5,0.9", "--out", str(tmp_path / "x")]) == 2
    assert "use --rate R" in capsys.readouterr().err


def test_export_of_an_mrmp_run_needs_a_rate(tiny_mrmp_run, tmp_path, capsys):
    run = tiny_mrmp_run                                   # trained at 0.5 and 0.9: 0.97 is a rate it never trained
    capsys.readouterr()
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "m.npz")]) == 2
    assert "choose one with --rate" in capsys.readouterr().err
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "m.npz"), "--rate", "0.97",
                 "--attention-forward", "edges"]) == 0
    printed = capsys.readouterr().out                     # the file read back, its logits checked
    assert "0.97" in printed and float(printed.split("masked network ")[1].split()[0]) <= 1e-5
    assert load_compact(tmp_path / "m.npz")[0].attention_forward == "edges"
