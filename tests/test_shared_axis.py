"""jaxprune.shared_axis.shared: a tree shared by K vmapped members, its cotangents summed by adds."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.shared_axis import shared


def test_shared_equals_an_unbatched_argument_in_value_and_gradient():
    params = {"w": jax.random.normal(jax.random.key(0), (5, 3)), "b": jnp.arange(3.0), "none": None}
    scale = jnp.array([1.0, 2.0, 0.5, -1.0])                          # K = 4 members

    def member(p, s):
        return jnp.sum(jnp.tanh(p["w"] * s) + p["b"] ** 2 * s)

    def plain(p):
        return jax.vmap(member, in_axes=(None, 0))(p, scale).sum()

    def with_shared(p):
        return jax.vmap(member, in_axes=(0, 0))(shared(p, 4), scale).sum()

    copies = shared(params, 4)
    assert copies["none"] is None and copies["w"].shape == (4, 5, 3)
    np.testing.assert_array_equal(copies["b"][2], params["b"])
    (v1, g1), (v2, g2) = jax.jit(jax.value_and_grad(plain))(params), jax.jit(jax.value_and_grad(with_shared))(params)
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    for name in ("w", "b"):
        np.testing.assert_allclose(g1[name], g2[name], rtol=1e-5, atol=1e-6)
