"""Checkpoints of pytrees with orbax, including sharded arrays restored onto another mesh.

* [`save_pytree`][jgen.checkpoint.save_pytree] /
  [`restore_pytree`][jgen.checkpoint.restore_pytree]: any pytree of arrays; the restore
  target may be concrete arrays or ``jax.ShapeDtypeStruct`` s carrying shardings, so a
  checkpoint restores straight into a new device layout (resharded restore).
* [`restore_sharded`][jgen.parallel.restore_sharded] names the NEW layout: a
  ``PartitionSpec`` per leaf on the restoring program's mesh; orbax reads each device's
  slice straight into that layout, so a checkpoint written on 8 devices restores onto 1
  (or the reverse) with identical values. A layout the new mesh cannot hold (an axis it
  lacks, a dimension not divisible by the axis size) raises ``ValueError`` naming the
  leaf before any I/O.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


__all__ = [
    "CheckpointError",
    "save_pytree",
    "restore_pytree",
    "checkpoint_shapes",
    "save_sharded",
    "restore_sharded",
    "replicate",
]


class CheckpointError(ValueError):
  """A checkpoint is missing, unreadable, or does not match what is restored into.

  Examples:
    >>> import os, tempfile, jax.numpy as jnp, jgen
    >>> with tempfile.TemporaryDirectory() as d:
    ...   path = os.path.join(d, "ckpt")
    ...   jgen.checkpoint.save_pytree(path, {"w": jnp.ones(3)})
    ...   try:
    ...     jgen.checkpoint.restore_pytree(path, {"w": jnp.ones(4)})
    ...   except jgen.checkpoint.CheckpointError as e:
    ...     print("checkpoint shape (3,), target shape (4,)" in str(e))
    True
  """


def _abs(path: str | os.PathLike) -> str:
  return os.path.abspath(os.fspath(path))


def _key_str(path) -> str:
  parts = []
  for k in path:
    parts.append(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))))
  return "/".join(parts)


def _shape_map(tree) -> dict[str, tuple[tuple[int, ...], str]]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {_key_str(p): (tuple(v.shape), str(np.dtype(v.dtype))) for p, v in flat}


def save_pytree(path: str | os.PathLike, tree: Any, *, overwrite: bool = True) -> None:
  """Saves a pytree of arrays to ``path`` (a directory; written atomically).

  Args:
    path: the checkpoint directory.
    tree: a pytree of arrays (sharded arrays are written shard by shard).
    overwrite: replace an existing checkpoint at ``path``.

  Examples:
    >>> import os, tempfile, jax.numpy as jnp, jgen
    >>> with tempfile.TemporaryDirectory() as d:
    ...   path = os.path.join(d, "ckpt")
    ...   jgen.checkpoint.save_pytree(path, {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)})
    ...   back = jgen.checkpoint.restore_pytree(path)
    >>> sorted(back), back["w"].shape, float(back["w"].sum())
    (['b', 'w'], (2, 3), 6.0)
  """
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  for p, leaf in flat:
    if isinstance(leaf, (int, float, np.number)) and not isinstance(leaf, bool):
      continue
    if not isinstance(leaf, (jax.Array, np.ndarray)) or not (
        jnp.issubdtype(leaf.dtype, jnp.number) or leaf.dtype == jnp.bool_):
      raise TypeError(f"tree must hold numeric arrays only; the leaf {_key_str(p)!r} is"
                      f" {type(leaf).__name__} ({leaf!r:.40}).")
  if not overwrite and os.path.exists(_abs(path)):
    raise FileExistsError(f"path {os.fspath(path)!r} already exists; pass"
                          " overwrite=True to replace it.")
  import orbax.checkpoint as ocp  # orbax loads on first use
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(_abs(path), tree, force=overwrite)
  ckpt.wait_until_finished()


def checkpoint_shapes(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
  """``{"a/b/kernel": (shape, dtype)}`` of a saved pytree, read from its metadata.

  Args:
    path: a checkpoint directory written by [`save_pytree`][jgen.checkpoint.save_pytree].

  Returns:
    A dict from ``/``-joined leaf paths to ``(shape, dtype name)``; no array is read.

  Raises:
    CheckpointError: no checkpoint at ``path``, or unreadable metadata.

  Examples:
    >>> import os, tempfile, jax.numpy as jnp, jgen
    >>> with tempfile.TemporaryDirectory() as d:
    ...   path = os.path.join(d, "ckpt")
    ...   jgen.checkpoint.save_pytree(path, {"layer": {"kernel": jnp.ones((2, 3))}})
    ...   jgen.checkpoint.checkpoint_shapes(path)
    {'layer/kernel': ((2, 3), 'float32')}
  """
  import orbax.checkpoint as ocp  # orbax loads on first use
  path = _abs(path)
  if not os.path.isdir(path):
    raise CheckpointError(f"no checkpoint directory at {path}.")
  try:
    meta = ocp.StandardCheckpointer().metadata(path).item_metadata.tree
  except Exception as e:  # orbax raises several types for unreadable metadata
    raise CheckpointError(f"unreadable checkpoint at {path}: {e}") from e
  return _shape_map(meta)


def restore_pytree(path: str | os.PathLike, target: Any = None) -> Any:
  """Restores a pytree saved by [`save_pytree`][jgen.checkpoint.save_pytree].

  Args:
    path: checkpoint directory.
    target: a pytree of arrays or ``jax.ShapeDtypeStruct`` (optionally with
      ``sharding=``) giving the structure, dtypes and device layout to restore into;
      ``None`` restores the saved structure (dict keys become strings) on the default
      device.

  Returns:
    The restored pytree, structured like ``target``.

  Raises:
    CheckpointError: missing/corrupted checkpoint, or leaves whose paths, shapes or
      dtypes differ from ``target`` (every mismatch is named; nothing is cast).

  Examples:
    >>> import os, tempfile, jax.numpy as jnp, jgen
    >>> params = {"w": jnp.arange(3.0), "step": jnp.array(7, jnp.int32)}
    >>> with tempfile.TemporaryDirectory() as d:
    ...   path = os.path.join(d, "ckpt")
    ...   jgen.checkpoint.save_pytree(path, params)
    ...   back = jgen.checkpoint.restore_pytree(path, target=params)
    >>> back["w"].tolist(), int(back["step"])
    ([0.0, 1.0, 2.0], 7)
  """
  import orbax.checkpoint as ocp  # orbax loads on first use
  path = _abs(path)
  saved = checkpoint_shapes(path)
  if target is not None:
    want = _shape_map(target)
    problems = [f"{k}: missing in checkpoint" for k in want if k not in saved]
    problems += [f"{k}: in checkpoint but not in target" for k in saved if k not in want]
    problems += [f"{k}: checkpoint shape {saved[k][0]}, target shape {want[k][0]}"
                 for k in want if k in saved and saved[k][0] != want[k][0]]
    # Restoring never casts: a float leaf into an int target (or float64 into
    # float32) would change the values silently.
    problems += [f"{k}: checkpoint dtype {saved[k][1]}, target dtype {want[k][1]}"
                 for k in want if k in saved and saved[k][1] != want[k][1]]
    if problems:
      raise CheckpointError(f"checkpoint at {path} does not match the target pytree:\n  "
                            + "\n  ".join(problems[:20]))
    target = jax.tree.map(
        lambda x: x if isinstance(x, jax.ShapeDtypeStruct)
        else jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        target)
  try:
    return ocp.StandardCheckpointer().restore(path, target)
  except Exception as e:
    raise CheckpointError(f"could not restore the checkpoint at {path}: {e}") from e


def save_sharded(path: str | os.PathLike, tree: Any) -> None:
  """Saves a pytree of (possibly sharded) arrays.

  The format of [`jgen.checkpoint.save_pytree`][jgen.checkpoint.save_pytree].

  Args:
    path: the checkpoint directory (replaced if it exists).
    tree: a pytree of arrays, e.g. laid out over a mesh.

  Examples:
    >>> import os, tempfile, jax.numpy as jnp, jgen
    >>> mesh = jgen.parallel.make_mesh(data=1)
    >>> w = jgen.parallel.replicate(jnp.arange(4.0), mesh)
    >>> with tempfile.TemporaryDirectory() as d:
    ...   jgen.parallel.save_sharded(os.path.join(d, "ckpt"), {"w": w})
    ...   jgen.checkpoint.checkpoint_shapes(os.path.join(d, "ckpt"))
    {'w': ((4,), 'float32')}
  """
  save_pytree(path, tree)


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
                       " jgen.parallel.pad_classes) or choose another layout.")


def restore_sharded(path: str | os.PathLike, mesh: Mesh, specs: Any = None,
                    like: Any = None) -> Any:
  """Restores a checkpoint with every leaf laid out on ``mesh``.

  Args:
    path: directory written by [`save_sharded`][jgen.parallel.save_sharded].
    mesh: the restoring program's mesh (any size: 1 device, 8, a pod).
    specs: a ``PartitionSpec`` for every leaf (a pytree like the checkpoint, or one
      spec for all leaves); ``None`` replicates everything.
    like: optional pytree giving the structure to restore into (arrays or
      ``ShapeDtypeStruct``); default: the structure stored in the checkpoint (dict
      keys as strings).

  Returns:
    The pytree with leaves ``NamedSharding(mesh, spec)``, values equal to the saved.

  Raises:
    ValueError: a spec the mesh cannot hold.
    CheckpointError: missing checkpoint or shapes that differ from ``like``
      ([`jgen.checkpoint.CheckpointError`][jgen.checkpoint.CheckpointError]).

  Examples:
    >>> import os, tempfile, jax.numpy as jnp, jgen
    >>> from jax.sharding import PartitionSpec as P
    >>> mesh = jgen.parallel.make_mesh(data=1)
    >>> w = jnp.arange(2.0 * mesh.size)  # divisible by the classes axis
    >>> with tempfile.TemporaryDirectory() as d:
    ...   jgen.parallel.save_sharded(os.path.join(d, "ckpt"), {"w": w})
    ...   back = jgen.parallel.restore_sharded(os.path.join(d, "ckpt"), mesh,
    ...                                        P("classes"))
    >>> tuple(back["w"].sharding.spec), bool(jnp.array_equal(back["w"], w))
    (('classes',), True)
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
  return restore_pytree(path, jax.tree_util.tree_unflatten(treedef, targets))


def _metadata_tree(path) -> Any:
  import orbax.checkpoint as ocp  # orbax loads on first use
  path = os.path.abspath(os.fspath(path))
  checkpoint_shapes(path)  # CheckpointError if missing or unreadable
  meta = ocp.StandardCheckpointer().metadata(path).item_metadata.tree
  return jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), meta)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places every leaf of ``tree`` on every device of ``mesh`` (e.g. parameters for
  data-parallel training).

  Args:
    tree: a pytree of arrays.
    mesh: the device mesh.

  Returns:
    ``tree`` with every leaf fully replicated over ``mesh``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> mesh = jgen.parallel.make_mesh(data=1)
    >>> w = jgen.parallel.replicate({"w": jnp.ones(3)}, mesh)["w"]
    >>> w.sharding.is_fully_replicated, len(w.devices()) == mesh.size
    (True, True)
  """
  return jax.device_put(tree, NamedSharding(mesh, P()))
