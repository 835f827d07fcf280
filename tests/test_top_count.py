"""``top_count``: the entries a stable descending sort puts first, found without a sort."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.keep_count import by_sort   # the reference: the stable argsort top_count replaced
from jaxprune.masks.hard import magnitude_masks, top_count


def corpus():
    rng = np.random.default_rng(0)
    yield "normal", rng.normal(size=1000).astype(np.float32)
    yield "magnitudes", np.abs(rng.normal(size=257)).astype(np.float32)
    yield "few distinct values (ties)", rng.integers(-3, 4, size=500).astype(np.float32)
    yield "signed zeros", np.array([0.0, -0.0, 1.0, -0.0, 0.0, -1.0, -0.0], np.float32)
    special = rng.normal(size=300).astype(np.float32)
    special[rng.choice(300, 40, replace=False)] = np.nan
    special[rng.choice(300, 10, replace=False)] = np.inf
    special[rng.choice(300, 10, replace=False)] = -np.inf
    special[::17] = -np.nan
    yield "NaN and infinities", special
    yield "subnormals and extremes", np.array([1e-45, -1e-45, 3e38, -3e38, 1e-38, 0.0, 2e-45], np.float32)
    yield "all equal", np.full(64, 0.25, np.float32)
    yield "one entry", np.array([5.0], np.float32)


@pytest.mark.parametrize("name,scores", list(corpus()), ids=[n for n, _ in corpus()])
def test_equals_the_stable_sort_at_every_count(name, scores):
    fast = jax.jit(jax.vmap(top_count, in_axes=(None, 0)))     # the count traced, as in a schedule
    slow = jax.jit(jax.vmap(by_sort, in_axes=(None, 0)))
    counts = jnp.arange(-1, scores.size + 2, dtype=jnp.int32)                  # below 0 and above n too
    got, want = np.asarray(fast(scores, counts)), np.asarray(slow(scores, counts))
    first_wrong = np.flatnonzero((got != want).any(axis=1))
    assert first_wrong.size == 0, f"{name}: count {counts[first_wrong[0]]} differs"
    assert (got.sum(axis=1) == np.clip(np.asarray(counts), 0, scores.size)).all()


def test_eager_and_wider_floats_rank_as_float32_sorts_them():
    # without jit (the loop's index is then a Python int), and on float64 input whose scores
    # become ties (-1e-50 and 0 are both zero in float32: the first by position is kept)
    scores = np.array([-1e-50, 0.0, 1.0, 0.5])
    with jax.disable_jit():
        got = np.asarray(top_count(scores, 2))
    np.testing.assert_array_equal(got, np.asarray(by_sort(jnp.asarray(scores, jnp.float32), 2)))
    np.testing.assert_array_equal(got, [False, False, True, True])
    np.testing.assert_array_equal(np.asarray(top_count(scores, 3)), [True, False, True, True])
    with pytest.raises(ValueError, match="1-D"):
        top_count(jnp.ones((2, 3)), 1)


def test_global_magnitude_masks_keep_exact_counts_on_a_large_net():
    # 257,920 weights like the wide SBU GCN, with ties: the count is exact and the largest are kept
    key = jax.random.key(1)
    shapes = [(24, 64), (64, 8), (1920, 128), (64, 64), (24, 8)]
    params = {f"w{i}": jnp.round(jax.random.normal(jax.random.fold_in(key, i), s) * 20) / 20
              for i, s in enumerate(shapes)}
    prunable = {k: True for k in params}
    masks = jax.jit(lambda p: magnitude_masks(p, prunable, 0.9, "global"))(params)
    n = sum(w.size for w in params.values())
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == round(0.1 * n)
    flat_w = np.concatenate([np.abs(np.asarray(w)).ravel() for w in params.values()])
    flat_m = np.concatenate([np.asarray(m).ravel() for m in masks.values()])
    assert flat_w[flat_m == 1].min() >= flat_w[flat_m == 0].max()
    assert (flat_m == np.asarray(by_sort(jnp.asarray(flat_w), round(0.1 * n)))).all()
