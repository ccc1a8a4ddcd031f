r"""Posteriors and predictions from ``(model, params, x)`` for every family.

The generic face of Bayes' rule on the classifier contract: a generative family's
scores are ``log p(x | y=k)`` and its ``log_prior(params)`` is added; a conditional
family (``model.conditional``, e.g. logistic regression) already scores
``log p(y=k | x)`` up to a constant and gets no prior. No function here branches on the
family.

[`predict`][jgen.predict] and [`log_posterior`][jgen.log_posterior] also keep their
array form, ``predict(log_lik, log_prior=None)``, so a score matrix computed elsewhere
(a sharded scorer, a language model, a user's density) goes through the same rule.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jgen.core import bayes
from jgen.core import checks as _checks
from jgen.core import sentinels
from jgen.core.contract import Classifier

__all__ = ["log_joint", "log_posterior", "predict", "predict_proba"]


def log_joint(model: Classifier, params: Any, x: ArrayLike, *,
              key: jax.Array | None = None) -> jax.Array:
  """``log p(x | y=k) + log p(y=k)`` ``[..., K]`` (logits for conditional families).

  Args:
    model: any [`jgen.Classifier`][jgen.Classifier].
    params: what ``model.fit`` returned (or a loaded/handmade params pytree).
    x: inputs ``[..., *feature_shape]``.
    key: PRNG key, needed by stochastic families (Monte Carlo likelihoods).

  Returns:
    ``[..., K]`` unnormalised class log-posteriors.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> model = jgen.gaussian_nb(); params = model.fit(x, y, num_classes=2)
    >>> jgen.core.inference.log_joint(model, params, x).shape
    (4, 2)
  """
  if not isinstance(model, Classifier):
    raise TypeError(f"model must be a jgen.Classifier, got {type(model).__name__}.")
  if model.stochastic and key is None:
    raise ValueError(f"{model.name} scores are Monte Carlo estimates: pass key=.")
  scores = model.log_likelihood(params, x, key=key)
  prior = None if model.conditional else model.log_prior(params)
  if prior is None:
    return scores
  return scores + _checks.as_trailing(jnp.asarray(prior, scores.dtype), scores.ndim)


def log_posterior(model_or_log_lik: Any, *args: Any, **kwargs: Any) -> jax.Array:
  r"""Class log-posteriors ``[..., K]`` by Bayes' rule.

  Two forms:

  * ``log_posterior(model, params, x, *, key=None)``: from a fitted model;
  * ``log_posterior(log_lik, log_prior=None)``: from a score matrix ``[..., K]`` and
    class log-priors ``[K]`` (``None`` = uniform), ``jgen.core.bayes.log_posterior``.

  $$
  \log p(y=k \mid x) = s_k(x) - \operatorname{logsumexp}_j s_j(x),\quad
  s_k = \log p(x \mid y=k) + \log p(y=k)
  $$

  Returns:
    ``[..., K]`` log-posteriors (each row log-sums to zero). A row that cannot be
    normalised (a NaN or ``+inf`` score, or ``-inf`` for every class) raises
    ``ValueError`` eagerly and has NaN entries under ``jit``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> model = jgen.gaussian_nb(); params = model.fit(x, y, num_classes=2)
    >>> jnp.exp(jgen.log_posterior(model, params, x)).sum(-1).round(4).tolist()
    [1.0, 1.0, 1.0, 1.0]
  """
  if isinstance(model_or_log_lik, Classifier):
    joint = log_joint(model_or_log_lik, *args, **kwargs)
    sentinels.check_scores(joint, "log_joint")
    return jax.nn.log_softmax(joint, axis=-1)
  return bayes.log_posterior(model_or_log_lik, *args, **kwargs)


def predict(model_or_log_lik: Any, *args: Any, **kwargs: Any) -> jax.Array:
  """Bayes-rule labels ``argmax_k`` of the log-joint, ``int32 [...]``.

  Two forms, as [`log_posterior`][jgen.log_posterior]:
  ``predict(model, params, x, *, key=None)`` or ``predict(log_lik, log_prior=None)``.
  A row that cannot be classified (a NaN or ``+inf`` score, or ``-inf`` for every
  class) raises ``ValueError`` eagerly and gets the label ``-1`` under ``jit``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> model = jgen.qda(reg_param=0.1); params = model.fit(x, y, num_classes=2)
    >>> jgen.predict(model, params, jnp.array([[0.1], [2.1]]))
    Array([0, 1], dtype=int32)
  """
  if isinstance(model_or_log_lik, Classifier):
    return sentinels.labels_from_scores(log_joint(model_or_log_lik, *args, **kwargs),
                                        "log_joint")
  return bayes.predict(model_or_log_lik, *args, **kwargs)


def predict_proba(model: Classifier, params: Any, x: ArrayLike, *,
                  key: jax.Array | None = None) -> jax.Array:
  """Class probabilities ``p(y=k | x)`` ``[..., K]`` from a fitted model.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]]); y = jnp.array([0, 0, 1, 1])
    >>> lr = jgen.logistic_regression(C=10.0); params = lr.fit(x, y, num_classes=2)
    >>> jgen.predict_proba(lr, params, x).argmax(-1).tolist()
    [0, 0, 1, 1]
  """
  return jnp.exp(log_posterior(model, params, x, key=key))
