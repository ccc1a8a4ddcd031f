"""Binary L2 logistic regression by the trust-region Newton method of LIBLINEAR, on the
host in float64 NumPy.

[`fit_trust_region`][jgen.logistic.fit_trust_region] minimises
``f(w) = ||w||^2 / 2 + C sum_i s_i log(1 + exp(-t_i x_i w))`` (``t_i = +-1``, weights
``s_i``) by the trust-region Newton method of Lin, Weng and Keerthi (2008, "Trust
region Newton method for large-scale logistic regression", JMLR 9), as LIBLINEAR's
primal L2 logistic solver runs it (Fan et al. 2008, JMLR 9): truncated conjugate
gradients on Hessian-vector products inside a trust region, the step accepted when
the actual reduction is at least ``1e-4`` of the predicted one, the region resized by
the factors ``0.25, 0.5, 4`` at the reduction ratios ``1e-4, 0.25, 0.75``, and the
stop at ``||grad f|| <= tol * max(min(n_pos, n_neg), 1) / n * ||grad f(0)||``. Its
iterates are then those of scikit-learn's ``LogisticRegression(solver="liblinear")``
with the L2 penalty and ``dual=False``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import expit
from scipy.special import log_expit

from jgen.core.contract import Classifier
from jgen.logistic.host import host_data
from jgen.logistic.model import ConvergenceWarning
from jgen.logistic.model import FitInfo
from jgen.logistic.model import LogisticParams
from jgen.logistic.model import check_model

__all__ = ["fit_trust_region"]

# LIBLINEAR's constants: step acceptance and trust-region update ratios, and the
# region's shrink / expand factors.
_ETA0, _ETA1, _ETA2 = 1e-4, 0.25, 0.75
_SIGMA1, _SIGMA2, _SIGMA3 = 0.25, 0.5, 4.0


class _Problem:
  """``f``, its gradient and Hessian-vector products for labels ``t = +-1`` and
  per-example costs ``c = C s``."""

  def __init__(self, x, t, c):
    self.x, self.t, self.c = x, t, c
    self.curvature = None

  def value(self, w) -> float:
    margin = self.t * (self.x @ w)
    return 0.5 * float(w @ w) - float(self.c @ log_expit(margin))

  def grad(self, w) -> np.ndarray:
    sigma = expit(self.t * (self.x @ w))
    self.curvature = self.c * sigma * (1.0 - sigma)   # the Hessian's data weights
    return w + self.x.T @ (self.c * (sigma - 1.0) * self.t)

  def hess_vec(self, s) -> np.ndarray:
    return s + self.x.T @ (self.curvature * (self.x @ s))


def _truncated_cg(problem: _Problem, g, delta: float):
  """Conjugate gradients on ``H s = -g`` to relative residual 0.1, stopped at the
  trust-region boundary ``||s|| = delta``; returns ``(s, r)``, ``r = -g - H s``."""
  s = np.zeros_like(g)
  r = -g
  d = r.copy()
  tol = 0.1 * np.linalg.norm(g)
  rr = float(r @ r)
  while np.linalg.norm(r) > tol:
    hd = problem.hess_vec(d)
    alpha = rr / float(d @ hd)
    s = s + alpha * d
    if np.linalg.norm(s) > delta:   # back to the boundary along d
      s = s - alpha * d
      sd, ss, dd = float(s @ d), float(s @ s), float(d @ d)
      rad = np.sqrt(sd * sd + dd * (delta * delta - ss))
      alpha = (delta * delta - ss) / (sd + rad) if sd >= 0 else (rad - sd) / dd
      s = s + alpha * d
      r = r - alpha * hd
      break
    r = r - alpha * hd
    rr_new = float(r @ r)
    d = r + (rr_new / rr) * d
    rr = rr_new
  return s, r


def _tron(problem: _Problem, n: int, eps: float, max_iter: int):
  """LIBLINEAR's trust-region Newton loop from ``w = 0``: ``(w, accepted steps,
  gradient at w, whether it stopped at max_iter)``."""
  w = np.zeros(n)
  f = problem.value(w)
  g = problem.grad(w)
  delta = gnorm0 = gnorm = float(np.linalg.norm(g))
  it = 1
  search = gnorm > eps * gnorm0
  while it <= max_iter and search:
    s, r = _truncated_cg(problem, g, delta)
    w_new = w + s
    gs = float(g @ s)
    predicted = -0.5 * (gs - float(s @ r))
    f_new = problem.value(w_new)
    actual = f - f_new
    snorm = float(np.linalg.norm(s))
    if it == 1:
      delta = min(delta, snorm)
    alpha = _SIGMA3 if f_new - f - gs <= 0 else max(_SIGMA1,
                                                    -0.5 * (gs / (f_new - f - gs)))
    if actual < _ETA0 * predicted:
      delta = min(max(alpha, _SIGMA1) * snorm, _SIGMA2 * delta)
    elif actual < _ETA1 * predicted:
      delta = max(_SIGMA1 * delta, min(alpha * snorm, _SIGMA2 * delta))
    elif actual < _ETA2 * predicted:
      delta = max(_SIGMA1 * delta, min(alpha * snorm, _SIGMA3 * delta))
    else:
      delta = max(delta, min(alpha * snorm, _SIGMA3 * delta))
    if actual > _ETA0 * predicted:
      it += 1
      w, f = w_new, f_new
      g = problem.grad(w)
      gnorm = float(np.linalg.norm(g))
      if gnorm <= eps * gnorm0:
        break
    if f < -1.0e32:
      break
    if abs(actual) <= 0 and predicted <= 0:
      break
    if abs(actual) <= 1.0e-12 * abs(f) and abs(predicted) <= 1.0e-12 * abs(f):
      break
  return w, it - 1, g, it > max_iter


def fit_trust_region(model: Classifier, x, y, *, sample_weight=None) -> LogisticParams:
  """Fits ``model``'s binary L2 objective by LIBLINEAR's trust-region Newton method.

  The objective is [`objective`][jgen.logistic.objective]'s, ``C sum_i w_i CE_i +
  ||W||^2 / 2``, with no intercept: as LIBLINEAR, append a constant column to ``x``
  for one (its weight is then penalised). The stopping rule is LIBLINEAR's, with
  ``model``'s ``tol`` as its ``eps`` (the module docstring gives both), so on
  scikit-learn's data and parameters the result is that of
  ``sklearn.linear_model.LogisticRegression(solver="liblinear", fit_intercept=False)``
  up to rounding, including where ``tol`` stops it short of the minimiser.

  Args:
    model: ``jgen.logistic_regression(C, tol=..., max_iter=..., fit_intercept=False)``
      with ``l1_ratio=0`` and a finite ``C``.
    x: ``[N, D]`` features; y: ``[N]`` labels in ``{0, 1}``.
    sample_weight: optional non-negative ``[N]`` weights with a positive sum.

  Returns:
    [`LogisticParams`][jgen.LogisticParams] (``weights [D, 2]`` with class 0's column
    zero, ``bias`` zeros) as float64 NumPy arrays; ``info.num_iter`` counts accepted
    steps and ``info.grad_norm`` is the final gradient's largest entry divided by
    ``C sum w``; ``info.converged`` is false only at ``max_iter``, which warns with
    [`ConvergenceWarning`][jgen.logistic.ConvergenceWarning].

  Examples:
    >>> import numpy as np, jgen
    >>> x = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])  # a bias column
    >>> y = np.array([0, 0, 1, 1])
    >>> lr = jgen.logistic_regression(C=10.0, tol=1e-8, fit_intercept=False)
    >>> params = jgen.logistic.fit_trust_region(lr, x, y)
    >>> params.weights[:, 0].tolist(), params.weights.shape
    ([0.0, 0.0], (2, 2))
    >>> jgen.predict(lr, params, x).tolist()
    [0, 0, 1, 1]
  """
  h = check_model(model)
  if h["l1_ratio"] > 0 or h["C"] == np.inf or h["fit_intercept"]:
    raise ValueError("fit_trust_region fits the L2 objective without an intercept"
                     " (l1_ratio=0, finite C, fit_intercept=False; append a constant"
                     f" column for one); got l1_ratio={h['l1_ratio']}, C={h['C']},"
                     f" fit_intercept={h['fit_intercept']}.")
  x, y, sw = host_data(x, y, sample_weight, 2)
  n = x.shape[0]
  positive = int(np.sum(y == 1))
  eps = h["tol"] * max(min(positive, n - positive), 1) / n
  problem = _Problem(x, np.where(y == 1, 1.0, -1.0), h["C"] * sw)
  w, num_iter, g, at_limit = _tron(problem, x.shape[1], eps, h["max_iter"])
  # LIBLINEAR also stops where the reductions fall below 1e-12 of f (the optimum to
  # rounding): only the iteration limit is a failure to converge.
  converged = not at_limit
  if at_limit:
    warnings.warn(f"trust-region Newton stopped at max_iter={num_iter} with gradient"
                  f" norm {np.linalg.norm(g):.3g}; increase max_iter.", ConvergenceWarning,
                  stacklevel=2)
  scaled = np.max(np.abs(g)) / (h["C"] * float(np.sum(sw)))
  info = FitInfo(np.asarray(converged), np.asarray(num_iter, np.int32),
                 np.asarray(scaled, np.float64))
  weights = np.stack([np.zeros_like(w), w], axis=1)
  return LogisticParams(weights, np.zeros(2), info)
