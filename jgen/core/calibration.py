"""Temperature scaling (Guo et al., 2017): calibrated posteriors from any scores.

``T`` must be a positive, finite scalar: eagerly anything else raises ``ValueError``;
under ``jit`` an invalid ``T`` makes every log-posterior ``-inf`` (the documented
sentinel), never a flipped or NaN answer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core import lbfgs as _optim
from jgen.core import sentinels
from jgen.core.bayes import as_scores
from jgen.core.bayes import joint
from jgen.core.metrics import labels_like
from jgen.core.metrics import mean_nll

__all__ = ["temperature_scale", "fit_temperature"]


def temperature_scale(log_lik: ArrayLike, temperature: ArrayLike,
                      log_prior: ArrayLike | None = None) -> jax.Array:
  """Temperature-scaled log-posteriors ``log_softmax((log_lik + log_prior) / T)``.

  Args:
    log_lik: class log-likelihoods or logits ``[..., K]``.
    temperature: positive scalar ``T``.
    log_prior: class log-priors ``[K]`` or ``None``.

  Returns:
    Log-posteriors ``[..., K]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> probs = jnp.exp(jgen.temperature_scale(jnp.array([0.0, 2.0]), 2.0))
    >>> tuple(round(float(p), 3) for p in probs)
    (0.269, 0.731)
  """
  scores = joint(as_scores(log_lik), log_prior)
  sentinels.check_scores(scores, "log_lik")
  t = jnp.asarray(temperature)
  if t.ndim != 0:
    raise ValueError(f"temperature must be a scalar, got shape {tuple(t.shape)}.")
  if not (jnp.issubdtype(t.dtype, jnp.floating) or jnp.issubdtype(t.dtype, jnp.integer)):
    raise TypeError(f"temperature must be a real number, got dtype {t.dtype}.")
  if _checks.is_concrete(t) and not (np.isfinite(float(t)) and float(t) > 0):
    raise ValueError(f"temperature must be a finite number > 0, got {float(t)}.")
  t = t.astype(scores.dtype)
  ok = jnp.isfinite(t) & (t > 0)
  _checks.staged_check(ok, "temperature must be a finite number > 0.")
  out = jax.nn.log_softmax(scores / jnp.where(ok, t, 1), axis=-1)
  return jnp.where(ok, out, -jnp.inf)


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
    Scalar temperature ``T > 0``; use with
    [`temperature_scale`][jgen.temperature_scale]. Scores that are equal across classes
    (no information about ``T``) give ``T = 1``.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> logits = 3.0 * jax.random.normal(jax.random.key(0), (4000, 4))
    >>> y = jax.random.categorical(jax.random.key(1), logits / 3.0)   # true T = 3
    >>> 2.7 < float(jgen.fit_temperature(logits, y)) < 3.3
    True
  """
  scores = joint(as_scores(log_lik), log_prior)
  sentinels.check_scores(scores, "log_lik")
  y = labels_like(y, scores.shape[:-1], scores.shape[-1])
  if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
    raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}.")
  # Start from the scale of the scores: ELBO differences can be hundreds of nats.
  centred = scores - jnp.mean(scores, axis=-1, keepdims=True)
  centred = jnp.where(jnp.isfinite(centred), centred, 0)
  spread = jnp.std(centred)
  # Scores equal across classes carry no information about T: the NLL is flat and
  # any T is optimal. Return T = 1 there instead of the NaN of a flat line search.
  flat = ~(spread > 0)
  log_t0 = jnp.log(jnp.where(flat, 1, spread))

  def nll(log_t):
    return mean_nll(jax.nn.log_softmax(scores / jnp.exp(log_t), axis=-1), y)

  log_t = _optim.lbfgs_fixed_steps(nll, log_t0, num_steps)
  t = jnp.where(flat | ~jnp.isfinite(log_t), 1.0, jnp.exp(log_t))
  return t.astype(scores.dtype)
