"""Classification metrics on scores with the class axis last: accuracy, expected
calibration error, and the log loss.

Each raises ``ValueError`` naming the argument for empty inputs, mismatched shapes,
out-of-range labels (eagerly) and, for
[`expected_calibration_error`][jgen.expected_calibration_error], scores that are not
probabilities.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core import sentinels
from jgen.core.bayes import as_scores
from jgen.core.bayes import log_posterior

__all__ = ["labels_like", "accuracy", "expected_calibration_error",
           "negative_log_likelihood", "mean_nll"]


def labels_like(y: ArrayLike, batch_shape: tuple[int, ...], num_classes: int) -> jax.Array:
  """Labels ``y`` checked against the batch shape and class count of the scores."""
  y = jnp.asarray(y)
  if not y.size:
    raise ValueError("y must hold at least one label, got an empty array.")
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
      probabilities: the argmax is used), or integer predictions ``[...]`` (a
      prediction ``-1``, the label of a row that could not be classified, counts as
      wrong).
    y: integer labels ``[...]``.

  Returns:
    Scalar accuracy in ``[0, 1]``.

  Raises:
    ValueError: eagerly, for a row of ``scores`` that cannot be classified (a NaN or
      ``+inf`` score, or ``-inf`` for every class); under ``jit`` the row counts as
      wrong.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> float(jgen.accuracy(jnp.array([[0.1, 0.9], [0.8, 0.2]]), jnp.array([1, 1])))
    0.5
  """
  scores, y = _checks.as_array(scores, "scores"), _checks.as_array(y, "y")
  if not scores.size or not y.size:
    raise ValueError("scores and y must not be empty (accuracy of no examples is"
                     " undefined).")
  if jnp.issubdtype(scores.dtype, jnp.integer):
    if scores.shape != y.shape:
      raise ValueError(
          "scores given as integer predictions must have the shape of y (one label"
          f" per example), got scores.shape={tuple(scores.shape)} and"
          f" y.shape={tuple(y.shape)}.")
    if not jnp.issubdtype(y.dtype, jnp.integer):
      raise TypeError(f"y must have an integer dtype (class labels), got {y.dtype}.")
    _check_predictions(scores, y)
    pred = scores
  else:
    scores = as_scores(scores, "scores")
    y = labels_like(y, scores.shape[:-1], scores.shape[-1])
    pred = sentinels.labels_from_scores(scores, "scores")
  # A prediction of INVALID_LABEL (-1, a row with broken scores under jit) is wrong.
  correct = (pred == y) & (pred >= 0)
  return jnp.mean(correct.astype(jnp.result_type(float)))


def _check_predictions(pred: jax.Array, y: jax.Array) -> None:
  """Concrete labels ``y >= 0`` and predictions ``>= -1`` (-1: a broken row)."""
  if _checks.is_concrete(y) and int(np.min(np.asarray(y))) < 0:
    raise ValueError(f"y must hold class labels >= 0, got {int(np.min(np.asarray(y)))}.")
  if _checks.is_concrete(pred):
    lo = int(np.min(np.asarray(pred)))
    if lo < sentinels.INVALID_LABEL:
      raise ValueError(f"scores given as integer predictions must be labels >= 0 (or"
                       f" {sentinels.INVALID_LABEL} for a row that could not be"
                       f" classified), got {lo}.")


def expected_calibration_error(probs: ArrayLike, y: ArrayLike,
                               num_bins: int = 15) -> jax.Array:
  r"""Top-label expected calibration error with equal-width confidence bins.

  $$
  \mathrm{ECE} = \sum_b \frac{|B_b|}{N} \,|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|
  $$

  Bins are ``(b/num_bins, (b+1)/num_bins]`` (Guo et al., 2017).

  Args:
    probs: class probabilities ``[..., K]`` (rows sum to one).
    y: integer labels ``[...]``.
    num_bins: static number of bins.

  Returns:
    Scalar ECE in ``[0, 1]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> probs = jnp.array([[0.9, 0.1], [0.8, 0.2]]); y = jnp.array([0, 1])
    >>> round(float(jgen.expected_calibration_error(probs, y)), 3)   # (0.1 + 0.8) / 2
    0.45
  """
  if not isinstance(num_bins, int) or num_bins < 1:
    raise ValueError(f"num_bins must be a positive int, got {num_bins!r}.")
  probs = as_scores(probs, "probs")
  y = labels_like(y, probs.shape[:-1], probs.shape[-1])
  if _checks.is_concrete(probs):
    p = np.asarray(probs, np.float64)
    tol = 1e-3 if probs.dtype == jnp.float16 else 1e-4
    if (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1
        or np.max(np.abs(p.sum(-1) - 1)) > tol):
      raise ValueError(
          "probs must be class probabilities (entries in [0, 1], rows summing to 1);"
          " got values in [{:.3g}, {:.3g}]. Pass jgen.predict_proba(...) or"
          " exp(log_posterior), not logits or log-probabilities.".format(
              np.nanmin(p), np.nanmax(p)))
  probs = probs.reshape(-1, probs.shape[-1])
  y = y.reshape(-1)
  conf = jnp.max(probs, axis=-1)
  correct = (jnp.argmax(probs, axis=-1) == y).astype(probs.dtype)
  # Bin b holds confidences in (b/B, (b+1)/B]; confidence 0 goes to bin 0.
  bins = jnp.clip(jnp.ceil(conf * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
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

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> ll = jnp.log(jnp.array([[0.5, 0.5]]))
    >>> round(float(jgen.negative_log_likelihood(ll, jnp.array([0]))), 4)   # log 2
    0.6931
  """
  log_post = log_posterior(log_lik, log_prior)
  y = labels_like(y, log_post.shape[:-1], log_post.shape[-1])
  return mean_nll(log_post, y)


def mean_nll(log_post: jax.Array, y: jax.Array) -> jax.Array:
  """``-mean log p(y_i | x_i)`` from log-posteriors ``[..., K]`` and labels ``[...]``."""
  picked = jnp.take_along_axis(log_post, y[..., None], axis=-1)[..., 0]
  return -jnp.mean(picked)
