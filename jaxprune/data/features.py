"""Node features of METHOD.md §5: one node per joint, the trajectory cut into M temporal chunks.

Two stages, so that augmentation can act on positions inside the jitted train step:

1. ``chunk_positions`` (numpy, once per dataset): (N, T, J, 3) padded sequences -> (N, J, M, 3)
   positions, centred and scaled.
2. ``node_features`` (jax, every step): (..., J, M, 3) -> (..., J, F) by flattening the chunks,
   optionally appending chunk-to-chunk displacements (velocities).

Chunk means use exact equal-length chunks: chunk m averages the frames in [m L/M, (m+1) L/M)
weighted by their overlap, so sequences shorter than M frames still get M well-defined chunks.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jaxprune.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """How sequences become node features.

    Attributes:
      chunks: M, the number of equal temporal chunks.
      pooling: "mean" (the mean position of each chunk, the papers' reading) or "interp"
        (the position linearly interpolated at each chunk's centre).
      centre: "sequence" subtracts each sequence's mean position over all valid frames and
        joints (translation invariance); "none" keeps raw coordinates.
      scale: "dataset" divides by one number, the RMS of the centred training coordinates
        (set at fit time, see ``fit_scale``); "none" keeps units.
      velocities: append the displacement between consecutive chunks (first chunk: 0),
        doubling F.
    """

    chunks: int = 4
    pooling: str = "mean"
    centre: str = "sequence"
    scale: str = "dataset"
    velocities: bool = False

    def __post_init__(self):
        if self.chunks < 1:
            raise DataError(f"feature setting chunks must be >= 1, got {self.chunks}")
        for name, value, allowed in (("pooling", self.pooling, ("mean", "interp")),
                                     ("centre", self.centre, ("sequence", "none")),
                                     ("scale", self.scale, ("dataset", "none"))):
            if value not in allowed:
                raise DataError(f"feature setting {name} must be one of {allowed}, got {value!r}")

    @property
    def channels_per_chunk(self) -> int:
        return 6 if self.velocities else 3

    def num_features(self) -> int:
        """F, the per-node feature size."""
        return self.chunks * self.channels_per_chunk


def chunk_weights(lengths: np.ndarray, max_len: int, chunks: int, pooling: str) -> np.ndarray:
    """Weights (N, M, T) whose product with a sequence (T, ...) gives its M chunk positions."""
    lengths = np.asarray(lengths, np.float64)[:, None, None]
    m = np.arange(chunks, dtype=np.float64)[None, :, None]
    t = np.arange(max_len, dtype=np.float64)[None, None, :]
    if pooling == "mean":
        lo, hi = m * lengths / chunks, (m + 1) * lengths / chunks
        w = np.clip(np.minimum(t + 1, hi) - np.maximum(t, lo), 0.0, None)
    else:  # linear interpolation at the chunk centre, in frame units
        centre = np.clip((m + 0.5) * lengths / chunks - 0.5, 0.0, lengths - 1)
        w = np.clip(1.0 - np.abs(t - centre), 0.0, None)
    return w / w.sum(-1, keepdims=True)


def chunk_positions(x: np.ndarray, lengths: np.ndarray, config: FeatureConfig,
                    scale: float | None = None) -> np.ndarray:
    """Chunked, centred, scaled positions float32 (N, J, M, 3) of padded sequences x (N, T, J, 3).

    ``scale`` is the divisor for config.scale == "dataset" (from ``fit_scale`` on training data);
    None means 1.
    """
    n, t, _, _ = x.shape
    x = np.asarray(x, np.float64)
    valid = (np.arange(t)[None, :] < np.asarray(lengths)[:, None]).astype(np.float64)  # (N, T)
    if config.centre == "sequence":
        centre = np.einsum("nt,ntjc->nc", valid, x) / (valid.sum(1)[:, None] * x.shape[2])
        x = x - centre[:, None, None, :]
    w = chunk_weights(lengths, t, config.chunks, config.pooling)
    out = np.einsum("nmt,ntjc->njmc", w, x)
    if config.scale == "dataset" and scale is not None:
        out = out / scale
    return out.astype(np.float32)


def fit_scale(chunks: np.ndarray) -> float:
    """The RMS of chunked positions (N, J, M, 3), the divisor that brings them to unit scale."""
    return float(np.sqrt(np.mean(np.square(chunks, dtype=np.float64)))) or 1.0


def node_features(chunks: jnp.ndarray, config: FeatureConfig) -> jnp.ndarray:
    """(..., J, M, 3) chunk positions -> (..., J, F) node features (F = config.num_features())."""
    parts = [chunks]
    if config.velocities:
        vel = jnp.diff(chunks, axis=-2, prepend=chunks[..., :1, :])
        parts.append(vel)
    feats = jnp.concatenate(parts, axis=-1)
    return feats.reshape(*feats.shape[:-2], -1)
