"""``LinearDiscriminantAnalysis`` and ``QuadraticDiscriminantAnalysis`` computed by jgen.

The models are [`jgen.lda`][jgen.lda] (scikit-learn's ``solver="lsqr"`` with a fixed
``shrinkage``) and [`jgen.qda`][jgen.qda] (scikit-learn's ``reg_param``): class means, the
MLE covariance(s) (ddof 0) regularised as scikit-learn does, and class priors.
"""

from __future__ import annotations

import numbers

import jax.numpy as jnp
import numpy as np
from sklearn.utils.validation import check_is_fitted
from sklearn.utils.validation import validate_data

from jgen.gaussian.families import lda
from jgen.gaussian.families import qda
from jgen.sklearn.base import check_priors
from jgen.sklearn.base import compute_dtype
from jgen.sklearn.missing import MarginalizeMissing

__all__ = ["LinearDiscriminantAnalysis", "QuadraticDiscriminantAnalysis"]


def _check_unit(value, name: str) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f"The '{name}' parameter must be a float in the range [0.0, 1.0],"
                    f" got {value!r}.")
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"The '{name}' parameter must be a float in the range [0.0, 1.0],"
                     f" got {value!r}.")
  return float(value)


def _precision(prec_chol: np.ndarray) -> np.ndarray:
  """``Sigma^{-1} = U U^T`` from the upper-triangular factor(s) ``U [..., D, D]``."""
  return prec_chol @ np.swapaxes(prec_chol, -1, -2)


class _GaussianDA(MarginalizeMissing):
  """Shared fit of the two discriminant analyses: priors and common attributes."""

  def _fit_params(self, x, y, num_classes, sample_weight):
    priors = check_priors(self.priors, num_classes, compute_dtype())
    return self._model().fit(x, y, num_classes=num_classes, sample_weight=sample_weight,
                             priors=None if priors is None else jnp.asarray(priors))

  def _set_common(self, params) -> None:
    self.params_ = params
    self.means_ = np.asarray(params.means)
    self.priors_ = np.exp(np.asarray(params.log_prior))

  def decision_function(self, X) -> np.ndarray:
    """Class scores ``[n_samples, K]``; for two classes the ``[n_samples]`` log-odds
    of ``classes_[1]`` against ``classes_[0]``."""
    scores = self._joint(X)
    return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores


class LinearDiscriminantAnalysis(_GaussianDA):
  """Linear discriminant analysis (scikit-learn's ``LinearDiscriminantAnalysis``).

  The model of ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage=s)`` for a number
  ``s`` (or ``None`` = 0): Gaussian classes sharing the pooled within-class covariance
  ``(1 - s) Sigma + s tr(Sigma) / D I``. Not supported: ``solver="svd"/"eigen"``
  projections (``transform``), ``shrinkage="auto"``, ``covariance_estimator``.

  Args:
    shrinkage: ``None`` or a float in ``[0, 1]``.
    priors: class priors ``[K]``; ``None`` uses the (weighted) class frequencies.
    store_covariance: keep ``covariance_`` (the shared covariance ``[D, D]``).
    missing: ``"error"`` refuses NaN (scikit-learn's behaviour); ``"marginalize"``
      treats NaN as a missing entry: EM over the missing entries in ``fit``, the exact
      marginal of the observed features in ``predict*``
      (``jgen.sklearn.MarginalizeMissing``).

  Attributes:
    classes_: the labels ``[K]``, sorted.
    means_: class means ``[K, D]``.
    priors_: class priors ``[K]``.
    coef_: ``[K, D]`` (``[1, D]`` for two classes).
    intercept_: ``[K]`` (``[1]`` for two classes).
    covariance_: the shared covariance ``[D, D]`` (with ``store_covariance``).
    n_features_in_: ``D``.
    params_: the jgen [`LDAParams`][jgen.gaussian.LDAParams].

  Examples:
    >>> import numpy as np
    >>> from jgen.sklearn import LinearDiscriminantAnalysis
    >>> X = np.array([[0.0, 1.0], [0.3, 0.7], [2.0, 2.2], [2.4, 1.9]])
    >>> clf = LinearDiscriminantAnalysis(shrinkage=0.1).fit(X, [0, 0, 1, 1])
    >>> clf.predict([[0.1, 0.9], [2.2, 2.0]]).tolist()
    [0, 1]
  """

  def __init__(self, *, shrinkage=None, priors=None, store_covariance: bool = False,
               missing: str = "error"):
    self.missing = missing
    self.shrinkage = shrinkage
    self.priors = priors
    self.store_covariance = store_covariance

  def _model(self):
    s = 0.0 if self.shrinkage is None else _check_unit(self.shrinkage, "shrinkage")
    return lda(shrinkage=s)

  def _set_fitted(self, params) -> None:
    self._set_common(params)
    prec = _precision(np.asarray(params.prec_chol))
    coef = self.means_ @ prec                                     # [K, D]
    intercept = -0.5 * np.sum(coef * self.means_, axis=1) + np.asarray(params.log_prior)
    if self.store_covariance:
      self.covariance_ = np.linalg.inv(prec)
    if len(self.classes_) == 2:
      coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
    self.coef_, self.intercept_ = coef, intercept

  def decision_function(self, X) -> np.ndarray:
    """``X @ coef_.T + intercept_``: ``[n_samples, K]``, or ``[n_samples]`` for two
    classes (scikit-learn's convention)."""
    if self._marginalize():   # NaN entries: the marginal scores, not X @ coef_.T
      return super().decision_function(X)
    check_is_fitted(self)
    X = validate_data(self, X, dtype=compute_dtype(), reset=False)
    scores = X @ self.coef_.T + self.intercept_
    return scores[:, 0] if scores.shape[1] == 1 else scores


class QuadraticDiscriminantAnalysis(_GaussianDA):
  """Quadratic discriminant analysis (scikit-learn's ``QuadraticDiscriminantAnalysis``).

  One Gaussian per class with covariance ``(1 - r) C_k + r I`` (``C_k`` the class MLE
  covariance, ddof 0), as scikit-learn's default ``solver="svd"``. Every class needs
  at least two samples. Not supported: ``solver="eigen"``, ``shrinkage``,
  ``covariance_estimator``.

  Args:
    priors: class priors ``[K]``; ``None`` uses the (weighted) class frequencies.
    reg_param: ``r`` in ``[0, 1]``.
    store_covariance: keep ``covariance_`` ``[K, D, D]``.
    missing: ``"error"`` refuses NaN (scikit-learn's behaviour); ``"marginalize"``
      treats NaN as a missing entry: EM over the missing entries in ``fit``, the exact
      marginal of the observed features in ``predict*``
      (``jgen.sklearn.MarginalizeMissing``).

  Attributes:
    classes_: the labels ``[K]``, sorted.
    means_: class means ``[K, D]``.
    priors_: class priors ``[K]``.
    covariance_: class covariances ``[K, D, D]`` (with ``store_covariance``).
    n_features_in_: ``D``.
    params_: the jgen [`QDAParams`][jgen.gaussian.QDAParams].

  Examples:
    >>> import numpy as np
    >>> from jgen.sklearn import QuadraticDiscriminantAnalysis
    >>> X = np.array([[0.0], [0.4], [0.1], [2.0], [3.0], [2.6]])
    >>> clf = QuadraticDiscriminantAnalysis(reg_param=0.1).fit(X, [0, 0, 0, 1, 1, 1])
    >>> clf.predict([[0.2], [2.5]]).tolist()
    [0, 1]
  """

  def __init__(self, *, priors=None, reg_param: float = 0.0,
               store_covariance: bool = False, missing: str = "error"):
    self.missing = missing
    self.priors = priors
    self.reg_param = reg_param
    self.store_covariance = store_covariance

  def _model(self):
    return qda(reg_param=_check_unit(self.reg_param, "reg_param"))

  def _set_fitted(self, params) -> None:
    self._set_common(params)
    if self.store_covariance:
      self.covariance_ = np.linalg.inv(_precision(np.asarray(params.prec_chol)))
