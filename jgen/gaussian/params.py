"""Parameters of the Gaussian families and the numerical decisions about them.

Which classes are valid ([`valid_classes`][jgen.gaussian.valid_classes]) and whether a
covariance is positive definite ([`covariance_ok`][jgen.gaussian.covariance_ok]) are
decided by relative, dtype-aware criteria, so every CPU and accelerator decides the same
way.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular

__all__ = [
    "GaussianNBParams",
    "LDAParams",
    "QDAParams",
    "valid_classes",
    "valid_classes_jit",
    "chol_ok",
    "covariance_ok",
    "precision_cholesky",
    "REL_TOL",
]

# Relative tolerance of the degeneracy decisions, in units of the dtype's epsilon.
# Every decision compares a quantity with its own scale, so it does not depend on the
# units of x, and the margin (16 eps, or 16 D eps for pivots) is far above the rounding
# differences between CPUs and accelerators, so all of them decide the same way.
REL_TOL = 16.0


class GaussianNBParams(NamedTuple):
  """Naive Bayes: ``means [K, D]``, ``variances [K, D]``, ``log_prior [K]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> params = jgen.gaussian.GaussianNBParams(  # handmade: N(0, 1) and N(2, 1)
    ...     means=jnp.array([[0.0], [2.0]]), variances=jnp.ones((2, 1)),
    ...     log_prior=jnp.log(jnp.array([0.5, 0.5])))
    >>> jgen.predict(jgen.gaussian_nb(), params, jnp.array([[0.4], [1.7]]))
    Array([0, 1], dtype=int32)
  """
  means: jax.Array
  variances: jax.Array
  log_prior: jax.Array


class LDAParams(NamedTuple):
  r"""LDA: ``means [K, D]``, ``prec_chol [D, D]``, ``log_prior [K]``.

  ``prec_chol`` is the upper-triangular $U$ with $\Sigma^{-1} = U U^\top$
  ($U = L^{-\top}$ for the Cholesky factor $L$ of the shared covariance
  $\Sigma = L L^\top$).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.3, 0.7], [2.0, 2.2], [2.4, 1.9]])
    >>> params = jgen.lda().fit(x, jnp.array([0, 0, 1, 1]), num_classes=2)
    >>> params.means.shape, params.prec_chol.shape, params.log_prior.shape
    ((2, 2), (2, 2), (2,))
    >>> bool(jnp.all(params.prec_chol == jnp.triu(params.prec_chol)))  # upper triangular
    True
  """
  means: jax.Array
  prec_chol: jax.Array
  log_prior: jax.Array


class QDAParams(NamedTuple):
  """QDA: ``means [K, D]``, per-class ``prec_chol [K, D, D]``, ``log_prior [K]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.3, 0.7], [0.1, 0.2],
    ...                [2.0, 2.2], [2.4, 1.9], [3.0, 2.0]])
    >>> y = jnp.array([0, 0, 0, 1, 1, 1])
    >>> params = jgen.qda(reg_param=0.1).fit(x, y, num_classes=2)
    >>> params.means.shape, params.prec_chol.shape  # one precision factor per class
    ((2, 2), (2, 2, 2))
  """
  means: jax.Array
  prec_chol: jax.Array
  log_prior: jax.Array


def valid_classes(params: GaussianNBParams | LDAParams | QDAParams, xp=jnp) -> jax.Array:
  """``[K]`` bool: classes whose fitted parameters define a proper density.

  Invalid classes (empty, degenerate covariance, or fitted under ``jit`` from bad
  labels) score ``-inf`` in ``log_likelihood``.

  Args:
    params: [`GaussianNBParams`][jgen.gaussian.GaussianNBParams],
      [`LDAParams`][jgen.gaussian.LDAParams] or [`QDAParams`][jgen.gaussian.QDAParams].
    xp: ``jax.numpy``, or ``numpy`` for params held as NumPy arrays.

  Returns:
    ``[K]`` bool (``[]`` for LDA's shared covariance, broadcasting against ``[K]``).

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.0]])  # class 1 is constant
    >>> fit = jax.jit(jgen.qda().fit, static_argnames="num_classes")
    >>> params = fit(x, jnp.array([0, 0, 1, 1]), num_classes=2)  # under jit: no error
    >>> jgen.gaussian.valid_classes(params)
    Array([ True, False], dtype=bool)
  """
  finite_means = xp.all(xp.isfinite(params.means), axis=-1)
  if isinstance(params, GaussianNBParams):
    # The same relative criterion as covariance_ok: a variance must be resolvable
    # against the square of its class mean in the params' dtype.
    v = params.variances
    tol = REL_TOL * xp.finfo(v.dtype).eps
    m2 = xp.where(xp.isfinite(params.means), params.means, 0) ** 2
    return finite_means & xp.all(xp.isfinite(v) & (v > tol * tol * (v + m2)), axis=-1)
  return finite_means & chol_ok(params.prec_chol, xp)  # [] for LDA (broadcasts), [K] QDA


valid_classes_jit = jax.jit(valid_classes)


def chol_ok(u: jax.Array, xp=jnp) -> jax.Array:
  """Finite triangular factor(s) ``[..., D, D]`` with a positive diagonal."""
  diag = xp.diagonal(u, axis1=-2, axis2=-1)
  return xp.all(xp.isfinite(u), axis=(-2, -1)) & xp.all(diag > 0, axis=-1)


def covariance_ok(cov: jax.Array, mean_sq: jax.Array, xp=jnp) -> jax.Array:
  r"""Whether covariance(s) ``cov [..., D, D]`` are numerically positive definite.

  Two relative, dtype-aware criteria with ``tol = 16 eps`` (``eps`` of ``cov``'s dtype):

  * every variance is resolvable: ``C_ii > tol^2 (C_ii + m_i)``, i.e. the standard
    deviation of feature ``i`` exceeds ``tol`` times its root mean square, where
    ``mean_sq [..., D]`` holds ``m_i``, the squared magnitude of the feature's mean.
    A feature that is constant in training has a variance of pure rounding error,
    far below this bound, in any dtype and on any CPU;
  * no feature is (numerically) a linear combination of the others: every squared
    Cholesky pivot of the correlation matrix ``R = S^{-1/2} C S^{-1/2}`` (one minus
    the squared multiple correlation of feature ``i`` on the features before it)
    exceeds ``D tol``.

  Args:
    cov: symmetric covariance(s) ``[..., D, D]``.
    mean_sq: ``[..., D]`` squared feature means (the scale the variances are
      compared with).
    xp: ``jax.numpy`` (traceable) or ``numpy`` (host arrays: nothing to compile).

  Returns:
    ``[...]`` bool.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> cov = jnp.array([[[1.0, 0.0], [0.0, 1.0]],
    ...                  [[1.0, 1.0], [1.0, 1.0]]])  # the second: collinear features
    >>> jgen.gaussian.covariance_ok(cov, jnp.zeros((2, 2)))
    Array([ True, False], dtype=bool)
  """
  return _correlation_cholesky(cov, mean_sq, xp)[0]


def _cholesky_or_nan(a):
  """NumPy's lower Cholesky factors of ``a [..., D, D]``, NaN where one fails (JAX's
  convention: ``jnp.linalg.cholesky`` returns NaN instead of raising)."""
  import numpy as np
  flat = a.reshape((-1,) + a.shape[-2:])
  out = np.full(flat.shape, np.nan, a.dtype)
  for i, m in enumerate(flat):
    try:
      out[i] = np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
      pass
  return out.reshape(a.shape)


def _correlation_cholesky(cov: jax.Array, mean_sq: jax.Array, xp=jnp):
  """[`covariance_ok`][jgen.gaussian.covariance_ok], the Cholesky factor ``L_R`` of the
  correlation matrix and
  the inverse standard deviations (``L = diag(sd) L_R`` is ``cov``'s factor).
  ``xp``: ``jax.numpy`` (traced) or ``numpy`` (host arrays: nothing to compile)."""
  d = cov.shape[-1]
  tol = REL_TOL * xp.finfo(cov.dtype).eps
  var = xp.diagonal(cov, axis1=-2, axis2=-1)
  var_ok = xp.isfinite(var) & (var > tol * tol * (var + mean_sq))
  rsqrt = lax.rsqrt if xp is jnp else (lambda v: 1 / xp.sqrt(v))
  inv_sd = xp.where(var_ok, rsqrt(xp.where(var_ok, var, 1)), 0).astype(cov.dtype)
  corr = cov * inv_sd[..., :, None] * inv_sd[..., None, :]
  both = var_ok[..., :, None] & var_ok[..., None, :]
  eye = xp.eye(d, dtype=cov.dtype)
  spd = xp.where(both, corr, eye)
  chol = jnp.linalg.cholesky(spd) if xp is jnp else _cholesky_or_nan(spd)
  pivots = xp.diagonal(chol, axis1=-2, axis2=-1)
  piv_ok = xp.isfinite(pivots) & (pivots * pivots > d * tol)
  return xp.all(var_ok & piv_ok, axis=-1), chol, inv_sd


def precision_cholesky(cov: jax.Array, mean_sq: jax.Array, xp=jnp) -> jax.Array:
  r"""Upper-triangular $U = L^{-\top}$ with $\Sigma^{-1} = U U^\top$; NaN if degenerate.

  Degenerate means [`covariance_ok`][jgen.gaussian.covariance_ok] is false, a relative
  decision, so the result does not depend on how a particular LAPACK build rounds a
  near-zero pivot. ``xp=numpy`` computes it on host arrays (LAPACK's triangular solve,
  as ``jax.scipy``'s on CPU), with nothing to compile, for a stack ``[..., D, D]``.

  Examples:
    >>> import numpy as np, jgen
    >>> cov = np.array([[4.0, 0.0], [0.0, 1.0]])
    >>> u = jgen.gaussian.precision_cholesky(cov, np.zeros(2), xp=np)
    >>> bool(np.allclose(u @ u.T, np.linalg.inv(cov)))
    True
  """
  # One factorisation serves the decision and the factor: with S = diag(var) and
  # R = S^{-1/2} C S^{-1/2} = L_R L_R^T, C's factor is S^{1/2} L_R, so
  # U = S^{-1/2} L_R^{-T}.
  ok, chol, inv_sd = _correlation_cholesky(cov, mean_sq, xp)
  eye = xp.eye(cov.shape[-1], dtype=cov.dtype)
  if xp is jnp:
    inv = solve_triangular(chol, eye, lower=True)
  else:
    import scipy.linalg
    flat = chol.reshape((-1,) + chol.shape[-2:])
    inv = xp.stack([scipy.linalg.solve_triangular(c, eye, lower=True, check_finite=False)
                    for c in flat]).reshape(chol.shape).astype(cov.dtype)
  u = inv_sd[..., :, None] * xp.swapaxes(inv, -1, -2)
  return xp.where(ok[..., None, None], u, xp.nan).astype(cov.dtype)
