"""Training-time augmentation of chunk positions (..., J, M, 3), jittable and keyed.

All transforms act on positions before node features are formed, so they are exact for chunk
means (which are linear in the frames).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxprune.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Random transforms applied to each training sample independently.

    Attributes:
      rotate_deg: rotation about ``vertical_axis`` by an angle uniform in [-rotate_deg, rotate_deg].
      vertical_axis: 0, 1 or 2, the coordinate that points up (SBU: 1).
      scale: isotropic scale uniform in [1 - scale, 1 + scale].
      swap_groups: if > 1, the joints form this many equal groups (SBU: 2 persons) whose order
        is reversed with probability 1/2.
      noise: std of Gaussian noise added to every coordinate (in feature units).
      joint_drop: probability that a joint's whole trajectory is zeroed (set to the sequence
        centre), independently per joint and sample: the network cannot lean on any one joint.
      crops: temporal crops. If > 0, each training sequence also gets this many random
        sub-sequences (length a uniform fraction in [crop_min, 1] of its own, random start),
        chunked once before training (``jaxprune.data.features.crop_bank``); each step then
        sees one of its 1 + crops versions at random. Test sequences are never cropped.
      crop_min: the shortest crop as a fraction of the sequence, in (0, 1].
      test_swap: at evaluation, average the logits of each sample and of its group-swapped
        version (needs swap_groups > 1): test-time augmentation; it doubles inference FLOPs,
        which the reported FLOPs (one pass) do not include.
      test_crops: at evaluation, average the class probabilities of each test sequence and of
        six fixed crops of it (``jaxprune.data.features.fixed_crops``: lengths crop_min and
        (1 + crop_min) / 2 of its own, at its start, middle and end). Inference costs 7 passes;
        the reported FLOPs (one pass) do not include them.
    """

    rotate_deg: float = 0.0
    vertical_axis: int = 1
    scale: float = 0.0
    swap_groups: int = 0
    noise: float = 0.0
    joint_drop: float = 0.0
    crops: int = 0
    crop_min: float = 0.8
    test_swap: bool = False
    test_crops: bool = False

    def __post_init__(self):
        if not 0.0 <= self.rotate_deg <= 180.0:
            raise ValueError(f"augment setting rotate_deg must be in [0, 180], got {self.rotate_deg}")
        if self.vertical_axis not in (0, 1, 2):
            raise ValueError(f"augment setting vertical_axis must be 0, 1 or 2, got {self.vertical_axis}")
        if not 0.0 <= self.scale < 1.0:
            raise ValueError(f"augment setting scale must be in [0, 1) (factors in [1 - scale, 1 + scale] "
                             f"stay positive), got {self.scale}")
        if self.swap_groups < 0:
            raise ValueError(f"augment setting swap_groups must be >= 0 (0 or 1: off), got {self.swap_groups}")
        if not self.noise >= 0.0:
            raise ValueError(f"augment setting noise must be >= 0, got {self.noise}")
        if not 0.0 <= self.joint_drop < 1.0:
            raise ValueError(f"augment setting joint_drop must be in [0, 1), got {self.joint_drop}")
        if self.test_swap and self.swap_groups < 2:
            raise ValueError("augment setting test_swap needs swap_groups >= 2 (the groups to swap)")
        if self.crops < 0:
            raise ValueError(f"augment setting crops must be >= 0, got {self.crops}")
        if not 0.0 < self.crop_min <= 1.0:
            raise ValueError(f"augment setting crop_min must be in (0, 1], got {self.crop_min}")

    @property
    def active(self) -> bool:
        return bool(self.rotate_deg or self.scale or self.swap_groups > 1 or self.noise or self.joint_drop)


def _rotation(angle: jax.Array, axis: int) -> jax.Array:
    """(3, 3) rotation by ``angle`` radians about coordinate ``axis``."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    r = jnp.eye(3)
    return r.at[i, i].set(c).at[j, j].set(c).at[i, j].set(-s).at[j, i].set(s)


def swap_groups(chunks: jax.Array, groups: int, axis: int = -3) -> jax.Array:
    """Reverses the order of ``groups`` equal blocks of joints along ``axis`` (SBU: person A <-> B)."""
    axis = axis % chunks.ndim
    j = chunks.shape[axis]
    if groups < 1 or j % groups:
        raise DataError(f"augment setting swap_groups={groups} needs the skeleton's joints to form "
                        f"{groups} equal groups, but it has {j} joints")
    shape = chunks.shape[:axis] + (groups, j // groups) + chunks.shape[axis + 1:]
    return jnp.flip(chunks.reshape(shape), axis).reshape(chunks.shape)


def augment_one(key: jax.Array, chunks: jax.Array, config: AugmentConfig) -> jax.Array:
    """One sample's chunk positions (J, M, 3) -> transformed (J, M, 3)."""
    k_rot, k_scale, k_swap, k_noise, k_drop = jax.random.split(key, 5)
    x = chunks
    if config.rotate_deg:
        angle = jnp.deg2rad(config.rotate_deg) * jax.random.uniform(k_rot, (), minval=-1.0, maxval=1.0)
        x = x @ _rotation(angle, config.vertical_axis).T
    if config.scale:
        x = x * jax.random.uniform(k_scale, (), minval=1 - config.scale, maxval=1 + config.scale)
    if config.swap_groups > 1:
        x = jnp.where(jax.random.bernoulli(k_swap), swap_groups(x, config.swap_groups, 0), x)
    if config.noise:
        x = x + config.noise * jax.random.normal(k_noise, x.shape)
    if config.joint_drop:
        keep = jax.random.bernoulli(k_drop, 1.0 - config.joint_drop, (x.shape[0], 1, 1))
        x = jnp.where(keep, x, 0.0)
    return x


def pick_version(key: jax.Array, chunks: jax.Array) -> jax.Array:
    """(B, V, J, M, 3) versions of each sample (e.g. temporal crops) -> one at random each (B, J, M, 3)."""
    choice = jax.random.randint(key, (chunks.shape[0],), 0, chunks.shape[1])
    return chunks[jnp.arange(chunks.shape[0]), choice]


def augment(key: jax.Array, chunks: jax.Array, config: AugmentConfig) -> jax.Array:
    """A batch (B, J, M, 3) with each sample transformed independently; identity if inactive.

    A batch of versions (B, V, J, M, 3) first gets one version per sample (``pick_version``).
    """
    if chunks.ndim == 5:
        key, sub = jax.random.split(key)
        chunks = pick_version(sub, chunks)
    if not config.active:
        return chunks
    keys = jax.random.split(key, chunks.shape[0])
    return jax.vmap(augment_one, in_axes=(0, 0, None))(keys, chunks, config)
