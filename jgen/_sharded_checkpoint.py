"""Checkpoints of sharded arrays restored onto another mesh (explicit resharding).

Saving goes through :func:`jgen.checkpoint.save_pytree` (orbax writes each shard from
the device that holds it). Restoring names the NEW layout: a ``PartitionSpec`` per leaf
on the restoring program's mesh; orbax reads each device's slice straight into that
layout, so a checkpoint written on 8 devices restores onto 1 (or the reverse) with
identical values. A layout the new mesh cannot hold (an axis it lacks, a dimension
not divisible by the axis size) raises ``ValueError`` naming the leaf before any I/O.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jgen import checkpoint as _ckpt

__all__ = ["save_sharded", "restore_sharded", "replicate"]


def save_sharded(path: str | os.PathLike, tree: Any) -> None:
  """Saves a pytree of (possibly sharded) arrays; see ``jgen.checkpoint.save_pytree``."""
  _ckpt.save_pytree(path, tree)


def _check_spec(name: str, shape: tuple[int, ...], spec: P, mesh: Mesh) -> None:
  if len(spec) > len(shape):
    raise ValueError(f"{name}: PartitionSpec {spec} has {len(spec)} entries but the"
                     f" array has rank {len(shape)} (shape {shape}).")
  for dim, entry in zip(shape, spec):
    axes = () if entry is None else (entry if isinstance(entry, tuple) else (entry,))
    for a in axes:
      if a not in mesh.axis_names:
        raise ValueError(f"{name}: PartitionSpec {spec} names mesh axis {a!r}, but the"
                         f" restoring mesh has axes {mesh.axis_names}"
                         f" (shape {dict(mesh.shape)}).")
    size = int(np.prod([mesh.shape[a] for a in axes], dtype=np.int64))
    if dim % size:
      raise ValueError(f"{name}: dimension {dim} of shape {shape} is not divisible by"
                       f" {size} devices of mesh axes {axes}; pad it (e.g."
                       " jgen.sharding.pad_classes) or choose another layout.")


def restore_sharded(path: str | os.PathLike, mesh: Mesh, specs: Any = None,
                    like: Any = None) -> Any:
  """Restores a checkpoint with every leaf laid out on ``mesh``.

  Args:
    path: directory written by :func:`save_sharded`.
    mesh: the restoring program's mesh (any size: 1 device, 8, a pod).
    specs: a ``PartitionSpec`` for every leaf (a pytree like the checkpoint, or one
      spec for all leaves); ``None`` replicates everything.
    like: optional pytree giving the structure to restore into (arrays or
      ``ShapeDtypeStruct``); default: the structure stored in the checkpoint (dict
      keys as strings).

  Returns:
    The pytree with leaves ``NamedSharding(mesh, spec)``, values equal to the saved.

  Raises:
    ValueError: a spec the mesh cannot hold. ``jgen.checkpoint.CheckpointError``:
      missing checkpoint or shapes that differ from ``like``.
  """
  if like is None:
    like = jax.tree.map(lambda s: s, _metadata_tree(path))
  if specs is None or isinstance(specs, P):
    specs = jax.tree.map(lambda _: P() if specs is None else specs, like)
  flat_like, treedef = jax.tree_util.tree_flatten_with_path(like)
  flat_specs = treedef.flatten_up_to(specs)
  targets = []
  for (kp, leaf), spec in zip(flat_like, flat_specs):
    name = jax.tree_util.keystr(kp) or "<root>"
    _check_spec(name, tuple(leaf.shape), spec, mesh)
    targets.append(jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                        sharding=NamedSharding(mesh, spec)))
  return _ckpt.restore_pytree(path, jax.tree_util.tree_unflatten(treedef, targets))


def _metadata_tree(path) -> Any:
  import orbax.checkpoint as ocp  # local: only this path reads raw metadata
  path = os.path.abspath(os.fspath(path))
  _ckpt.checkpoint_shapes(path)  # CheckpointError if missing or unreadable
  meta = ocp.StandardCheckpointer().metadata(path).item_metadata.tree
  return jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), meta)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places every leaf of ``tree`` on every device of ``mesh`` (e.g. parameters for
  data-parallel training)."""
  return jax.device_put(tree, NamedSharding(mesh, P()))
