"""Exponential moving average of the parameters, served in place of the last step's.

``params_ema(decay)`` is an optax transformation that leaves the updates as they are and keeps,
in its state, an average of the parameters after each step:

    m_t = decay · m_{t−1} + (1 − decay) · θ_t,     w_t = decay · w_{t−1} + (1 − decay),
    m_0 = w_0 = 0,     θ̄_t = m_t / w_t

(θ_t = params + updates, the parameters the step produces; w_t = 1 − decay^t is the weight m_t
has gathered, so the division removes the bias of starting at 0 and θ̄ is a proper weighted mean
of θ_1..θ_t for any run length). Chain it last, after every transformation that changes the
updates. ``averaged_params(opt_state)`` finds it in a chain's state and returns θ̄ (None where
the chain has none, or before its first step); the state holds all it needs, so the decay is
given once. The average lives in the optimizer state, so checkpoints carry it and a resumed run
ends with the same average.

Averaging weights late in training is the Polyak–Ruppert average; its exponential form is the
"EMA of weights" many training recipes serve. With decay d its horizon is about 1 / (1 − d)
steps. For a pruned network the average is taken of the latent (unmasked) weights, and the
method's masks are then computed from it, as from the last step's weights without it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class ParamsEmaState(NamedTuple):
    weight: jax.Array  # float32 scalar w_t = 1 − decay^t, 0 before the first step
    mean: Any          # params-shaped pytree m_t (biased toward 0 until divided by w_t)


def params_ema(decay: float) -> optax.GradientTransformationExtraArgs:
    """Identity on the updates; keeps the moving average m_t of params + updates (see module)."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"training setting ema must be in (0, 1) (e.g. 0.999), or 0 for no average; got {decay}")

    def init(params):
        return ParamsEmaState(jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None, **extra):
        del extra
        if params is None:
            raise ValueError("params_ema needs params in update(updates, state, params)")
        mean = jax.tree.map(lambda m, p, u: decay * m + (1.0 - decay) * (p + u), state.mean, params, updates)
        return updates, ParamsEmaState(decay * state.weight + (1.0 - decay), mean)

    return optax.GradientTransformationExtraArgs(init, update)


def averaged_params(opt_state: Any) -> Any:
    """θ̄ = m_t / w_t of the ``params_ema`` state inside ``opt_state``; None if there is none or
    no step has been taken (nothing averaged yet)."""
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, ParamsEmaState))
             if isinstance(s, ParamsEmaState)]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError("the optimizer state holds more than one params_ema average")
    state = found[0]
    if float(state.weight) == 0.0:
        return None
    return jax.tree.map(lambda m: m / state.weight, state.mean)
