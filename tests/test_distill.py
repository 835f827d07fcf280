"""Ensemble distillation (jaxprune.distill): independent teachers, the student's consistent view."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.config import SettingError, override
from jaxprune.data.augment import AugmentConfig
from jaxprune.data.features import FeatureConfig
from jaxprune.data.synthetic import make_synthetic
from jaxprune.distill import DistillConfig, distill_loss, ensemble_loss, stacked_init
from jaxprune.losses import cross_entropy
from jaxprune.methods.dense import make_loss
from jaxprune.nn import gcn
from jaxprune.runner import RunConfig, make_forward, run


def _model_and_batch(dropout=0.0):
    ds = make_synthetic(per_class=3, seed=0)
    features = FeatureConfig(velocities=True)
    aug = AugmentConfig(rotate_deg=30.0, scale=0.2)
    from jaxprune.data.features import chunk_positions
    chunks = jnp.asarray(chunk_positions(ds.x, ds.lengths, features))
    model = gcn.GCNConfig(channels=4, hidden=16, dropout=dropout, num_nodes=ds.num_joints,
                          num_features=features.num_features(), num_classes=ds.num_classes, edges=ds.edges)
    return model, make_forward(model, features, aug), {"chunks": chunks, "labels": jnp.asarray(ds.labels)}


def test_stacked_teachers_get_each_its_own_gradient():
    model, forward, batch = _model_and_batch()
    one = make_loss(forward, 0.1)
    stacked = stacked_init(lambda k: gcn.init(k, model), jax.random.key(0), 3)
    key = jax.random.key(5)
    grads = jax.jit(jax.grad(lambda p: ensemble_loss(one, 3)(p, batch, key, 0)[0]))(stacked)
    grad_one = jax.jit(jax.grad(lambda p, k: one(p, batch, k, 0)[0]))
    for k, sub in enumerate(jax.random.split(key, 3)):
        alone = grad_one(jax.tree.map(lambda a: a[k], stacked), sub)
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(jax.tree.map(lambda a: a[k], grads))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not np.allclose(stacked["fc"]["kernel"][0], stacked["fc"]["kernel"][1])   # distinct inits


def test_a_student_equal_to_its_teacher_has_no_distillation_gradient():
    """The teachers score the student's own augmented view: were the views different, a student
    identical to its one teacher would still be pushed (the augmentation here is strong)."""
    model, forward, batch = _model_and_batch()
    params = gcn.init(jax.random.key(1), model)
    teachers = jax.tree.map(lambda a: a[None], params)
    loss = distill_loss(forward, forward, teachers, 1.0, 2.0)
    grads = jax.jit(jax.grad(lambda p: loss(p, batch, jax.random.key(3), 0)[0]))(params)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) < 1e-5
    other_view = distill_loss(forward, lambda p, c, k, t: forward(p, c, jax.random.fold_in(k, 9), t),
                              teachers, 1.0, 2.0)
    pushed = jax.jit(jax.grad(lambda p: other_view(p, batch, jax.random.key(3), 0)[0]))(params)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(pushed)) > 1e-3


def test_with_dropout_the_augmentation_is_still_drawn_from_the_key_alone():
    """So a dropout-free teacher forward given the same key sees the same view as the student."""
    from jaxprune.data.augment import augment
    from jaxprune.data.features import node_features
    model, forward, batch = _model_and_batch(dropout=0.3)
    params = gcn.init(jax.random.key(1), model)
    key = jax.random.key(7)
    view = augment(key, batch["chunks"], AugmentConfig(rotate_deg=30.0, scale=0.2))
    expected = gcn.apply(params, node_features(view, FeatureConfig(velocities=True)), model,
                         jax.random.fold_in(key, 1))
    np.testing.assert_allclose(forward(params, batch["chunks"], key, True), expected, rtol=1e-5, atol=1e-6)


def test_distillation_weight_mixes_soft_and_hard_terms():
    model, forward, batch = _model_and_batch()
    params = gcn.init(jax.random.key(1), model)
    teachers = stacked_init(lambda k: gcn.init(k, model), jax.random.key(2), 2)
    key = jax.random.key(4)
    soft, _ = distill_loss(forward, forward, teachers, 1.0, 1.0)(params, batch, key, 0)
    hard, _ = distill_loss(forward, forward, teachers, 0.0, 1.0, label_smoothing=0.1)(params, batch, key, 0)
    half, metrics = distill_loss(forward, forward, teachers, 0.5, 1.0, label_smoothing=0.1)(params, batch, key, 0)
    assert float(hard) == pytest.approx(float(cross_entropy(forward(params, batch["chunks"], key, True),
                                                            batch["labels"], 0.1)), rel=1e-6)
    assert float(half) == pytest.approx(0.5 * float(soft) + 0.5 * float(hard), rel=1e-6)
    assert float(metrics["distill"]) == pytest.approx(float(soft), rel=1e-6)
    relabelled = {**batch, "labels": (batch["labels"] + 1) % 8}   # weight 1: the labels play no part
    again, _ = distill_loss(forward, forward, teachers, 1.0, 1.0)(params, relabelled, key, 0)
    assert float(again) == pytest.approx(float(soft), rel=1e-6)


def test_distill_settings_are_checked():
    for bad, message in (("distill.teachers=-1", "teachers must be >= 0"),
                         ("distill.weight=1.5", r"weight must be in \[0, 1\]"),
                         ("distill.temperature=0", "temperature must be > 0"),
                         ("distill.channels=-2", "channels must be >= 0")):
        with pytest.raises(SettingError, match=message):
            override(RunConfig(), [bad])
    assert DistillConfig().teachers == 0


def test_distillation_with_a_pruning_method_is_refused_before_any_work(tmp_path):
    config = override(RunConfig(method="srmp"), ["distill.teachers=2", "train.epochs=1"])
    with pytest.raises(ValueError, match="distill setting teachers is implemented for method dense only"):
        run(make_synthetic(per_class=4, seed=0), config, out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_distilled_run_reports_its_teachers(tmp_path):
    ds = make_synthetic(per_class=6, seed=0)
    config = override(RunConfig(), ["train.epochs=40", "distill.teachers=2", "distill.channels=12",
                                    "model.hidden=16"])
    result = run(ds, config, out_dir=tmp_path / "out", progress=False)
    teachers = result["runs"][0]["teachers"]
    assert len(teachers["accuracy"]) == 2 and teachers["channels"] == 12
    assert 0.0 <= teachers["ensemble_accuracy"] <= 1.0 and teachers["seconds"] > 0
    assert result["runs"][0]["train_seconds"] >= teachers["seconds"]
    assert result["config"]["distill"]["teachers"] == 2
