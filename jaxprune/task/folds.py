"""One split of a skeleton dataset as the arrays training and evaluation read.

``fold_data`` turns a ``SkeletonDataset`` and a test fold into chunk positions scaled by a factor
fitted on the training part only, with the training crops and the test-time views the augmentation
settings ask for.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxprune.data.augment import AugmentConfig
from jaxprune.data.dataset import SkeletonDataset
from jaxprune.data.features import FeatureConfig, chunk_positions, crop_bank, fit_scale, fixed_crops


@dataclasses.dataclass(frozen=True)
class FoldData:
    """One split's arrays: chunk positions (N, J, M, 3) float32 and labels (N,) int32.

    ``test_views`` (N, 7, J, M, 3) are the test sequences and their fixed crops when
    ``augment.test_crops`` is on (None otherwise); ``eval_chunks`` is what evaluation scores.
    """

    train_chunks: np.ndarray
    train_labels: np.ndarray
    test_chunks: np.ndarray
    test_labels: np.ndarray
    scale: float
    test_views: np.ndarray | None = None

    @property
    def eval_chunks(self) -> np.ndarray:
        return self.test_chunks if self.test_views is None else self.test_views


def fold_data(dataset: SkeletonDataset, test_fold: int, features: FeatureConfig,
              aug: AugmentConfig | None = None, seed: int = 0) -> FoldData:
    """Chunk positions of a split, scaled by a factor fitted on its training part only.

    With ``aug.crops`` > 0 the training chunks are (N, 1 + crops, J, M, 3): each sequence and its
    random temporal crops (drawn from ``seed`` and the fold), picked from at random in the step.
    """
    train, test = dataset.split(test_fold)
    chunks = chunk_positions(dataset.x, dataset.lengths, features)
    scale = fit_scale(chunks[train]) if features.scale == "dataset" else 1.0
    chunks = chunks / np.float32(scale)
    train_chunks = chunks[train]
    if aug is not None and aug.crops:
        rng = np.random.default_rng([seed, test_fold])
        train_chunks = crop_bank(dataset.x[train], dataset.lengths[train], features, aug.crops,
                                 aug.crop_min, rng) / np.float32(scale)
    test_views = None
    if aug is not None and aug.test_crops:
        test_views = fixed_crops(dataset.x[test], dataset.lengths[test], features, aug.crop_min) / np.float32(scale)
    return FoldData(train_chunks, dataset.labels[train], chunks[test], dataset.labels[test], scale, test_views)
