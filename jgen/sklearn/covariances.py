"""What the discriminant analyses share: class moments, priors and covariance checks.

The moments are those of the weighted data (weight zero removes a row exactly, so the
rows that pad an input to a bucket size change nothing); they give the fitted
attributes scikit-learn exposes (``covariance_``, ``scalings_``, ``rotations_``) and
the rank checks its estimators make before fitting.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from jgen.sklearn.threads import one_blas_thread

__all__ = ["ClassMoments", "class_moments", "discriminant_priors", "shrunk",
           "standardized_target", "check_rank", "estimator_covariance",
           "estimator_covariances", "check_estimator_shrinkage", "check_solver_options"]


class ClassMoments(NamedTuple):
  """``count [K]`` (total weight), ``rows [K]`` (examples of positive weight),
  ``means [K, D]`` and MLE covariances ``cov [K, D, D]`` (ddof 0), in float64."""
  count: np.ndarray
  rows: np.ndarray
  means: np.ndarray
  cov: np.ndarray


def class_moments(x, y, w, num_classes: int) -> ClassMoments:
  """Weighted class moments of ``x [N, D]``, ``y [N]`` in ``0..K-1``, ``w [N]``.

  Examples:
    >>> import numpy as np
    >>> from jgen.sklearn.covariances import class_moments
    >>> m = class_moments(np.array([[0.0], [2.0], [5.0], [9.0]]), np.array([0, 0, 1, 1]),
    ...                   np.array([1.0, 1.0, 1.0, 0.0]), 2)
    >>> m.means[:, 0].tolist(), m.cov[:, 0, 0].tolist(), m.rows.tolist()
    ([1.0, 5.0], [1.0, 0.0], [2, 1])
  """
  x, y, w = np.asarray(x), np.asarray(y), np.asarray(w, np.float64)
  d = x.shape[1]
  count = np.bincount(y, weights=w, minlength=num_classes)
  rows = np.bincount(y[w > 0], minlength=num_classes)
  means = np.zeros((num_classes, d))
  cov = np.zeros((num_classes, d, d))
  with one_blas_thread():
    for k in range(num_classes):
      sel = np.flatnonzero((y == k) & (w > 0))
      if not len(sel):
        continue
      # One class in float64 at a time; the row selection already copies, so a
      # float64 input is not copied twice.
      xk, wk = np.asarray(x[sel], np.float64), w[sel]
      means[k] = wk @ xk / count[k]
      means[k] += wk @ (xk - means[k]) / count[k]   # second pass: exact constant features
      xk -= means[k]
      xk *= np.sqrt(wk)[:, None]
      cov[k] = xk.T @ xk / count[k]
  return ClassMoments(count, rows, means, cov)


def discriminant_priors(priors, count: np.ndarray, dtype) -> np.ndarray:
  """scikit-learn's ``priors_`` of ``LinearDiscriminantAnalysis``: the class
  frequencies, or ``priors`` checked (non-negative, one per class) and, when they do
  not sum to 1, renormalised with a ``UserWarning``.

  Examples:
    >>> import warnings, numpy as np
    >>> from jgen.sklearn.covariances import discriminant_priors
    >>> with warnings.catch_warnings(record=True):
    ...   discriminant_priors([0.5, 1.5], np.array([3.0, 1.0]), np.float64).tolist()
    [0.25, 0.75]
  """
  if priors is None:
    return (count / count.sum()).astype(dtype)
  p = np.asarray(priors, dtype=dtype)
  if p.ndim != 1 or len(p) != len(count):
    raise ValueError(f"priors: expected {len(count)} class priors (one per class),"
                     f" got shape {p.shape}.")
  if np.any(p < 0):
    raise ValueError("priors must be non-negative")
  if abs(p.sum() - 1.0) > 1e-5:
    warnings.warn("The priors do not sum to 1. Renormalizing", UserWarning)
    p = p / p.sum()
  return p


def shrunk(cov: np.ndarray, s: float) -> np.ndarray:
  """scikit-learn's ``shrunk_covariance``: ``(1 - s) C + s tr(C)/D I`` on ``[..., D, D]``."""
  d = cov.shape[-1]
  mu = np.trace(cov, axis1=-2, axis2=-1)[..., None, None] / d
  return (1.0 - s) * cov + s * mu * np.eye(d)


def standardized_target(cov: np.ndarray, means: np.ndarray) -> np.ndarray:
  """The Ledoit-Wolf target of ``cov [K, D, D]`` fitted on standardised features:
  ``(tr R / D) diag(s^2)``, a feature of zero variance keeping scale 1 (as in
  [`jgen.gaussian.ledoit_wolf_shrinkage`][jgen.gaussian.ledoit_wolf_shrinkage])."""
  var = np.diagonal(cov, axis1=-2, axis2=-1)
  tol = 16.0 * np.finfo(np.float64).eps
  ok = var > tol * tol * (var + means * means)
  scale2 = np.where(ok, var, 1.0)
  mu = ok.sum(-1, keepdims=True) / cov.shape[-1]
  return (mu * scale2)[..., None] * np.eye(cov.shape[-1])


def check_rank(eigenvalues: np.ndarray, count: np.ndarray, classes, tol: float,
               param: str, svd: bool) -> None:
  """scikit-learn's QDA check: every class covariance (regularised or shrunk) has
  all its ``eigenvalues [K, D]`` above ``tol``, else ``LinAlgError`` with
  scikit-learn's message.

  scikit-learn's svd solver factors the ``n_k`` centred rows of class ``k``, which
  gives ``min(n_k, D)`` directions, so a class with fewer examples than features is
  refused even when ``reg_param > 0`` makes its covariance full rank; ``count`` (the
  examples per class) does the same here.
  """
  d = eigenvalues.shape[-1]
  for k, label in enumerate(classes):
    rank = int(np.sum(eigenvalues[k] > tol))
    if svd:
      rank = min(rank, int(count[k]))
    if rank == d:
      continue
    if svd and count[k] <= d:
      raise np.linalg.LinAlgError(
          f"The covariance matrix of class {label} is not full rank. When using"
          f" `solver='svd'` the number of samples in each class should be more than"
          f" the number of features, but class {label} has {count[k]:g} samples and"
          f" {d} features. Try using `solver='eigen'` and setting the parameter"
          f" `shrinkage` for regularization.")
    raise np.linalg.LinAlgError(
        f"The covariance matrix of class {label} is not full rank. Increase the"
        f" value of `{param}` to reduce the collinearity.")


def estimator_covariance(estimator, x: np.ndarray, w: np.ndarray) -> np.ndarray:
  """``estimator.fit(rows).covariance_`` on the rows of positive weight ``[D, D]``.

  A covariance estimator takes no weights, so weights other than 0 and 1 (0 drops
  a padding row) raise ``ValueError``.
  """
  if np.any((w != 0) & (w != 1)):
    raise ValueError("sample_weight: a covariance_estimator takes no weights; only"
                     " weights 0 and 1 are supported with it.")
  estimator.fit(np.asarray(x, np.float64)[w > 0])
  if not hasattr(estimator, "covariance_"):
    raise ValueError(f"{type(estimator).__name__} does not have a covariance_"
                     " attribute")
  return np.atleast_2d(np.asarray(estimator.covariance_, np.float64))


def estimator_covariances(estimator, x: np.ndarray, y: np.ndarray, w: np.ndarray,
                          num_classes: int) -> np.ndarray:
  """``estimator_covariance`` of each
  class ``[K, D, D]``."""
  return np.stack([estimator_covariance(estimator, x[y == k], w[y == k])
                   for k in range(num_classes)])


def check_estimator_shrinkage(covariance_estimator, shrinkage) -> None:
  """scikit-learn's rule: ``shrinkage`` and ``covariance_estimator`` exclude each
  other."""
  if covariance_estimator is not None and shrinkage is not None and shrinkage != 0:
    raise ValueError("covariance_estimator and shrinkage parameters are not None."
                     " Only one of the two can be set.")


def check_solver_options(solver, covariance_estimator, shrinkage,
                         svd_estimator_message: str) -> None:
  """scikit-learn's checks of ``solver`` against ``shrinkage`` and
  ``covariance_estimator``. ``svd_estimator_message`` is the estimator's own
  scikit-learn message for a covariance estimator under ``solver='svd'`` (LDA and
  QDA word it differently, and scikit-learn's tests match each)."""
  if solver == "svd":
    if shrinkage is not None:
      raise NotImplementedError("shrinkage not supported with 'svd' solver.")
    if covariance_estimator is not None:
      raise ValueError(svd_estimator_message)
  check_estimator_shrinkage(covariance_estimator, shrinkage)
