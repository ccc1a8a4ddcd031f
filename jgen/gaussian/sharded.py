"""Gaussian class-conditionals on a mesh: data-parallel fits, class-sharded scores.

* Fitting reduces :func:`jgen.gaussian.sufficient_stats` over the ``data`` axis with
  ``psum`` in two passes, as ``fit`` does on one device: class counts and sums give the
  class means, then the second moments are taken about those means (no cancellation).
* Scoring splits the per-class parameters (means, variances or per-class precision
  factors, log-priors) over the ``classes`` axis; LDA's shared precision factor is
  replicated. Each device scores its classes with the family's own
  ``log_likelihood``, so the numbers are those of the single-device path.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.gaussian import families as _g
from jgen.parallel import collectives as _coll
from jgen.parallel import mesh as _sh

__all__ = ["fit_data_parallel", "sufficient_stats_data_parallel",
           "class_sharded_log_likelihood", "classify_class_sharded"]

# Fields of each params type that carry the class axis first; the rest are shared.
_PER_CLASS = {
    _g.GaussianNBParams: ("means", "variances", "log_prior"),
    _g.LDAParams: ("means", "log_prior"),
    _g.QDAParams: ("means", "prec_chol", "log_prior"),
}


class _ClassSums(NamedTuple):
  """Per-class counts ``[K]`` and feature sums ``[K, D]`` (hashable: compiles once)."""
  num_classes: int

  def __call__(self, x, y):
    count = jnp.zeros((self.num_classes,), x.dtype).at[y].add(1, mode="drop")
    return count, jax.ops.segment_sum(x, y, self.num_classes)


class _Moments(NamedTuple):
  """``GaussianStats`` of a chunk about a given per-class shift ``[K, D]``."""
  num_classes: int
  full_covariance: bool
  pooled: bool

  def __call__(self, shift, x, y):
    return _g.sufficient_stats(x, y, self.num_classes,
                               full_covariance=self.full_covariance,
                               pooled=self.pooled, shift=shift)


def sufficient_stats_data_parallel(x: ArrayLike, y: ArrayLike, num_classes: int,
                                   mesh: Mesh, *, full_covariance: bool = True,
                                   pooled: bool = False) -> _g.GaussianStats:
  """:func:`jgen.gaussian.sufficient_stats` about the class means, summed over the
  ``data`` axis (the statistics ``fit`` uses on one device).

  Args:
    x: features ``[N, D]`` (ideally already sharded over ``data``).
    y: labels ``[N]`` in ``[0, num_classes)``.
    num_classes: static ``K``.
    mesh: a mesh with a ``data`` axis.
    full_covariance, pooled: which second moments to keep (as ``sufficient_stats``).

  Returns:
    :class:`jgen.gaussian.GaussianStats`, replicated.
  """
  num_classes = _checks.check_num_classes(num_classes)
  # Eager checks on the whole data (inside shard_map only tracers are seen).
  x, y = _checks.check_xy(x, y, num_classes)
  count, sums = _coll.data_parallel_sum(_ClassSums(num_classes), mesh, x, y)
  shift = sums / jnp.maximum(count, 1)[:, None]   # the class means, as fit uses
  return _coll.data_parallel_sum(
      _Moments(num_classes, bool(full_covariance), bool(pooled)), mesh, x, y,
      shared=shift)


def fit_data_parallel(model: _g.GaussianClassifier, x: ArrayLike, y: ArrayLike, *,
                      num_classes: int, mesh: Mesh, full_covariance: bool = True,
                      pooled: bool = False, priors: ArrayLike | None = None) -> Any:
  """``model.fit`` with the examples split over the ``data`` axis.

  Args:
    model: ``jgen.gaussian_nb(...)``, ``jgen.lda(...)`` or ``jgen.qda(...)``.
    x: ``[N, D]``; y: ``[N]``; num_classes: static ``K``; mesh: ``(data, classes)``.
    full_covariance, pooled: statistics to reduce. The default (full, per class)
      serves every family; ``full_covariance=False`` suffices for naive Bayes and
      ``pooled=True`` for LDA (and pooled naive Bayes), with ``K``-fold less traffic.
    priors: optional class priors ``[K]`` (as ``fit``).

  Returns:
    The family's params, equal to ``model.fit(x, y, num_classes=K)`` up to the
    rounding of the reordered sums.
  """
  stats = sufficient_stats_data_parallel(x, y, num_classes, mesh,
                                         full_covariance=full_covariance,
                                         pooled=pooled)
  return model.fit_stats(stats, priors=priors)


def _split(params) -> tuple[dict, dict, type]:
  kind = type(params)
  if kind not in _PER_CLASS:
    raise TypeError(f"params must be GaussianNBParams, LDAParams or QDAParams, got"
                    f" {kind.__name__}.")
  fields = params._asdict()
  per = {k: v for k, v in fields.items() if k in _PER_CLASS[kind]}
  return per, {k: v for k, v in fields.items() if k not in per}, kind


def _score(log_likelihood, kind, per, shared, ids, x):
  del ids
  return log_likelihood(kind(**per, **shared), x)


def class_sharded_log_likelihood(model: _g.GaussianClassifier, params: Any,
                                 x: ArrayLike, mesh: Mesh) -> jax.Array:
  """``model.log_likelihood(params, x)`` with the classes split over ``classes``.

  Args:
    model: the family that fitted ``params``.
    params: its params (``K`` classes).
    x: ``[N, D]``; rows split over ``data``.
    mesh: a ``(data, classes)`` mesh.

  Returns:
    ``[N, K_pad]`` log-likelihoods sharded ``P("data", "classes")``; the padded
    columns are ``-inf``.
  """
  per, shared, kind = _split(params)
  num_classes = params.log_prior.shape[0]
  x = jnp.asarray(x)
  _checks.check_ndim(x, 2, "x")
  _checks.check_last_dim(x, params.means.shape[-1], "x", "the number of features")
  _checks.check_finite(x, "x")
  return _coll.class_sharded_scores(
      _Scorer(model.log_likelihood, kind), per, x, mesh, num_classes=num_classes,
      shared=shared)


class _Scorer:
  """A hashable per-shard scorer: equal for equal (log_likelihood, params type), so
  repeated calls with one model reuse the compiled program."""

  def __init__(self, log_likelihood, kind):
    self.log_likelihood, self.kind = log_likelihood, kind

  def __call__(self, per, shared, ids, x):
    return _score(self.log_likelihood, self.kind, per, shared, ids, x)

  def __eq__(self, other):
    return (isinstance(other, _Scorer) and other.log_likelihood is self.log_likelihood
            and other.kind is self.kind)

  def __hash__(self):
    return hash((id(self.log_likelihood), self.kind))


def classify_class_sharded(model: _g.GaussianClassifier, params: Any, x: ArrayLike,
                           mesh: Mesh) -> _coll.BayesReduction:
  """Bayes' rule with the fitted ``params.log_prior``, classes split over devices,
  without gathering ``[N, K]``: label, ``log p(x)`` and the winning log-joint ``[N]``.
  """
  log_lik = class_sharded_log_likelihood(model, params, x, mesh)
  return _coll.bayes_reduce(log_lik, mesh, num_classes=params.log_prior.shape[0],
                          log_prior=params.log_prior)
