"""Bayes' rule on class log-likelihoods, classification metrics and calibration.

Every function here works on scores with the class axis last, ``[..., K]``, for any
leading shape, and composes with ``jit`` and ``vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core import lbfgs as _optim

__all__ = [
    "log_posterior",
    "predict",
    "empirical_log_prior",
    "validate_log_prior",
    "accuracy",
    "expected_calibration_error",
    "negative_log_likelihood",
    "fit_temperature",
    "temperature_scale",
]


def _as_scores(log_lik: ArrayLike, name: str = "log_lik") -> jax.Array:
  log_lik = jnp.asarray(log_lik)
  _checks.check_min_ndim(log_lik, 1, name)
  _checks.check_float(log_lik, name)
  return log_lik


def _joint(log_lik: jax.Array, log_prior: ArrayLike | None) -> jax.Array:
  if log_prior is None:
    return log_lik
  log_prior = jnp.asarray(log_prior, dtype=log_lik.dtype)
  _checks.check_ndim(log_prior, 1, "log_prior")
  _checks.check_last_dim(log_prior, log_lik.shape[-1], "log_prior",
                         "one entry per class of log_lik")
  return log_lik + _checks.as_trailing(log_prior, log_lik.ndim)


def log_posterior(log_lik: ArrayLike, log_prior: ArrayLike | None = None) -> jax.Array:
  r"""Class log-posteriors by Bayes' rule.

  .. math::
     \log p(y=k \mid x) = \log p(x \mid y=k) + \log p(y=k)
       - \operatorname{logsumexp}_j [\log p(x \mid y=j) + \log p(y=j)]

  Args:
    log_lik: class-conditional log-likelihoods ``[..., K]``.
    log_prior: class log-priors ``[K]``; ``None`` means uniform.

  Returns:
    Log-posteriors ``[..., K]`` (each row log-sums to zero).

  Example:
    >>> import jax.numpy as jnp, jgen
    >>> jnp.exp(jgen.log_posterior(jnp.log(jnp.array([0.2, 0.6])))).round(2)
    Array([0.25, 0.75], dtype=float32)
  """
  joint = _joint(_as_scores(log_lik), log_prior)
  return jax.nn.log_softmax(joint, axis=-1)


def predict(log_lik: ArrayLike, log_prior: ArrayLike | None = None) -> jax.Array:
  """Bayes-rule class predictions ``argmax_k log p(x|k) + log p(k)``.

  Args:
    log_lik: class-conditional log-likelihoods (or any class scores) ``[..., K]``.
    log_prior: class log-priors ``[K]``; ``None`` means uniform.

  Returns:
    Integer labels ``[...]``.
  """
  return jnp.argmax(_joint(_as_scores(log_lik), log_prior), axis=-1)


def empirical_log_prior(y: ArrayLike, num_classes: int) -> jax.Array:
  """Log of the class frequencies in ``y``.

  Args:
    y: integer labels ``[N]`` in ``[0, num_classes)``.
    num_classes: static number of classes ``K``.

  Returns:
    ``[K]`` log-frequencies; a class absent from ``y`` gets ``-inf`` (prior zero).
  """
  num_classes = _checks.check_num_classes(num_classes)
  y = jnp.asarray(y)
  _checks.check_ndim(y, 1, "y")
  _checks.check_labels(y, num_classes)
  counts = jnp.zeros((num_classes,), jnp.result_type(float)).at[y].add(1.0)
  return jnp.log(counts) - jnp.log(jnp.asarray(y.shape[0], counts.dtype))


def validate_log_prior(log_prior: ArrayLike, num_classes: int, *,
                       atol: float = 1e-6) -> jax.Array:
  """Checks a user-supplied log-prior ``[K]`` and returns it as an array.

  Args:
    log_prior: class log-priors ``[K]``; entries may be ``-inf`` (prior zero) but not
      NaN or ``+inf``; ``logsumexp(log_prior)`` must be 0 within ``atol``.
    num_classes: static number of classes ``K``.
    atol: tolerance on the normalisation.

  Returns:
    ``log_prior`` as a floating array ``[K]``.
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


def _labels_like(y: ArrayLike, batch_shape: tuple[int, ...], num_classes: int) -> jax.Array:
  y = jnp.asarray(y)
  _checks.check_labels(y, num_classes)
  if y.shape != batch_shape:
    raise ValueError(
        f"y must have shape {batch_shape} (the leading shape of the scores), got"
        f" {tuple(y.shape)}.")
  return y


def accuracy(scores: ArrayLike, y: ArrayLike) -> jax.Array:
  """Fraction of correct predictions.

  Args:
    scores: class scores ``[..., K]`` (log-likelihoods, log-posteriors, logits or
      probabilities: the argmax is used), or integer predictions ``[...]``.
    y: integer labels ``[...]``.

  Returns:
    Scalar accuracy in ``[0, 1]``.
  """
  scores, y = jnp.asarray(scores), jnp.asarray(y)
  if jnp.issubdtype(scores.dtype, jnp.integer) and scores.shape == y.shape:
    pred = scores
  else:
    scores = _as_scores(scores, "scores")
    y = _labels_like(y, scores.shape[:-1], scores.shape[-1])
    pred = jnp.argmax(scores, axis=-1)
  return jnp.mean((pred == y).astype(jnp.result_type(float)))


def expected_calibration_error(probs: ArrayLike, y: ArrayLike,
                               num_bins: int = 15) -> jax.Array:
  r"""Top-label expected calibration error with equal-width confidence bins.

  .. math::
     \mathrm{ECE} = \sum_b \frac{|B_b|}{N} \,|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|

  Bins are ``(b/num_bins, (b+1)/num_bins]`` (Guo et al., 2017).

  Args:
    probs: class probabilities ``[..., K]`` (rows sum to one).
    y: integer labels ``[...]``.
    num_bins: static number of bins.

  Returns:
    Scalar ECE in ``[0, 1]``.
  """
  if not isinstance(num_bins, int) or num_bins < 1:
    raise ValueError(f"num_bins must be a positive int, got {num_bins!r}.")
  probs = _as_scores(probs, "probs")
  y = _labels_like(y, probs.shape[:-1], probs.shape[-1])
  probs = probs.reshape(-1, probs.shape[-1])
  y = y.reshape(-1)
  conf = jnp.max(probs, axis=-1)
  correct = (jnp.argmax(probs, axis=-1) == y).astype(probs.dtype)
  # Bin b holds confidences in (b/B, (b+1)/B]; confidence 0 goes to bin 0.
  bins = jnp.clip(jnp.ceil(conf * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
  count = jax.ops.segment_sum(jnp.ones_like(conf), bins, num_bins)
  sum_conf = jax.ops.segment_sum(conf, bins, num_bins)
  sum_acc = jax.ops.segment_sum(correct, bins, num_bins)
  return jnp.sum(jnp.abs(sum_acc - sum_conf)) / conf.shape[0]


def negative_log_likelihood(log_lik: ArrayLike, y: ArrayLike,
                            log_prior: ArrayLike | None = None) -> jax.Array:
  """Mean negative log-posterior of the true labels (the log loss), in nats.

  Args:
    log_lik: class log-likelihoods or logits ``[..., K]``.
    y: integer labels ``[...]``.
    log_prior: class log-priors ``[K]`` or ``None`` (uniform).

  Returns:
    Scalar mean NLL.
  """
  log_post = log_posterior(log_lik, log_prior)
  y = _labels_like(y, log_post.shape[:-1], log_post.shape[-1])
  return _mean_nll(log_post, y)


def _mean_nll(log_post: jax.Array, y: jax.Array) -> jax.Array:
  picked = jnp.take_along_axis(log_post, y[..., None], axis=-1)[..., 0]
  return -jnp.mean(picked)


def temperature_scale(log_lik: ArrayLike, temperature: ArrayLike,
                      log_prior: ArrayLike | None = None) -> jax.Array:
  """Temperature-scaled log-posteriors ``log_softmax((log_lik + log_prior) / T)``.

  Args:
    log_lik: class log-likelihoods or logits ``[..., K]``.
    temperature: positive scalar ``T``.
    log_prior: class log-priors ``[K]`` or ``None``.

  Returns:
    Log-posteriors ``[..., K]``.
  """
  joint = _joint(_as_scores(log_lik), log_prior)
  return jax.nn.log_softmax(joint / temperature, axis=-1)


def fit_temperature(log_lik: ArrayLike, y: ArrayLike,
                    log_prior: ArrayLike | None = None, *,
                    num_steps: int = 100) -> jax.Array:
  """Fits a scalar temperature by minimising the validation NLL (Guo et al., 2017).

  Optimises ``log T`` with ``optax.lbfgs`` (zoom line search) for ``num_steps``
  iterations inside ``lax.scan``, so it is jit-compatible.

  Args:
    log_lik: validation class log-likelihoods or logits ``[..., K]``.
    y: validation labels ``[...]``.
    log_prior: class log-priors ``[K]`` or ``None``.
    num_steps: static number of L-BFGS iterations.

  Returns:
    Scalar temperature ``T > 0``; use with :func:`temperature_scale`.
  """
  joint = _joint(_as_scores(log_lik), log_prior)
  y = _labels_like(y, joint.shape[:-1], joint.shape[-1])
  # Start from the scale of the scores: ELBO differences can be hundreds of nats.
  spread = jnp.std(joint - jnp.mean(joint, axis=-1, keepdims=True))
  log_t0 = jnp.log(jnp.maximum(spread, jnp.finfo(joint.dtype).tiny))

  def nll(log_t):
    return _mean_nll(jax.nn.log_softmax(joint / jnp.exp(log_t), axis=-1), y)

  log_t = _optim.lbfgs_fixed_steps(nll, log_t0, num_steps)
  return jnp.exp(log_t)
