"""The L2 logistic objective fitted on the host: NumPy in float64 and scipy's L-BFGS-B.

For data small enough that compiling a solver costs more than solving (a few thousand
rows, as in a cross-validation of a bundled dataset),
[`fit_host`][jgen.logistic.fit_host] minimises the same objective as
``jgen.logistic_regression(solver="lbfgs")`` with
``scipy.optimize.minimize(method="L-BFGS-B")`` and an explicit NumPy gradient. Its
settings are scikit-learn's ``lbfgs`` solver's (``gtol=tol`` on the objective divided
by ``C sum w``, ``ftol = 64 eps``, at most 50 line-search steps, no preconditioning),
so its iterates are scikit-learn's up to rounding.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import scipy.optimize
from scipy.special import expit
from scipy.special import log_expit

from jgen.core import checks as _checks
from jgen.core.contract import Classifier
from jgen.logistic.model import ConvergenceWarning
from jgen.logistic.model import FitInfo
from jgen.logistic.model import LogisticParams
from jgen.logistic.model import check_model
from jgen.logistic.model import init_free

__all__ = ["fit_host", "value_and_grad_host"]


def value_and_grad_host(theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                        sw: np.ndarray, *, num_classes: int, C: float,
                        fit_intercept: bool) -> tuple[float, np.ndarray]:
  """``J / (C sum w)`` and its gradient for flat free parameters, in NumPy.

  ``J`` is [`objective`][jgen.logistic.objective]'s L2 objective; divided by
  ``C sum w`` it is the weighted mean cross-entropy plus ``||W||^2 / (2 C sum w)``
  (only the mean for ``C = inf``).

  Args:
    theta: ``W.ravel()`` (``[D, K']``, ``K' = 1`` for two classes, else ``K``) followed
      by the ``K'`` intercepts when ``fit_intercept``.
    x: ``[N, D]`` float64; y: ``[N]`` labels in ``[0, K)``; sw: ``[N]`` weights.
    num_classes: ``K``; C: inverse penalty strength (``inf``: none);
    fit_intercept: whether ``theta`` ends with intercepts.

  Returns:
    ``(value, gradient)`` with the gradient shaped like ``theta``.

  Examples:
    >>> import numpy as np
    >>> from jgen.logistic import value_and_grad_host
    >>> x = np.array([[0.0], [1.0]]); y = np.array([0, 1]); sw = np.ones(2)
    >>> value, grad = value_and_grad_host(np.zeros(2), x, y, sw, num_classes=2, C=1.0,
    ...                                   fit_intercept=True)
    >>> round(value, 4), grad.tolist()   # log 2; d/dw = mean((1/2 - y) x)
    (0.6931, [-0.25, 0.0])
  """
  n, d = x.shape
  k = 1 if num_classes == 2 else num_classes
  w = theta[:d * k].reshape(d, k)
  b = theta[d * k:] if fit_intercept else np.zeros(k)
  total = float(np.sum(sw))
  # Class-major [K', N] scores: reductions over classes then run along rows, which
  # NumPy does far faster than over a short trailing axis.
  z = w.T @ x.T + b[:, None]
  if num_classes == 2:
    z = z[0]
    target = (y == 1).astype(x.dtype)
    losses = -log_expit(z) + (1.0 - target) * z          # log(1 + e^z) - y z
    dz = (expit(z) - target)[None, :]
  else:
    rows = np.arange(n)
    z -= z.max(axis=0)   # the softmax and the losses ignore the shift
    dz = np.exp(z)
    total_e = dz.sum(axis=0)
    losses = np.log(total_e) - z[y, rows]
    dz /= total_e
    dz[y, rows] -= 1.0
  dz *= sw / total
  l2 = 0.0 if C == np.inf else 1.0 / (C * total)
  value = float(sw @ losses) / total + 0.5 * l2 * float(np.sum(w * w))
  grad_w = (dz @ x).T + l2 * w
  parts = [grad_w.ravel()] + ([dz.sum(axis=1)] if fit_intercept else [])
  return value, np.concatenate(parts)


def fit_host(model: Classifier, x, y, *, num_classes: int, sample_weight=None,
             init: LogisticParams | None = None) -> LogisticParams:
  """Fits ``model``'s L2 (or unpenalised) objective on the host with scipy's L-BFGS-B.

  The same minimiser as ``model.fit`` with ``solver="lbfgs"``, computed in float64
  NumPy with scikit-learn's ``lbfgs`` settings (``maxiter=max_iter``, ``gtol=tol``,
  ``ftol = 64 eps(float64)``, ``maxls=50``, no preconditioning), so for scikit-learn's
  data and parameters it retraces scikit-learn's iterates. It compiles nothing, which
  makes it the faster fit for small data; ``model.fit`` is the one to use for large
  data, on an accelerator, or under ``jit``/``vmap``.

  Args:
    model: ``jgen.logistic_regression(...)`` with ``l1_ratio=0`` (its ``C``, ``tol``,
      ``max_iter`` and ``fit_intercept``; the solver name is not read).
    x: ``[N, D]`` features; y: ``[N]`` labels in ``[0, num_classes)``.
    num_classes: ``K >= 2``.
    sample_weight: optional non-negative ``[N]`` weights with a positive sum.
    init: optional warm start ([`LogisticParams`][jgen.LogisticParams]).

  Returns:
    [`LogisticParams`][jgen.LogisticParams] with float64 NumPy arrays; ``info`` holds
    whether scipy reported convergence, its iteration count and the final gradient's
    largest entry. Stopping without convergence warns with
    [`ConvergenceWarning`][jgen.logistic.ConvergenceWarning] and scipy's reason.

  Examples:
    >>> import numpy as np, jgen
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> lr = jgen.logistic_regression(C=10.0)
    >>> host = jgen.logistic.fit_host(lr, x, y, num_classes=2)
    >>> device = lr.fit(x, y, num_classes=2)
    >>> bool(np.allclose(host.weights, device.weights, atol=1e-3))
    True
  """
  h = check_model(model)
  if h["l1_ratio"] > 0:
    raise ValueError(f"fit_host fits the L2 objective; model has l1_ratio="
                     f"{h['l1_ratio']} (use its fit, solver='proximal-newton').")
  num_classes = _checks.check_num_classes(num_classes)
  x, y, sw = host_data(x, y, sample_weight, num_classes)
  n, d = x.shape
  k = 1 if num_classes == 2 else num_classes
  fit_intercept = h["fit_intercept"]
  w0, b0 = (np.asarray(v, np.float64) for v in init_free(init, d, num_classes,
                                                         np.float64))
  theta0 = np.concatenate([w0.ravel()] + ([b0] if fit_intercept else []))
  result = scipy.optimize.minimize(
      functools.partial(value_and_grad_host, num_classes=num_classes, C=h["C"],
                        fit_intercept=fit_intercept),
      theta0, method="L-BFGS-B", jac=True, args=(x, y, sw),
      options={"maxiter": h["max_iter"], "maxls": 50, "gtol": h["tol"],
               "ftol": 64 * float(np.finfo(np.float64).eps)})
  num_iter = min(int(result.nit), h["max_iter"])
  if result.status != 0:
    warnings.warn(f"scipy's L-BFGS-B stopped after {num_iter} iteration(s)"
                  f" (status={result.status}): {result.message}", ConvergenceWarning,
                  stacklevel=2)
  w = result.x[:d * k].reshape(d, k)
  b = result.x[d * k:] if fit_intercept else np.zeros(k)
  if num_classes > 2 and fit_intercept:
    b = b - b.mean()   # as the family's fit: the softmax ignores a shared shift
  if num_classes == 2:
    w = np.concatenate([np.zeros_like(w), w], axis=1)
    b = np.concatenate([np.zeros(1), b])
  info = FitInfo(np.asarray(result.status == 0), np.asarray(num_iter, np.int32),
                 np.asarray(np.max(np.abs(result.jac)), np.float64))
  return LogisticParams(w, b, info)


def host_data(x, y, sample_weight, num_classes):
  """Validated float64 ``(x [N, D], y [N], sample_weight [N])`` as NumPy arrays."""
  x = np.asarray(x)
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise TypeError(f"x must have a real (float or int) dtype, got {x.dtype}.")
  x = x.astype(np.float64)
  _checks.check_ndim(x, 2, "x")
  y = np.asarray(y)
  _checks.check_ndim(y, 1, "y")
  _checks.check_same_leading(x, y, "x", "y")
  if x.shape[0] == 0:
    raise ValueError("x must contain at least one example, got shape (0, D).")
  if x.shape[1] == 0:
    raise ValueError("x must have at least one feature, got shape (N, 0).")
  _checks.check_labels(y, num_classes)
  _checks.check_values(x, "x")
  if sample_weight is None:
    return x, y, np.ones(x.shape[0])
  sw = np.asarray(sample_weight, np.float64)
  _checks.check_ndim(sw, 1, "sample_weight")
  _checks.check_same_leading(x, sw, "x", "sample_weight")
  _checks.check_finite(sw, "sample_weight")
  if np.any(sw < 0) or not np.any(sw > 0):
    raise ValueError("sample_weight must be >= 0 with a positive entry, got"
                     f" min {sw.min()} and max {sw.max()}.")
  return x, y, sw

