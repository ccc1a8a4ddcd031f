"""Fitting the Gaussian families from data with missing features.

* Naive Bayes needs no iteration: each feature's class mean and variance come from the
  examples in which that feature is observed (per-feature counts), which is the maximum
  likelihood estimate of the observed data under the model.
* LDA and QDA fit by expectation-maximisation over the missing entries (Dempster, Laird
  and Rubin, 1977; Little and Rubin, *Statistical Analysis with Missing Data*, ch. 11).
  The E-step replaces each missing block by its conditional mean given the observed
  features and the class, ``mu_m + Sigma_mo Sigma_oo^{-1} (x_o - mu_o)``, and adds the
  conditional covariance ``Sigma_mm - Sigma_mo Sigma_oo^{-1} Sigma_om`` to the second
  moments; the M-step is the complete-data parameter map of the family (with its
  ``shrinkage`` or ``reg_param``). Without regularisation each iteration cannot lower
  the observed-data log-likelihood ``sum_i w_i log p(x_{i,o}, y_i)``; the history is
  returned so that this can be checked.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jgen.core import checks as _checks
from jgen.core.contract import Classifier
from jgen.gaussian.estimate import Family
from jgen.gaussian.estimate import family_of
from jgen.gaussian.missing import check_observed
from jgen.gaussian.missing import covariance_from_prec_chol
from jgen.gaussian.missing import observed_log_likelihood
from jgen.gaussian.missing import row_block
from jgen.gaussian.missing import solve_lower
from jgen.gaussian.params import GaussianNBParams
from jgen.gaussian.params import LDAParams
from jgen.gaussian.params import valid_classes
from jgen.gaussian.stats import GaussianStats
from jgen.gaussian.stats import as_features
from jgen.gaussian.stats import class_mean_stats

__all__ = ["MissingFitResult", "fit_missing"]

_HIGHEST = lax.Precision.HIGHEST
_LOG_2PI = math.log(2.0 * math.pi)


class MissingFitResult(NamedTuple):
  """What [`fit_missing`][jgen.gaussian.fit_missing] returns.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.4, 0.5], [0.2, 0.6], [2.0, 2.2], [2.4, 1.9],
    ...                [2.2, 2.4]])
    >>> observed = jnp.ones(x.shape, bool).at[1, 1].set(False)
    >>> res = jgen.gaussian.fit_missing(jgen.gaussian_nb(), x, jnp.array([0, 0, 0, 1, 1, 1]),
    ...                                 observed, num_classes=2)
    >>> round(float(res.params.means[0, 1]), 2), int(res.num_iter)  # mean of 1.0, 0.6
    (0.8, 0)

  Attributes:
    params: the family's fitted params.
    log_likelihood: ``[max_iter + 1]`` observed-data log-likelihood
      ``sum_i w_i log p(x_{i,o}, y_i)`` of the params entering each EM iteration (the
      last entry filled is that of ``params``); NaN after the last iteration run.
      Naive Bayes needs no iteration: one entry.
    num_iter: EM iterations run (``0`` for naive Bayes).
    converged: the relative change of the log-likelihood fell below ``tol``.
  """
  params: Any
  log_likelihood: jax.Array
  num_iter: jax.Array
  converged: jax.Array


def _class_weights(y, w, o, num_classes):
  """Class membership ``[K, N]`` and per-entry weights ``[N, D]`` (``w_i`` where
  observed): their product sums each weight once."""
  onehot = (y[None, :] == jnp.arange(num_classes)[:, None]).astype(w.dtype)  # [K, N]
  return onehot, w[:, None] * o.astype(w.dtype)


def _observed_moments(x, y, w, o, num_classes):
  """Per-class, per-feature weighted counts, means and central sums of squares of the
  observed entries ``[K, D]`` (two passes about the mean: no cancellation)."""
  member, wo = _class_weights(y, w, o, num_classes)
  n = jnp.matmul(member, wo.astype(x.dtype), precision=_HIGHEST)         # [K, D]
  safe = jnp.where(n > 0, n, 1)
  mean = jnp.matmul(member, wo * x, precision=_HIGHEST) / safe
  resid = jnp.where(o, x - mean[jnp.clip(y, 0, num_classes - 1)], 0)
  sq = jnp.matmul(member, wo * resid * resid, precision=_HIGHEST)
  return n, jnp.where(n > 0, mean, jnp.nan), sq


def _nb_missing(x, y, w, o, log_prior, var_smoothing, num_classes, pooled):
  n, mean, sq = _observed_moments(x, y, w, o, num_classes)
  safe = jnp.where(n > 0, n, 1)
  if pooled:
    # The pooled within-class MLE per feature over the entries where it is observed.
    var = jnp.sum(sq, axis=0) / jnp.maximum(jnp.sum(n, axis=0), 1) + var_smoothing
    var = jnp.broadcast_to(var[None, :], mean.shape)
  else:
    # scikit-learn's epsilon: var_smoothing times the largest feature variance, here
    # over the observed entries of each feature.
    wo = w[:, None] * o.astype(w.dtype)
    tot = jnp.maximum(jnp.sum(wo, axis=0), 1)
    grand = jnp.sum(wo * x, axis=0) / tot
    total_var = jnp.sum(wo * jnp.where(o, x - grand[None, :], 0) ** 2, axis=0) / tot
    var = jnp.maximum(sq / safe, 0) + var_smoothing * jnp.max(total_var)
  return GaussianNBParams(mean, var, log_prior)


def _conditional_row(sigma, mu, x, o):
  """E-step of one example: ``(x_hat [D], V [D, D], log p(x_o))`` with
  ``V = L^{-1} Sigma[o, m]`` (``L = chol(Sigma_oo)``; zero outside the observed rows
  and the missing columns), so that the conditional covariance of the missing block
  is ``Sigma_mm - V^T V``.

  One triangular solve with ``D + 1`` right-hand sides gives both ``V`` and
  ``L^{-1} r_o``: the conditional mean is ``mu_m + V^T L^{-1} r_o`` and the
  Mahalanobis term ``|L^{-1} r_o|^2``.
  """
  d = x.shape[0]
  a = jnp.where(o[:, None] & o[None, :], sigma, jnp.eye(d, dtype=sigma.dtype))
  chol = jnp.linalg.cholesky(a)
  r = jnp.where(o, x - mu, 0)
  rhs = jnp.concatenate([jnp.where(o[:, None] & ~o[None, :], sigma, 0), r[:, None]], 1)
  v = solve_lower(chol, rhs)                                             # [D, D + 1]
  vm, vr = v[:, :d], v[:, d]
  x_hat = jnp.where(o, x, mu + jnp.matmul(vr, vm, precision=_HIGHEST))
  log_p = (-0.5 * jnp.dot(vr, vr) - jnp.sum(jnp.log(jnp.diagonal(chol)))
           - 0.5 * jnp.sum(o).astype(x.dtype) * _LOG_2PI)
  return x_hat, vm, log_p


def _e_step(params, x, y, w, o, num_classes, pooled):
  """Expected statistics about the current means and the observed-data log-lik.

  Each example adds ``dev dev^T + Sigma_mm - V^T V`` to the second moments (its
  conditional covariance on the missing block, zero elsewhere): the first two terms
  are rank-one and masked sums, ``V^T V`` one batched product per block of rows."""
  n_rows, d = x.shape
  k = num_classes
  sigma = covariance_from_prec_chol(params.prec_chol)
  shared = isinstance(params, LDAParams)
  means = params.means
  yc = jnp.clip(y, 0, k - 1)
  block = row_block(n_rows, d)
  pad = (-n_rows) % block
  blocks = lambda a: jnp.concatenate(
      [a, jnp.zeros((pad,) + a.shape[1:], a.dtype)]).reshape((-1, block) + a.shape[1:])
  sq_k = 1 if pooled else k

  def body(carry, args):
    s1, s2, miss2, ll = carry
    xb, yb, wb, ob = args
    sig = sigma if shared else sigma[yb]
    row = jax.vmap(_conditional_row, in_axes=(None if shared else 0, 0, 0, 0))
    x_hat, vm, log_p = row(sig, means[yb], xb, ob)
    dev = x_hat - means[yb]
    onehot = (yb[:, None] == jnp.arange(k)[None, :]).astype(x.dtype) * wb[:, None]
    s1 = s1 + jnp.matmul(onehot.T, dev, precision=_HIGHEST)
    grp = jnp.sum(onehot, axis=1, keepdims=True) if pooled else onehot  # [B, sq_k]
    vtv = jnp.matmul(jnp.swapaxes(vm, 1, 2), vm, precision=_HIGHEST)    # [B, D, D]
    outer = dev[:, :, None] * dev[:, None, :] - vtv
    s2 = s2 + jnp.einsum("bk,bde->kde", grp, outer, precision=_HIGHEST)
    # sum_i g_ik m_i m_i^T: which entries of Sigma_k each class adds (m = missing).
    mb = (~ob).astype(x.dtype)
    miss2 = miss2 + jnp.einsum("bk,bd,be->kde", grp, mb, mb, precision=_HIGHEST)
    ll = ll + jnp.sum(wb * (log_p + params.log_prior[yb]))
    return (s1, s2, miss2, ll), None

  init = (jnp.zeros((k, d), x.dtype), jnp.zeros((sq_k, d, d), x.dtype),
          jnp.zeros((sq_k, d, d), x.dtype), jnp.zeros((), x.dtype))
  (s1, s2, miss2, ll), _ = lax.scan(
      body, init, (blocks(x), blocks(yc), blocks(w), blocks(o)))
  s2 = s2 + miss2 * (sigma[None] if shared else sigma)
  s2 = 0.5 * (s2 + jnp.swapaxes(s2, 1, 2))
  count = jnp.zeros((k,), x.dtype).at[y].add(w, mode="drop")
  return GaussianStats(count, count[:, None] * means, s1, s2), ll


def _em(x, y, w, o, log_prior, reg, tol, max_iter, core, num_classes, pooled):
  """The whole EM fit as one program (``lax.while_loop``)."""
  k = num_classes
  n, mean, _ = _observed_moments(x, y, w, o, k)
  # Start from the class means of the observed entries (the overall observed mean for
  # a feature a class never shows), imputed, then fitted as complete data.
  wo = w[:, None] * o.astype(w.dtype)
  grand = jnp.sum(wo * x, axis=0) / jnp.maximum(jnp.sum(wo, axis=0), 1)
  mean = jnp.where(n > 0, mean, grand[None, :])
  x0 = jnp.where(o, x, mean[jnp.clip(y, 0, k - 1)])
  params = core(class_mean_stats(x0, y, w, k, True, pooled), log_prior, reg)
  history = jnp.full((max_iter + 1,), jnp.nan, x.dtype)

  def cond(state):
    _, _, t, done = state
    return (t < max_iter) & ~done

  def body(state):
    params, history, t, _ = state
    stats, ll = _e_step(params, x, y, w, o, k, pooled)
    history = history.at[t].set(ll)
    prev = history[jnp.maximum(t - 1, 0)]
    done = (t > 0) & (jnp.abs(ll - prev) <= tol * jnp.abs(ll))
    new = core(stats, log_prior, reg)
    # A step whose statistics are degenerate keeps the last valid params.
    keep = jnp.all(valid_classes(new) | ~valid_classes(params))
    params = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, params)
    return params, history, t + 1, done | ~keep

  params, history, t, done = lax.while_loop(
      cond, body, (params, history, jnp.zeros((), jnp.int32), jnp.zeros((), bool)))
  _, ll = _e_step(params, x, y, w, o, k, pooled)
  history = history.at[t].set(ll)
  return MissingFitResult(params, history, t, done)


def _nb_program(x, y, w, o, log_prior, reg, num_classes, pooled):
  params = _nb_missing(x, y, w, o, log_prior, reg, num_classes, pooled)
  ll = jnp.sum(w * jnp.take_along_axis(
      observed_log_likelihood(params, x, o) + log_prior[None, :],
      jnp.clip(y, 0, num_classes - 1)[:, None], axis=1)[:, 0])
  return MissingFitResult(params, ll[None], jnp.zeros((), jnp.int32),
                          jnp.ones((), bool))


def _program(x, y, w, o, priors, reg, tol, max_iter, core, num_classes, pooled,
             full_covariance):
  """The whole fit as one program, with what the eager errors need packed into one
  vector (one transfer): ``[xy_summary (3), count [K], valid [K], finite means
  [K * D]]``."""
  x = jnp.where(o, x, 0)
  summary = _checks.xy_summary(x, y, num_classes)
  w = jnp.ones(x.shape[:1], x.dtype) if w is None else w
  count = jnp.zeros((num_classes,), x.dtype).at[y].add(w, mode="drop")
  log_prior = (jnp.log(count) - jnp.log(jnp.sum(count)) if priors is None
               else jnp.log(priors.astype(x.dtype)))
  if full_covariance:
    res = _em(x, y, w, o, log_prior, reg, tol, max_iter, core, num_classes, pooled)
  else:
    res = _nb_program(x, y, w, o, log_prior, reg, num_classes, pooled)
  valid = jnp.broadcast_to(valid_classes(res.params), count.shape)
  packed = jnp.concatenate([summary, count, valid.astype(x.dtype),
                            jnp.isfinite(res.params.means).ravel().astype(x.dtype)])
  return res, packed


_program_jit = jax.jit(_program, static_argnums=(7, 8, 9, 10, 11))


def fit_missing(model: Classifier, x, y, observed, *, num_classes: int,
                sample_weight=None, priors=None, max_iter: int = 100,
                tol: float = 1e-7) -> MissingFitResult:
  r"""Fits a Gaussian family from ``x`` with missing entries, marked by ``observed``.

  Naive Bayes estimates each feature from the examples that observe it; LDA and QDA
  run EM over the missing entries (see the module docstring), starting from the
  class means of the observed entries. With complete data both give ``model.fit``.

  Args:
    model: ``jgen.gaussian_nb(...)``, ``jgen.lda(...)`` or ``jgen.qda(...)``; its
      regularisation (``var_smoothing``, ``shrinkage``, ``reg_param``) applies as in
      the complete-data fit.
    x: ``[N, D]``; unobserved entries may hold anything, NaN included.
    y: labels ``[N]``.
    observed: boolean ``[N, D]``, ``True`` where ``x`` is observed.
    num_classes: static ``K``.
    sample_weight: optional ``[N]`` weights.
    priors: optional class priors ``[K]``; ``None`` uses the weighted class counts.
    max_iter: most EM iterations (static).
    tol: stop when the log-likelihood changes by at most ``tol`` times its magnitude.

  Returns:
    [`MissingFitResult`][jgen.gaussian.MissingFitResult].

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.4, jnp.nan], [0.2, 0.6], [0.1, 0.9],
    ...                [2.0, 2.2], [jnp.nan, 1.7], [2.4, 1.9], [2.2, 2.4]])
    >>> y = jnp.array([0, 0, 0, 0, 1, 1, 1, 1])
    >>> res = jgen.gaussian.fit_missing(jgen.lda(shrinkage=0.1), x, y,
    ...                                 ~jnp.isnan(x), num_classes=2)
    >>> res.params.means.shape, bool(res.converged)
    ((2, 2), True)
  """
  spec = family_of(model)
  num_classes = _checks.check_num_classes(num_classes)
  x = as_features(x)
  y = y if isinstance(y, jax.Array) else jnp.asarray(y)
  _checks.check_ndim(x, 2, "x")
  _checks.check_ndim(y, 1, "y")
  _checks.check_same_leading(x, y)
  if not jnp.issubdtype(y.dtype, jnp.integer):
    raise TypeError(f"y must have an integer dtype (class labels), got {y.dtype}.")
  if not (isinstance(max_iter, int) and max_iter >= 1):
    raise ValueError(f"max_iter must be a positive int, got {max_iter!r}.")
  o = check_observed(observed, x.shape)
  w = _checks.check_sample_weight(sample_weight, x.shape[0], x.dtype)
  p = None if priors is None else jnp.asarray(priors)
  if not _checks.values_checkable(x, y):
    _checks.check_labels_and_values(jnp.where(o, x, 0), y, num_classes)
  res, packed = _program_jit(x, y, w, o, p, spec.reg, tol, max_iter, spec.core,
                             num_classes, spec.pooled, spec.full_covariance)
  if not isinstance(packed, jax.core.Tracer):
    _raise_if_invalid(spec, np.asarray(packed), x, y, o, num_classes)
  return res


def _raise_if_invalid(spec: Family, packed: np.ndarray, x, y, o, num_classes) -> None:
  """Eager errors from the program's packed summary: bad labels or values, a class
  without examples, a feature a class never shows (naive Bayes), or a degenerate
  covariance."""
  n, k_num = _checks.XY_SUMMARY_SIZE, num_classes
  # Recounting (only on an error) must see the unobserved entries as zeros.
  bad = packed[0] or not np.isfinite(packed[1])
  _checks.raise_for_xy_summary(packed[:n], jnp.where(o, x, 0) if bad else x, y,
                               num_classes)
  count, valid = packed[n:n + k_num], packed[n + k_num:n + 2 * k_num] > 0
  finite = packed[n + 2 * k_num:].reshape(k_num, -1) > 0
  for k, c in enumerate(count):
    if not c >= spec.min_count and not (spec.min_count == 1 and c > 0):
      raise ValueError(f"y: class {k} has {c:g} sample(s); {spec.family} needs at least"
                       f" {spec.min_count} per class.")
  if not np.all(finite):
    k, d = np.argwhere(~finite)[0]
    raise ValueError(f"observed: feature {d} is never observed in class {k}, so"
                     f" {spec.family} cannot estimate it.")
  if not np.all(valid):
    raise ValueError(f"{spec.family}: a fitted covariance is not positive definite"
                     f" (constant or collinear observed features); {spec.remedy}.")
