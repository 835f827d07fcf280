"""What every pruner offers besides its loss and masks: a state carried through training.

A pruner may keep its own state in ``TrainState.prune_state`` (e.g. a baseline's current masks):
``init_prune_state(params, key, data, forward)`` makes it before training, ``update_fn(params,
prune_state, step) -> (params, prune_state)`` runs after every optimizer step (None: nothing to
do), and ``finish(prune_state)`` returns the pruner that serves the trained model. ``Stateless``
gives the defaults of a pruner whose masks are a function of the params alone (dense, MRMP, CTF).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


class Stateless:
    """Defaults for a pruner that keeps no state in the train state."""

    update_fn = None

    def init_prune_state(self, params, key, data, forward):
        return None

    def finish(self, prune_state):
        return self


def at_trained_rate(masks, rates, trained: float, method: str):
    """``masks`` repeated along a leading (R,) axis for ``rates`` (R,), all of which must be the
    one rate ``trained`` that a single-rate method serves (ValueError naming ``method`` otherwise).

    Jittable in ``rates``: traced rates are checked when the computation runs (the ValueError
    then reaches the caller inside jax's runtime error)."""
    def check(rates):
        rates = np.asarray(rates, np.float64)
        if not np.allclose(rates, trained):
            raise ValueError(f"a {method} run serves its trained rate {trained:g} only, asked for {rates.tolist()}")
    if isinstance(rates, jax.core.Tracer):
        jax.debug.callback(check, rates)
    else:
        check(rates)
    count = np.shape(rates)[0]
    return jax.tree.map(lambda m: jnp.broadcast_to(m, (count,) + m.shape), masks)
