"""Distribution alignment D_KL(P‖Q) of a layer's latent weights to its prior (METHOD.md §3).

Estimator [choice]: P is a Gaussian-kernel soft histogram of the weights on a fixed grid of
``bins`` equal bins over [−g, g] plus two overflow bins (−∞, −g) and (g, ∞):

    p_j = (1/n) Σ_i [Φ((e_{j+1} − w_i)/h) − Φ((e_j − w_i)/h)]      (e_j bin edges, h bandwidth)

i.e. the mass that the kernel N(w_i, h²) puts in bin j. Q is binned the same way, *after the same
smoothing*: q_j = G(e_{j+1}) − G(e_j) with G = CDF of Q ∗ N(0, h²), so E[p_j] = q_j exactly when
the weights are drawn from Q and the estimator has no smoothing bias (this matters for laws with
edges or cusps: uniform, Laplace, Weibull). G(e) = E_Z[F_Q(e − hZ)] is computed by a fixed
241-point quadrature over Z ∈ [−6, 6] using only the prior's CDF, so tails stay exact.

    D_KL = Σ_j p_j [log(p_j + ε) − log(q_j + ε)]  +  outside term (below)     (nats; ε = 1e-6)

Defaults: g = 1.25·F_Q⁻¹(0.9995), 64 bins, h = one bin width. The overflow bins keep weights that
leave the grid in the count, but their kernel stops reaching the grid a few h beyond ±g; so Q's
(tiny) mass beyond ±g is modelled as an exponential tail of length h, which adds
(1/n) Σ_i Φ(d_i)·(d_i)₊ with d_i = (|w_i| − g)/h: a constant pull back toward the grid on weights
outside it, ≈ 0 for weights drawn from Q.

Cost: with ``resolution`` Q (default 128) the weights are first binned linearly on a grid Q times
finer than the bins (each weight split between its two nearest fine points in proportion to its
distance; Wand 1994, "Fast computation of multivariate kernel estimators"), and the fine counts
times a constant table of the kernel's masses give the histogram (``linear_binned_masses``):
two scalar scatter-adds per weight and one small matrix product, no Φ per weight. The masses
equal the exact ones to about 1e-5 of a weight's mass (the kernel is smooth on the fine grid's
scale), and so does the gradient, the kernel's exact slope interpolated the same way.
``resolution=None`` takes the kernel at each weight's own position: with ``window`` (default 4)
every weight touches only the bins within ``window`` bandwidths of it (2·⌈window·bandwidth⌉ + 1
bins; ``window_bin_masses``), O(n) with Φ taken K + 1 times per weight; the kernel mass beyond
the window (≤ Φ(−window) ≈ 3e-5 per side) goes to the bin just outside it. ``window=None``
evaluates every weight against every bin: O(n·bins) memory, exact.
The result is differentiable in the weights (and in the prior's parameters).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.priors import Prior, Uniform, is_prior

PyTree = Any
_SQRT_HALF = float(np.sqrt(0.5))
_Z = np.linspace(-6.0, 6.0, 241)
_Z_WEIGHTS = np.exp(-0.5 * _Z ** 2) / np.exp(-0.5 * _Z ** 2).sum()


def _ndtr(x: jax.Array) -> jax.Array:
    """Φ(x) = ½·erfc(−x/√2): one XLA op, accurate in the lower tail."""
    return 0.5 * jax.lax.erfc(-x * _SQRT_HALF)


def _ndtr_diff(hi: jax.Array, lo: jax.Array) -> jax.Array:
    """Φ(hi) − Φ(lo) for hi ≥ lo, without cancellation in the upper tail (mirrored there)."""
    upper = lo > 0
    u, v = jnp.where(upper, -lo, hi), jnp.where(upper, -hi, lo)     # Φ(u) − Φ(v), both tails low
    return _ndtr(u) - _ndtr(v)


def grid_edges(prior: Prior, bins: int = 64, grid: float | None = None) -> jax.Array:
    """Bin edges (bins + 1,) of the alignment grid: linspace(−g, g), g = ``grid`` or 1.25·F⁻¹(0.9995)."""
    half = 1.25 * prior.quantile(0.9995) if grid is None else jnp.asarray(grid, jnp.float32)
    return jnp.linspace(-1.0, 1.0, bins + 1) * half


def soft_histogram(weights: jax.Array, edges: jax.Array, bandwidth: float = 1.0,
                   window: float | None = 4.0, resolution: int | None = 128) -> jax.Array:
    """Gaussian-kernel soft histogram (bins + 2,): [below, bins..., above], sums to ≈ 1.

    ``weights`` any shape (flattened, n values); ``edges`` (bins + 1,) evenly spaced, weight
    units; ``bandwidth``: kernel std h in bin widths (a Python number); ``resolution``: linear
    binning Q times finer than the bins (``linear_binned_masses``, O(n)), or None for the kernel
    at every weight's own position: ``window``, its support in units of h, each weight
    scatter-added into 2·⌈window·bandwidth⌉ + 1 bins (O(n)), or None to evaluate every bin
    (O(n·bins)).
    """
    w = jnp.ravel(weights)
    n, bins = w.shape[0], edges.shape[0] - 1
    width = edges[1] - edges[0]
    h = bandwidth * width
    if resolution:
        return linear_binned_masses((w - edges[0]) / width, np.zeros(n, np.int32), 1, bins, bandwidth,
                                    resolution)[0] / n
    below = _ndtr((edges[0] - w) / h)
    above = _ndtr((w - edges[-1]) / h)
    if window is None:
        z = (edges[None, :] - w[:, None]) / h                              # (n, bins + 1)
        inner = _ndtr_diff(z[:, 1:], z[:, :-1]).sum(0)
    else:
        inner = window_bin_masses((w - edges[0]) / width, np.zeros(n, np.int32), 1, bins,
                                  bandwidth, window)[0]
    return jnp.concatenate([below.sum()[None], inner, above.sum()[None]]) / n


@functools.lru_cache(maxsize=16)
def kernel_table(bins: int, bandwidth: float, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(masses, slopes), each (K, bins + 2) float32: the mass that the kernel N(y_k, bandwidth²)
    puts below 0, in each unit bin [b, b + 1) of [0, bins] and above ``bins``, and its
    derivative in y_k, at the K fine positions y_k = −R + k/resolution covering [−R, bins + R],
    R = ⌈6·bandwidth⌉ (beyond, a kernel's mass on the grid is under Φ(−6) ≈ 1e-9). Computed in
    float64, differences of Φ taken in the lower tail (no cancellation)."""
    reach = int(math.ceil(6.0 * bandwidth))
    y = -reach + np.arange((bins + 2 * reach) * resolution + 1) / resolution           # (K,)
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    lower = lambda z: 0.5 * erfc(z * _SQRT_HALF)                                          # Φ(−z)
    z = (np.arange(bins + 1)[None, :] - y[:, None]) / bandwidth                          # (K, bins + 1)
    inner = np.where(z[:, :-1] > 0, lower(z[:, :-1]) - lower(z[:, 1:]), lower(-z[:, 1:]) - lower(-z[:, :-1]))
    masses = np.concatenate([lower(-z[:, :1]), inner, lower(z[:, -1:])], axis=1)
    density = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) / bandwidth                # φ(z)/bandwidth
    slopes = np.concatenate([-density[:, :1], density[:, :-1] - density[:, 1:], density[:, -1:]], axis=1)
    return masses.astype(np.float32), slopes.astype(np.float32)


def linear_binned_masses(x: jax.Array, layer: np.ndarray, layers: int, bins: int, bandwidth: float,
                         resolution: int = 128) -> jax.Array:
    """(layers, bins + 2): Σ over each layer's weights of the mass that kernel N(x_i, bandwidth²)
    puts below bin 0, in each bin [b, b + 1) and above bin ``bins`` − 1, by linear binning.

    ``x`` (N,): each weight's position in bin widths from its grid's left edge; ``layer`` (N,):
    a static int array, each weight's layer; ``bandwidth`` in bin widths. Each weight is split
    between its two neighbours y_k ≤ x < y_{k+1} on the fine grid of ``kernel_table`` (step
    1/``resolution``), with shares (y_{k+1} − x)·Q and (x − y_k)·Q: two scatter-adds into
    (layers, K) counts, then counts @ masses table. Weights beyond the fine grid are placed at
    its end (their kernel's mass on the grid is under Φ(−6)). The gradient is written out: the
    kernel's exact slope in y, interpolated the same way (one gather per weight), so it is the
    exact estimator's to O(1/Q²) rather than the piecewise-constant slope of the binned value.
    """
    masses, slopes = kernel_table(int(bins), float(bandwidth), int(resolution))
    k = masses.shape[0]
    reach = int(math.ceil(6.0 * bandwidth))
    rows = np.asarray(layer, np.int32) * k                                               # (N,) static

    def placed(x):
        pos = (jnp.clip(x, -reach, bins + reach) + reach) * resolution                  # fine-grid units
        low = jnp.clip(jnp.floor(pos), 0, k - 2)
        return low.astype(jnp.int32) + rows, pos - low                                   # index, upper share

    @jax.custom_vjp
    def binned(x):
        index, share = placed(x)
        counts = jnp.zeros(layers * k, x.dtype).at[index].add(1.0 - share).at[index + 1].add(share)
        return counts.reshape(layers, k) @ jnp.asarray(masses, x.dtype)

    def binned_fwd(x):
        return binned(x), x

    def binned_bwd(x, cotangent):                                                        # (layers, bins + 2)
        index, share = placed(x)
        per_point = (cotangent @ jnp.asarray(slopes, x.dtype).T).reshape(-1)            # (layers·K,)
        inside = (x > -reach) & (x < bins + reach)
        return (jnp.where(inside, (1.0 - share) * per_point[index] + share * per_point[index + 1], 0.0),)

    binned.defvjp(binned_fwd, binned_bwd)
    return binned(x)


def window_bin_masses(x: jax.Array, layer: np.ndarray, layers: int, bins: int, bandwidth: float,
                      window: float) -> jax.Array:
    """(layers, bins): Σ over each layer's weights of the mass that kernel N(x_i, bandwidth²) puts
    in each bin [b, b + 1), b = 0 … bins − 1.

    ``x`` (N,): each weight's position in bin widths from its grid's left edge; ``layer`` (N,):
    a static int array, each weight's layer; ``bandwidth`` in bin widths; ``window`` in
    bandwidths: each weight reaches the K = 2·⌈window·bandwidth⌉ + 1 bins around its own.

    A weight's mass in bin b is Φ(z_{b+1}) − Φ(z_b), z_e = (e − x)/bandwidth its edges, and
    Φ(z) = [z > 0] + s(z) with s(z) = ±Φ(−|z|) a signed tail (no cancellation in float32).
    So each bin holds the count of weights whose own bin it is, plus S_{b+1} − S_b, where S_e
    sums the signed tails at edge e: Φ is taken once per edge (K + 1 per weight), each weight's
    K + 1 signed tails are added as one row of a table by its own bin (N row updates, not N·K
    scalar ones), and the table's diagonals are then the edges. Beyond its window a weight's
    kernel mass (≤ Φ(−window) per side) lands in the bin just outside it, so every weight's
    masses sum to one. The gradient is written out, ∂S_e/∂x = −φ(z_e)/bandwidth: autodiff's, at
    a fraction of its cost.
    """
    reach = int(math.ceil(window * bandwidth))
    edges = 2 * reach + 2                                                 # a weight's edges, K + 1
    span = bins + edges                                                   # rows of one layer's table
    first_row = (reach + 1 + span * np.asarray(layer)).astype(np.int32)   # (N,) row of own bin 0, static

    def edges_and_rows(x):
        start = jnp.clip(jnp.floor(x), -reach - 1, bins + reach)          # own bin
        z = (start[:, None] + np.arange(-reach, reach + 2) - x[:, None]) / bandwidth    # (N, K + 1)
        return z, start.astype(jnp.int32) + first_row

    def masses(x):
        z, row = edges_and_rows(x)
        signed = jnp.where(z > 0, -1.0, 1.0) * _ndtr(-jnp.abs(z))        # Φ(z) − [z > 0]
        rows = jnp.concatenate([signed, jnp.ones_like(signed[:, :1])], axis=1)        # + own-bin count
        table = jnp.zeros((layers * span, edges + 1), z.dtype).at[row].add(rows).reshape(layers, span, edges + 1)
        # column k of row r is edge r + k − K (k < K + 1); the count of row r is bin r − reach − 1
        tails = sum(table[:, edges - 1 - k: edges - 1 - k + bins + 1, k] for k in range(edges))   # (layers, bins + 1)
        return table[:, reach + 1: reach + 1 + bins, edges] + tails[:, 1:] - tails[:, :-1]

    @jax.custom_vjp
    def binned(x):
        return masses(x)

    def binned_fwd(x):
        return masses(x), x

    def binned_bwd(x, cotangent):                                         # cotangent (layers, bins)
        z, row = edges_and_rows(x)
        per_edge = jnp.pad(cotangent, ((0, 0), (1, 0))) - jnp.pad(cotangent, ((0, 0), (0, 1)))  # (layers, bins + 1)
        padded = jnp.pad(per_edge, ((0, 0), (edges - 1, edges - 1)))
        windows = jnp.stack([padded[:, k: k + span] for k in range(edges)], axis=-1)   # (layers, span, K + 1)
        at_edges = windows.reshape(layers * span, edges)[row]             # (N, K + 1): each edge's cotangent
        density = jnp.exp(-0.5 * z * z) * (1.0 / math.sqrt(2.0 * math.pi))
        return (-jnp.sum(at_edges * density, axis=1) / bandwidth,)

    binned.defvjp(binned_fwd, binned_bwd)
    return binned(x)


def prior_histogram(prior: Prior, edges: jax.Array, h: jax.Array | float) -> jax.Array:
    """Mass (bins + 2,) of Q ∗ N(0, h²) in [below, bins..., above]: what ``soft_histogram`` expects.

    ``edges`` (bins + 1,) and the kernel std ``h`` in weight units (= bandwidth × bin width).
    Uses the symmetry of Q: the right half is computed from the left tail, free of cancellation.
    """
    z = jnp.asarray(_Z, edges.dtype)
    wz = jnp.asarray(_Z_WEIGHTS, edges.dtype)

    def smoothed_cdf(e):                                                    # G(e), any shape
        return (prior.cdf(e[..., None] - h * z) * wz).sum(-1)

    left, right = smoothed_cdf(edges), smoothed_cdf(-edges)               # G(e), 1 − G(e)
    centres = 0.5 * (edges[1:] + edges[:-1])
    inner = jnp.where(centres < 0, left[1:] - left[:-1], right[:-1] - right[1:])
    return jnp.concatenate([left[:1], jnp.maximum(inner, 0.0), right[-1:]])


def kl_alignment(weights: jax.Array, prior: Prior, bins: int = 64, grid: float | None = None,
                 bandwidth: float = 1.0, window: float | None = 4.0, eps: float = 1e-6,
                 space: str = "weight", shift: jax.Array | float = 0.0,
                 resolution: int | None = 128) -> jax.Array:
    """D_KL(P‖Q) in nats (scalar) of one layer's weights (any shape, flattened) against ``prior``.

    ``bins``: bins on the grid (static); ``grid``: grid half-width g in weight units (default
    1.25·F_Q⁻¹(0.9995)); ``bandwidth``: kernel std h in bin widths; ``resolution``: linear
    binning's fine grid per bin (module docstring), or None for the kernel at each weight:
    ``window``, its support in h for the O(n) path, None for the dense O(n·bins) path;
    ``eps``: floor inside the logs.
    ``space``: "weight" bins the weights themselves (module docstring); "quantile" bins
    u = 2·F_Q(w) − 1 against Uniform[−1, 1] instead. KL is invariant under this bijection, but
    the bins then carry equal prior mass: every quantile of Q, hence every pruning rate, is
    resolved equally well (in weight space the bins near 0 and in the tails each hold many
    rates' thresholds). ``grid`` is ignored in quantile space.
    ``shift``: move the whole grid by this many bin widths (e.g. uniform in [−½, ½], drawn anew
    every training step: an averaged shifted histogram). A fixed grid lets weights gather at its
    bin edges, structure finer than the kernel that the estimate cannot see; a moving grid has
    no fixed edges.
    """
    if space == "quantile":
        u = 2.0 * prior.cdf(weights) - 1.0
        return kl_alignment(u, Uniform(scale=1.0), bins, 1.0, bandwidth, window, eps, "weight", shift, resolution)
    if space == "both":
        return 0.5 * (kl_alignment(weights, prior, bins, grid, bandwidth, window, eps, "weight", shift, resolution)
                      + kl_alignment(weights, prior, bins, grid, bandwidth, window, eps, "quantile", shift,
                                     resolution))
    if space != "weight":
        raise ValueError(f"kl_alignment: space must be 'weight', 'quantile' or 'both', got {space!r}")
    edges = grid_edges(prior, bins, grid).astype(jnp.result_type(weights, jnp.float32))
    half = edges[-1]
    h = bandwidth * (edges[1] - edges[0])
    edges = edges + jnp.asarray(shift, edges.dtype) * (edges[1] - edges[0])
    p = soft_histogram(weights, edges, bandwidth, window, resolution)
    q = prior_histogram(prior, edges, h)
    binned = jnp.sum(p * (jnp.log(p + eps) - jnp.log(q + eps)))
    return binned + _outside_pull(weights, half, h)


def _outside_pull(weights: jax.Array, half: jax.Array, h: jax.Array) -> jax.Array:
    """(1/n) Σ_i Φ((|w_i| − g)/h)·(|w_i| − g)₊/h: the cost of weights beyond the grid ±g.

    Q's mass beyond ±g is modelled as an exponential tail of length h, so a weight at distance d
    outside costs d/(n·h) nats more than one at the edge: a pull back toward the grid where the
    binned estimate has no gradient (its kernel no longer reaches the grid). ≈ 0 for weights from Q.
    """
    d = (jnp.abs(jnp.ravel(weights)) - half) / h
    return jnp.mean(_ndtr(d) * jax.nn.relu(d))


def total_alignment(params: PyTree, prunable: PyTree, priors: PyTree | Prior, term=None, **kw) -> jax.Array:
    """Σ over prunable leaves of ``term(leaf, prior_of_leaf, **kw)`` (scalar; ``term`` defaults to
    ``kl_alignment``, in nats; e.g. ``jaxprune.quantile_match.quantile_distance``).

    ``prunable``: pytree of bools like ``params``. ``priors``: one prior for every layer, or a
    pytree aligned with ``params`` holding a prior at every prunable leaf (``None`` elsewhere),
    e.g. ``jaxprune.priors.layer_priors``.

    The default term over layers whose priors share one law is computed as one stacked
    computation (``stacked_kl_alignment``): the per-layer sum up to float rounding (summation
    order), compiled about as fast as one layer's term instead of once per layer.
    """
    layers = _prunable_layers(params, prunable, priors)
    if term is None and len({jax.tree.structure(p) for _, p in layers}) == 1:
        return stacked_kl_alignment([w for w, _ in layers], [p for _, p in layers], **kw)
    term = term or kl_alignment
    return sum((term(w, prior, **kw) for w, prior in layers), jnp.zeros((), jnp.float32))


def _prunable_layers(params: PyTree, prunable: PyTree, priors: PyTree | Prior) -> list[tuple[jax.Array, Prior]]:
    """(weights, prior) of every prunable leaf, in ``params``' leaf order."""
    flat_w, _ = jax.tree_util.tree_flatten_with_path(params)
    keep = jax.tree_util.tree_leaves(prunable)
    if len(keep) != len(flat_w):
        raise ValueError(f"total_alignment: prunable has {len(keep)} leaves, params {len(flat_w)}")
    if is_prior(priors):
        by_path = None
    else:
        flat_p, _ = jax.tree_util.tree_flatten_with_path(
            priors, is_leaf=lambda x: x is None or is_prior(x))
        by_path = {jax.tree_util.keystr(k): v for k, v in flat_p}
    layers = []
    for (path, w), k in zip(flat_w, keep):
        if k:
            prior = priors if by_path is None else by_path.get(jax.tree_util.keystr(path))
            if prior is None:
                raise ValueError(f"total_alignment: no prior for prunable leaf {jax.tree_util.keystr(path)}")
            layers.append((w, prior))
    return layers


def stacked_kl_alignment(weights: list[jax.Array], priors: list[Prior], bins: int = 64,
                         grid: float | None = None, bandwidth: float = 1.0, window: float | None = 4.0,
                         eps: float = 1e-6, space: str = "weight", shift: jax.Array | float = 0.0,
                         resolution: int | None = 128) -> jax.Array:
    """Σ_ℓ ``kl_alignment(weights[ℓ], priors[ℓ], ...)`` (scalar, nats) as one computation.

    ``priors``: one law (one pytree structure), a scale per layer. The L layers' weights are
    concatenated (N values in all); every per-weight quantity reads its layer's grid through a
    static layer index, the soft histograms are one scatter-add into (L, bins) and each layer's
    sums are segment sums, so each layer's term is ``kl_alignment``'s up to float rounding.
    Arguments as there; ``resolution=None`` with ``window=None`` falls back to the per-layer sum.
    """
    if space == "both":
        kw = dict(bins=bins, grid=grid, bandwidth=bandwidth, window=window, eps=eps, shift=shift,
                  resolution=resolution)
        return sum(0.5 * (w_term + q_term) for w_term, q_term in zip(
            _stacked_terms(weights, priors, space="weight", **kw),
            _stacked_terms(weights, priors, space="quantile", **kw)))
    return sum(_stacked_terms(weights, priors, bins, grid, bandwidth, window, eps, space, shift, resolution),
               jnp.zeros((), jnp.float32))


def _stack(priors: list[Prior], dtype) -> Prior:
    """L priors of one law as one prior whose parameters have a leading (L,) axis."""
    return jax.tree.map(lambda *s: jnp.stack([jnp.asarray(x, dtype) for x in s]), *priors)


def _stacked_terms(weights, priors, bins=64, grid=None, bandwidth=1.0, window=4.0, eps=1e-6,
                   space="weight", shift=0.0, resolution=128) -> list[jax.Array]:
    """Each layer's D_KL (a list of L scalars), computed together (see ``stacked_kl_alignment``)."""
    if (window is None and not resolution) or space not in ("weight", "quantile"):
        return [kl_alignment(w, p, bins, grid, bandwidth, window, eps, space, shift, resolution)
                for w, p in zip(weights, priors)]
    sizes = [int(np.size(w)) for w in weights]
    layer = np.repeat(np.arange(len(sizes)), sizes)                        # (N,) static layer index
    dtype = jnp.result_type(*weights, jnp.float32)
    w = jnp.concatenate([jnp.ravel(x).astype(dtype) for x in weights])     # (N,)
    if space == "quantile":                                                # u = 2·F_Q(w) − 1 vs U[−1, 1]
        per_weight = jax.tree.map(lambda s: s[layer], _stack(priors, dtype))
        w = 2.0 * per_weight.cdf(w) - 1.0
        priors, grid = [Uniform(scale=1.0)] * len(sizes), 1.0
    edges = jnp.stack([grid_edges(p, bins, grid).astype(dtype) for p in priors])   # (L, bins + 1)
    half = edges[:, -1]
    width = edges[:, 1] - edges[:, 0]
    h = bandwidth * width
    edges = edges + jnp.asarray(shift, dtype) * width[:, None]
    q = jax.vmap(prior_histogram)(_stack(priors, dtype), edges, h)                      # (L, bins + 2)
    lo_edge, hi_edge, width_w, h_w = edges[layer, 0], edges[layer, -1], width[layer], h[layer]
    d = (jnp.abs(w) - half[layer]) / h_w
    pull = _ndtr(d) * jax.nn.relu(d)
    count = jnp.asarray(sizes, dtype)
    per_layer = lambda x: jax.ops.segment_sum(x, layer, len(sizes), indices_are_sorted=True)
    if resolution:
        masses = linear_binned_masses((w - lo_edge) / width_w, layer, len(sizes), bins, bandwidth, resolution)
    else:
        below = _ndtr((lo_edge - w) / h_w)
        above = _ndtr((w - hi_edge) / h_w)
        inner = window_bin_masses((w - lo_edge) / width_w, layer, len(sizes), bins, bandwidth, window)
        masses = jnp.concatenate([per_layer(below)[:, None], inner, per_layer(above)[:, None]], 1)
    p = masses / count[:, None]
    binned = jnp.sum(p * (jnp.log(p + eps) - jnp.log(q + eps)), axis=1)
    return list(binned + per_layer(pull) / count)
