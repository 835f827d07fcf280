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
      velocities: append the displacement between consecutive chunks (first chunk: 0).
      partner_offsets: append each joint's offset from the same joint of the other person
        (the skeleton is read as two persons of J/2 joints each, as on SBU): how the two bodies
        stand relative to each other, joint by joint. Needs an even J.
      align_from, align_to: joints i, j (or -1: off). Each sequence is rotated about the
        vertical axis so that the mean horizontal direction from joint i to joint j points along
        +x (a canonical view). On SBU, 2 -> 17 (torso of person A -> torso of person B).
      vertical_axis: the coordinate that points up (SBU: 1), for ``align_*``.
    """

    chunks: int = 4
    pooling: str = "mean"
    centre: str = "sequence"
    scale: str = "dataset"
    velocities: bool = False
    partner_offsets: bool = False
    align_from: int = -1
    align_to: int = -1
    vertical_axis: int = 1

    def __post_init__(self):
        if self.chunks < 1:
            raise DataError(f"feature setting chunks must be >= 1, got {self.chunks}")
        for name, value, allowed in (("pooling", self.pooling, ("mean", "interp")),
                                     ("centre", self.centre, ("sequence", "none")),
                                     ("scale", self.scale, ("dataset", "none"))):
            if value not in allowed:
                raise DataError(f"feature setting {name} must be one of {allowed}, got {value!r}")
        if (self.align_from < 0) != (self.align_to < 0) or (self.align_from >= 0 and self.align_from == self.align_to):
            raise DataError(f"feature settings align_from/align_to must both be -1 (off) or two distinct "
                            f"joints, got {self.align_from}, {self.align_to}")
        if self.vertical_axis not in (0, 1, 2):
            raise DataError(f"feature setting vertical_axis must be 0, 1 or 2, got {self.vertical_axis}")

    @property
    def channels_per_chunk(self) -> int:
        return 3 * (1 + int(self.velocities) + int(self.partner_offsets))

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
    if config.align_from >= 0:
        x = align_view(x, valid, config.align_from, config.align_to, config.vertical_axis)
    w = chunk_weights(lengths, t, config.chunks, config.pooling)
    out = np.einsum("nmt,ntjc->njmc", w, x)
    if config.scale == "dataset" and scale is not None:
        out = out / scale
    return out.astype(np.float32)


def crop_bank(x: np.ndarray, lengths: np.ndarray, config: FeatureConfig, crops: int, crop_min: float,
              rng: np.random.Generator) -> np.ndarray:
    """Chunk positions (N, 1 + crops, J, M, 3) of every sequence and of ``crops`` random temporal
    crops of it (length round(f·L), f uniform in [crop_min, 1], at least 1 frame; start uniform).
    Version 0 is the whole sequence. Unscaled, like ``chunk_positions`` with scale=None."""
    lengths = np.asarray(lengths)
    n = x.shape[0]
    versions = [chunk_positions(x, lengths, config)]
    for _ in range(crops):
        new = np.maximum(1, np.round(rng.uniform(crop_min, 1.0, n) * lengths)).astype(np.int64)
        start = np.floor(rng.uniform(0, 1, n) * (lengths - new + 1)).astype(np.int64)
        versions.append(_cropped(x, start, new, config))
    return np.stack(versions, axis=1)


def fixed_crops(x: np.ndarray, lengths: np.ndarray, config: FeatureConfig, crop_min: float) -> np.ndarray:
    """Chunk positions (N, 7, J, M, 3): each sequence, then its crops of round(f·L) frames for
    f in (crop_min, (1 + crop_min) / 2), each at the start, middle and end. Deterministic (for
    test-time averaging); unscaled, like ``chunk_positions`` with scale=None."""
    lengths = np.asarray(lengths)
    versions = [chunk_positions(x, lengths, config)]
    for fraction in (crop_min, 0.5 * (1.0 + crop_min)):
        new = np.maximum(1, np.round(fraction * lengths)).astype(np.int64)
        for where in (0.0, 0.5, 1.0):
            versions.append(_cropped(x, np.floor(where * (lengths - new)).astype(np.int64), new, config))
    return np.stack(versions, axis=1)


def _cropped(x: np.ndarray, start: np.ndarray, length: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Chunk positions (N, J, M, 3) of frames [start, start + length) of each sequence x (N, T, J, 3)."""
    t = x.shape[1]
    idx = np.minimum(start[:, None] + np.arange(t)[None, :], t - 1)           # (N, T)
    return chunk_positions(np.take_along_axis(x, idx[:, :, None, None], 1), length, config)


def align_view(x: np.ndarray, valid: np.ndarray, joint_from: int, joint_to: int,
               vertical_axis: int) -> np.ndarray:
    """Rotates each sequence x (N, T, J, 3) about the vertical axis so that the mean over valid
    frames (N, T) of (x[:, :, joint_to] - x[:, :, joint_from]), projected on the horizontal
    plane, points along the first horizontal axis. Sequences where it is ~0 are left as they are.
    """
    if max(joint_from, joint_to) >= x.shape[2]:
        raise DataError(f"feature settings align_from/align_to = {joint_from}, {joint_to} name a joint "
                        f"outside the skeleton's {x.shape[2]} joints")
    a, b = [k for k in range(3) if k != vertical_axis]
    d = np.einsum("nt,ntc->nc", valid, x[:, :, joint_to] - x[:, :, joint_from])
    angle = np.arctan2(d[:, b], d[:, a])                       # current direction in the (a, b) plane
    angle = np.where(np.hypot(d[:, a], d[:, b]) > 1e-9, angle, 0.0)
    c, s = np.cos(-angle)[:, None, None], np.sin(-angle)[:, None, None]
    out = x.copy()
    out[..., a] = c * x[..., a] - s * x[..., b]
    out[..., b] = s * x[..., a] + c * x[..., b]
    return out


def fit_scale(chunks: np.ndarray) -> float:
    """The RMS of chunked positions (N, J, M, 3), the divisor that brings them to unit scale."""
    return float(np.sqrt(np.mean(np.square(chunks, dtype=np.float64)))) or 1.0


def node_features(chunks: jnp.ndarray, config: FeatureConfig) -> jnp.ndarray:
    """(..., J, M, 3) chunk positions -> (..., J, F) node features (F = config.num_features()).

    Per chunk: position, then velocity and partner offset when enabled.
    """
    parts = [chunks]
    if config.velocities:
        vel = jnp.diff(chunks, axis=-2, prepend=chunks[..., :1, :])
        parts.append(vel)
    if config.partner_offsets:
        joints = chunks.shape[-3]
        if joints % 2:
            raise DataError(f"feature setting partner_offsets needs two persons with the same joints "
                            f"(an even joint count), got {joints} joints")
        parts.append(chunks - jnp.roll(chunks, joints // 2, axis=-3))
    feats = jnp.concatenate(parts, axis=-1)
    return feats.reshape(*feats.shape[:-2], -1)
