r"""Semi-supervised fitting of any generative family by expectation-maximisation.

Unlabeled examples (label ``-1``, scikit-learn's convention) enter the fit of every
class with their posterior under the current params as weight, times
``unlabeled_weight``; labelled examples enter their own class with their weight. This
needs nothing beyond the contract's weighted ``fit``: the data is laid out once per
class (``[K * N, ...]``, label ``k`` in block ``k``) and only the weights change
between iterations (Nigam, McCallum, Thrun and Mitchell, 2000, "Text Classification
from Labeled and Unlabeled Documents using EM", Machine Learning 39).

Each E-step also evaluates the observed-data log-likelihood of the params it starts
from,

$$\ell(\theta) = \sum_{i \in L} w_i \log p(x_i, y_i) +
\lambda \sum_{i \in U} w_i \log \sum_k p(x_i, y=k),$$

which an M-step that maximises the weighted likelihood (the unregularised Gaussian
fits) cannot decrease (Dempster, Laird and Rubin, 1977). Iteration stops when its
relative change falls below ``tol``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core.contract import Classifier
from jgen.parallel.classifier import fit_data_parallel

__all__ = ["SemiSupervisedResult", "semi_supervised_fit"]


class SemiSupervisedResult(NamedTuple):
  """What [`semi_supervised_fit`][jgen.parallel.semi_supervised_fit] returns.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.4], [2.0], [2.5], [0.2], [2.2]])
    >>> y = jnp.array([0, 0, 1, 1, -1, -1])
    >>> res = jgen.parallel.semi_supervised_fit(jgen.lda(), x, y, num_classes=2)
    >>> t = int(res.num_iter)   # entries after t are NaN
    >>> res.log_likelihood.shape, bool(res.log_likelihood[t] >= res.log_likelihood[0])
    ((101,), True)

  Attributes:
    params: the family's params after the last M-step.
    log_likelihood: ``[max_iter + 1]`` observed-data log-likelihood of the params
      entering each iteration, then of ``params`` (entry ``num_iter``); NaN after.
    num_iter: EM iterations run (an int32 scalar array).
    converged: whether the relative change fell below ``tol`` (a bool scalar array).
  """
  params: Any
  log_likelihood: jax.Array
  num_iter: jax.Array
  converged: jax.Array


def _tiled(x: jax.Array, num_classes: int) -> tuple[jax.Array, jax.Array]:
  """``x`` once per class ``[K * N, ...]`` and the class of each block ``[K * N]``."""
  n = x.shape[0]
  xs = jnp.broadcast_to(x[None], (num_classes,) + x.shape).reshape((-1,) + x.shape[1:])
  return xs, jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), n)


def _scores(model: Classifier, params, x, key):
  """``log p(x, y=k)`` ``[N, K]`` under the current params."""
  scores = model.log_likelihood(params, x, key=key)
  prior = model.log_prior(params)
  if prior is None:
    return scores
  return scores + jnp.reshape(prior, (1,) * (scores.ndim - 1) + prior.shape)


def _e_step(model, params, x, labelled, y, w, lam, key):
  """Per-(class, example) weights ``[K * N]`` and the observed-data log-likelihood."""
  joint = _scores(model, params, x, key)                                   # [N, K]
  k = joint.shape[-1]
  onehot = jax.nn.one_hot(jnp.where(labelled, y, 0), k, dtype=joint.dtype)
  post = jax.nn.softmax(joint, axis=-1)
  weights = jnp.where(labelled[:, None], onehot, lam * post) * w[:, None]
  lab = jnp.sum(jnp.where(onehot > 0, joint, 0), axis=-1)
  unl = jax.nn.logsumexp(joint, axis=-1)
  ll = jnp.sum(w * jnp.where(labelled, lab, lam * unl))
  return weights.T.reshape(-1), ll


def semi_supervised_fit(model: Classifier, x: ArrayLike, y: ArrayLike, *,
                        num_classes: int, unlabeled_weight: float = 1.0,
                        sample_weight: ArrayLike | None = None, max_iter: int = 100,
                        tol: float = 1e-6, mesh=None, key: jax.Array | None = None,
                        **fit_kwargs: Any) -> SemiSupervisedResult:
  """Fits ``model`` to labelled and unlabeled examples together by EM.

  Works for any family whose ``fit`` takes ``sample_weight``. Under ``jit`` (traced
  inputs) the loop is a ``lax.while_loop``, which needs a family whose ``fit`` traces
  (the Gaussian families); called eagerly it is a Python loop around the family's own
  fit. With ``mesh`` every M-step is
  [`fit_data_parallel`][jgen.parallel.fit_data_parallel] on the ``data`` axis.

  Args:
    model: a generative [`jgen.Classifier`][jgen.Classifier] (not ``conditional``).
    x: ``[N, ...]`` examples.
    y: ``[N]`` integer labels in ``[0, K)``, or ``-1`` for an unlabeled example.
    num_classes: static ``K``.
    unlabeled_weight: ``lambda >= 0``, the weight of the unlabeled part (``0`` is the
      labelled-only fit; Nigam et al. (2000) down-weight unlabeled data when the model
      is misspecified).
    sample_weight: optional ``[N]`` example weights.
    max_iter: most EM iterations (static).
    tol: stop when the log-likelihood changes by at most ``tol`` times its magnitude.
    mesh: optional mesh with a ``data`` axis for the M-steps.
    key: PRNG key for stochastic families (the same key every E-step).
    **fit_kwargs: passed to ``model.fit`` (e.g. ``priors=``).

  Returns:
    [`SemiSupervisedResult`][jgen.parallel.SemiSupervisedResult].

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [2.0], [0.3], [-0.2], [2.3], [1.8], [0.1], [2.1]])
    >>> y = jnp.array([0, 1, -1, -1, -1, -1, -1, -1])   # two labels, six unlabeled
    >>> res = jgen.parallel.semi_supervised_fit(jgen.gaussian_nb(pooled=True), x, y,
    ...                                         num_classes=2)
    >>> [round(float(m), 2) for m in res.params.means[:, 0]], bool(res.converged)
    ([0.05, 2.05], True)
  """
  if not isinstance(model, Classifier):
    raise TypeError(f"model must be a jgen.Classifier, got {type(model).__name__}.")
  if model.conditional:
    raise ValueError(f"{model.name} is conditional (its scores are logits): EM over the"
                     " class needs a generative family.")
  num_classes = _checks.check_num_classes(num_classes)
  if not (isinstance(max_iter, int) and max_iter >= 1):
    raise ValueError(f"max_iter must be a positive int, got {max_iter!r}.")
  if not (isinstance(unlabeled_weight, jax.Array) or unlabeled_weight >= 0):
    raise ValueError(f"unlabeled_weight must be >= 0, got {unlabeled_weight!r}.")
  x = x if isinstance(x, jax.Array) else jnp.asarray(x)
  y = y if isinstance(y, jax.Array) else jnp.asarray(y)
  _checks.check_min_ndim(x, 1, "x")
  _checks.check_ndim(y, 1, "y")
  _checks.check_same_leading(x, y)
  if not jnp.issubdtype(y.dtype, jnp.integer):
    raise TypeError(f"y must have an integer dtype (class labels, -1 = unlabeled), got"
                    f" {y.dtype}.")
  if _checks.is_concrete(y):
    yv = np.asarray(y)
    if np.any((yv < -1) | (yv >= num_classes)):
      raise ValueError(f"y must lie in [0, num_classes={num_classes}) or be -1"
                       " (unlabeled).")
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
  w = _checks.check_sample_weight(sample_weight, x.shape[0], dtype)
  w = jnp.ones(x.shape[:1], dtype) if w is None else w
  lam = jnp.asarray(unlabeled_weight, dtype)
  labelled = y >= 0
  xs, ys = _tiled(x, num_classes)

  def fit(weights):
    if mesh is not None:
      return fit_data_parallel(model, xs, ys, mesh, num_classes=num_classes,
                               sample_weight=weights, **fit_kwargs)
    return model.fit(xs, ys, num_classes=num_classes, sample_weight=weights,
                     **fit_kwargs)

  # Start from the labelled examples alone.
  start = jax.nn.one_hot(jnp.where(labelled, y, -1), num_classes, dtype=dtype) * w[:, None]
  params = fit(start.T.reshape(-1))
  history = jnp.full((max_iter + 1,), jnp.nan, dtype)
  e_step = lambda p: _e_step(model, p, x, labelled, y, w, lam, key)
  traced = any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves((x, y, w, lam, params)))
  if traced:
    return _while(e_step, fit, params, history, max_iter, tol)
  t, done = 0, False
  while t < max_iter and not done:
    weights, ll = e_step(params)
    history = history.at[t].set(ll)
    done = t > 0 and bool(jnp.abs(ll - history[t - 1]) <= tol * jnp.abs(ll))
    params = fit(weights)
    t += 1
  history = history.at[t].set(e_step(params)[1])
  return SemiSupervisedResult(params, history, jnp.asarray(t, jnp.int32),
                              jnp.asarray(done))


def _while(e_step, fit, params, history, max_iter, tol) -> SemiSupervisedResult:
  """The EM loop as ``lax.while_loop``, for traced inputs."""

  def cond(state):
    _, _, t, done = state
    return (t < max_iter) & ~done

  def body(state):
    params, history, t, _ = state
    weights, ll = e_step(params)
    history = history.at[t].set(ll)
    prev = history[jnp.maximum(t - 1, 0)]
    done = (t > 0) & (jnp.abs(ll - prev) <= tol * jnp.abs(ll))
    return fit(weights), history, t + 1, done

  params, history, t, done = lax.while_loop(
      cond, body, (params, history, jnp.zeros((), jnp.int32), jnp.zeros((), bool)))
  history = history.at[t].set(e_step(params)[1])
  return SemiSupervisedResult(params, history, t, done)
