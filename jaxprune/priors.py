"""Priors Q for the latent weights (METHOD.md §3): laws symmetric about 0 with a scale.

Each prior is a ``flax.struct.dataclass`` (its parameters are pytree leaves, so priors pass
through ``jit``/``vmap`` and can be stored one per layer in a params-shaped pytree) with
``log_density(x)``, ``cdf(x)``, ``quantile(p)``, ``sample(key, shape)``, ``std()`` and
``magnitude_quantile(r)``, the closed form of F⁻¹((1 + r)/2) = the r-quantile of |w|:

    Gaussian(scale=s)             a(r) = s·√2·erfinv(r)
    Laplace(scale=b)              a(r) = −b·ln(1 − r)
    Uniform(scale=c) on [−c, c]   a(r) = r·c
    Weibull(scale=λ, shape=k)     a(r) = λ·(−ln(1 − r))^{1/k}     (Weibull law on |w|, random sign)

``threshold_for_rate(prior, r)`` is the threshold a(r) with P_Q(|w| < a) = r, vectorised over r.
All quantities are in weight units; densities per weight unit; log-densities in nats.

Each class carries its law as a static field (``law``). In jax 0.10, the treedefs of two dataclass
pytrees with the same fields compare equal whatever their class (only their hashes differ), so
jit's cache could, on a hash collision, run a Gaussian's trace for a Uniform: CI saw it twice
(``Uniform(2.)`` thresholds 1.349 / 3.290 instead of 1.0 / 1.8). Distinct static data makes the
treedefs unequal (``tests/test_priors.py`` checks it).
"""

from __future__ import annotations

from typing import Any, Union

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfinv, gammaln, ndtr, ndtri

PyTree = Any
_LOG2 = float(np.log(2.0))


@flax.struct.dataclass
class Gaussian:
    """N(0, scale²); ``scale`` = standard deviation."""

    scale: jax.Array | float = 1.0
    # The law as static pytree data, so that priors of different laws have unequal treedefs
    # (see the module docstring: without it a jitted function can run another law's trace).
    law: str = flax.struct.field(pytree_node=False, default="gaussian")

    def log_density(self, x):
        z = jnp.asarray(x) / self.scale
        return -0.5 * z * z - jnp.log(self.scale) - 0.5 * np.log(2 * np.pi)

    def cdf(self, x):
        return ndtr(jnp.asarray(x) / self.scale)

    def quantile(self, p):
        return self.scale * ndtri(jnp.asarray(p))

    def magnitude_quantile(self, r):
        return self.scale * np.sqrt(2.0) * erfinv(jnp.asarray(r))

    def std(self):
        return jnp.asarray(self.scale)

    def sample(self, key, shape=(), dtype=jnp.float32):
        return self.scale * jax.random.normal(key, shape, dtype)


@flax.struct.dataclass
class Laplace:
    """Laplace(0, b): density exp(−|x|/b)/(2b); ``scale`` = b (std = b·√2)."""

    scale: jax.Array | float = 1.0
    # The law as static pytree data, so that priors of different laws have unequal treedefs
    # (see the module docstring: without it a jitted function can run another law's trace).
    law: str = flax.struct.field(pytree_node=False, default="laplace")

    def log_density(self, x):
        return -jnp.abs(jnp.asarray(x)) / self.scale - jnp.log(2 * self.scale)

    def cdf(self, x):
        x = jnp.asarray(x)
        tail = 0.5 * jnp.exp(-jnp.abs(x) / self.scale)
        return jnp.where(x < 0, tail, 1.0 - tail)

    def quantile(self, p):
        p = jnp.asarray(p)
        lower = jnp.log(2 * jnp.clip(p, 0.0, 0.5))            # p < 1/2
        upper = -jnp.log(2 * jnp.clip(1.0 - p, 0.0, 0.5))     # p >= 1/2
        return self.scale * jnp.where(p < 0.5, lower, upper)

    def magnitude_quantile(self, r):
        return -self.scale * jnp.log1p(-jnp.asarray(r))

    def std(self):
        return jnp.asarray(self.scale) * np.sqrt(2.0)

    def sample(self, key, shape=(), dtype=jnp.float32):
        return self.scale * jax.random.laplace(key, shape, dtype)


@flax.struct.dataclass
class Uniform:
    """Uniform on [−c, c]; ``scale`` = c (std = c/√3)."""

    scale: jax.Array | float = 1.0
    # The law as static pytree data, so that priors of different laws have unequal treedefs
    # (see the module docstring: without it a jitted function can run another law's trace).
    law: str = flax.struct.field(pytree_node=False, default="uniform")

    def log_density(self, x):
        x = jnp.asarray(x)
        return jnp.where(jnp.abs(x) <= self.scale, -jnp.log(2 * self.scale), -jnp.inf)

    def cdf(self, x):
        return jnp.clip((jnp.asarray(x) + self.scale) / (2 * self.scale), 0.0, 1.0)

    def quantile(self, p):
        return self.scale * (2 * jnp.asarray(p) - 1)

    def magnitude_quantile(self, r):
        return self.scale * jnp.asarray(r)

    def std(self):
        return jnp.asarray(self.scale) / np.sqrt(3.0)

    def sample(self, key, shape=(), dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * self.scale


@flax.struct.dataclass
class Weibull:
    """|w| ~ Weibull(shape k, scale λ), sign ±1 with probability ½ each.

    Density k/(2λ)·(|x|/λ)^{k−1}·exp(−(|x|/λ)^k); std = λ·√Γ(1 + 2/k). k = 1 is the Laplace law;
    k < 1 is peaked at 0 with heavy tails, k > 1 has no mass at 0. Default k = 1.5 [choice].
    """

    scale: jax.Array | float = 1.0
    shape: jax.Array | float = 1.5
    # The law as static pytree data, so that priors of different laws have unequal treedefs
    # (see the module docstring: without it a jitted function can run another law's trace).
    law: str = flax.struct.field(pytree_node=False, default="weibull")

    def log_density(self, x):
        u = jnp.abs(jnp.asarray(x)) / self.scale
        return (jnp.log(self.shape / self.scale) + (self.shape - 1) * jnp.log(u)
                - u ** self.shape - _LOG2)

    def cdf(self, x):
        x = jnp.asarray(x)
        mass = -jnp.expm1(-(jnp.abs(x) / self.scale) ** self.shape)   # P(|w| <= |x|)
        return 0.5 + 0.5 * jnp.sign(x) * mass

    def quantile(self, p):
        p = jnp.asarray(p)
        tail = jnp.minimum(p, 1.0 - p)                                   # P(w beyond the point)
        mag = self.scale * (-jnp.log(2 * jnp.clip(tail, 0.0, 0.5))) ** (1.0 / self.shape)
        return jnp.where(p < 0.5, -mag, mag)

    def magnitude_quantile(self, r):
        return self.scale * (-jnp.log1p(-jnp.asarray(r))) ** (1.0 / self.shape)

    def std(self):
        return jnp.asarray(self.scale) * jnp.exp(0.5 * gammaln(1.0 + 2.0 / self.shape))

    def sample(self, key, shape=(), dtype=jnp.float32):
        k_mag, k_sign = jax.random.split(key)
        mag = jax.random.weibull_min(k_mag, self.scale, self.shape, shape, dtype)
        return jnp.where(jax.random.bernoulli(k_sign, 0.5, shape), mag, -mag)


Prior = Union[Gaussian, Laplace, Uniform, Weibull]
PRIORS = {"gaussian": Gaussian, "laplace": Laplace, "uniform": Uniform, "weibull": Weibull}


def is_prior(x: Any) -> bool:
    """True for a prior object (used as ``is_leaf`` when mapping over a pytree of priors)."""
    return isinstance(x, tuple(PRIORS.values()))


def _concrete(x) -> np.ndarray | None:
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def make_prior(name: str, scale, *, shape: float = 1.5, match_std: bool = False) -> Prior:
    """The prior called ``name`` ("gaussian", "laplace", "uniform", "weibull") with ``scale``.

    ``scale`` is the law's own scale parameter (Gaussian std s, Laplace b, uniform half-width c,
    Weibull λ), or with ``match_std=True`` the standard deviation the law should have (the scale
    parameter is then derived from it). ``shape`` is the Weibull shape k (ignored otherwise).
    Raises ValueError for an unknown name or a non-positive scale or shape.
    """
    key = str(name).lower()
    if key not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {tuple(PRIORS)}")
    value = _concrete(scale)
    if value is not None and (not np.all(np.isfinite(value)) or np.any(value <= 0)):
        raise ValueError(f"prior {key!r}: scale must be positive and finite, got {scale}")
    if key == "weibull":
        k = _concrete(shape)
        if k is not None and (not np.all(np.isfinite(k)) or np.any(k <= 0)):
            raise ValueError(f"prior 'weibull': shape must be positive and finite, got {shape}")
        prior = Weibull(scale=1.0, shape=shape)
    else:
        prior = PRIORS[key](scale=1.0)
    return prior.replace(scale=scale / prior.std() if match_std else scale)


def threshold_for_rate(prior: Prior, rate) -> jax.Array:
    """Threshold a(r) = F_Q⁻¹((1 + r)/2), so that P_Q(|w| < a) = r (weight units).

    ``rate``: a pruning rate in [0, 1] or an array of them (K,); the result broadcasts the
    prior's scale against it. Closed forms (module docstring), exact also near r = 1.
    """
    value = _concrete(rate)
    if value is not None and (np.any(value < 0) or np.any(value > 1)):
        raise ValueError(f"pruning rate must lie in [0, 1], got {rate}")
    return prior.magnitude_quantile(rate)


def thresholds_for_rate(priors: PyTree, rate) -> PyTree:
    """Map ``threshold_for_rate`` over a pytree of priors (``None`` kept): thresholds for masks.

    With ``rate`` of shape (K,), every threshold has shape (K,): vmap the masks over axis 0.
    """
    return jax.tree.map(lambda p: None if p is None else threshold_for_rate(p, rate), priors,
                        is_leaf=lambda x: x is None or is_prior(x))


def init_scales(params: PyTree, prunable: PyTree) -> PyTree:
    """Standard deviation (scalar) of every prunable leaf, ``None`` elsewhere.

    Called on freshly initialised params, this is each layer's initialisation std, the prior scale
    of METHOD.md §3 [choice]. ``prunable`` is a pytree of bools like ``params``.
    """
    return jax.tree.map(lambda w, keep: jnp.std(w) if keep else None, params, prunable)


def layer_priors(params: PyTree, prunable: PyTree, name: str = "gaussian", *,
                 match_std: bool = True, **kw) -> PyTree:
    """One prior per prunable leaf whose scale comes from ``init_scales``; ``None`` elsewhere.

    By default (``match_std=True``) every law gets the layer's init std as its standard deviation,
    so the Gaussian's s is that std and the other laws keep the same spread [choice].
    """
    scales = init_scales(params, prunable)
    return jax.tree.map(lambda s: None if s is None else make_prior(name, s, match_std=match_std, **kw),
                        scales, is_leaf=lambda x: x is None)
