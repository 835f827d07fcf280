"""The embedded default dataset: synthetic two-person skeleton actions, deterministic by seed.

Skeleton: the SBU graph (2 persons x 15 joints, ``graphs.SBU_BONES``), in millimetres, y up.
Each class is a motion script: one person moves one limb (or the whole body) along a direction
with a temporal profile. Classes come in pairs that share person, limb and direction and differ
only in the direction of time (e.g. raising vs lowering an arm, approaching vs departing), so a
model must read temporal order, not only where the limbs go. Per sample: random length, time
warp, amplitude, direction jitter, a distractor motion of another limb, rotation about the
vertical axis, body scale and per-frame joint noise. These nuisances make it learnable but not
trivial.
"""

from __future__ import annotations

import numpy as np

from jaxprune.data.dataset import SkeletonDataset
from jaxprune.graphs import SBU_BONES

# Rest pose of one person (15 joints, SBU order), mm, facing +x, origin at the feet's centre.
REST_POSE = np.array([
    [0, 1700, 0], [0, 1500, 0], [0, 1150, 0],                 # head, neck, torso
    [0, 1450, -200], [0, 1150, -250], [0, 860, -270],         # left shoulder, elbow, hand
    [0, 1450, 200], [0, 1150, 250], [0, 860, 270],            # right shoulder, elbow, hand
    [0, 950, -120], [0, 520, -130], [0, 80, -130],            # left hip, knee, foot
    [0, 950, 120], [0, 520, 130], [0, 80, 130],               # right hip, knee, foot
], np.float64)
# Limbs: (joints moved, fraction of the end-effector's displacement each one takes).
LIMBS = (
    ((4, 5), (0.5, 1.0)),            # left arm
    ((7, 8), (0.5, 1.0)),            # right arm
    ((10, 11), (0.5, 1.0)),          # left leg
    ((13, 14), (0.5, 1.0)),          # right leg
    (tuple(range(15)), (1.0,) * 15),  # whole body (a step toward or away)
)


def _class_scripts(num_classes: int, rng: np.random.Generator) -> list[dict]:
    """Pairs of scripts (forward, time-reversed) sharing person, limb, direction and amplitude."""
    scripts = []
    for c in range(0, num_classes, 2):
        limb = int(rng.integers(len(LIMBS)))
        direction = rng.normal(size=3)
        if limb == 4:  # whole body: walk along x (toward / away from the other person)
            direction = np.array([1.0, 0.0, rng.normal(scale=0.3)])
        direction /= np.linalg.norm(direction)
        base = {"person": int(rng.integers(2)), "limb": limb, "direction": direction,
                "amplitude": float(rng.uniform(350, 600) if limb == 4 else rng.uniform(250, 450))}
        scripts.append({**base, "reverse": False})
        scripts.append({**base, "reverse": True})
    return scripts[:num_classes]


def _rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _sample(script: dict, rng: np.random.Generator, length: int, noise_mm: float) -> np.ndarray:
    """One sequence (length, 30, 3) in mm."""
    t = np.linspace(0.0, 1.0, length) ** rng.uniform(0.6, 1.6)          # time warp
    onset, span = rng.uniform(0.0, 0.3), rng.uniform(0.5, 0.8)
    s = np.clip((t - onset) / span, 0.0, 1.0)
    profile = s * s * (3 - 2 * s)                                          # smoothstep 0 -> 1
    if script["reverse"]:
        profile = profile[::-1]
    persons = []
    scale = rng.uniform(0.85, 1.15, size=2)
    gap = rng.uniform(900, 1500)
    for p in range(2):
        pose = np.repeat(REST_POSE[None] * scale[p], length, axis=0)      # (T, 15, 3)
        if p == script["person"]:
            joints, weights = LIMBS[script["limb"]]
            d = script["direction"] + rng.normal(scale=0.25, size=3)
            d /= np.linalg.norm(d)
            amp = script["amplitude"] * rng.uniform(0.6, 1.4)
            disp = amp * profile[:, None] * d[None]                        # (T, 3)
            for j, w in zip(joints, weights):
                pose[:, j] += w * disp
        # A distractor: another limb of either person sways, in-and-out, random direction.
        if rng.random() < 0.7:
            joints, weights = LIMBS[int(rng.integers(4))]
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            sway = rng.uniform(50, 250) * np.sin(np.pi * t * rng.uniform(0.5, 2.0))
            for j, w in zip(joints, weights):
                pose[:, j] += w * sway[:, None] * d[None]
        facing = 0.0 if p == 0 else np.pi                                  # face each other
        pose = pose @ _rotation_y(facing + rng.normal(scale=0.2)).T
        pose[..., 0] += -gap / 2 if p == 0 else gap / 2
        persons.append(pose)
    seq = np.concatenate(persons, axis=1) @ _rotation_y(rng.uniform(-np.pi / 6, np.pi / 6)).T
    seq[..., 2] += 3000.0                                                  # in front of a camera
    return seq + rng.normal(scale=noise_mm, size=seq.shape)


def make_synthetic(seed: int = 0, num_classes: int = 8, per_class: int = 48, min_len: int = 20,
                   max_len: int = 40, noise_mm: float = 40.0, test_fraction: float = 1 / 3
                   ) -> SkeletonDataset:
    """A synthetic two-person action dataset; the same seed gives the same arrays.

    Returns ``num_classes * per_class`` sequences (default 384) of ``min_len``..``max_len``
    frames on the SBU skeleton, in mm. Folds: a fixed, class-stratified split, fold 0 = train,
    fold 1 = test (``test_fraction`` of each class).
    """
    if num_classes < 2 or per_class < 2:
        raise ValueError(f"synthetic data needs num_classes >= 2 and per_class >= 2, "
                         f"got {num_classes} and {per_class}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"synthetic data needs 1 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = np.random.default_rng(seed)
    scripts = _class_scripts(num_classes, rng)
    n = num_classes * per_class
    lengths = rng.integers(min_len, max_len + 1, size=n).astype(np.int32)
    labels = np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
    x = np.zeros((n, max_len, 30, 3), np.float32)
    for i in range(n):
        x[i, : lengths[i]] = _sample(scripts[labels[i]], rng, int(lengths[i]), noise_mm)
    n_test = max(1, round(per_class * test_fraction))
    folds = np.tile((np.arange(per_class) < n_test).astype(np.int32), num_classes)
    names = tuple(f"{'body' if s['limb'] == 4 else ('left_arm', 'right_arm', 'left_leg', 'right_leg')[s['limb']]}"
                  f"_p{s['person'] + 1}_{'back' if s['reverse'] else 'out'}{c // 2}" for c, s in enumerate(scripts))
    return SkeletonDataset(name="synthetic", x=x, lengths=lengths, labels=labels, class_names=names,
                           folds=folds, edges=SBU_BONES, sample_ids=tuple(f"synthetic/{i}" for i in range(n)),
                           units="mm")
