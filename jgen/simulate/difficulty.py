"""Fixed-difficulty mixtures: the paper's covariance with the Bayes error held at a level.

In the "easy" mixture of Zheng et al. (2023) the Mahalanobis separation grows like
``sqrt(n)``, so the Bayes error vanishes as the dimension ``n`` grows and a target
"Bayes error + 0.01" becomes an absolute 1% that a classifier meets with a handful of
examples. [`fixed_difficulty_mixture`][jgen.simulate.fixed_difficulty_mixture] keeps the
paper's class centres and covariance ``diag(n, ..., n [floor(n/2)], 1, ..., 1)`` (after
its ``K > 2`` rescaling) and multiplies the class means by the scale ``s(n)`` that makes
the exact Bayes error equal a chosen level for every ``n``. With ``correlation = rho``
the features are AR(1)-correlated, ``R_ij = rho^|i - j|``: naive Bayes is then
misspecified and its asymptotic error
([`nb_asymptotic_error`][jgen.simulate.nb_asymptotic_error], exact) exceeds the Bayes
error, while logistic regression (linear log-odds are correct for a shared covariance)
still tends to the Bayes error.

References:
  Zheng, Xu, Zhang, Sun, Lu. Revisiting Discriminative vs. Generative Classifiers:
  Theory and Implications. ICML 2023. arXiv:2302.02334.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from jgen.simulate import mixtures

__all__ = ["fixed_difficulty_mixture", "ar1_cholesky", "nb_asymptotic_error",
           "nb_population_mixture", "separation_for_error"]


def ar1_cholesky(dim: int, rho: float) -> np.ndarray:
  """Lower Cholesky factor of the AR(1) correlation matrix ``R_ij = rho^|i - j|``.

  Closed form: ``x_0 = e_0``, ``x_i = rho x_{i-1} + sqrt(1 - rho^2) e_i``.

  Args:
    dim: ``D >= 1``.
    rho: correlation in ``[0, 1)``.

  Returns:
    ``[D, D]`` float64 NumPy array ``L`` with ``L L^T = R``.

  Examples:
    >>> import numpy as np
    >>> from jgen import simulate
    >>> chol = simulate.ar1_cholesky(3, 0.5)
    >>> np.round(chol @ chol.T, 6).tolist()
    [[1.0, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 1.0]]
  """
  if not 0.0 <= rho < 1.0:
    raise ValueError(f"correlation must be in [0, 1), got {rho!r}.")
  i = np.arange(dim)
  lag = i[:, None] - i[None, :]
  chol = np.where(lag >= 0, float(rho) ** np.maximum(lag, 0), 0.0)
  chol[:, 1:] *= math.sqrt(1.0 - rho * rho)
  return chol


def separation_for_error(positions, error: float) -> float:
  """The factor ``S`` with ``line_error(S * positions) == error`` (bisection, float64).

  Args:
    positions: ``[K]`` class positions on a line (not all equal).
    error: target error in ``(0, (K - 1) / K)``.

  Returns:
    ``S > 0`` (Python float), relative accuracy ``1e-13``.

  Examples:
    >>> from jgen import simulate
    >>> s = simulate.separation_for_error([-0.5, 0.5], 0.1586552539)  # Phi(-1)
    >>> round(s, 6)
    2.0
  """
  k = len(positions)
  if not 0.0 < error < (k - 1) / k:
    raise ValueError(f"bayes_error must be in (0, {(k - 1) / k:.3g}) for {k} classes,"
                     f" got {error!r}.")
  lo, hi = 1e-6, 1.0
  while mixtures.line_error(np.asarray(positions) * hi) > error:
    lo, hi = hi, 2.0 * hi
  for _ in range(200):  # the error decreases in S; bisect on log S
    mid = math.sqrt(lo * hi)
    lo, hi = (mid, hi) if mixtures.line_error(np.asarray(positions) * mid) > error else (
        lo, mid)
    if hi / lo - 1.0 < 1e-13:
      break
  return math.sqrt(lo * hi)


def fixed_difficulty_mixture(num_classes: int, dim: int, bayes_error: float, *,
                             correlation: float = 0.0,
                             dtype=jnp.float32) -> mixtures.GaussianMixture:
  """The paper's mixture with its class means scaled so the Bayes error is fixed.

  Args:
    num_classes: ``K >= 2``.
    dim: feature dimension ``n >= 1``.
    bayes_error: the exact Bayes error to hold, in ``(0, (K - 1) / K)``.
    correlation: AR(1) correlation ``rho`` in ``[0, 1)`` between neighbouring features
      (``0``: independent features, the paper's setting).
    dtype: floating dtype of the returned arrays.

  Returns:
    [`GaussianMixture`][jgen.simulate.GaussianMixture] whose
    [`bayes_error`][jgen.simulate.bayes_error] equals ``bayes_error`` (to float64
    rounding of the scale, before the cast to ``dtype``).

  Examples:
    >>> from jgen import simulate
    >>> mix = simulate.fixed_difficulty_mixture(3, 100, 0.1)
    >>> round(simulate.bayes_error(mix), 6)
    0.1
    >>> mix = simulate.fixed_difficulty_mixture(2, 100, 0.1, correlation=0.5)
    >>> round(simulate.bayes_error(mix), 6), simulate.nb_asymptotic_error(mix) > 0.1
    (0.1, True)
  """
  base = mixtures.zheng_mixture(num_classes, dim)  # exact in float32
  means = np.asarray(base.means, np.float64)
  var = np.asarray(base.variances, np.float64)
  chol = ar1_cholesky(dim, correlation) if correlation else None
  unit = mixtures.GaussianMixture(means, var, chol)
  u = means[-1] - means[0]
  coef = (means - means[0]) @ u / (u @ u)
  s0 = math.sqrt(float(u @ mixtures.precision_times(unit, u)))
  scale = separation_for_error(coef, bayes_error) / s0
  return mixtures.GaussianMixture(
      jnp.asarray(scale * means, dtype), jnp.asarray(var, dtype),
      None if chol is None else jnp.asarray(chol, dtype))


def nb_population_mixture(mixture: mixtures.GaussianMixture) -> mixtures.GaussianMixture:
  """The pooled naive Bayes model that the true distribution's infinite sample gives.

  Pooled naive Bayes estimates the class means and one diagonal variance shared by the
  classes; with infinite data these are the true means and the covariance's diagonal,
  i.e. the mixture with its correlations dropped. Its
  [`class_log_likelihood`][jgen.simulate.class_log_likelihood] is naive Bayes's
  asymptotic decision rule.

  Args:
    mixture: a [`GaussianMixture`][jgen.simulate.GaussianMixture].

  Returns:
    The same means and variances with ``correlation_cholesky=None``.

  Examples:
    >>> from jgen import simulate
    >>> mix = simulate.fixed_difficulty_mixture(2, 4, 0.1, correlation=0.3)
    >>> simulate.nb_population_mixture(mix).correlation_cholesky is None
    True
  """
  return mixtures.GaussianMixture(mixture.means, mixture.variances)


def nb_asymptotic_error(mixture: mixtures.GaussianMixture) -> float:
  r"""Exact error of pooled naive Bayes's infinite-sample rule on a collinear mixture.

  With means $\mu_k = \mu_0 + a_k u$, true covariance $\Sigma$ and its diagonal $D$,
  naive Bayes's scores depend on $x$ only through $v = u^\top D^{-1} x$, and it picks
  the class whose $a_k q$ ($q = u^\top D^{-1} u$) is nearest to $v$ up to a common
  shift. Under class ``k``, $v \sim N(c + a_k q, \tau^2)$ with
  $\tau^2 = u^\top D^{-1} \Sigma D^{-1} u$, so the error is
  [`line_error`][jgen.simulate.line_error] at positions $a_k q / \tau$. It equals the
  Bayes error when $\Sigma$ is diagonal and exceeds it otherwise (Cauchy-Schwarz).

  Args:
    mixture: a [`GaussianMixture`][jgen.simulate.GaussianMixture] whose class means lie
      on one line.

  Returns:
    The asymptotic error (Python float, float64).

  Examples:
    >>> from jgen import simulate
    >>> mix = simulate.zheng_mixture(2, 4)
    >>> simulate.nb_asymptotic_error(mix) == simulate.bayes_error(mix)
    True
  """
  means = np.asarray(mixture.means, np.float64)
  var = np.asarray(mixture.variances, np.float64)
  u = means[-1] - means[0]
  coef = (means - means[0]) @ u / (u @ u)
  if not np.allclose(means, means[0] + coef[:, None] * u, rtol=1e-6,
                     atol=1e-9 * np.abs(means).max()):
    raise ValueError("nb_asymptotic_error needs class means on one line.")
  if mixture.correlation_cholesky is None:
    return mixtures.bayes_error(mixture)
  w = np.divide(u, var, out=np.zeros_like(u), where=var > 0)     # D^{-1} u
  chol = np.asarray(mixture.correlation_cholesky, np.float64)
  tau = float(np.linalg.norm(chol.T @ (np.sqrt(var) * w)))         # |L^T D^{1/2} w|
  return mixtures.line_error(coef * float(u @ w) / tau)
