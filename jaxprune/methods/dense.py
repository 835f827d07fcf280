"""Dense training: cross-entropy of the unmasked GCN (the reference every pruning method meets)."""

from __future__ import annotations

from jaxprune.losses import accuracy, cross_entropy


def make_loss(forward, label_smoothing: float = 0.0):
    """``loss(params, batch, key, step) -> (loss, metrics)`` for batch {'chunks', 'labels'}.

    ``forward(params, chunks, key, train)`` returns logits (B, classes).
    """

    def loss(params, batch, key, step):
        del step
        logits = forward(params, batch["chunks"], key, True)
        ce = cross_entropy(logits, batch["labels"], label_smoothing)
        return ce, {"loss": ce, "accuracy": accuracy(logits, batch["labels"])}

    return loss
