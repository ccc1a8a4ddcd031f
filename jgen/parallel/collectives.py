"""Collectives over a ``(data, classes)`` mesh: the sharded Bayes rule, class-sharded
scores and data-parallel sums.

Each function runs its communication as explicit ``shard_map`` collectives: the Bayes
reduction combines per-device maxima and shifted exponential sums with
``pmax``/``pmin``/``psum`` (``O(N)`` communication, independent of ``K``); padded
classes are masked to ``-inf`` ("pad, never drop"); additive statistics are summed
with ``psum`` and leftover rows added once, so no example is dropped.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core import sentinels
from jgen.core.sentinels import INVALID_LABEL
from jgen.parallel.mesh import CLASSES
from jgen.parallel.mesh import DATA
from jgen.parallel.mesh import axis_size
from jgen.parallel.mesh import pad_classes
from jgen.parallel.mesh import pad_rows
from jgen.parallel.mesh import padded_num_classes
from jgen.parallel.mesh import place
from jgen.parallel.mesh import unpad_rows

__all__ = [
    "BayesReduction",
    "bayes_reduce_block",
    "bayes_reduce",
    "sharded_log_posterior",
    "class_sharded_scores",
    "data_parallel_sum",
]


class BayesReduction(NamedTuple):
  """Result of the sharded Bayes-rule reduction over the class axis.

  Attributes:
    label: ``[N]`` int, ``argmax_k`` of the log-joint (first maximiser, like
      ``jnp.argmax``); ``-1`` under ``jit`` for a row that cannot be classified (a
      NaN or ``+inf`` score, or ``-inf`` for every class), which raises eagerly.
    log_normalizer: ``[N]``, ``logsumexp_k`` of the log-joint, i.e. ``log p(x)`` when the
      scores are ``log p(x|k) + log p(k)``.
    max_log_joint: ``[N]``, the maximal log-joint (the winning score).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> log_lik = jnp.array([[-1.0, -2.0, -3.0], [-3.0, -1.0, -2.0]])
    >>> mesh = jgen.parallel.make_mesh(data=1)
    >>> label, log_norm, best = jgen.parallel.bayes_reduce(log_lik, mesh, num_classes=3)
    >>> label.tolist(), best.tolist(), [round(float(v), 3) for v in log_norm]
    ([0, 1], [-1.0, -1.0], [-0.592, -0.592])
  """
  label: jax.Array
  log_normalizer: jax.Array
  max_log_joint: jax.Array


def bayes_reduce_block(joint: jax.Array, num_classes: int) -> BayesReduction:
  """Bayes reduction of one device's ``[n, k_local]`` block inside ``shard_map``.

  Collectives run over the ``classes`` axis only; columns whose global id is
  ``>= num_classes`` (padding) are masked to ``-inf``.
  """
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
  # A row with a NaN or +inf score, or -inf for every class, has no label: counted
  # (not read from a max, which need not propagate NaN) and given INVALID_LABEL.
  bad = jnp.any(jnp.isnan(joint) | jnp.isposinf(joint), axis=-1).astype(jnp.int32)
  bad = (lax.pmax(bad, CLASSES) > 0) | jnp.isneginf(global_max)
  label = jnp.where(bad, jnp.int32(INVALID_LABEL), label)
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


@functools.partial(jax.jit, static_argnames=("num_classes", "mesh"))
def _bayes_reduce(joint: jax.Array, num_classes: int, mesh: Mesh) -> BayesReduction:
  n = joint.shape[0]
  joint = place(pad_rows(joint, axis_size(mesh, DATA)), mesh, P(DATA, CLASSES))
  out = jax.shard_map(functools.partial(bayes_reduce_block, num_classes=num_classes),
                      mesh=mesh, in_specs=P(DATA, CLASSES),
                      out_specs=BayesReduction(P(DATA), P(DATA), P(DATA)))(joint)
  return unpad_rows(out, n, mesh)


def bayes_reduce(log_lik: ArrayLike, mesh: Mesh, *, num_classes: int,
                 log_prior: ArrayLike | None = None) -> BayesReduction:
  """Bayes' rule over a class-sharded score matrix, without gathering it.

  Each device reduces its ``[N / data, K / classes]`` block to per-row maxima, argmaxes
  and shifted exponential sums; ``pmax``/``pmin``/``psum`` over the ``classes`` axis
  combine them. Communication is ``O(N)`` per device, independent of ``K``.

  Args:
    log_lik: class log-likelihoods ``[N, K]`` or ``[N, K_pad]`` (padded with
      [`pad_classes`][jgen.parallel.pad_classes]; columns ``>= num_classes`` are masked
      to ``-inf`` here whatever they hold), ideally sharded ``P("data", "classes")``
      over ``mesh``.
    mesh: a mesh with axes ``data`` and ``classes``
      ([`make_mesh`][jgen.parallel.make_mesh]).
    num_classes: the real number of classes ``K`` (static).
    log_prior: class log-priors ``[K]`` or ``[K_pad]``; ``None`` means uniform.

  Returns:
    [`BayesReduction`][jgen.parallel.BayesReduction] of ``[N]`` arrays. ``label`` equals
    ``jgen.predict(log_lik, log_prior)`` and ``log_normalizer`` equals
    ``logsumexp(log_lik + log_prior, -1)``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> log_lik = jnp.array([[-1.0, -2.0, -3.0], [-3.0, -1.0, -2.0]])
    >>> log_prior = jnp.log(jnp.array([0.1, 0.1, 0.8]))
    >>> mesh = jgen.parallel.make_mesh(data=1)  # K=3 padded to the class axis size
    >>> r = jgen.parallel.bayes_reduce(log_lik, mesh, num_classes=3,
    ...                                log_prior=log_prior)
    >>> r.label.tolist(), r.label.tolist() == jgen.predict(log_lik, log_prior).tolist()
    ([2, 2], True)
  """
  num_classes = _checks.check_num_classes(num_classes)
  out = _bayes_reduce(_as_sharded_joint(log_lik, log_prior, num_classes, mesh),
                      num_classes, mesh)
  sentinels.raise_for_invalid_labels(out.label, "log_lik")
  return out


@functools.partial(jax.jit, static_argnames=("num_classes", "mesh"))
def _sharded_log_posterior(joint: jax.Array, num_classes: int, mesh: Mesh) -> jax.Array:
  def block(j):
    r = bayes_reduce_block(j, num_classes)
    ids = lax.axis_index(CLASSES) * j.shape[-1] + jnp.arange(j.shape[-1])
    j = jnp.where((ids < num_classes)[None, :], j, -jnp.inf)
    return j - r.log_normalizer[:, None]
  n = joint.shape[0]
  joint = place(pad_rows(joint, axis_size(mesh, DATA)), mesh, P(DATA, CLASSES))
  out = jax.shard_map(block, mesh=mesh, in_specs=P(DATA, CLASSES),
                      out_specs=P(DATA, CLASSES))(joint)
  return unpad_rows(out, n, mesh)


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

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> log_lik = jnp.array([[-1.0, -2.0, -3.0], [-3.0, -1.0, -2.0]])
    >>> mesh = jgen.parallel.make_mesh(data=1)
    >>> lp = jgen.parallel.sharded_log_posterior(log_lik, mesh, num_classes=3)
    >>> tuple(round(float(p), 3) for p in jnp.exp(lp[0, :3]))
    (0.665, 0.245, 0.09)
    >>> bool(jnp.isneginf(lp[:, 3:]).all())  # padded classes: probability zero
    True
  """
  num_classes = _checks.check_num_classes(num_classes)
  joint = _as_sharded_joint(log_lik, log_prior, num_classes, mesh)
  sentinels.check_scores(joint[:, :num_classes], "log_lik")   # NaN rows under jit
  return _sharded_log_posterior(joint,
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

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> def neg_sq_dist(means, shared, ids, x):  # means [k_local, D] -> [n, k_local]
    ...   return -jnp.sum((x[:, None, :] - means[None, :, :]) ** 2, axis=-1)
    >>> means = jnp.array([[0.0, 0.0], [3.0, 3.0], [0.0, 3.0]])
    >>> x = jnp.array([[2.9, 3.1], [0.2, 2.8]])
    >>> mesh = jgen.parallel.make_mesh(data=1)
    >>> s = jgen.parallel.class_sharded_scores(neg_sq_dist, means, x, mesh,
    ...                                        num_classes=3)
    >>> jgen.parallel.bayes_reduce(s, mesh, num_classes=3).label.tolist()
    [1, 2]
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
  x = place(pad_rows(x, axis_size(mesh, DATA)), mesh, P(DATA))
  ids = place(ids, mesh, P(CLASSES))
  padded = jax.tree.map(lambda a: place(a, mesh, P(CLASSES)), padded)

  def block(params_local, shared, ids_local, x_local):
    scores = score_fn(params_local, shared, ids_local, x_local)
    want = (x_local.shape[0], ids_local.shape[0])
    if jnp.shape(scores) != want:
      raise ValueError(f"score_fn must return one score per example and class of its"
                       f" block, shape {want}, got {tuple(jnp.shape(scores))}.")
    real = lax.axis_index(CLASSES) * ids_local.shape[0] + jnp.arange(ids_local.shape[0])
    return jnp.where((real < num_classes)[None, :], scores,
                     jnp.asarray(fill, scores.dtype))

  param_specs = jax.tree.map(lambda _: P(CLASSES), padded)
  shared_specs = jax.tree.map(lambda _: P(), shared)
  out = jax.shard_map(block, mesh=mesh,
                      in_specs=(param_specs, shared_specs, P(CLASSES), P(DATA)),
                      out_specs=P(DATA, CLASSES))(padded, shared, ids, x)
  return unpad_rows(out, n, mesh)


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

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> def class_sums(x, y):  # additive over rows: per-class counts and sums
    ...   onehot = jax.nn.one_hot(y, 2)
    ...   return onehot.sum(0), onehot.T @ x
    >>> mesh = jgen.parallel.make_mesh(data=len(jax.devices()), classes=1)
    >>> x, y = jnp.arange(10.0).reshape(5, 2), jnp.array([0, 1, 0, 1, 0])
    >>> counts, sums = jgen.parallel.data_parallel_sum(class_sums, mesh, x, y)
    >>> counts.tolist(), sums.tolist()  # every row counted, whatever the device count
    ([3.0, 2.0], [[12.0, 15.0], [8.0, 10.0]])
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
  d = axis_size(mesh, DATA)
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
          shared, tail, *(place(a[:n_even], mesh, P(DATA)) for a in arrays))
