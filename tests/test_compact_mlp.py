"""Compaction of a chain of dense layers (jaxprune.models.compact_mlp): a Flax linen MLP under random
masks with whole dead units compacts to smaller matrices with the masked network's logits (≤ 1e-5),
dead units' constants folded into the next bias."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune.models.compact_mlp import compact_mlp, compact_mlp_apply, mlp_size
from jaxprune.masks.bandstop import apply_masks


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        for width in (16, 12):
            x = nn.relu(nn.Dense(width, bias_init=nn.initializers.constant(0.3))(x))
        return nn.Dense(3)(x)


def random_masks(params, seed):
    """Entry zeros plus whole dead output units (columns) and unread inputs (rows) of every kernel."""
    rng = np.random.default_rng(seed)

    def mask(w):
        m = (rng.random(w.shape) > 0.3).astype(np.float32)
        m[:, rng.random(w.shape[1]) < 0.3] = 0
        m[rng.random(w.shape[0]) < 0.3] = 0
        return jnp.asarray(m)
    return {name: {"kernel": mask(layer["kernel"]), "bias": None} for name, layer in params.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_masked_linen_mlp_compacts_with_equal_logits(seed):
    model = MLP()
    x = jax.random.normal(jax.random.key(seed), (9, 10))
    params = model.init(jax.random.key(seed + 5), x)["params"]
    masks = random_masks(params, seed)
    ref = model.apply({"params": apply_masks(params, masks)}, x)
    names = ["Dense_0", "Dense_1", "Dense_2"]
    net = compact_mlp([params[n]["kernel"] for n in names], [params[n]["bias"] for n in names],
                      [masks[n]["kernel"] for n in names])
    np.testing.assert_allclose(jax.jit(compact_mlp_apply)(net, x), ref, atol=1e-5)
    dense_size = sum(int(np.size(params[n]["kernel"])) for n in names)
    assert mlp_size(net) < dense_size                              # whole rows and columns went
    assert net.layers[-1][0].shape[1] == 3                          # every output kept
    kept = sum(int(np.count_nonzero(np.asarray(params[n]["kernel"] * masks[n]["kernel"]))) for n in names)
    assert sum(int(np.count_nonzero(np.asarray(k))) for k, _ in net.layers) <= kept   # no weight invented


def test_a_dead_layer_leaves_constant_logits():
    k = [np.ones((4, 3)), np.ones((3, 2))]
    b = [np.array([0.5, -1.0, 2.0]), np.array([0.1, 0.2])]
    net = compact_mlp(k, b, [np.zeros((4, 3)), None])
    out = compact_mlp_apply(net, jnp.ones((2, 4)))
    np.testing.assert_allclose(out, np.tile([0.1 + 2.5, 0.2 + 2.5], (2, 1)), rtol=1e-6)
    assert mlp_size(net) == 0


def test_shapes_that_do_not_chain_are_named():
    with pytest.raises(ValueError, match="layer 1 has kernel \\(4, 2\\)"):
        compact_mlp([np.ones((3, 5)), np.ones((4, 2))], [np.zeros(5), np.zeros(2)])
