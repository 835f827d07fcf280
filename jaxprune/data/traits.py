"""What the data says about the settings that depend on it: persons and the vertical axis.

A preset's data-independent settings carry to any dataset; these cannot, and are read here from
the skeleton and the coordinates where that is possible (``data_notes`` says what it found and
what the user should set, without setting it: whether swapping two persons keeps the label is a
property of the labels, which the skeleton does not show).
"""

from __future__ import annotations

import numpy as np


def persons(edges, num_joints: int) -> int:
    """2 when the skeleton is two copies of one body (joints 0 .. J/2 − 1 and J/2 .. J − 1, the
    second half's bones those of the first shifted by J/2, no bone between them), else 1."""
    half = num_joints // 2
    if num_joints < 2 or num_joints % 2 or not edges:
        return 1
    bones = {tuple(sorted(e)) for e in edges}
    first = {b for b in bones if max(b) < half}
    second = {(i - half, j - half) for i, j in bones if min(i, j) >= half}
    return 2 if first and first == second and len(first) + len(second) == len(bones) else 1


def tallest_axis(x: np.ndarray, lengths: np.ndarray) -> int:
    """The coordinate (0, 1 or 2) along which the joints of a frame spread most, median over the
    sequences' middle frames: the vertical axis of standing bodies (not of a hand)."""
    middle = x[np.arange(len(lengths)), np.asarray(lengths) // 2]          # (N, J, 3)
    spread = middle.max(axis=1) - middle.min(axis=1)                        # (N, 3)
    return int(np.argmax(np.median(spread, axis=0)))


def data_notes(dataset, config) -> list[str]:
    """Notes on ``dataset``'s data-dependent settings that ``config`` leaves at their defaults."""
    notes = []
    if persons(dataset.edges, dataset.num_joints) == 2 and config.augment.swap_groups <= 1:
        half = dataset.num_joints // 2
        notes.append(f"two persons detected (joints 0-{half - 1} and {half}-{dataset.num_joints - 1}, the same "
                     "bones): if an action keeps its label when the persons swap roles, --set "
                     "augment.swap_groups=2 (SBU: yes, validated; the skeleton cannot tell); it is left off")
    if config.features.align_from < 0:
        notes.append("no view alignment: --set features.align_from=I --set features.align_to=J to rotate "
                     "each sequence so that joint I -> joint J points along +x (SBU: torso 2 -> torso 17)")
    axis = tallest_axis(dataset.x, dataset.lengths)
    if axis != config.augment.vertical_axis and config.augment.rotate_deg > 0:
        notes.append(f"the skeletons are tallest along coordinate {axis}, but rotations turn about "
                     f"augment.vertical_axis={config.augment.vertical_axis}: if these are standing bodies with "
                     f"coordinate {axis} up, --set augment.vertical_axis={axis} --set features.vertical_axis={axis}")
    return notes
