"""The skeleton task's network: the GCN configured for a dataset, and its forward pass with the
augmentation of a training step and the test-time views of evaluation.

``forward(params, chunks, key, train) -> logits (B, classes)`` is what the task's loss
(``jaxprune.task.loss``) and evaluation (``jaxprune.evaluate``) call.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from jaxprune.data.augment import AugmentConfig, augment, swap_groups
from jaxprune.data.dataset import SkeletonDataset
from jaxprune.data.features import FeatureConfig, node_features
from jaxprune.models import gcn

if TYPE_CHECKING:
    from jaxprune.run_config import RunConfig


def gcn_config(dataset: SkeletonDataset, config: RunConfig) -> gcn.GCNConfig:
    return gcn.GCNConfig(**dataclasses.asdict(config.model), num_nodes=dataset.num_joints,
                         num_features=config.features.num_features(),
                         num_classes=dataset.num_classes, edges=dataset.edges)


def make_forward(model: gcn.GCNConfig, features: FeatureConfig, aug: AugmentConfig):
    """``forward(params, chunks (B, J, M, 3), key, train) -> logits (B, classes)``."""

    def forward(params, chunks, key, train: bool):
        if not train and aug.test_crops and chunks.ndim == 5:   # (B, V, J, M, 3) test views
            logits = jax.vmap(lambda c: forward(params, c, key, False), in_axes=1)(chunks)
            return jnp.log(jax.nn.softmax(logits, axis=-1).mean(0))   # log of the mean probability
        drop_key = None
        if train and model.dropout > 0:   # split only then, so runs without dropout keep their keys
            key, drop_key = jax.random.split(key)
        if train:                    # chunks (B, J, M, 3), or (B, V, J, M, 3) versions (crops)
            chunks = augment(key, chunks, aug)
        logits = gcn.apply(params, node_features(chunks, features), model, drop_key)
        if not train and aug.test_swap:
            swapped = swap_groups(chunks, aug.swap_groups)
            logits = 0.5 * (logits + gcn.apply(params, node_features(swapped, features), model))
        return logits

    return forward
