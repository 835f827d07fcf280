"""Optimizers: the loss-trend rule step by step, the cosine end point, argument checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.optim import LR_RULES, make_optimizer, scale_by_loss_trend


class LossTrendTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_multiplier_follows_the_loss(self):
        tx = scale_by_loss_trend()
        grads = {"w": jnp.asarray([1.0, -2.0]), "b": jnp.asarray(0.5)}
        state = tx.init(grads)
        np.testing.assert_allclose(state.scale, 1.0)
        assert np.isinf(state.previous)
        update = self.variant(lambda g, s, v: tx.update(g, s, value=v))
        # losses: first (< inf: fell), fell, rose, rose, fell
        losses = [2.0, 1.5, 1.7, 1.9, 1.0]
        expected_scales = [1 / 0.99, 1 / 0.99 ** 2, 1 / 0.99, 1.0, 1 / 0.99]
        for loss, scale in zip(losses, expected_scales):
            out, state = update(grads, state, jnp.asarray(loss))
            np.testing.assert_allclose(state.scale, scale, rtol=1e-6)
            np.testing.assert_allclose(state.previous, loss, rtol=1e-6)
            chex.assert_trees_all_close(out, jax.tree.map(lambda g: scale * g, grads), rtol=1e-6)


def test_multiplier_is_clipped():
    tx = scale_by_loss_trend(factor=0.5, min_scale=0.2, max_scale=4.0)
    g = jnp.ones(3)
    state = tx.init(g)
    scales = []
    for loss in [1.0, 2.0, 3.0, 4.0, 5.0]:  # fell (from inf), then rose four times
        _, state = tx.update(g, state, value=jnp.asarray(loss))
        scales.append(float(state.scale))
    np.testing.assert_allclose(scales, [2.0, 1.0, 0.5, 0.25, 0.2])
    for loss in [4.0, 3.0, 2.0, 1.0, 0.5]:  # fell five times
        _, state = tx.update(g, state, value=jnp.asarray(loss))
    np.testing.assert_allclose(state.scale, 4.0)


def test_make_optimizer_rejects_bad_settings():
    with pytest.raises(ValueError, match="lr_rule"):
        make_optimizer(1e-3, "step", 10)
    for lr in (0.0, -1e-3):
        with pytest.raises(ValueError, match="learning_rate"):
            make_optimizer(lr, "constant", 10)


def _first_updates(tx, steps, grad=1.0, loss=None):
    """Update of a scalar param under a constant gradient at each of ``steps`` steps."""
    params = jnp.zeros(())
    state = tx.init(params)
    g = jnp.asarray(grad)
    out = []
    for i in range(steps):
        value = jnp.asarray(loss(i) if loss else 0.0)
        u, state = tx.update(g, state, params, value=value)
        out.append(float(u))
    return np.array(out)


@pytest.mark.parametrize("rule", LR_RULES)
def test_every_rule_accepts_the_loss_value(rule):
    # Adam under a constant gradient steps by -lr (times the rule's factor)
    u = _first_updates(make_optimizer(0.1, rule, 100), 3, loss=lambda i: 1.0 - 0.1 * i)
    factor = {"constant": 1.0, "cosine": None, "loss_trend": 1 / 0.99}[rule]
    if factor is not None:
        np.testing.assert_allclose(u, -0.1 * factor ** np.arange(1, 4) if rule == "loss_trend"
                                   else -0.1, rtol=1e-4)
    else:
        np.testing.assert_allclose(u[0], -0.1, rtol=1e-5)
        assert u[0] < u[1] < u[2] < 0  # decaying magnitude


def test_cosine_decays_to_one_percent():
    total, lr = 50, 0.2
    u = _first_updates(make_optimizer(lr, "cosine", total), total + 3)
    np.testing.assert_allclose(u[0], -lr, rtol=1e-5)
    # schedule by hand: lr * (0.01 + 0.99 * (1 + cos(pi k / total)) / 2)
    k = np.arange(total + 3)
    expected = lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * np.minimum(k, total) / total)))
    np.testing.assert_allclose(-u, expected, rtol=1e-4)
    np.testing.assert_allclose(u[total:], -0.01 * lr, rtol=1e-4)  # stays at 1 %


def test_weight_decay_uses_adamw():
    tx = make_optimizer(0.1, "constant", 10, weight_decay=0.5)
    params = {"w": jnp.asarray([2.0, -4.0])}
    state = tx.init(params)
    zero = {"w": jnp.zeros(2)}
    u, _ = tx.update(zero, state, params, value=jnp.asarray(1.0))
    # zero gradient: only the decoupled decay -lr * wd * w remains
    np.testing.assert_allclose(u["w"], [-0.1, 0.2], rtol=1e-6)
    u_plain, _ = make_optimizer(0.1, "constant", 10).update(zero, make_optimizer(0.1, "constant", 10)
                                                            .init(params), params, value=jnp.asarray(1.0))
    np.testing.assert_allclose(u_plain["w"], 0.0)
