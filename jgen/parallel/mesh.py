"""Scale-out on JAX's own runtime: device meshes, class and batch sharding, multi-host.

The sharding model (see ``docs/distributed.md``):

* A 2-D device mesh with named axes ``data`` (the batch / example axis) and ``classes``
  (the class axis). Either may have size 1.
* **Class sharding.** Class scores ``[N, K]`` are computed with the class axis split over
  the ``classes`` mesh axis; each device holds ``[N / data, K / classes]``. The Bayes-rule
  reduction (global log-normaliser and argmax) then runs as ``shard_map`` collectives
  (``pmax``/``pmin``/``psum`` of ``[N]`` vectors), so the full ``[N, K]`` is never
  gathered onto one device.
* **Padding, never dropping.** When ``K`` is not divisible by the ``classes`` axis size,
  the class axis is padded to the next multiple with dummy classes whose scores are
  ``-inf`` (prior probability zero); they cannot win the argmax and add nothing to the
  normaliser. Padded per-class parameters repeat the last real class so every shard
  computes finite numbers before the mask is applied.
* **Data parallelism.** Additive statistics (Gaussian sufficient statistics, gradient
  sums) are computed per ``data`` shard and reduced with ``psum``; rows that do not fill
  a whole shard are computed separately and added, so no example is dropped.

Axis types: [`make_mesh`][jgen.parallel.make_mesh] creates ``AxisType.Auto`` axes by
default, deliberately. This JAX's ``jax.make_mesh`` defaults to ``Explicit`` axes, under
which every operation whose output sharding is ambiguous must be annotated; jgen's model
code is written sharding-agnostic, so it runs under ``jit`` with the compiler
propagating shardings, and the places where communication matters are written as
explicit ``shard_map`` collectives. ``shard_map`` itself works with either axis type;
pass ``axis_types`` to choose.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
from jax.typing import ArrayLike

from jgen.core import checks as _checks

__all__ = [
    "DATA",
    "CLASSES",
    "make_mesh",
    "axis_size",
    "padded_num_classes",
    "pad_classes",
    "class_mask",
    "place",
    "pad_rows",
    "unpad_rows",
    "shard_rows",
]

DATA = "data"
CLASSES = "classes"


def make_mesh(*, data: int = 1, classes: int | None = None,
              devices: Sequence[jax.Device] | None = None,
              axis_types: AxisType | tuple[AxisType, AxisType] = AxisType.Auto) -> Mesh:
  """A ``(data, classes)`` device mesh.

  Args:
    data: size of the ``data`` (batch) axis.
    classes: size of the ``classes`` axis; ``None`` uses every remaining device,
      ``len(devices) // data``.
    devices: the devices to use (default: all of ``jax.devices()``, which spans every
      process after [`initialize`][jgen.parallel.initialize]). Only the first
      ``data * classes`` are used.
    axis_types: one ``jax.sharding.AxisType`` for both axes or a pair. The default
      ``Auto`` lets jgen's sharding-agnostic model code run under ``jit`` (see the
      module docstring); ``Explicit`` is accepted too.

  Returns:
    A ``jax.sharding.Mesh`` with axis names ``("data", "classes")``.

  Raises:
    ValueError: a size that is not a positive int, or more devices than available
      (on CPU the message names the ``XLA_FLAGS`` setting that provides them).

  Examples:
    >>> import jax, jgen
    >>> mesh = jgen.parallel.make_mesh(data=1)  # every device on the class axis
    >>> mesh.axis_names, mesh.size == len(jax.devices())
    (('data', 'classes'), True)
  """
  devices = list(jax.devices() if devices is None else devices)
  for name, v in (("data", data), ("classes", classes)):
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))
                          or v < 1):
      raise ValueError(f"{name} must be a positive int, got {v!r}.")
  if classes is None:
    classes = max(len(devices) // data, 1)
  if data * classes > len(devices):
    hint = ""
    if all(d.platform == "cpu" for d in devices):
      # One CPU shows as one device unless XLA is told to split it, before JAX starts.
      hint = (f" On CPU, set XLA_FLAGS=--xla_force_host_platform_device_count="
              f"{data * classes} in the environment before JAX is imported (or call"
              f" jax.config.update('jax_num_cpu_devices', {data * classes}) first).")
    raise ValueError(
        f"A mesh of data={data} x classes={classes} needs {data * classes} devices,"
        f" but only {len(devices)} are available.{hint}")
  if isinstance(axis_types, AxisType):
    axis_types = (axis_types, axis_types)
  return jax.make_mesh((data, classes), (DATA, CLASSES), axis_types=tuple(axis_types),
                       devices=devices[:data * classes])


def axis_size(mesh: Mesh, name: str) -> int:
  """The number of devices along the mesh axis ``name``.

  Args:
    mesh: a device mesh.
    name: an axis name, e.g. ``"data"`` or ``"classes"``.

  Returns:
    The axis size, a Python int.

  Raises:
    ValueError: ``mesh`` has no axis ``name``.

  Examples:
    >>> import jax, jgen
    >>> mesh = jgen.parallel.make_mesh(data=1)
    >>> jgen.parallel.axis_size(mesh, "data"), (
    ...     jgen.parallel.axis_size(mesh, "classes") == len(jax.devices()))
    (1, True)
  """
  if name not in mesh.axis_names:
    raise ValueError(f"mesh must have an axis named {name!r}, got axes {mesh.axis_names}.")
  return int(mesh.shape[name])


def padded_num_classes(num_classes: int, mesh: Mesh) -> int:
  """``num_classes`` rounded up to a multiple of the ``classes`` axis size.

  Args:
    num_classes: the real number of classes ``K``.
    mesh: a mesh with a ``classes`` axis.

  Returns:
    ``K_pad``, the smallest multiple of the ``classes`` axis size ``>= K``.

  Examples:
    >>> import jgen
    >>> mesh = jgen.parallel.make_mesh(data=1)
    >>> c = jgen.parallel.axis_size(mesh, "classes")
    >>> k_pad = jgen.parallel.padded_num_classes(5, mesh)
    >>> k_pad % c == 0, 5 <= k_pad < 5 + c
    (True, True)
  """
  num_classes = _checks.check_num_classes(num_classes)
  c = axis_size(mesh, CLASSES)
  return -(-num_classes // c) * c


def pad_classes(a: ArrayLike, num_padded: int, *, axis: int = -1,
                fill: float | None = None) -> jax.Array:
  """Pads ``a`` along its class ``axis`` to ``num_padded`` entries.

  Args:
    a: array with the class axis at ``axis``.
    num_padded: target size of the class axis (>= its current size).
    axis: the class axis.
    fill: value of the dummy classes (e.g. ``-inf`` for scores and log-priors); ``None``
      repeats the last real class (for per-class parameters, so dummy classes compute
      finite numbers before they are masked).

  Returns:
    The padded array, ``num_padded`` entries along ``axis``.

  Raises:
    ValueError: ``num_padded`` is smaller than the class axis.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> means = jnp.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])  # [K=3, D=2]
    >>> jgen.parallel.pad_classes(means, 4, axis=0).tolist()  # repeats the last class
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [4.0, 5.0]]
    >>> jgen.parallel.pad_classes(jnp.zeros(3), 4, fill=-jnp.inf).tolist()
    [0.0, 0.0, 0.0, -inf]
  """
  a = jnp.asarray(a)
  axis = axis % a.ndim
  k = a.shape[axis]
  if num_padded < k:
    raise ValueError(f"num_padded={num_padded} is smaller than the class axis ({k}).")
  if num_padded == k:
    return a
  widths = [(0, 0)] * a.ndim
  widths[axis] = (0, num_padded - k)
  if fill is None:
    return jnp.pad(a, widths, mode="edge")
  return jnp.pad(a, widths, constant_values=jnp.asarray(fill, a.dtype))


def class_mask(num_classes: int, num_padded: int) -> jax.Array:
  """``[num_padded]`` booleans, true for the real classes ``k < num_classes``.

  Examples:
    >>> import jgen
    >>> jgen.parallel.class_mask(3, 4).tolist()
    [True, True, True, False]
  """
  return jnp.arange(num_padded) < num_classes


def place(a: jax.Array, mesh: Mesh, spec: P) -> jax.Array:
  """Lays ``a`` out as ``spec`` inside ``jit``: a hint on Auto axes, a reshard on
  Explicit axes (where ``shard_map`` requires the input's type to match its specs)."""
  sharding = NamedSharding(mesh, spec)
  if all(t == AxisType.Explicit for t in mesh.axis_types):
    return jax.reshard(a, sharding)
  return lax.with_sharding_constraint(a, sharding)


def unpad_rows(a: Any, n: int, mesh: Mesh) -> Any:
  """Drops padding rows. On Explicit axes a row-sharded array must first be
  gathered along rows (an uneven slice of a sharded dimension is not allowed)."""
  def unpad(v):
    if v.shape[0] == n:
      return v
    if all(t == AxisType.Explicit for t in mesh.axis_types):
      rest = (CLASSES,) if v.ndim == 2 else ()
      v = jax.reshard(v, NamedSharding(mesh, P(None, *rest)))
    return v[:n]
  return jax.tree.map(unpad, a)


def pad_rows(a: jax.Array, multiple: int) -> jax.Array:
  n = a.shape[0]
  n_pad = -(-n // multiple) * multiple
  if n_pad == n:
    return a
  return jnp.pad(a, [(0, n_pad - n)] + [(0, 0)] * (a.ndim - 1))


def shard_rows(mesh: Mesh, *arrays: ArrayLike) -> tuple[jax.Array, ...]:
  """Places ``arrays`` ``[N, ...]`` with rows split over ``data`` (replicated over
  ``classes``). ``N`` must be divisible by the ``data`` axis size: jgen never drops or
  invents examples to make it fit (pad with zero-weight rows where the model has
  example weights, or pick a ``data`` size that divides ``N``).

  Args:
    mesh: a mesh with a ``data`` axis.
    *arrays: arrays ``[N, ...]``, ``N`` divisible by the ``data`` axis size.

  Returns:
    The arrays, each sharded ``P("data")`` over ``mesh``.

  Raises:
    ValueError: an array whose leading axis is not divisible by the ``data`` size.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> mesh = jgen.parallel.make_mesh(data=len(jax.devices()), classes=1)
    >>> n = 2 * len(jax.devices())
    >>> x, y = jgen.parallel.shard_rows(mesh, jnp.ones((n, 3)), jnp.zeros(n, jnp.int32))
    >>> x.shape == (n, 3), tuple(x.sharding.spec)  # rows split over "data"
    (True, ('data',))
  """
  d = axis_size(mesh, DATA)
  out = []
  for i, a in enumerate(arrays):
    a = jnp.asarray(a)
    if a.ndim < 1 or a.shape[0] % d:
      raise ValueError(
          f"arrays[{i}] must have a leading axis divisible by the data axis size {d},"
          f" got shape {tuple(a.shape)}.")
    out.append(jax.device_put(a, NamedSharding(mesh, P(DATA))))
  return tuple(out)
