"""Data parallelism with ``jax.sharding``: a 1-D device mesh, the data sharded, parameters replicated.

Training places the train state with ``replicate`` and the training set with ``shard_rows``
(each device holds its share of the samples, each host only its devices' shares); inside the
jitted step ``gather_rows`` assembles a batch, split over the devices, from rows that may live
on any device. XLA then runs every device on its slice of the batch and all-reduces the
gradients (GSPMD). On one device all of these are plain indexing or no-ops, so the same code runs
everywhere.

Multi-host (a GPU cluster, a TPU pod slice): ``jaxprune.hosts.initialize_distributed`` before
anything else touches jax, on every host; ``jax.devices()`` then lists the devices of all hosts,
the mesh spans them, and ``to_local`` brings replicated results back to each host.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (default all, on every host)."""
    devices = jax.devices()
    n = len(devices) if num_devices is None else num_devices
    if not 1 <= n <= len(devices):
        raise ValueError(f"setting train.devices={num_devices}: this machine has {len(devices)} device(s)")
    # Auto axes: XLA propagates the batch sharding through the step (GSPMD); jax's default for
    # make_mesh is Explicit axes, which would need every op's sharding spelled out.
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices[:n])


def mesh_for_batch(devices: int, batch: int) -> Mesh | None:
    """The data mesh for the ``train.devices`` setting and a step's ``batch``; None for one device.

    ``devices`` 0 takes the most devices (up to all) whose count divides the batch; a given count
    must divide it (a clear error otherwise).
    """
    available = len(jax.devices())
    if jax.process_count() > 1:   # every process must own part of the mesh
        if devices not in (0, available) or batch % available:
            raise ValueError(f"multi-host training runs on all {available} devices of the "
                             f"{jax.process_count()} processes: it needs train.devices=0 (or {available}) and a "
                             f"batch that splits over them, got train.devices={devices} and a batch of {batch}; "
                             f"use a train.batch_size that is a multiple of {available}")
        return data_mesh(available)
    if devices == 0:
        n = max(k for k in range(1, available + 1) if batch % k == 0)
    else:
        n = devices
        if n <= available and batch % n:
            raise ValueError(f"setting train.devices={n}: a batch of {batch} samples does not split over {n} "
                             f"devices; use a train.batch_size that is a multiple of {n}")
    return None if n == 1 else data_mesh(n)


def gather_rows(data: Any, index: jax.Array, mesh: Mesh | None) -> Any:
    """Inside a jitted function: rows ``index`` (B,) of every array in ``data`` (leading axis the
    samples, sharded over the mesh as ``shard_rows`` places it), as a batch split over the mesh.

    Each device picks the rows it holds (zeros for the others) and a ``psum_scatter`` hands every
    device its slice of the batch: the values are exactly ``a[index]`` and no device ever holds more
    than its share of the data plus one batch. Without a mesh: ``a[index]``. B must divide by the
    mesh size.
    """
    if mesh is None or mesh.size == 1:
        return jax.tree.map(lambda a: a[index], data)
    spec = PartitionSpec(DATA_AXIS)

    def local(block, index):
        rows = block.shape[0]
        pos = index - jax.lax.axis_index(DATA_AXIS) * rows
        here = ((pos >= 0) & (pos < rows)).reshape((-1,) + (1,) * (block.ndim - 1))
        picked = jnp.where(here, block[jnp.clip(pos, 0, rows - 1)], jnp.zeros((), block.dtype))
        return jax.lax.psum_scatter(picked, DATA_AXIS, scatter_dimension=0, tiled=True)

    def one(a):
        a = _pad_rows(a, mesh.size)
        wide = a.dtype == jnp.bool_   # collectives sum numbers
        out = jax.shard_map(local, mesh=mesh, in_specs=(spec, PartitionSpec()), out_specs=spec)(
            a.astype(jnp.int32) if wide else a, index)
        return out.astype(jnp.bool_) if wide else out
    return jax.tree.map(one, data)


def _pad_rows(a, multiple: int, xp=jnp):
    """``a`` with zero rows appended up to a multiple of ``multiple`` rows (``xp``: jnp or np)."""
    extra = -a.shape[0] % multiple
    return a if not extra else xp.concatenate([a, xp.zeros((extra,) + a.shape[1:], a.dtype)])


def shard_rows(tree: Any, mesh: Mesh | None) -> Any:
    """Host arrays (the same on every process) placed with their leading axis split over the mesh,
    padded with zero rows to a multiple of its size: each device, and so each host, receives only
    its share. Without a mesh: ``jnp.asarray``."""
    if mesh is None or mesh.size == 1:
        return jax.tree.map(jnp.asarray, tree)
    sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))

    def one(a):
        a = _pad_rows(np.asarray(a), mesh.size, np)
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])
    return jax.tree.map(one, tree)


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """``tree`` placed on every device of the mesh, whichever process owns them (unchanged without
    a mesh or with one device). Every process must pass the same values; typed PRNG keys are
    placed as their key data and wrapped again."""
    if mesh is None or mesh.size == 1:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec())

    def one(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.device_put(x, sharding)   # already global: a reshard, no host copy
        value = np.asarray(x)
        return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])
    return jax.tree.map(one, tree)


def to_local(tree: Any) -> Any:
    """Replicated arrays that span processes as this host's copy (arrays on its first device), for
    host-side work such as evaluation and saving; other leaves unchanged."""
    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if not x.is_fully_replicated:
                raise ValueError(f"to_local: an array of shape {x.shape} is sharded over processes, not replicated")
            return x.addressable_data(0)
        return x
    return jax.tree.map(one, tree)
