r"""Scoring corrections for LM label scores, all as per-class offsets and a scale.

* Length normalisation: divide a label's summed log-probability by its number of
  tokens, characters or UTF-8 bytes (lm-evaluation-harness ``acc_norm`` uses
  characters; ``acc_bytes`` bytes).
* Domain-conditional PMI (Holtzman et al. 2021, arXiv 2104.08315): subtract the score
  of each label after a content-free domain premise.
* Contextual calibration (Zhao et al. 2021, arXiv 2102.09690): with ``p_cf`` the mean
  label distribution over content-free inputs (``"N/A"``, ``""``, ``"[MASK]"``),
  ``q = softmax(diag(p_cf)^-1 p)``, i.e. subtract ``log p_cf`` from the scores.
* Temperature scaling (Guo et al. 2017): multiply by ``1 / T``, ``T`` fitted by
  minimising the negative log-likelihood of labelled examples.

Every correction is a per-class offset or a global scale on the ``[..., K]`` scores, so
they compose with each other, with class priors (Bayes' rule) and with class sharding.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

__all__ = ["NORMALIZATIONS", "label_norms", "contextual_offset", "fit_inv_temperature"]

NORMALIZATIONS = ("none", "token", "char", "byte")


def label_norms(normalize: str, labels: Sequence[str], label_mask: np.ndarray) -> np.ndarray:
  """Divisor ``[K]`` for each label's summed log-probability.

  Examples:
    >>> label_norms("char", [" yes", " no"], np.ones((2, 1), bool)).tolist()
    [4.0, 3.0]
  """
  if normalize not in NORMALIZATIONS:
    raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}.")
  if normalize == "none":
    return np.ones(len(labels), np.float32)
  if normalize == "token":
    return np.asarray(label_mask, bool).sum(-1).astype(np.float32)
  size = len if normalize == "char" else (lambda s: len(s.encode("utf-8")))
  return np.array([size(s) for s in labels], np.float32)


def contextual_offset(content_free_scores: ArrayLike) -> jax.Array:
  """``log p_cf [K]``: log of the mean label distribution over content-free inputs.

  Args:
    content_free_scores: ``[C, K]`` scores of ``C`` content-free inputs.

  Examples:
    >>> import jax.numpy as jnp
    >>> off = contextual_offset(jnp.log(jnp.array([[0.8, 0.2], [0.6, 0.4]])))
    >>> tuple(round(float(v), 4) for v in off)
    (-0.3567, -1.204)
  """
  s = jnp.asarray(content_free_scores)
  log_p = jax.nn.log_softmax(s, axis=-1)
  return jax.nn.logsumexp(log_p, axis=0) - jnp.log(s.shape[0])


def fit_inv_temperature(scores: ArrayLike, y: ArrayLike, *, num_steps: int = 50) -> jax.Array:
  """``1 / T`` minimising ``mean -log softmax(scores / T)[y]`` (L-BFGS on ``log(1/T)``).

  The objective is convex in ``1 / T`` (a log-sum-exp of linear functions).

  Args:
    scores: ``[N, K]`` finite scores.
    y: ``int [N]`` labels.

  Examples:
    >>> import jax.numpy as jnp
    >>> s = jnp.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    >>> float(fit_inv_temperature(s, jnp.array([0, 1, 1]))) < 1.0
    True
  """
  return _solve_inv_temperature(jnp.asarray(scores), jnp.asarray(y), num_steps)


@functools.partial(jax.jit, static_argnums=2)
def _solve_inv_temperature(s: jax.Array, y: jax.Array, num_steps: int) -> jax.Array:
  def nll(log_beta):
    lp = jax.nn.log_softmax(jnp.exp(log_beta) * s, axis=-1)
    return -jnp.mean(jnp.take_along_axis(lp, y[:, None], axis=1))

  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(nll)

  def step(_, carry):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=nll)
    return optax.apply_updates(params, updates), state

  params = jnp.zeros((), s.dtype)
  params, _ = jax.lax.fori_loop(0, num_steps, step, (params, opt.init(params)))
  return jnp.exp(params)
