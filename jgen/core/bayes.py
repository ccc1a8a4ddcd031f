"""Bayes' rule on class log-likelihood arrays: posteriors, predictions and priors.

Every function here works on scores with the class axis last, ``[..., K]``, for any
leading shape, and composes with ``jit`` and ``vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core import sentinels

__all__ = [
    "as_scores",
    "joint",
    "log_posterior",
    "predict",
    "empirical_log_prior",
    "validate_log_prior",
]


def as_scores(log_lik: ArrayLike, name: str = "log_lik") -> jax.Array:
  """``log_lik`` as a floating array of rank >= 1 (class axis last)."""
  log_lik = jnp.asarray(log_lik)
  _checks.check_min_ndim(log_lik, 1, name)
  _checks.check_float(log_lik, name)
  return log_lik


def joint(log_lik: jax.Array, log_prior: ArrayLike | None) -> jax.Array:
  """``log_lik + log_prior`` ``[..., K]`` with the shape of the prior checked."""
  if log_prior is None:
    return log_lik
  log_prior = jnp.asarray(log_prior, dtype=log_lik.dtype)
  _checks.check_ndim(log_prior, 1, "log_prior")
  if _checks.is_concrete(log_prior):
    lp = np.asarray(log_prior)
    if np.any(np.isnan(lp) | np.isposinf(lp)):
      raise ValueError("log_prior must not contain NaN or +inf (a log-probability is"
                       " at most 0; -inf is prior zero).")
  _checks.check_last_dim(log_prior, log_lik.shape[-1], "log_prior",
                         "one entry per class of log_lik")
  return log_lik + _checks.as_trailing(log_prior, log_lik.ndim)


def _joint_name(log_prior) -> str:
  return "log_lik" if log_prior is None else "log_lik + log_prior"


def log_posterior(log_lik: ArrayLike, log_prior: ArrayLike | None = None) -> jax.Array:
  r"""Class log-posteriors by Bayes' rule.

  $$
  \log p(y=k \mid x) = \log p(x \mid y=k) + \log p(y=k) - \operatorname{logsumexp}_j [\log p(x \mid y=j) + \log p(y=j)]
  $$

  Args:
    log_lik: class-conditional log-likelihoods ``[..., K]``.
    log_prior: class log-priors ``[K]``; ``None`` means uniform.

  Returns:
    Log-posteriors ``[..., K]`` (each row log-sums to zero).

  Raises:
    ValueError: eagerly, if ``log_prior`` holds a NaN or ``+inf``, or a row of the
      log-joint cannot be normalised (a NaN or ``+inf`` score, or ``-inf`` for every
      class). Under ``jit`` such a row comes back with NaN entries.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> jnp.exp(jgen.log_posterior(jnp.log(jnp.array([0.2, 0.6])))).round(2)
    Array([0.25, 0.75], dtype=float32)
  """
  joint_ = joint(as_scores(log_lik), log_prior)
  sentinels.check_scores(joint_, _joint_name(log_prior))
  return jax.nn.log_softmax(joint_, axis=-1)


def predict(log_lik: ArrayLike, log_prior: ArrayLike | None = None) -> jax.Array:
  """Bayes-rule class predictions ``argmax_k log p(x|k) + log p(k)``.

  Args:
    log_lik: class-conditional log-likelihoods (or any class scores) ``[..., K]``.
    log_prior: class log-priors ``[K]``; ``None`` means uniform.

  Returns:
    Integer labels ``[...]``. A row that cannot be classified (a NaN or ``+inf``
    score, or ``-inf`` for every class) raises ``ValueError`` eagerly and gets the
    label ``-1`` (``jgen.core.sentinels.INVALID_LABEL``, not a class) under ``jit``.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> scores = jnp.array([[0.0, 1.0], [jnp.nan, 0.0], [-jnp.inf, -jnp.inf]])
    >>> jax.jit(jgen.predict)(scores).tolist()
    [1, -1, -1]
    >>> jgen.predict(scores[:1]).tolist()
    [1]
  """
  return sentinels.labels_from_scores(joint(as_scores(log_lik), log_prior),
                                      _joint_name(log_prior))


def empirical_log_prior(y: ArrayLike, num_classes: int) -> jax.Array:
  """Log of the class frequencies in ``y``.

  Args:
    y: integer labels ``[N]`` in ``[0, num_classes)``.
    num_classes: static number of classes ``K``.

  Returns:
    ``[K]`` log-frequencies; a class absent from ``y`` gets ``-inf`` (prior zero).
    Under ``jit``, labels outside ``[0, num_classes)`` make every entry ``-inf``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> jnp.exp(jgen.empirical_log_prior(jnp.array([0, 1, 1, 1]), 2)).tolist()
    [0.25, 0.75]
  """
  num_classes = _checks.check_num_classes(num_classes)
  y = jnp.asarray(y)
  _checks.check_ndim(y, 1, "y")
  _checks.check_labels(y, num_classes)
  if y.shape[0] == 0:
    raise ValueError("y must hold at least one label, got an empty array.")
  counts = jnp.zeros((num_classes,), jnp.result_type(float)).at[y].add(1.0, mode="drop")
  # Under jit an out-of-range label cannot raise: it invalidates every class (all
  # -inf, the documented sentinel) instead of being dropped from the counts.
  bad = jnp.any((y < 0) | (y >= num_classes))
  log_prior = jnp.log(counts) - jnp.log(jnp.asarray(y.shape[0], counts.dtype))
  return jnp.where(bad, -jnp.inf, log_prior)


def validate_log_prior(log_prior: ArrayLike, num_classes: int, *,
                       atol: float = 1e-6) -> jax.Array:
  """Checks a user-supplied log-prior ``[K]`` and returns it as an array.

  Args:
    log_prior: class log-priors ``[K]``; entries may be ``-inf`` (prior zero) but not
      NaN or ``+inf``; ``logsumexp(log_prior)`` must be 0 within ``atol``.
    num_classes: static number of classes ``K``.
    atol: tolerance on the normalisation.

  Returns:
    ``log_prior`` as a floating array ``[K]``; under ``jit``, where it cannot raise,
    all NaN when it is not normalised or holds a NaN or ``+inf`` (predictions from
    it are then the sentinel ``-1``).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> jgen.validate_log_prior(jnp.log(jnp.array([0.25, 0.75])), 2).shape
    (2,)
    >>> jgen.validate_log_prior(jnp.log(jnp.array([0.5, 0.75])), 2)
    Traceback (most recent call last):
        ...
    ValueError: log_prior must be normalised (logsumexp == 0 within 1e-06), got logsumexp = 0.223.
  """
  num_classes = _checks.check_num_classes(num_classes)
  log_prior = jnp.asarray(log_prior)
  _checks.check_float(log_prior, "log_prior")
  _checks.check_ndim(log_prior, 1, "log_prior")
  _checks.check_last_dim(log_prior, num_classes, "log_prior", "num_classes entries")
  if _checks.is_concrete(log_prior):
    lp = np.asarray(log_prior, np.float64)
    if np.any(np.isnan(lp) | (lp == np.inf)):
      raise ValueError("log_prior must not contain NaN or +inf.")
    m = lp.max()
    total = float(m + np.log(np.sum(np.exp(lp - m)))) if np.isfinite(m) else -np.inf
    if abs(total) > atol:
      raise ValueError(
          f"log_prior must be normalised (logsumexp == 0 within {atol}), got"
          f" logsumexp = {total:.3g}.")
    return log_prior
  # Under jit nothing can raise: a prior that is not a log-probability vector becomes
  # NaN, so every score it enters is NaN and jgen.predict gives the sentinel -1.
  ok = (~jnp.any(jnp.isnan(log_prior) | jnp.isposinf(log_prior))
        & (jnp.abs(jax.nn.logsumexp(log_prior)) <= atol))
  _checks.staged_check(ok, f"log_prior must be normalised (logsumexp == 0 within {atol})"
                       " and hold no NaN or +inf.")
  return jnp.where(ok, log_prior, jnp.nan)
