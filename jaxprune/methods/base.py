"""What every pruner offers besides its loss and masks: a state carried through training.

A pruner may keep its own state in ``TrainState.prune_state`` (e.g. a baseline's current masks):
``init_prune_state(params, key, data, forward)`` makes it before training, ``update_fn(params,
prune_state, step) -> (params, prune_state)`` runs after every optimizer step (None: nothing to
do), and ``finish(prune_state)`` returns the pruner that serves the trained model. ``Stateless``
gives the defaults of a pruner whose masks are a function of the params alone (dense, MRMP, CTF).
"""

from __future__ import annotations


class Stateless:
    """Defaults for a pruner that keeps no state in the train state."""

    update_fn = None

    def init_prune_state(self, params, key, data, forward):
        return None

    def finish(self, prune_state):
        return self
