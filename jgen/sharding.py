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

Axis types: :func:`make_mesh` creates ``AxisType.Auto`` axes by default, deliberately.
This JAX's ``jax.make_mesh`` defaults to ``Explicit`` axes, under which every operation
whose output sharding is ambiguous must be annotated; jgen's model code is written
sharding-agnostic, so it runs under ``jit`` with the compiler propagating shardings, and
the places where communication matters are written as explicit ``shard_map`` collectives.
``shard_map`` itself works with either axis type; pass ``axis_types`` to choose.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
from jax.typing import ArrayLike

from jgen import _checks
from jgen._distributed import initialize

__all__ = [
    "DATA",
    "CLASSES",
    "make_mesh",
    "padded_num_classes",
    "pad_classes",
    "class_mask",
    "BayesReduction",
    "bayes_reduce",
    "sharded_log_posterior",
    "class_sharded_scores",
    "data_parallel_sum",
    "shard_rows",
    "initialize",
    "sharded_class_errors",
    "sharded_classify",
    "sharded_batch_classify",
    "fit_data_parallel",
    "sufficient_stats_data_parallel",
    "class_sharded_log_likelihood",
    "classify_class_sharded",
    "fit_logistic_data_parallel",
    "save_sharded",
    "restore_sharded",
    "replicate",
    "data_parallel_train_step",
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
      process after :func:`initialize`). Only the first ``data * classes`` are used.
    axis_types: one ``jax.sharding.AxisType`` for both axes or a pair. The default
      ``Auto`` lets jgen's sharding-agnostic model code run under ``jit`` (see the
      module docstring); ``Explicit`` is accepted too.

  Returns:
    A ``jax.sharding.Mesh`` with axis names ``("data", "classes")``.
  """
  devices = list(jax.devices() if devices is None else devices)
  for name, v in (("data", data), ("classes", classes)):
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))
                          or v < 1):
      raise ValueError(f"{name} must be a positive int, got {v!r}.")
  if classes is None:
    classes = max(len(devices) // data, 1)
  if data * classes > len(devices):
    raise ValueError(
        f"A mesh of data={data} x classes={classes} needs {data * classes} devices,"
        f" but only {len(devices)} are available.")
  if isinstance(axis_types, AxisType):
    axis_types = (axis_types, axis_types)
  return jax.make_mesh((data, classes), (DATA, CLASSES), axis_types=tuple(axis_types),
                       devices=devices[:data * classes])


def _axis_size(mesh: Mesh, name: str) -> int:
  if name not in mesh.axis_names:
    raise ValueError(f"mesh must have an axis named {name!r}, got axes {mesh.axis_names}.")
  return int(mesh.shape[name])


def padded_num_classes(num_classes: int, mesh: Mesh) -> int:
  """``num_classes`` rounded up to a multiple of the ``classes`` axis size."""
  num_classes = _checks.check_num_classes(num_classes)
  c = _axis_size(mesh, CLASSES)
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
    The padded array.
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
  """``[num_padded]`` booleans, true for the real classes ``k < num_classes``."""
  return jnp.arange(num_padded) < num_classes


class BayesReduction(NamedTuple):
  """Result of the sharded Bayes-rule reduction over the class axis.

  Attributes:
    label: ``[N]`` int, ``argmax_k`` of the log-joint (first maximiser, like
      ``jnp.argmax``; the first NaN if a row has one).
    log_normalizer: ``[N]``, ``logsumexp_k`` of the log-joint, i.e. ``log p(x)`` when the
      scores are ``log p(x|k) + log p(k)``.
    max_log_joint: ``[N]``, the maximal log-joint (the winning score).
  """
  label: jax.Array
  log_normalizer: jax.Array
  max_log_joint: jax.Array


def _reduce_block(joint: jax.Array, num_classes: int) -> BayesReduction:
  """One device's ``[n, k_local]`` block; collectives over ``classes`` only."""
  k_local = joint.shape[-1]
  offset = lax.axis_index(CLASSES) * k_local
  ids = offset + jnp.arange(k_local)
  joint = jnp.where((ids < num_classes)[None, :], joint, -jnp.inf)
  big = jnp.iinfo(jnp.int32).max
  local_max = jnp.max(joint, axis=-1)
  local_arg = (offset + jnp.argmax(joint, axis=-1)).astype(jnp.int32)
  global_max = lax.pmax(local_max, CLASSES)
  # Ties across shards resolve to the smallest class index, as jnp.argmax does.
  label = lax.pmin(jnp.where(local_max == global_max, local_arg, big), CLASSES)
  nan = jnp.isnan(joint)
  nan_arg = jnp.where(jnp.any(nan, -1),
                      (offset + jnp.argmax(nan, axis=-1)).astype(jnp.int32), big)
  nan_label = lax.pmin(nan_arg, CLASSES)
  label = jnp.where(nan_label < big, nan_label, label)
  # A row of all -inf has normaliser -inf, not NaN: shift by 0 there.
  shift = jnp.where(jnp.isfinite(global_max), global_max, 0.0)
  total = lax.psum(jnp.sum(jnp.exp(joint - shift[:, None]), axis=-1), CLASSES)
  return BayesReduction(label, jnp.log(total) + shift, global_max)


def _as_sharded_joint(log_lik: ArrayLike, log_prior: ArrayLike | None,
                      num_classes: int, mesh: Mesh) -> jax.Array:
  log_lik = jnp.asarray(log_lik)
  _checks.check_ndim(log_lik, 2, "log_lik")
  _checks.check_float(log_lik, "log_lik")
  k_pad = padded_num_classes(num_classes, mesh)
  if log_lik.shape[-1] not in (num_classes, k_pad):
    raise ValueError(
        f"log_lik must have {num_classes} (num_classes) or {k_pad} (padded) columns,"
        f" got shape {tuple(log_lik.shape)}.")
  joint = pad_classes(log_lik, k_pad, fill=-jnp.inf)
  if log_prior is not None:
    log_prior = jnp.asarray(log_prior, joint.dtype)
    _checks.check_ndim(log_prior, 1, "log_prior")
    if log_prior.shape[0] not in (num_classes, k_pad):
      raise ValueError(
          f"log_prior must have {num_classes} (num_classes) or {k_pad} (padded)"
          f" entries, got shape {tuple(log_prior.shape)}.")
    joint = joint + pad_classes(log_prior, k_pad, fill=-jnp.inf)[None, :]
  return joint


def _place(a: jax.Array, mesh: Mesh, spec: P) -> jax.Array:
  """Lays ``a`` out as ``spec`` inside ``jit``: a hint on Auto axes, a reshard on
  Explicit axes (where ``shard_map`` requires the input's type to match its specs)."""
  sharding = NamedSharding(mesh, spec)
  if all(t == AxisType.Explicit for t in mesh.axis_types):
    return jax.reshard(a, sharding)
  return lax.with_sharding_constraint(a, sharding)


def _unpad_rows(a: Any, n: int, mesh: Mesh) -> Any:
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


def _pad_rows(a: jax.Array, multiple: int) -> jax.Array:
  n = a.shape[0]
  n_pad = -(-n // multiple) * multiple
  if n_pad == n:
    return a
  return jnp.pad(a, [(0, n_pad - n)] + [(0, 0)] * (a.ndim - 1))


@functools.partial(jax.jit, static_argnames=("num_classes", "mesh"))
def _bayes_reduce(joint: jax.Array, num_classes: int, mesh: Mesh) -> BayesReduction:
  n = joint.shape[0]
  joint = _place(_pad_rows(joint, _axis_size(mesh, DATA)), mesh, P(DATA, CLASSES))
  out = jax.shard_map(functools.partial(_reduce_block, num_classes=num_classes),
                      mesh=mesh, in_specs=P(DATA, CLASSES),
                      out_specs=BayesReduction(P(DATA), P(DATA), P(DATA)))(joint)
  return _unpad_rows(out, n, mesh)


def bayes_reduce(log_lik: ArrayLike, mesh: Mesh, *, num_classes: int,
                 log_prior: ArrayLike | None = None) -> BayesReduction:
  """Bayes' rule over a class-sharded score matrix, without gathering it.

  Each device reduces its ``[N / data, K / classes]`` block to per-row maxima, argmaxes
  and shifted exponential sums; ``pmax``/``pmin``/``psum`` over the ``classes`` axis
  combine them. Communication is ``O(N)`` per device, independent of ``K``.

  Args:
    log_lik: class log-likelihoods ``[N, K]`` or ``[N, K_pad]`` (padded with
      :func:`pad_classes`; columns ``>= num_classes`` are masked to ``-inf`` here
      whatever they hold), ideally sharded ``P("data", "classes")`` over ``mesh``.
    mesh: a mesh with axes ``data`` and ``classes`` (:func:`make_mesh`).
    num_classes: the real number of classes ``K`` (static).
    log_prior: class log-priors ``[K]`` or ``[K_pad]``; ``None`` means uniform.

  Returns:
    :class:`BayesReduction` of ``[N]`` arrays. ``label`` equals
    ``jgen.predict(log_lik, log_prior)`` and ``log_normalizer`` equals
    ``logsumexp(log_lik + log_prior, -1)``.
  """
  num_classes = _checks.check_num_classes(num_classes)
  return _bayes_reduce(_as_sharded_joint(log_lik, log_prior, num_classes, mesh),
                       num_classes, mesh)


@functools.partial(jax.jit, static_argnames=("num_classes", "mesh"))
def _sharded_log_posterior(joint: jax.Array, num_classes: int, mesh: Mesh) -> jax.Array:
  def block(j):
    r = _reduce_block(j, num_classes)
    ids = lax.axis_index(CLASSES) * j.shape[-1] + jnp.arange(j.shape[-1])
    j = jnp.where((ids < num_classes)[None, :], j, -jnp.inf)
    return j - r.log_normalizer[:, None]
  n = joint.shape[0]
  joint = _place(_pad_rows(joint, _axis_size(mesh, DATA)), mesh, P(DATA, CLASSES))
  out = jax.shard_map(block, mesh=mesh, in_specs=P(DATA, CLASSES),
                      out_specs=P(DATA, CLASSES))(joint)
  return _unpad_rows(out, n, mesh)


def sharded_log_posterior(log_lik: ArrayLike, mesh: Mesh, *, num_classes: int,
                          log_prior: ArrayLike | None = None) -> jax.Array:
  """Class log-posteriors ``[N, K_pad]``, left sharded over the ``classes`` axis.

  Args:
    log_lik: ``[N, K]`` or ``[N, K_pad]`` class log-likelihoods.
    mesh: a ``(data, classes)`` mesh.
    num_classes: the real number of classes ``K``.
    log_prior: ``[K]`` or ``[K_pad]`` class log-priors; ``None`` means uniform.

  Returns:
    ``[N, K_pad]`` log-posteriors; the padded columns are ``-inf`` (probability zero).
    Slice ``[:, :num_classes]`` only when the whole matrix is needed on one device.
  """
  num_classes = _checks.check_num_classes(num_classes)
  return _sharded_log_posterior(_as_sharded_joint(log_lik, log_prior, num_classes, mesh),
                                num_classes, mesh)


def class_sharded_scores(score_fn: Callable[..., jax.Array], class_params: Any,
                         x: ArrayLike, mesh: Mesh, *, num_classes: int,
                         shared: Any = None, fill: float = -np.inf) -> jax.Array:
  """Class scores ``[N, K_pad]`` computed with the class axis split over devices.

  ``score_fn(class_params_local, shared, class_ids_local, x_local) -> [n, k_local]``
  runs on each device with its slice of the per-class parameters (every leaf of
  ``class_params`` has the class axis first, ``[K, ...]``), the replicated ``shared``
  pytree, the global ids of its classes ``[k_local]`` int32, and its rows of ``x``.
  Padded classes receive a copy of the last real class's parameters and id (so they
  compute finite numbers) and their scores are replaced by ``fill``. Pass a
  module-level ``score_fn``: a new closure per call recompiles.

  Args:
    score_fn: per-shard scoring function, see above.
    class_params: pytree of ``[K, ...]`` leaves (or ``None``).
    x: inputs ``[N, ...]``; rows are split over the ``data`` axis.
    mesh: a ``(data, classes)`` mesh.
    num_classes: the real number of classes ``K``.
    shared: pytree of parameters every class needs (replicated), or ``None``.
    fill: score of the padded classes (``-inf`` for log-likelihoods, ``+inf`` for
      errors where lower is better).

  Returns:
    ``[N, K_pad]`` scores sharded ``P("data", "classes")``.
  """
  num_classes = _checks.check_num_classes(num_classes)
  x = jnp.asarray(x)
  _checks.check_min_ndim(x, 1, "x")
  for leaf in jax.tree.leaves(class_params):
    if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != num_classes:
      raise ValueError(
          f"every leaf of class_params must have the class axis first, [num_classes="
          f"{num_classes}, ...], got shape {tuple(jnp.shape(leaf))}.")
  return _class_sharded_scores(score_fn, class_params, shared, x, num_classes, mesh,
                               fill)


@functools.partial(jax.jit, static_argnums=(0, 4, 5, 6))
def _class_sharded_scores(score_fn, class_params, shared, x, num_classes, mesh, fill):
  k_pad = padded_num_classes(num_classes, mesh)
  ids = jnp.minimum(jnp.arange(k_pad, dtype=jnp.int32), num_classes - 1)
  padded = jax.tree.map(lambda a: pad_classes(a, k_pad, axis=0), class_params)
  n = x.shape[0]
  x = _place(_pad_rows(x, _axis_size(mesh, DATA)), mesh, P(DATA))
  ids = _place(ids, mesh, P(CLASSES))
  padded = jax.tree.map(lambda a: _place(a, mesh, P(CLASSES)), padded)

  def block(params_local, shared, ids_local, x_local):
    scores = score_fn(params_local, shared, ids_local, x_local)
    real = lax.axis_index(CLASSES) * ids_local.shape[0] + jnp.arange(ids_local.shape[0])
    return jnp.where((real < num_classes)[None, :], scores,
                     jnp.asarray(fill, scores.dtype))

  param_specs = jax.tree.map(lambda _: P(CLASSES), padded)
  shared_specs = jax.tree.map(lambda _: P(), shared)
  out = jax.shard_map(block, mesh=mesh,
                      in_specs=(param_specs, shared_specs, P(CLASSES), P(DATA)),
                      out_specs=P(DATA, CLASSES))(padded, shared, ids, x)
  return _unpad_rows(out, n, mesh)


def data_parallel_sum(stats_fn: Callable[..., Any], mesh: Mesh, *arrays: ArrayLike,
                      shared: Any = None) -> Any:
  """``stats_fn`` summed over the rows of ``arrays``, data-parallel over ``data``.

  ``stats_fn(*arrays_rows) -> pytree`` (or ``stats_fn(shared, *arrays_rows)`` when
  ``shared`` is given) must be additive over rows (counts, sums, sums of outer
  products): ``stats_fn(a ++ b) == stats_fn(a) + stats_fn(b)``. Each ``data`` shard
  computes its statistics and ``psum`` combines them; the last ``N mod data`` rows (if
  any) are computed once more and added, so nothing is dropped.

  Args:
    stats_fn: additive per-row statistic (a module-level function compiles once).
    mesh: a mesh with a ``data`` axis (``classes`` may have any size; the arrays are
      replicated across it).
    *arrays: arrays ``[N, ...]`` sharing the leading axis.
    shared: optional replicated pytree passed first to ``stats_fn``.

  Returns:
    The pytree ``stats_fn(*arrays)``, replicated on every device.
  """
  arrays = tuple(jnp.asarray(a) for a in arrays)
  if not arrays:
    raise ValueError("data_parallel_sum needs at least one array.")
  n = arrays[0].shape[0]
  for i, a in enumerate(arrays):
    if a.ndim < 1 or a.shape[0] != n:
      raise ValueError(f"arrays[{i}] must have leading axis {n}, got shape {a.shape}.")
  return _data_parallel_sum(stats_fn, mesh, shared is not None, shared, *arrays)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _data_parallel_sum(stats_fn, mesh, has_shared, shared, *arrays):
  d = _axis_size(mesh, DATA)
  n = arrays[0].shape[0]
  n_even = (n // d) * d
  call = lambda *a: stats_fn(shared, *a) if has_shared else stats_fn(*a)  # noqa: E731
  if n_even == 0:
    return call(*arrays)

  # The N mod d leftover rows enter replicated and every device adds their
  # statistics after the psum, so the whole sum stays inside one shard_map.
  def block(shared, tail, *local):
    out = stats_fn(shared, *local) if has_shared else stats_fn(*local)
    out = jax.tree.map(lambda s: lax.psum(s, DATA), out)
    if tail[0].shape[0]:
      rest = stats_fn(shared, *tail) if has_shared else stats_fn(*tail)
      out = jax.tree.map(jnp.add, out, rest)
    return out

  # check_vma=False: user statistics may carry loops whose initial values are plain
  # constants (typed invariant), which the check would reject; the psum makes the
  # replicated output correct by construction.
  tail = tuple(a[n_even:] for a in arrays)
  return jax.shard_map(
      block, mesh=mesh,
      in_specs=(jax.tree.map(lambda _: P(), shared), jax.tree.map(lambda _: P(), tail))
      + (P(DATA),) * len(arrays), out_specs=P(), check_vma=False)(
          shared, tail, *(_place(a[:n_even], mesh, P(DATA)) for a in arrays))


def shard_rows(mesh: Mesh, *arrays: ArrayLike) -> tuple[jax.Array, ...]:
  """Places ``arrays`` ``[N, ...]`` with rows split over ``data`` (replicated over
  ``classes``). ``N`` must be divisible by the ``data`` axis size: jgen never drops or
  invents examples to make it fit (pad with zero-weight rows where the model has
  example weights, or pick a ``data`` size that divides ``N``)."""
  d = _axis_size(mesh, DATA)
  out = []
  for i, a in enumerate(arrays):
    a = jnp.asarray(a)
    if a.ndim < 1 or a.shape[0] % d:
      raise ValueError(
          f"arrays[{i}] must have a leading axis divisible by the data axis size {d},"
          f" got shape {tuple(a.shape)}.")
    out.append(jax.device_put(a, NamedSharding(mesh, P(DATA))))
  return tuple(out)


# Sharding-aware model paths; imported last (they build on the helpers above).
from jgen._sharded_diffusion import sharded_batch_classify  # noqa: E402
from jgen._sharded_diffusion import sharded_class_errors  # noqa: E402
from jgen._sharded_diffusion import sharded_classify  # noqa: E402
from jgen._sharded_gaussian import class_sharded_log_likelihood  # noqa: E402
from jgen._sharded_gaussian import classify_class_sharded  # noqa: E402
from jgen._sharded_gaussian import fit_data_parallel  # noqa: E402
from jgen._sharded_gaussian import sufficient_stats_data_parallel  # noqa: E402
from jgen._sharded_logistic import fit_logistic_data_parallel  # noqa: E402
from jgen._sharded_checkpoint import replicate  # noqa: E402
from jgen._sharded_checkpoint import restore_sharded  # noqa: E402
from jgen._sharded_checkpoint import save_sharded  # noqa: E402
from jgen._sharded_train import data_parallel_train_step  # noqa: E402
