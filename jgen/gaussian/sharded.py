"""Data-parallel sufficient statistics of the Gaussian families with explicit ``psum``.

[`sufficient_stats_data_parallel`][jgen.gaussian.sufficient_stats_data_parallel] reduces
[`jgen.gaussian.sufficient_stats`][jgen.sufficient_stats] over the ``data`` axis in two
passes, as ``fit`` does on one device: class counts and sums give the class means, then
the second moments are taken about those means (no cancellation). Feed the result to
[`jgen.gaussian.fit_stats`][jgen.gaussian.fit_stats]. (Class-sharded scoring and
data-parallel fitting of any family, Gaussian included, are the generic tools of
[`jgen.parallel`][jgen.parallel].)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.gaussian.stats import GaussianStats
from jgen.gaussian.stats import sufficient_stats
from jgen.parallel import collectives as _coll

__all__ = ["sufficient_stats_data_parallel"]


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
    return sufficient_stats(x, y, self.num_classes,
                               full_covariance=self.full_covariance,
                               pooled=self.pooled, shift=shift)


def sufficient_stats_data_parallel(x: ArrayLike, y: ArrayLike, num_classes: int,
                                   mesh: Mesh, *, full_covariance: bool = True,
                                   pooled: bool = False) -> GaussianStats:
  """[`jgen.gaussian.sufficient_stats`][jgen.sufficient_stats] about the class means,
  summed over the
  ``data`` axis (the statistics ``fit`` uses on one device).

  Args:
    x: features ``[N, D]`` (ideally already sharded over ``data``).
    y: labels ``[N]`` in ``[0, num_classes)``.
    num_classes: static ``K``.
    mesh: a mesh with a ``data`` axis.
    full_covariance, pooled: which second moments to keep (as ``sufficient_stats``).

  Returns:
    [`jgen.gaussian.GaussianStats`][jgen.gaussian.GaussianStats], replicated.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4], [0.4], [2.2]])
    >>> y = jnp.array([0, 0, 1, 1, 0, 1])
    >>> mesh = jgen.parallel.make_mesh(data=jax.device_count(), classes=1)
    >>> stats = jgen.gaussian.sufficient_stats_data_parallel(x, y, 2, mesh)
    >>> params = jgen.gaussian.fit_stats(jgen.qda(), stats)
    >>> tuple(round(float(m), 2) for m in params.means[:, 0])
    (0.2, 2.2)
  """
  num_classes = _checks.check_num_classes(num_classes)
  # Eager checks on the whole data (inside shard_map only tracers are seen).
  x, y = _checks.check_xy(x, y, num_classes)
  count, sums = _coll.data_parallel_sum(_ClassSums(num_classes), mesh, x, y)
  shift = sums / jnp.maximum(count, 1)[:, None]   # the class means, as fit uses
  return _coll.data_parallel_sum(
      _Moments(num_classes, bool(full_covariance), bool(pooled)), mesh, x, y,
      shared=shift)
