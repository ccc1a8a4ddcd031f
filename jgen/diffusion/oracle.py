r"""Exact reference for Gaussian class-conditionals: the Bayes-optimal denoiser.

For ``x | y=k ~ N(mu_k, diag s_k^2)`` and ``z = alpha x + sigma eps``, ``z`` is Gaussian
with mean ``alpha mu`` and variance ``alpha^2 s^2 + sigma^2``, so the posterior-mean
(MSE-optimal) noise prediction is linear in ``z``:

$$
\hat\epsilon^*(z, \gamma, k) = \mathbb{E}[\epsilon \mid z, y=k] = \frac{\sigma (z - \alpha \mu_k)}{\alpha^2 s_k^2 + \sigma^2}.
$$

With this denoiser the diffusion ELBO approaches the exact ``log N(x; mu_k, s_k^2)``
as ``gamma_min -> -inf`` and ``gamma_max -> inf`` (REFERENCES section 5), which is what
every ELBO path in jgen is tested against.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.diffusion.parametrizations import Denoiser
from jgen.diffusion.schedules import alpha_sigma

__all__ = ["OracleParams", "gaussian_oracle", "gaussian_log_likelihoods"]


class OracleParams(NamedTuple):
  """Parameters of [`gaussian_oracle`][jgen.diffusion.gaussian_oracle]: ``means``,
  ``variances`` ``[K, ...]``.

  Attributes:
    means: ``[K, ...]`` class means.
    variances: ``[K, ...]`` per-coordinate variances, > 0.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> den, _ = jgen.diffusion.gaussian_oracle(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    >>> params = jgen.diffusion.OracleParams(means=jnp.ones((2, 3)),
    ...                                      variances=jnp.ones((2, 3)))
    >>> eps_hat = den.apply(params, jnp.ones(3), jnp.asarray(0.0), 0)  # new means
    >>> [round(float(e), 4) for e in eps_hat]  # sigma (z - alpha mu), sigma^2 = 1/2
    [0.2071, 0.2071, 0.2071]
  """
  means: jax.Array
  variances: jax.Array


def _oracle_apply(params: OracleParams, z, gamma, y):
  z = jnp.asarray(z)
  alpha, sigma = alpha_sigma(jnp.asarray(gamma, z.dtype))
  k = params.means.shape[0]
  if _checks.is_concrete(y) and not 0 <= int(y) < k:
    raise ValueError(f"y (the class index) must lie in [0, {k}), got {int(y)}.")
  # Under jit an index outside [0, K) gives NaN (then a -inf score), never the
  # nearest class, which a plain gather would clamp to.
  mu = params.means.at[y].get(mode="fill", fill_value=jnp.nan).astype(z.dtype)
  var = params.variances.at[y].get(mode="fill", fill_value=jnp.nan).astype(z.dtype)
  return sigma * (z - alpha * mu) / (alpha * alpha * var + sigma * sigma)


def _check_params(means: ArrayLike, variances: ArrayLike):
  means = jnp.asarray(means)
  variances = jnp.asarray(variances)
  _checks.check_min_ndim(means, 2, "means")
  _checks.check_float(means, "means")
  _checks.check_float(variances, "variances")
  if variances.shape != means.shape:
    raise ValueError(f"variances must have the shape of means {tuple(means.shape)},"
                     f" got {tuple(variances.shape)}.")
  _checks.check_finite(means, "means")
  _checks.check_finite(variances, "variances")
  if _checks.is_concrete(variances) and not bool((jax.device_get(variances) > 0).all()):
    raise ValueError("variances must be > 0.")
  return means, variances


def gaussian_oracle(means: ArrayLike, variances: ArrayLike
                    ) -> tuple[Denoiser, OracleParams]:
  """The Bayes-optimal denoiser for ``x | y=k ~ N(means[k], diag variances[k])``.

  Args:
    means: ``[K, ...]`` class means (``...`` = the example shape, e.g. ``[D]``).
    variances: ``[K, ...]`` per-coordinate variances, > 0.

  Returns:
    ``(denoiser, params)``: an ``eps`` [`Denoiser`][jgen.diffusion.Denoiser] (one shared
    ``apply`` for every oracle, so new means never recompile) and
    [`OracleParams`][jgen.diffusion.OracleParams], differentiable if traced.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, params = diffusion.gaussian_oracle(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    >>> den.apply(params, jnp.ones(3), jnp.asarray(0.0), 1).shape
    (3,)
  """
  means, variances = _check_params(means, variances)
  den = Denoiser(_oracle_apply, "eps", tuple(means.shape[1:]), int(means.shape[0]))
  return den, OracleParams(means, variances)


def gaussian_log_likelihoods(means: ArrayLike, variances: ArrayLike,
                             x: ArrayLike) -> jax.Array:
  """Exact ``log N(x; means[k], diag variances[k])`` in nats.

  Args:
    means: ``[K, D]``.
    variances: ``[K, D]``.
    x: ``[..., D]``.

  Returns:
    ``[..., K]`` log-likelihoods.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> diffusion.gaussian_log_likelihoods(jnp.zeros((2, 3)), jnp.ones((2, 3)),
    ...                                    jnp.zeros((4, 3))).shape
    (4, 2)
  """
  means, variances = _check_params(means, variances)
  _checks.check_ndim(means, 2, "means")
  x = jnp.asarray(x)
  _checks.check_min_ndim(x, 1, "x")
  _checks.check_last_dim(x, means.shape[-1], "x", "the feature dimension of means")
  diff = x[..., None, :] - _checks.as_trailing(means, x.ndim + 1)
  var = _checks.as_trailing(variances, x.ndim + 1)
  return -0.5 * jnp.sum(jnp.log(2.0 * jnp.pi * var) + diff * diff / var, axis=-1)
