"""Which solver fits the logistic objective: the hyperparameter checks of
[`jgen.logistic_regression`][jgen.logistic_regression] and the dispatch to L-BFGS,
Newton (with scikit-learn's fall-back to L-BFGS on a singular Hessian) or proximal
Newton.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from jgen.core import checks as _checks
from jgen.logistic.newton import newton_fit
from jgen.logistic.newton import prox_newton_fit
from jgen.logistic.solvers import lbfgs_fit

__all__ = ["SOLVERS", "check_hyper", "solve"]

SOLVERS = ("lbfgs", "newton-cholesky", "newton-cg", "proximal-newton")


def check_hyper(C, l1_ratio, solver, tol, max_iter, ftol, memory_size):
  if isinstance(C, bool) or not isinstance(C, (int, float, np.floating, np.integer)):
    raise TypeError(f"C must be a Python float, got {type(C).__name__}.")
  if np.isnan(C) or C <= 0:
    raise ValueError(f"C must be a number > 0 (inf: no penalty), got {C}.")
  if solver not in SOLVERS:
    raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
  if (isinstance(l1_ratio, bool) or not isinstance(l1_ratio, (int, float, np.floating,
                                                               np.integer))
      or not 0 <= l1_ratio <= 1):
    raise ValueError(f"l1_ratio must be a number in [0, 1], got {l1_ratio!r}.")
  if l1_ratio > 0 and solver != "proximal-newton":
    raise ValueError(f"l1_ratio={l1_ratio} (an L1 part) needs solver='proximal-newton';"
                     f" got solver={solver!r}.")
  if not tol > 0:
    raise ValueError(f"tol must be > 0, got {tol}.")
  if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
    raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}.")
  if ftol is not None and not ftol > 0:
    raise ValueError(f"ftol must be > 0 or None, got {ftol}.")
  if isinstance(memory_size, bool) or not isinstance(memory_size, int) or memory_size < 1:
    raise ValueError(f"memory_size must be an int >= 1, got {memory_size!r}.")


def solve(x, y, sw, w0, b0, num_classes: int, hyper: dict):
  """Runs the family's solver from free ``(w0, b0)``.

  Returns:
    ``((w, b), num_iter, grad_norm, converged)`` in free parameters.
  """
  h = hyper
  if h["solver"] == "lbfgs":
    return _lbfgs(x, y, sw, w0, b0, num_classes, h, h["max_iter"])
  if h["solver"] == "proximal-newton":
    return prox_newton_fit(x, y, sw, w0, b0, num_classes=num_classes, C=h["C"],
                           l1_ratio=h["l1_ratio"], tol=h["tol"], max_iter=h["max_iter"],
                           fit_intercept=h["fit_intercept"])
  return _newton(x, y, sw, w0, b0, num_classes, h)


def _lbfgs(x, y, sw, w0, b0, num_classes, h, iters):
  f = h["ftol"]
  if f is None:
    f = 64 * float(np.finfo(np.float64).eps) if x.dtype == jnp.float64 else (
        4 * float(np.finfo(np.float32).eps))
  return lbfgs_fit(x, y, sw, w0, b0, num_classes=num_classes, C=h["C"], tol=h["tol"],
                   ftol=float(f), max_iter=iters, fit_intercept=h["fit_intercept"],
                   memory_size=h["memory_size"])


def _newton(x, y, sw, w0, b0, num_classes, h):
  max_iter = h["max_iter"]
  (w, b), it, gnorm, converged, singular = newton_fit(
      x, y, sw, w0, b0, num_classes=num_classes, C=h["C"], tol=h["tol"],
      max_iter=max_iter, fit_intercept=h["fit_intercept"],
      linear_solver="cholesky" if h["solver"] == "newton-cholesky" else "cg")
  if h["solver"] != "newton-cholesky":
    return (w, b), it, gnorm, converged

  def fallback(args):
    w, b, it = args
    # The Newton attempt that met the singular Hessian used one iteration of the
    # budget and moved nothing (scikit-learn counts it the same way).
    (w, b), more, gnorm, converged = _lbfgs(x, y, sw, w, b, num_classes, h,
                                            max_iter - it - 1)
    return (w, b), it + more, gnorm, converged

  def keep(args):
    w, b, it = args
    return (w, b), it, gnorm, converged

  if not _checks.is_concrete(singular):
    return jax.lax.cond(singular, fallback, keep, (w, b, it))
  if not bool(singular):
    return keep((w, b, it))
  warnings.warn(
      f"The Newton-Cholesky solver met a singular or very ill-conditioned Hessian"
      f" matrix at iteration {int(it)}; it continues with L-BFGS. Removing collinear"
      " features or increasing the penalty (smaller C) avoids this.",
      scipy.linalg.LinAlgWarning, stacklevel=4)
  return fallback((w, b, it))
