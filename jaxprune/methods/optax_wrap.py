"""Any optax optimizer, pruned: the pruner's schedule runs inside the optimizer's update.

    tx = with_pruning(optax.adam(1e-3), pruner, prune_state)
    opt_state = tx.init(params)                     # PrunedState(inner, prune_state, count)
    loss = pruned_loss(pruner, my_loss)             # jaxprune.methods.wrap
    (value, metrics), grads = jax.value_and_grad(loss, has_aux=True)(
        params, batch, key, opt_state.count, opt_state.prune_state)
    updates, opt_state = tx.update(grads, opt_state, params, value=value)   # extra args reach tx
    params = optax.apply_updates(params, updates)

``update`` runs ``tx``, then ``pruner.update`` on the updated params (a baseline prunes, rewinds
or rewrites its masks at its scheduled steps) and returns the updates that lead there. For a
pruner whose ``update_fn`` is None (MRMP, CTF, dense: their masks are functions of the params)
``tx``'s updates pass through untouched. Extra keyword arguments of ``update`` (e.g. ``value=``
for a rule that reads the loss) go to ``tx``, so optimizers that need them work.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class PrunedState(NamedTuple):
    """``inner``: the wrapped optimizer's state; ``prune_state``: the pruner's (e.g. a baseline's
    masks); ``count``: optimizer steps taken (int32 scalar), the ``step`` of ``pruned_loss``."""

    inner: Any
    prune_state: Any
    count: jax.Array


def with_pruning(tx: optax.GradientTransformation, pruner, prune_state=None) -> optax.GradientTransformationExtraArgs:
    """``tx`` followed by ``pruner.update`` after every step (module docstring); ``prune_state`` is
    what ``pruner.init`` made. The updates then carry the params to the pruner's values up to
    float rounding (params + (pruned − params)); pruned weights land on exactly 0."""
    tx = optax.with_extra_args_support(tx)

    def init(params):
        return PrunedState(tx.init(params), prune_state, jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, **extra):
        grads = updates
        updates, inner = tx.update(updates, state.inner, params, **extra)
        count = state.count + 1
        if pruner.update_fn is None:
            return updates, PrunedState(inner, state.prune_state, count)
        if params is None:
            raise ValueError("with_pruning: this pruner rewrites the params after each step, so update() "
                             "needs them: tx.update(grads, opt_state, params)")
        pruned, new_state = pruner.update(optax.apply_updates(params, updates), state.prune_state, count, grads)
        return jax.tree.map(lambda p, q: p - q, pruned, params), PrunedState(inner, new_state, count)

    return optax.GradientTransformationExtraArgs(init, update)
