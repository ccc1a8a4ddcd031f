"""Rank-aware LDA (the SVD solver's subspace) and Ledoit-Wolf shrinkage per class.

Both work on the families' additive statistics:

* [`discriminant_subspace`][jgen.gaussian.discriminant_subspace]: the within-class
  whitening restricted to the directions the data span, then the directions spanned by
  the class centres (scikit-learn's ``LinearDiscriminantAnalysis(solver="svd")``).
  ``jgen.lda(solver="svd")`` scores in this subspace, so constant or collinear features
  need no shrinkage.
* [`ledoit_wolf_shrinkage`][jgen.gaussian.ledoit_wolf_shrinkage]: the Ledoit-Wolf
  (2004) shrinkage of each class's standardised covariance (``shrinkage="auto"``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.gaussian.params import LDAParams
from jgen.gaussian.params import REL_TOL
from jgen.gaussian.stats import GaussianStats
from jgen.gaussian.stats import moments

__all__ = ["DiscriminantSubspace", "discriminant_subspace", "ledoit_wolf_shrinkage",
           "svd_lda_core", "standardized_target", "resolvable", "subspace_from_moments",
           "svd_lda_from_moments"]


class DiscriminantSubspace(NamedTuple):
  """The directions of the SVD solver (scikit-learn's ``solver="svd"``).

  Attributes:
    xbar: prior-weighted mean of the class means ``[D]``.
    scalings: ``[D, M]`` (``M = min(K, D)``), columns ordered by decreasing
      between-class variance; only the first ``rank`` are meaningful (the rest zero).
    explained_variance_ratio: ``[M]`` between-class variance per direction, summing
      to 1.
    rank: ``[]`` int, the number of directions kept.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.3, 0.7], [2.0, 2.2], [2.4, 1.9]])
    >>> stats = jgen.gaussian.sufficient_stats(x, jnp.array([0, 0, 1, 1]), 2, pooled=True)
    >>> sub = jgen.gaussian.discriminant_subspace(stats, jnp.log(jnp.ones(2) / 2))
    >>> sub._fields
    ('xbar', 'scalings', 'explained_variance_ratio', 'rank')
  """
  xbar: jax.Array
  scalings: jax.Array
  explained_variance_ratio: jax.Array
  rank: jax.Array


def resolvable(var: jax.Array, mean_sq: jax.Array, xp=jnp) -> jax.Array:
  """Variances that are not rounding error: the relative criterion of
  [`covariance_ok`][jgen.gaussian.covariance_ok] (``var > (16 eps)^2 (var + m^2)``)."""
  tol = REL_TOL * xp.finfo(var.dtype).eps
  return xp.isfinite(var) & (var > tol * tol * (var + mean_sq))


# The maps below take ``xp``: ``jax.numpy`` (traced, jitted, the families' fits) or
# ``numpy`` (the scikit-learn estimator's float64 host moments: no program to compile).
# Both modules have every function they call, with the same signatures.

def _within(means, cov, count, log_prior, tol, xp):
  """Whitening of the pooled within-class covariance ``cov`` in the subspace it spans."""
  n = xp.sum(count)
  present = count > 0
  pi = xp.exp(log_prior)
  means = xp.where(present[:, None], means, 0)
  d = cov.shape[-1]
  var = xp.diagonal(cov)
  mean_sq = xp.sum((count / n)[:, None] * means * means, axis=0)
  ok = resolvable(var, mean_sq, xp)
  # Features constant within classes keep scale 1 and drop out (zero rows), as
  # scikit-learn's solver treats a zero standard deviation.
  std = xp.where(ok, xp.sqrt(xp.where(ok, var, 1)), 1)
  both = ok[:, None] & ok[None, :]
  corr = xp.where(both, cov / (std[:, None] * std[None, :]), 0)
  lam, vec = xp.linalg.eigh(corr)
  lam, vec = lam[::-1], vec[:, ::-1]                                   # decreasing
  sv = xp.sqrt(xp.maximum(lam, 0))
  # scikit-learn's absolute threshold on the singular values, and a dtype floor (an
  # eigenvalue below the rounding error of the eigensolver is not resolved).
  floor = d * REL_TOL * xp.finfo(cov.dtype).eps * xp.maximum(lam[0], 0)
  keep = (sv > tol) & (lam > floor)
  return means, pi, n, std, sv, vec, keep


def _between(means, pi, n, std, sv, vec, keep, tol, xp):
  scal = (vec / std[:, None]) * xp.where(keep, 1 / xp.where(keep, sv, 1), 0)[None]
  xbar = pi @ means
  k = means.shape[0]
  fac = 1.0 / max(k - 1, 1)
  xb = xp.sqrt(n * pi * fac)[:, None] * ((means - xbar[None]) @ scal)  # [K, D]
  _, s2, vt2 = xp.linalg.svd(xb, full_matrices=False)                # [M], [M, D]
  keep2 = s2 > tol * s2[0]
  return scal, xbar, s2, vt2, keep2


def _pooled(stats: GaussianStats):
  """Class means ``[K, D]`` and the pooled within-class covariance ``[D, D]`` (ddof 0)."""
  means, scatter = moments(stats)
  return means, jnp.sum(scatter, axis=0) / jnp.sum(stats.count)


def discriminant_subspace(stats: GaussianStats, log_prior: ArrayLike,
                          tol: float = 1e-4) -> DiscriminantSubspace:
  r"""The discriminant directions of scikit-learn's ``solver="svd"`` from statistics.

  The pooled within-class covariance ``W`` (ddof 0) is standardised; the eigenvectors
  whose singular value ``sqrt(lambda)`` exceeds ``tol`` whiten the subspace the data
  span. The class centres, weighted by ``sqrt(N pi_k / (K - 1))`` and whitened, give
  the between-class directions by an SVD; those with singular value above
  ``tol`` times the largest are kept.

  Args:
    stats: pooled full-covariance [`GaussianStats`][jgen.gaussian.GaussianStats].
    log_prior: class log-priors ``[K]``.
    tol: scikit-learn's ``tol`` (absolute, on the standardised singular values).

  Returns:
    A [`DiscriminantSubspace`][jgen.gaussian.DiscriminantSubspace]; the projection of
    ``x [N, D]`` is ``(x - xbar) @ scalings[:, :rank]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0, 5.0], [0.3, 0.7, 5.0], [2.0, 2.2, 5.0],
    ...                [2.4, 1.9, 5.0], [1.0, 3.0, 5.0], [1.2, 3.5, 5.0]])
    >>> y = jnp.array([0, 0, 1, 1, 2, 2])  # the third feature is constant
    >>> stats = jgen.gaussian.sufficient_stats(x, y, 3, pooled=True)
    >>> sub = jgen.gaussian.discriminant_subspace(stats, jnp.log(jnp.ones(3) / 3))
    >>> int(sub.rank), sub.scalings.shape
    (2, (3, 3))
  """
  return _subspace(stats, jnp.asarray(log_prior), tol)


@jax.jit
def _subspace(stats, log_prior, tol):
  means, cov = _pooled(stats)
  return subspace_from_moments(means, cov, stats.count, log_prior, tol)


def subspace_from_moments(means, cov, count, log_prior, tol,
                          xp=jnp) -> DiscriminantSubspace:
  """[`discriminant_subspace`][jgen.gaussian.discriminant_subspace] from class means
  ``[K, D]``, the pooled within-class covariance ``[D, D]`` and class counts ``[K]``,
  with ``xp`` either ``jax.numpy`` or ``numpy``.

  Examples:
    >>> import numpy as np, jgen
    >>> means = np.array([[0.0, 1.0], [2.0, 1.0]]); cov = np.eye(2)
    >>> sub = jgen.gaussian.subspace_from_moments(means, cov, np.array([5.0, 5.0]),
    ...                                           np.log([0.5, 0.5]), 1e-4, xp=np)
    >>> int(sub.rank), sub.explained_variance_ratio.round(6).tolist()
    (1, [1.0, 0.0])
  """
  means, pi, n, std, sv, vec, keep = _within(means, cov, count, log_prior, tol, xp)
  return _subspace_of(*_between(means, pi, n, std, sv, vec, keep, tol, xp), xp)


def _subspace_of(scal, xbar, s2, vt2, keep2, xp) -> DiscriminantSubspace:
  scalings = scal @ (vt2.T * keep2[None])                              # [D, M]
  ratio = s2 ** 2 / xp.sum(s2 ** 2)
  return DiscriminantSubspace(xbar, scalings, ratio, xp.sum(keep2))


def svd_lda_core(stats: GaussianStats, log_prior: jax.Array, tol) -> LDAParams:
  """LDA params whose posteriors are those of the SVD solver.

  In whitened coordinates the class centres are projected onto the kept
  between-class directions; the precision is the whitening's (identity in those
  coordinates) with the unresolved within-class directions given unit standardised
  variance. Neither change depends on the class, so the posteriors are exactly those
  of scikit-learn's ``solver="svd"``, while ``log_likelihood`` stays a proper Gaussian
  density (of the model with the singular directions filled in).
  """
  means, cov = _pooled(stats)
  return svd_lda_from_moments(means, cov, stats.count, log_prior, tol)


def svd_lda_from_moments(means, cov, count, log_prior, tol, xp=jnp, *,
                         with_subspace: bool = False):
  """The SVD solver's LDA params (``jgen.lda(solver="svd")``'s) from class means
  ``[K, D]``, the pooled within-class covariance ``[D, D]`` and class counts ``[K]``,
  with ``xp`` ``jax.numpy`` or ``numpy``; with ``with_subspace=True``, ``(params,
  subspace)``, the [`DiscriminantSubspace`][jgen.gaussian.DiscriminantSubspace] from
  the same eigendecomposition and SVD (what ``subspace_from_moments`` returns).

  Examples:
    >>> import numpy as np, jgen
    >>> means = np.array([[0.0, 1.0], [2.0, 1.0]]); cov = np.eye(2)
    >>> p = jgen.gaussian.svd_lda_from_moments(means, cov, np.array([5.0, 5.0]),
    ...                                        np.log([0.5, 0.5]), 1e-4, xp=np)
    >>> p.means.round(6).tolist()
    [[0.0, 1.0], [2.0, 1.0]]
  """
  means, pi, n, std, sv, vec, keep = _within(means, cov, count, log_prior, tol, xp)
  scal, xbar, s2, vt2, keep2 = _between(means, pi, n, std, sv, vec, keep, tol, xp)
  vr = vt2.T * keep2[None]                                             # [D, M]
  c = ((means - xbar[None]) @ scal) @ vr @ vr.T                        # [K, D] whitened
  # Back to x: whitened coordinate j is sv_j v_j^T diag(1/std) x.
  back = (sv[:, None] * vec.T) * std[None, :]                          # [D, D]
  centres = xbar[None] + c @ back
  s_full = xp.where(keep, sv, 1)
  a = (vec.T / s_full[:, None]) / std[None, :]                         # P = A^T A
  # Upper-triangular U with U U^T = A^T A: QR of A with reversed columns.
  _, r = xp.linalg.qr(a[:, ::-1])
  r = r * xp.sign(xp.diagonal(r))[:, None]
  u = r.T[::-1, ::-1]
  present = count > 0
  params = LDAParams(xp.where(present[:, None], centres, xp.nan), u, log_prior)
  if with_subspace:
    return params, _subspace_of(scal, xbar, s2, vt2, keep2, xp)
  return params


def standardized_target(cov: jax.Array, mean_sq: jax.Array) -> jax.Array:
  """scikit-learn's Ledoit-Wolf target for ``cov [..., D, D]`` (fitted on standardised
  features, then rescaled): ``(tr R / D) diag(s^2)``, where ``R`` is the correlation
  matrix and a feature of zero variance keeps scale ``s = 1``."""
  var = jnp.diagonal(cov, axis1=-2, axis2=-1)
  ok = resolvable(var, mean_sq)
  scale2 = jnp.where(ok, var, 1)
  mu = jnp.sum(ok, axis=-1, keepdims=True).astype(cov.dtype) / cov.shape[-1]
  d = cov.shape[-1]
  eye = jnp.eye(d, dtype=cov.dtype).reshape((1,) * (cov.ndim - 2) + (d, d))
  return (mu * scale2)[..., None] * eye


def ledoit_wolf_shrinkage(x: ArrayLike, y: ArrayLike, num_classes: int,
                          sample_weight: ArrayLike | None = None) -> jax.Array:
  r"""Ledoit-Wolf shrinkage of each class's standardised covariance ``[K]``.

  The shrinkage ``delta = min(b, d) / d`` of Ledoit and Wolf (2004) computed, as
  scikit-learn's ``shrinkage="auto"`` does, on the features standardised within the
  class (a constant feature keeps scale 1); with one feature it is 0. Weights count
  examples (``w_i = 2`` is a repeated row).

  Args:
    x: features ``[N, D]``.
    y: integer labels ``[N]`` in ``[0, num_classes)``.
    num_classes: ``K >= 1``.
    sample_weight: optional non-negative weights ``[N]``.

  Returns:
    ``[K]`` shrinkage in ``[0, 1]``.

  Examples:
    >>> import numpy as np, jax.numpy as jnp, jgen
    >>> x = np.random.RandomState(0).multivariate_normal([0, 0], [[.4, .2], [.2, .8]], 50)
    >>> s = jgen.gaussian.ledoit_wolf_shrinkage(x, np.zeros(50, int), 1)
    >>> round(float(s[0]), 2)  # scikit-learn's ledoit_wolf_shrinkage of x standardised
    0.42

  References:
    Ledoit, Wolf. A well-conditioned estimator for large-dimensional covariance
    matrices. Journal of Multivariate Analysis 88(2), 2004.
  """
  x = _checks.as_features(x, "x")
  y = jnp.asarray(y)
  if x.ndim != 2 or y.shape != x.shape[:1]:
    raise ValueError(f"x must be [N, D] and y [N], got {x.shape} and {y.shape}.")
  w = jnp.ones(x.shape[0], x.dtype) if sample_weight is None else jnp.asarray(
      sample_weight, x.dtype)
  if w.shape != y.shape:
    raise ValueError(f"sample_weight must have shape {y.shape}, got {w.shape}.")
  return _lw(x, y.astype(jnp.int32), w, int(num_classes))


@functools.partial(jax.jit, static_argnums=3)
def _lw(x, y, w, k):
  d = x.shape[1]
  seg = lambda v: jax.ops.segment_sum(v, y, k)
  live = (w > 0)[:, None]
  wx = lambda v: jnp.where(live, v * w[:, None], 0)
  count = seg(w)
  safe = jnp.where(count > 0, count, 1)[:, None]
  mean = seg(wx(x)) / safe
  mean = mean + seg(wx(x - mean[y])) / safe                           # two-pass mean
  xc = x - mean[y]
  var = seg(wx(xc * xc)) / safe                                        # [K, D]
  ok = resolvable(var, mean * mean)
  std = jnp.where(ok, jnp.sqrt(jnp.where(ok, var, 1)), 1)
  z = jnp.where(live, xc / std[y], 0)                                  # [N, D]
  q = jnp.sum(z * z, axis=1)
  beta_ = seg(w * q * q)                                               # sum_i ||z_i||^4
  zw = z * jnp.sqrt(w)[:, None]

  def class_gram(c):   # one class at a time: memory [N, D], not [N, K, D]
    zc = jnp.where((y == c)[:, None], zw, 0)
    return jnp.matmul(zc.T, zc, precision=lax.Precision.HIGHEST)

  gram = lax.map(class_gram, jnp.arange(k))                            # [K, D, D]
  delta_ = jnp.sum(gram * gram, axis=(1, 2)) / safe[:, 0] ** 2
  trace = jnp.sum(var / std ** 2, axis=1)                              # sum emp_cov_tr
  mu = trace / d
  beta = (beta_ / safe[:, 0] - delta_) / (d * safe[:, 0])
  delta = (delta_ - 2.0 * mu * trace + d * mu * mu) / d
  beta = jnp.minimum(beta, delta)
  shrink = jnp.where(beta == 0, 0.0, beta / jnp.where(delta == 0, 1, delta))
  return jnp.where(d == 1, 0.0, shrink).astype(x.dtype)
