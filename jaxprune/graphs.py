"""Skeleton graphs: bone lists of the supported datasets and their normalised adjacency."""

from __future__ import annotations

import numpy as np

# SBU Kinect: 15 joints a person (0 head, 1 neck, 2 torso, 3-5 left arm, 6-8 right arm,
# 9-11 left leg, 12-14 right leg); person B is the same with +15.
SBU_PERSON_BONES = ((0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (1, 6), (6, 7), (7, 8),
                    (2, 9), (9, 10), (10, 11), (2, 12), (12, 13), (13, 14))
SBU_JOINTS_PER_PERSON = 15
SBU_BONES = SBU_PERSON_BONES + tuple((i + 15, j + 15) for i, j in SBU_PERSON_BONES)

# FPHA hand: 0 wrist, 1-5 MCP (thumb..pinky), then PIP, DIP, TIP of each finger.
FPHA_BONES = ((0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 6), (6, 7), (7, 8), (2, 9), (9, 10),
              (10, 11), (3, 12), (12, 13), (13, 14), (4, 15), (15, 16), (16, 17), (5, 18),
              (18, 19), (19, 20))


def adjacency(edges, num_nodes: int, self_loops: bool = True) -> np.ndarray:
    """Symmetric 0/1 adjacency (num_nodes, num_nodes) float32 of an undirected edge list."""
    a = np.zeros((num_nodes, num_nodes), np.float32)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    if self_loops:
        a[np.arange(num_nodes), np.arange(num_nodes)] = 1.0
    return a


def normalized_adjacency(edges, num_nodes: int) -> np.ndarray:
    """D^-1/2 (A + I) D^-1/2 (num_nodes, num_nodes) float32, the usual GCN propagation matrix."""
    a = adjacency(edges, num_nodes, self_loops=True)
    d = 1.0 / np.sqrt(a.sum(1))
    return a * d[:, None] * d[None, :]
