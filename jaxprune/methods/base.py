"""The pruner protocol: what every pruning method is, whatever the model and the task.

A pruner is a small pytree (a ``flax.struct`` dataclass; its arrays, e.g. MRMP's priors, are its
leaves) with pure functions; it never sees the task's loss or batch format
(``jaxprune.methods.wrap.pruned_loss`` joins the two):

    pruner.init(params, key, batch=None, score_loss=None) -> prune_state   (a pytree, or None)
    pruner.train_masks(params, prune_state, key, step)    -> masks of one training step (None: no mask;
                                                             a leading (K,) axis when pruner.multi_rate)
    pruner.penalty(params, masks, prune_state, key, step) -> (terms added to the loss, metrics)
    pruner.update(params, prune_state, step, grads)       -> (params, prune_state) after an optimizer step
    pruner.apply(params, masks)                           -> the weights the task sees (W ⊙ M by default)
    pruner.hard_masks(params, rates (R,))                 -> masks with a leading R axis (None: dense leaf)
    pruner.layer_rates(params, rates)                     -> per-layer target rates, or None
    pruner.finish(prune_state)                            -> the pruner that serves the trained model
    pruner.template(params)                               -> a finished pruner's shape, to restore into

and the static fields ``trained_rates``, ``serves_any_rate``, ``multi_rate`` and ``draws_keys``
(True: ``train_masks`` and ``penalty`` get keys of their own; False: they get None). ``key`` and
``batch`` of ``init`` serve pruners that score weights before training (SNIP differentiates
``score_loss(params, batch, key)``); ``update_fn`` is ``update``, or None when it does nothing.
``Stateless`` gives the defaults of a pruner whose masks are a function of the params alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune.masks.bandstop import apply_masks


class Stateless:
    """Defaults for a pruner that keeps no state in the train state."""

    update_fn = None
    multi_rate = False
    draws_keys = False

    def init(self, params, key=None, batch=None, score_loss=None):
        return None

    def update(self, params, prune_state, step, grads=None):
        return params, prune_state

    def apply(self, params, masks):
        """The weights the task sees: W ⊙ M (``jaxprune.masks.bandstop.apply_masks``)."""
        return apply_masks(params, masks)

    def penalty(self, params, masks, prune_state, key, step):
        return (), {}

    def finish(self, prune_state):
        return self

    def template(self, params):
        """The pruner with its arrays shaped as a trained one's (what a saved model restores into)."""
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
