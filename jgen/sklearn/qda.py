"""``QuadraticDiscriminantAnalysis`` computed by jgen (re-exported from
``jgen.sklearn.discriminant_analysis``, where scikit-learn keeps it).

Same constructor parameters and defaults as scikit-learn 1.9's class; the model is
[`jgen.qda`][jgen.qda] (``reg_param`` for the svd solver, ``shrinkage`` for the eigen
solver). ``fit(X, y)`` has scikit-learn's signature, without ``sample_weight``: the
family's weighted fit (``jgen.qda(...).fit(x, y, num_classes=K, sample_weight=w)``)
is there for users who need weights, and the estimator uses it only for the
zero-weight padding of its row buckets.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.utils._param_validation import HasMethods
from sklearn.utils._param_validation import Interval
from sklearn.utils._param_validation import StrOptions
from numbers import Real

from jgen.gaussian.families import qda
from jgen.gaussian.params import QDAParams
from jgen.gaussian.params import precision_cholesky
from jgen.gaussian.solvers import ledoit_wolf_shrinkage
from jgen.sklearn.base import compute_dtype
from jgen.sklearn.base import log_to_device
from jgen.sklearn.base import padded_device
from jgen.sklearn.base import to_device
from jgen.sklearn.covariances import check_solver_options
from jgen.sklearn.covariances import check_rank
from jgen.sklearn.covariances import class_moments
from jgen.sklearn.covariances import estimator_covariances
from jgen.sklearn.covariances import shrunk
from jgen.sklearn.covariances import standardized_target
from jgen.sklearn.missing import MarginalizeMissing
from jgen.sklearn.threads import one_blas_thread

__all__ = ["QuadraticDiscriminantAnalysis"]


_SHRINKAGE = [StrOptions({"auto"}), Interval(Real, 0, 1, closed="both"), None]


class QuadraticDiscriminantAnalysis(MarginalizeMissing):
  """Quadratic discriminant analysis (scikit-learn's ``QuadraticDiscriminantAnalysis``).

  One Gaussian per class. ``solver="svd"`` (the default) uses the covariance
  ``(1 - reg_param) C_k + reg_param I`` (``C_k`` the class MLE covariance, ddof 0);
  ``solver="eigen"`` uses ``C_k`` shrunk by ``shrinkage`` (a float or ``"auto"``,
  Ledoit-Wolf) and ignores ``reg_param``, as scikit-learn does. A class covariance
  with an eigenvalue at most ``tol`` raises ``LinAlgError`` (a ``ValueError``).

  Args:
    solver: ``"svd"`` or ``"eigen"``.
    shrinkage: ``None``, a float in ``[0, 1]`` or ``"auto"`` (``"eigen"`` only).
    priors: class priors ``[K]``; ``None`` uses the (weighted) class frequencies.
    reg_param: ``r`` in ``[0, 1]`` (``"svd"``).
    store_covariance: keep ``covariance_`` ``[K, D, D]``.
    tol: eigenvalue threshold of the rank check.
    covariance_estimator: ``None``, or an estimator with ``fit`` and ``covariance_``
      (``"lsqr"``/``"eigen"``) that estimates each class covariance; it takes no
      weights, so only sample weights 0 and 1 go with it.
    missing: ``"error"`` refuses NaN (scikit-learn's behaviour); ``"marginalize"``
      treats NaN as a missing entry: EM over the missing entries in ``fit``, the exact
      marginal of the observed features in ``predict*``
      (``jgen.sklearn.MarginalizeMissing``).

  Attributes:
    classes_: the labels ``[K]``, sorted.
    means_: class means ``[K, D]``.
    priors_: class priors ``[K]``.
    covariance_: class covariances ``[K, D, D]`` (with ``store_covariance``).
    scalings_: eigenvalues of each class covariance ``[K, D]``, decreasing.
    rotations_: their eigenvectors ``[K, D, D]`` (columns).
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

  _host_fit = True   # parameters from host moments: no padded copy on the device

  _parameter_constraints: dict = {
      "solver": [StrOptions({"svd", "eigen"})],
      "shrinkage": _SHRINKAGE,
      "priors": ["array-like", None],
      "reg_param": [Interval(Real, 0, 1, closed="both")],
      "store_covariance": ["boolean"],
      "tol": [Interval(Real, 0, None, closed="left")],
      "covariance_estimator": [HasMethods("fit"), None],
      "missing": [StrOptions({"error", "marginalize"})],
  }

  def __init__(self, *, solver="svd", shrinkage=None, priors=None, reg_param=0.0,
               store_covariance=False, tol=1.0e-4, covariance_estimator=None,
               missing="error"):
    self.missing = missing
    self.solver = solver
    self.shrinkage = shrinkage
    self.priors = priors
    self.reg_param = reg_param
    self.store_covariance = store_covariance
    self.tol = tol
    self.covariance_estimator = covariance_estimator

  def _model(self):
    if self.solver == "svd":
      return qda(reg_param=self.reg_param)
    return qda(shrinkage=0.0 if self.shrinkage is None else self.shrinkage)

  def fit(self, X, y):
    """Fits to ``X [n, D]``, ``y [n]``; returns ``self``.

    No ``sample_weight``, as in scikit-learn: with weights, scikit-learn's
    ``check_estimator`` fits data whose classes have constant features, where the
    unregularised class covariance is singular and QDA (scikit-learn's too) must
    raise. Weighted QDA is ``jgen.qda(...).fit(..., sample_weight=w)``.
    """
    sample_weight = None
    self._validate_params()
    check_solver_options(self.solver, self.covariance_estimator, self.shrinkage,
                         "covariance_estimator is not supported with solver='svd'."
                         " Try solver='eigen' instead.")
    if self._marginalize():
      return self._fit_marginal(X, y, sample_weight)
    X, y, _ = self._validate_fit(X, y, None)
    n_classes = len(np.unique(y))
    if n_classes < 2:
      raise ValueError("The number of classes has to be greater than one. Got"
                       f" {n_classes} class.")
    return super().fit(X, y, sample_weight)

  def _fit_params(self, x, y, num_classes, sample_weight):
    xn, yn, wn = np.asarray(x), np.asarray(y), np.asarray(sample_weight)
    m = class_moments(xn, yn, wn, num_classes)
    for k in range(num_classes):
      # Weights count examples (w = 3 is a row repeated three times), so a class's
      # number of samples is its total weight.
      if m.count[k] <= 1:
        raise ValueError(f"y has only 1 sample in class {self.classes_[k]}, covariance"
                         " is ill defined.")
    if self.priors is None:
      self.priors_ = m.count / m.count.sum()
    else:
      self.priors_ = np.array(self.priors)
      if np.any(self.priors_ < 0):
        raise ValueError("priors must be non-negative")
    if self.solver == "svd":
      r = self.reg_param
      cov = (1 - r) * m.cov + r * np.eye(xn.shape[1])
    elif self.covariance_estimator is not None:
      cov = estimator_covariances(self.covariance_estimator, xn, yn, wn, num_classes)
    elif self.shrinkage == "auto":
      xd, yd, wd = padded_device(xn, yn, wn)
      lw = np.asarray(ledoit_wolf_shrinkage(xd, yd, num_classes, wd), np.float64)
      cov = m.cov + lw[:, None, None] * (standardized_target(m.cov, m.means) - m.cov)
    else:
      cov = shrunk(m.cov, 0.0 if self.shrinkage is None else self.shrinkage)
    # One eigendecomposition per class serves the rank check and the attributes.
    with one_blas_thread():
      lam, vec = np.linalg.eigh(cov)
    check_rank(lam, m.count, self.classes_, self.tol,
               "reg_param" if self.solver == "svd" else "shrinkage",
               self.solver == "svd")
    dtype = compute_dtype()
    self.scalings_ = lam[:, ::-1].astype(dtype)
    self.rotations_ = vec[:, :, ::-1].astype(dtype)
    self.means_ = m.means.astype(dtype)
    if self.store_covariance:
      self.covariance_ = cov.astype(dtype)
    # The family's parameters from these moments (the ones jgen.qda's fit computes
    # from the data): a second pass over the rows would only repeat them.
    dt = x.dtype
    with one_blas_thread():   # K [D, D] factors by LAPACK on the host: nothing to compile
      u = precision_cholesky(cov.astype(dt), (m.means ** 2).astype(dt), xp=np)
    return QDAParams(to_device(m.means, dt), to_device(u),
                     log_to_device(self.priors_ / self.priors_.sum(), dt))

  def _set_fitted(self, params) -> None:
    self.params_ = params
    if self._marginalize() or "means_" not in self.__dict__:   # EM fits set no moments
      self.means_ = np.asarray(params.means)
      self.priors_ = np.exp(np.asarray(params.log_prior))

  def _decision(self, X) -> np.ndarray:
    """scikit-learn's per-class scores: ``log p(x | k) + log priors_ + D/2 log 2 pi``."""
    joint = self._joint(X)   # log p(x, k) under the normalised priors of params_
    d = self.means_.shape[1]
    with np.errstate(divide="ignore"):
      shift = np.log(self.priors_) - np.asarray(self.params_.log_prior)
    return joint + 0.5 * d * math.log(2 * math.pi) + np.where(np.isfinite(shift),
                                                               shift, 0)

  def decision_function(self, X) -> np.ndarray:
    """Class scores ``[n_samples, K]``; for two classes the ``[n_samples]`` log-odds
    of ``classes_[1]`` against ``classes_[0]``."""
    scores = self._decision(X)
    return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

  def predict(self, X) -> np.ndarray:
    """Labels ``[n_samples]`` maximising the class scores."""
    scores = self._decision(X)   # first: raises NotFittedError before classes_ is read
    return self.classes_[np.argmax(scores, axis=1)]

  def predict_log_proba(self, X) -> np.ndarray:
    """Log class probabilities ``[n_samples, K]``."""
    scores = self._decision(X)
    scores = scores - scores.max(axis=1, keepdims=True)
    return scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))

  def predict_proba(self, X) -> np.ndarray:
    """Class probabilities ``[n_samples, K]``."""
    return np.exp(self.predict_log_proba(X))
