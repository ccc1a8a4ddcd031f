"""The Gaussian-mixture simulation of Zheng et al. (2023) and its learning curves.

The mixture ("easy" mode): ``K`` balanced classes in ``n`` dimensions, class means
``c_k 1_n`` with ``c_0 = -1`` and ``c_k = 2^(k-1)`` for ``k >= 1``, one shared diagonal
covariance ``diag(n, ..., n, 1, ..., 1)`` (the first ``floor(n/2)`` entries equal ``n``),
and for ``K > 2`` every input rescaled ``x <- (x - 2^(K-3)) / 2^(K-3)``. Because the
rescaling is affine, the rescaled data is again such a mixture;
[`GaussianMixture`][jgen.simulate.GaussianMixture] holds its true means and variances,
from which exact class log-likelihoods, posteriors and the Bayes error follow.

Learning curves (``learning_curve``, [`find_m_star`][jgen.simulate.find_m_star]) fit the
pooled naive Bayes of the paper (``jgen.gaussian_nb(pooled=True)``) and L2 logistic
regression (``C = 1``) on balanced training sets of size ``m`` and report the test error
on ``10^4`` points. Training sets are prefixes of one balanced iid stream per repetition
(a nested design), padded to a bucket size with zero sample weights, so changing ``m``
never re-traces.

References:
  Zheng, Xu, Zhang, Sun, Lu. Revisiting Discriminative vs. Generative Classifiers:
  Theory and Implications. ICML 2023.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import checks as _checks

__all__ = [
    "GaussianMixture",
    "zheng_mixture",
    "sample",
    "class_log_likelihood",
    "true_log_posterior",
    "bayes_error",
    "bayes_error_mc",
    "precision_times",
    "line_error",
]

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianMixture(NamedTuple):
  """Equal-weight Gaussian classes with one shared covariance.

  The covariance is ``diag(sd) R diag(sd)`` with ``sd = sqrt(variances)`` and the
  correlation matrix ``R = L L^T`` (``R = I`` when ``correlation_cholesky`` is ``None``).

  Attributes:
    means: ``[K, D]`` class means.
    variances: ``[D]`` shared per-feature variances (the covariance's diagonal).
    correlation_cholesky: ``None`` (independent features) or the lower Cholesky factor
      ``L [D, D]`` of the correlation matrix.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import simulate
    >>> mix = simulate.GaussianMixture(means=jnp.array([[-1.0], [1.0]]),
    ...                                variances=jnp.array([1.0]))
    >>> round(simulate.bayes_error(mix), 4)  # Phi(-1)
    0.1587
  """
  means: jax.Array
  variances: jax.Array
  correlation_cholesky: jax.Array | None = None


def zheng_mixture(num_classes: int, dim: int, *, dtype=jnp.float32) -> GaussianMixture:
  """The paper's "easy" mixture, after its ``K > 2`` rescaling.

  Args:
    num_classes: ``K >= 2``.
    dim: feature dimension ``n >= 1``.
    dtype: floating dtype of the returned arrays.

  Returns:
    [`GaussianMixture`][jgen.simulate.GaussianMixture] with ``means [K, n]`` and
    ``variances [n]``.

  Examples:
    >>> from jgen import simulate
    >>> mix = simulate.zheng_mixture(3, 4)  # c = (-1, 1, 2), shifted by 2^0 for K = 3
    >>> tuple(mix.means[:, 0].tolist()), tuple(mix.variances.tolist())
    ((-2.0, 0.0, 1.0), (4.0, 4.0, 1.0, 1.0))
  """
  num_classes = _checks.check_num_classes(num_classes)
  if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
    raise ValueError(f"dim must be an int >= 1, got {dim!r}.")
  c = np.array([-1.0] + [2.0 ** (k - 1) for k in range(1, num_classes)])
  var = np.ones(dim)
  var[: dim // 2] = dim
  if num_classes > 2:
    t = 2.0 ** (num_classes - 3)
    c, var = (c - t) / t, var / t**2
  means = np.repeat(c[:, None], dim, axis=1)
  return GaussianMixture(jnp.asarray(means, dtype), jnp.asarray(var, dtype))


def sample(key: jax.Array, mixture: GaussianMixture,
           num_examples: int) -> tuple[jax.Array, jax.Array]:
  """Balanced iid draws: example ``i`` has label ``i mod K``.

  Row ``i`` depends only on ``(key, i)``, so the first ``m`` rows of a longer draw are
  exactly a draw of size ``m`` (nested training sets; padding never changes data), and
  every prefix has class counts that differ by at most one.

  Args:
    key: PRNG key.
    mixture: the [`GaussianMixture`][jgen.simulate.GaussianMixture].
    num_examples: static ``N``.

  Returns:
    ``x [N, D]`` in the mixture's dtype and ``y [N]`` int32.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import simulate
    >>> mix = simulate.zheng_mixture(2, 4)
    >>> x, y = simulate.sample(jax.random.key(0), mix, 6)
    >>> x.shape, y
    ((6, 4), Array([0, 1, 0, 1, 0, 1], dtype=int32))
    >>> x3, _ = simulate.sample(jax.random.key(0), mix, 3)
    >>> bool(jnp.array_equal(x3, x[:3]))  # nested: a prefix is a smaller draw
    True
  """
  _checks.check_key(key)
  num_examples = _checks.check_int(num_examples, "num_examples", 1)
  k, d = mixture.means.shape
  idx = jnp.arange(num_examples)
  y = (idx % k).astype(jnp.int32)
  z = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (d,),
                                           mixture.means.dtype))(idx)
  if mixture.correlation_cholesky is not None:
    z = jnp.matmul(z, mixture.correlation_cholesky.T, precision="highest")
  return mixture.means[y] + jnp.sqrt(mixture.variances)[None, :] * z, y


def class_log_likelihood(mixture: GaussianMixture, x: ArrayLike) -> jax.Array:
  """Exact ``log p(x | y=k)`` in nats: ``x [..., D]`` -> ``[..., K]``.

  Args:
    mixture: the [`GaussianMixture`][jgen.simulate.GaussianMixture].
    x: inputs ``[..., D]``.

  Returns:
    ``[..., K]`` class log-likelihoods in the dtype of ``x``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import simulate
    >>> mix = simulate.GaussianMixture(jnp.array([[-1.0], [1.0]]), jnp.array([1.0]))
    >>> ll = simulate.class_log_likelihood(mix, jnp.array([[0.0], [1.0]]))
    >>> ll.shape, round(float(ll[1, 1]), 4)  # log N(1; 1, 1) = -log(2 pi) / 2
    ((2, 2), -0.9189)
  """
  x = jnp.asarray(x)
  _checks.check_min_ndim(x, 1, "x")
  _checks.check_last_dim(x, mixture.means.shape[1], "x", "the mixture's dimension")
  var = mixture.variances.astype(x.dtype)
  mu = mixture.means.astype(x.dtype)
  diff = x[..., None, :] - mu.reshape((1,) * (x.ndim - 1) + mu.shape)
  chol = mixture.correlation_cholesky
  if chol is None:
    maha = jnp.sum(diff * diff / _checks.as_trailing(var, diff.ndim), axis=-1)
    return -0.5 * (maha + jnp.sum(jnp.log(var)) + mu.shape[1] * _LOG_2PI)
  chol = chol.astype(x.dtype)
  z = diff / _checks.as_trailing(jnp.sqrt(var), diff.ndim)
  w = jax.scipy.linalg.solve_triangular(chol, z.reshape(-1, z.shape[-1]).T, lower=True)
  maha = jnp.sum(w * w, axis=0).reshape(z.shape[:-1])
  log_det = jnp.sum(jnp.log(var)) + 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
  return -0.5 * (maha + log_det + mu.shape[1] * _LOG_2PI)


def true_log_posterior(mixture: GaussianMixture, x: ArrayLike) -> jax.Array:
  """Exact ``log p(y=k | x)`` under balanced classes: ``[..., D]`` -> ``[..., K]``.

  Args:
    mixture: the [`GaussianMixture`][jgen.simulate.GaussianMixture].
    x: inputs ``[..., D]``.

  Returns:
    ``[..., K]`` log-posteriors (each row log-sums to zero).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import simulate
    >>> mix = simulate.GaussianMixture(jnp.array([[-1.0], [1.0]]), jnp.array([1.0]))
    >>> post = jnp.exp(simulate.true_log_posterior(mix, jnp.array([[0.0], [1.0]])))
    >>> tuple(round(float(p), 3) for p in post[:, 1])  # sigmoid(2 x)
    (0.5, 0.881)
  """
  return jax.nn.log_softmax(class_log_likelihood(mixture, x), axis=-1)


def _phi_upper(z: float) -> float:
  """``P(N(0, 1) > z)`` without cancellation."""
  return 0.5 * math.erfc(z / math.sqrt(2.0))


def bayes_error(mixture: GaussianMixture) -> float:
  r"""Exact Bayes error of a mixture whose class means lie on one line.

  With a shared covariance $\Sigma$ and means $\mu_k = \mu_0 + a_k u$,
  Bayes' rule depends on ``x`` only through $t = u^\top \Sigma^{-1} x /
  \sqrt{u^\top \Sigma^{-1} u}$, which is $N(a_k s, 1)$ under class ``k`` with
  $s = \sqrt{u^\top \Sigma^{-1} u}$. With equal priors the decision regions are
  the intervals between midpoints of the sorted $a_k s$, so the error is a sum of
  normal tails. For ``K = 2`` this is $\Phi(-\Delta / 2)$ with the Mahalanobis
  distance $\Delta$; every mixture built by
  [`zheng_mixture`][jgen.simulate.zheng_mixture] qualifies.

  Args:
    mixture: a [`GaussianMixture`][jgen.simulate.GaussianMixture] whose class means lie
      on one line.

  Returns:
    The Bayes error (Python float, computed in float64).

  Raises:
    ValueError: the class means do not lie on one line (use
      [`bayes_error_mc`][jgen.simulate.bayes_error_mc]).

  Examples:
    >>> from jgen import simulate
    >>> round(simulate.bayes_error(simulate.zheng_mixture(2, 4)), 4)  # Phi(-sqrt(10)/2)
    0.0569
  """
  means = np.asarray(mixture.means, np.float64)
  u = means[-1] - means[0]
  coef = (means - means[0][None, :]) @ u / (u @ u)                   # a_k
  if not np.allclose(means, means[0][None, :] + coef[:, None] * u[None, :],
                     rtol=1e-6, atol=1e-9 * np.abs(means).max()):
    raise ValueError("bayes_error needs class means on one line (as in"
                     " zheng_mixture); use bayes_error_mc otherwise.")
  s = math.sqrt(float(u @ precision_times(mixture, u)))
  return line_error(coef * s)


def precision_times(mixture: GaussianMixture, v: ArrayLike) -> np.ndarray:
  """``Sigma^{-1} v`` in float64 for the mixture's shared covariance ``Sigma``.

  Args:
    mixture: the [`GaussianMixture`][jgen.simulate.GaussianMixture].
    v: ``[D]`` vector.

  Returns:
    ``[D]`` float64 NumPy array.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import simulate
    >>> mix = simulate.GaussianMixture(jnp.zeros((2, 2)), jnp.array([4.0, 1.0]))
    >>> simulate.precision_times(mix, [1.0, 1.0]).tolist()
    [0.25, 1.0]
  """
  v = np.asarray(v, np.float64)
  sd = np.sqrt(np.asarray(mixture.variances, np.float64))
  if mixture.correlation_cholesky is None:
    # Zero-variance (padding) features carry v = 0 and no information.
    return np.divide(v, sd**2, out=np.zeros_like(v), where=sd > 0)
  chol = np.asarray(mixture.correlation_cholesky, np.float64)
  w = np.linalg.solve(chol, v / sd)
  return np.linalg.solve(chol.T, w) / sd


def line_error(positions: ArrayLike) -> float:
  """Error of equal-prior classes ``N(p_k, 1)`` on a line, classified by nearest ``p_k``.

  The decision regions are the intervals between midpoints of the sorted positions,
  so the error is a sum of normal tails (computed without cancellation in float64).

  Args:
    positions: ``[K]`` class positions in units of the noise standard deviation.

  Returns:
    The error (Python float).

  Examples:
    >>> from jgen import simulate
    >>> round(simulate.line_error([-1.0, 1.0]), 4)  # Phi(-1)
    0.1587
  """
  pos = np.sort(np.asarray(positions, np.float64))
  mids = (pos[1:] + pos[:-1]) / 2
  err = 0.0
  for k, p in enumerate(pos):
    if k > 0:
      err += _phi_upper(p - mids[k - 1])
    if k < len(pos) - 1:
      err += _phi_upper(mids[k] - p)
  return err / len(pos)


def bayes_error_mc(key: jax.Array, mixture: GaussianMixture, num_samples: int = 1_000_000,
                   *, chunk: int = 100_000) -> tuple[float, float]:
  """Monte Carlo Bayes error with the true model, and its standard error.

  Draws balanced samples, classifies them with the exact posterior
  ([`true_log_posterior`][jgen.simulate.true_log_posterior]) and counts mistakes; the
  standard error is ``sqrt(p (1 - p) / num_samples)`` (binomial).

  Args:
    key: PRNG key.
    mixture: the [`GaussianMixture`][jgen.simulate.GaussianMixture].
    num_samples: number of draws, rounded up to a multiple of ``chunk``.
    chunk: static draws per compiled call.

  Returns:
    ``(estimate, standard_error)`` as Python floats.

  Examples:
    >>> import jax
    >>> from jgen import simulate
    >>> mix = simulate.zheng_mixture(2, 4)
    >>> est, se = simulate.bayes_error_mc(jax.random.key(0), mix, 20_000, chunk=10_000)
    >>> abs(est - simulate.bayes_error(mix)) < 4 * se
    True
  """
  k = mixture.means.shape[0]
  if num_samples < k:
    raise ValueError(f"num_samples must be >= num_classes={k}, got {num_samples}.")

  @jax.jit
  def wrong(sub_key):
    x, y = sample(sub_key, mixture, chunk)
    return jnp.sum(jnp.argmax(class_log_likelihood(mixture, x), -1) != y)

  num_chunks = -(-num_samples // chunk)
  total = sum(int(wrong(c)) for c in jax.random.split(key, num_chunks))
  n = num_chunks * chunk
  p = total / n
  return p, math.sqrt(max(p * (1 - p), 1.0 / n) / n)


# The learning-curve driver lives in a private module to keep this one short.
