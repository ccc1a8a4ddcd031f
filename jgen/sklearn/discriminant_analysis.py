"""``LinearDiscriminantAnalysis`` and ``QuadraticDiscriminantAnalysis`` computed by jgen.

Same constructor parameters and defaults as scikit-learn 1.9's classes. The models are
[`jgen.lda`][jgen.lda] (``solver="svd"``, rank-aware; ``"lsqr"``/``"eigen"`` with
``shrinkage`` a float or ``"auto"``) and [`jgen.qda`][jgen.qda] (``reg_param`` for the
svd solver, ``shrinkage`` for the eigen solver). LDA's ``fit`` also takes
``sample_weight`` (scikit-learn's does not): integer weights are repeated rows; QDA's
``fit`` has scikit-learn's signature (see its docstring).
"""

from __future__ import annotations

from numbers import Integral
from numbers import Real

import numpy as np
import scipy.linalg
from scipy.special import expit
from scipy.special import softmax
from sklearn.base import ClassNamePrefixFeaturesOutMixin
from sklearn.base import TransformerMixin
from sklearn.utils._param_validation import HasMethods
from sklearn.utils._param_validation import Interval
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted
from sklearn.utils.validation import validate_data

from jgen.gaussian.families import lda
from jgen.gaussian.params import LDAParams
from jgen.gaussian.params import covariance_ok
from jgen.gaussian.params import precision_cholesky
from jgen.gaussian.estimate import raise_for_classes
from jgen.gaussian.solvers import ledoit_wolf_shrinkage
from jgen.gaussian.solvers import svd_lda_from_moments
from jgen.sklearn.base import compute_dtype
from jgen.sklearn.base import log_to_device
from jgen.sklearn.base import padded_device
from jgen.sklearn.base import to_device
from jgen.sklearn.covariances import check_solver_options
from jgen.sklearn.covariances import estimator_covariance
from jgen.sklearn.covariances import estimator_covariances
from jgen.sklearn.covariances import class_moments
from jgen.sklearn.covariances import discriminant_priors
from jgen.sklearn.covariances import shrunk
from jgen.sklearn.covariances import standardized_target
from jgen.sklearn.missing import MarginalizeMissing
from jgen.sklearn.qda import QuadraticDiscriminantAnalysis
from jgen.sklearn.threads import one_blas_thread


__all__ = ["LinearDiscriminantAnalysis", "QuadraticDiscriminantAnalysis"]

_SHRINKAGE = [StrOptions({"auto"}), Interval(Real, 0, 1, closed="both"), None]


def _numpy(x, y, w):
  return np.asarray(x), np.asarray(y), np.asarray(w)


class LinearDiscriminantAnalysis(ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                                 MarginalizeMissing):
  """Linear discriminant analysis (scikit-learn's ``LinearDiscriminantAnalysis``).

  Gaussian classes sharing one covariance. ``solver="svd"`` (the default) works in
  the subspace the data span, so constant or collinear features need no
  regularisation; ``"lsqr"`` and ``"eigen"`` use the pooled covariance
  ``sum_k priors_k C_k``, optionally shrunk (a float, or ``"auto"`` for Ledoit-Wolf).
  ``"svd"`` and ``"eigen"`` also reduce dimension (``transform``). Predictions use
  ``coef_`` and ``intercept_`` (as scikit-learn's do), so changing them changes the
  model.

  Args:
    solver: ``"svd"``, ``"lsqr"`` or ``"eigen"``.
    shrinkage: ``None``, a float in ``[0, 1]`` or ``"auto"`` (not with ``"svd"``).
    priors: class priors ``[K]`` (renormalised, with a warning, if they do not sum
      to 1); ``None`` uses the (weighted) class frequencies.
    n_components: dimension of ``transform``'s output (at most
      ``min(K - 1, n_features)``).
    store_covariance: with ``"svd"``, also store ``covariance_``.
    tol: threshold on the svd solver's standardised singular values.
    covariance_estimator: ``None``, or an estimator with ``fit`` and ``covariance_``
      (``"lsqr"``/``"eigen"``) that estimates each class covariance; it takes no
      weights, so only sample weights 0 and 1 go with it.
    missing: ``"error"`` refuses NaN (scikit-learn's behaviour); ``"marginalize"``
      treats NaN as a missing entry: EM over the missing entries in ``fit`` (the
      ``"lsqr"`` model, whatever the solver), the exact marginal of the observed
      features in ``predict*`` (``jgen.sklearn.MarginalizeMissing``).

  Attributes:
    classes_: the labels ``[K]``, sorted.
    means_: class means ``[K, D]``.
    priors_: class priors ``[K]``.
    coef_: ``[K, D]`` (``[1, D]`` for two classes).
    intercept_: ``[K]`` (``[1]`` for two classes).
    covariance_: the pooled covariance ``[D, D]``.
    scalings_: projection ``[D, rank]`` (svd and eigen).
    explained_variance_ratio_: ``[n_components]`` (svd and eigen).
    xbar_: overall mean ``[D]`` (svd).
    n_features_in_: ``D``.
    params_: the jgen [`LDAParams`][jgen.gaussian.LDAParams].

  Examples:
    >>> import numpy as np
    >>> from jgen.sklearn import LinearDiscriminantAnalysis
    >>> X = np.array([[0.0, 1.0, 3.0], [0.3, 0.7, 3.0], [0.2, 0.5, 3.0],
    ...               [2.0, 2.2, 3.0], [2.4, 1.9, 3.0], [2.1, 2.5, 3.0]])
    >>> clf = LinearDiscriminantAnalysis().fit(X, [0, 0, 0, 1, 1, 1])  # constant column
    >>> clf.predict([[0.1, 0.9, 3.0], [2.2, 2.0, 3.0]]).tolist()
    [0, 1]
    >>> clf.transform(X).shape
    (6, 1)
  """

  _host_fit = True   # parameters from host moments: no padded copy on the device

  _parameter_constraints: dict = {
      "solver": [StrOptions({"svd", "lsqr", "eigen"})],
      "shrinkage": _SHRINKAGE,
      "n_components": [Interval(Integral, 1, None, closed="left"), None],
      "priors": ["array-like", None],
      "store_covariance": ["boolean"],
      "tol": [Interval(Real, 0, None, closed="left")],
      "covariance_estimator": [HasMethods("fit"), None],
      "missing": [StrOptions({"error", "marginalize"})],
  }

  def __init__(self, solver="svd", shrinkage=None, priors=None, n_components=None,
               store_covariance=False, tol=1e-4, covariance_estimator=None, *,
               missing="error"):
    self.missing = missing
    self.solver = solver
    self.shrinkage = shrinkage
    self.priors = priors
    self.n_components = n_components
    self.store_covariance = store_covariance
    self.tol = tol
    self.covariance_estimator = covariance_estimator

  def _shrinkage(self):
    return 0.0 if self.shrinkage is None else self.shrinkage

  def _svd(self) -> bool:
    # Missing entries are fitted by EM on the full-rank ("lsqr") model.
    return self.solver == "svd" and not self._marginalize()

  def _model(self):
    if self._svd():
      return lda(solver="svd", tol=self.tol)
    return lda(shrinkage=self._shrinkage(),
               solver="lsqr" if self.solver == "svd" else self.solver)

  def fit(self, X, y, sample_weight=None):
    """Fits to ``X [n, D]``, ``y [n]`` (optionally weighted); returns ``self``."""
    self._validate_params()
    check_solver_options(self.solver, self.covariance_estimator, self.shrinkage,
                         "covariance estimator is not supported with svd solver. Try another solver")
    self.__dict__.pop("_lstsq", None)
    super().fit(X, y, sample_weight)
    if getattr(X, "dtype", None) == np.float32:   # scikit-learn keeps float32 input's
      for name in ("coef_", "intercept_", "means_", "priors_", "covariance_",
                   "scalings_", "xbar_", "explained_variance_ratio_"):
        if hasattr(self, name):
          setattr(self, name, np.asarray(getattr(self, name), np.float32))
    return self

  def _fit_params(self, x, y, num_classes, sample_weight):
    xn, yn, wn = _numpy(x, y, sample_weight)
    n_rows = int(np.sum(wn > 0))
    if n_rows <= num_classes:
      raise ValueError("The number of samples must be more than the number of classes.")
    m = class_moments(xn, yn, wn, num_classes)
    dtype = compute_dtype()
    self.priors_ = discriminant_priors(self.priors, m.count, dtype)
    max_components = min(num_classes - 1, xn.shape[1])
    if self.n_components is not None and self.n_components > max_components:
      raise ValueError("n_components cannot be larger than min(n_features,"
                       " n_classes - 1).")
    self._max_components = max_components if self.n_components is None else (
        self.n_components)
    self.means_ = m.means.astype(dtype)
    pooled = np.einsum("k,kde->de", self.priors_.astype(np.float64), m.cov)
    if self.solver == "svd":
      return self._fit_svd(m, pooled, x.dtype)
    s = self._shrinkage()
    if self.covariance_estimator is not None:
      return self._fit_estimator(xn, yn, wn, m, x.dtype)
    if s == "auto":
      xd, yd, wd = padded_device(xn, yn, wn)
      lw = np.asarray(ledoit_wolf_shrinkage(xd, yd, num_classes, wd), np.float64)
      cov = m.cov + lw[:, None, None] * (standardized_target(m.cov, m.means) - m.cov)
      self.covariance_ = np.einsum("k,kde->de", self.priors_.astype(np.float64), cov)
    else:
      self.covariance_ = shrunk(pooled, s)
    if self.solver == "lsqr" and s != "auto" and not self._positive_definite(m):
      return self._fit_lstsq(m, dtype)
    if self.solver == "eigen":
      self._eigen(xn, wn, s, m)
    return self._params_from_covariance(m, x.dtype)

  def _mean_sq(self, m) -> np.ndarray:
    """The scale of the features' values that covariance_ok's relative decision uses."""
    return np.einsum("k,kd->d", m.count / m.count.sum(), m.means ** 2)

  def _positive_definite(self, m) -> bool:
    """jgen's relative decision (``covariance_ok``) on the pooled ``covariance_``."""
    dtype = compute_dtype()   # decided in the dtype the family's parameters have
    return bool(covariance_ok(self.covariance_.astype(dtype),
                              self._mean_sq(m).astype(dtype), xp=np))

  def _params_from_covariance(self, m, dtype) -> LDAParams:
    """The family's parameters (``jgen.lda``'s, pooled by ``priors_`` as scikit-learn
    pools) from the host moments and ``covariance_``: a second pass over the rows on
    the device would only repeat them."""
    with one_blas_thread():   # [D, D] LAPACK on the host: nothing to compile
      u = to_device(precision_cholesky(self.covariance_.astype(dtype),
                                       self._mean_sq(m).astype(dtype), xp=np))
    self.covariance_ = self.covariance_.astype(compute_dtype())
    return LDAParams(to_device(m.means, dtype), u, log_to_device(self.priors_, dtype))

  def _fit_lstsq(self, m, dtype):
    """scikit-learn's ``solver="lsqr"`` on a singular covariance (constant or collinear
    features, no shrinkage): ``coef_`` is the least-squares solution of
    ``covariance_ @ coef_k = means_k`` (``scipy.linalg.lstsq``, minimum norm), as in
    scikit-learn's ``_solve_lstsq``. There is no Gaussian density then: ``params_``
    holds the means and NaN for the precision factor (jgen's mark of a degenerate
    covariance), and the predictions come from ``coef_`` and ``intercept_``."""
    cov = np.asarray(self.covariance_, np.float64)
    means = np.asarray(m.means, np.float64)
    with one_blas_thread():
      coef = scipy.linalg.lstsq(cov, means.T)[0].T
    intercept = -0.5 * np.sum(means * coef, axis=1) + np.log(self.priors_)
    self._lstsq = (coef, intercept)
    self.covariance_ = self.covariance_.astype(dtype)
    d = means.shape[1]
    return LDAParams(to_device(means, dtype), to_device(np.full((d, d), np.nan), dtype),
                     log_to_device(self.priors_, dtype))

  def _fit_estimator(self, xn, yn, wn, m, dtype):
    """``covariance_estimator``: the pooled class covariances it estimates."""
    covs = estimator_covariances(self.covariance_estimator, xn, yn, wn, len(m.count))
    self.covariance_ = np.einsum("k,kde->de", self.priors_.astype(np.float64), covs)
    if self.solver == "eigen":
      self._eigen(xn, wn, None, m)
    return self._params_from_covariance(m, dtype)

  def _fit_svd(self, m, pooled, dt):
    # The family's svd maps (jgen.gaussian.solvers) on the float64 host moments, with
    # NumPy: the within-class covariance pools the class covariances by counts, as the
    # family's statistics do. Nothing to compile, no second pass over the rows.
    cov = np.einsum("k,kde->de", m.count / m.count.sum(), m.cov)
    with np.errstate(divide="ignore"):
      log_prior = np.log(self.priors_.astype(np.float64))
    with one_blas_thread():   # one eigendecomposition and SVD for both
      p, sub = svd_lda_from_moments(m.means, cov, m.count, log_prior, self.tol, xp=np,
                                    with_subspace=True)
    ok = np.isfinite(p.means).all(axis=1) & np.isfinite(p.prec_chol).all()
    raise_for_classes(m.count, ok, p, 1, f"lda(solver='svd', tol={self.tol})",
                      "check the labels")
    dtype = compute_dtype()
    self.xbar_ = sub.xbar.astype(dtype)
    self.scalings_ = sub.scalings[:, :int(sub.rank)].astype(dtype)
    self.explained_variance_ratio_ = sub.explained_variance_ratio[
        :self._max_components].astype(dtype)
    if self.store_covariance:
      self.covariance_ = pooled.astype(dtype)
    return LDAParams(to_device(p.means, dt), to_device(p.prec_chol, dt),
                     to_device(log_prior, dt))

  def _eigen(self, xn, wn, s, m) -> None:
    """scikit-learn's eigen solver: the generalised eigenvectors of the between- and
    within-class covariances."""
    keep = wn > 0
    xk, wk = xn[keep].astype(np.float64), wn[keep].astype(np.float64)
    mean = wk @ xk / wk.sum()
    xc = (xk - mean) * np.sqrt(wk)[:, None]
    with one_blas_thread():   # as class_moments: the same [N, D] Gram over all rows
      total = xc.T @ xc / wk.sum()
    if self.covariance_estimator is not None:
      total = estimator_covariance(self.covariance_estimator, xk, np.ones_like(wk))
    elif s == "auto":
      lw = float(np.asarray(ledoit_wolf_shrinkage(xk, np.zeros(len(xk), np.int32), 1,
                                                  wk))[0])
      total = total + lw * (standardized_target(total[None], mean[None])[0] - total)
    else:
      total = shrunk(total, s)
    within = np.asarray(self.covariance_, np.float64)
    with one_blas_thread():
      evals, evecs = scipy.linalg.eigh(total - within, within)
    order = np.argsort(evals)[::-1]
    self.explained_variance_ratio_ = np.sort(evals / np.sum(evals))[::-1][
        :self._max_components]
    self.scalings_ = evecs[:, order]

  def _set_fitted(self, params) -> None:
    self.params_ = params
    svd = self._svd()
    if self._marginalize() or "means_" not in self.__dict__:
      # EM fits (missing entries, GenerativeEM) set no moments of their own: the
      # scores come from the params' means and precision factor.
      self.means_ = np.asarray(params.means)
      self.priors_ = np.exp(np.asarray(params.log_prior))
      self._max_components = min(len(self.classes_) - 1, self.means_.shape[1])
      svd = False
    if svd:
      coef = (self.means_ - self.xbar_) @ self.scalings_
      intercept = -0.5 * np.sum(coef ** 2, axis=1) + np.log(self.priors_)
      coef = coef @ self.scalings_.T
      intercept = intercept - self.xbar_ @ coef.T
    elif "_lstsq" in self.__dict__:
      coef, intercept = self._lstsq
    else:
      u = np.asarray(params.prec_chol, np.float64)
      coef = (self.means_ @ u) @ u.T
      intercept = -0.5 * np.sum(coef * self.means_, axis=1) + np.log(self.priors_)
    if len(self.classes_) == 2:
      coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
    dtype = compute_dtype()
    self.coef_, self.intercept_ = coef.astype(dtype), intercept.astype(dtype)
    self._n_features_out = self._max_components

  def decision_function(self, X) -> np.ndarray:
    """``X @ coef_.T + intercept_``: ``[n_samples, K]``, or ``[n_samples]`` for two
    classes (scikit-learn's convention)."""
    if self._marginalize():   # NaN entries: the marginal scores, not X @ coef_.T
      scores = self._joint(X)
      return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores
    check_is_fitted(self)
    X = validate_data(self, X, dtype=compute_dtype(), reset=False)
    scores = X @ self.coef_.T + self.intercept_
    return scores[:, 0] if scores.shape[1] == 1 else scores

  def predict(self, X) -> np.ndarray:
    """Labels ``[n_samples]`` maximising ``decision_function``."""
    scores = self.decision_function(X)
    idx = (scores > 0).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
    return self.classes_[idx]

  def predict_proba(self, X) -> np.ndarray:
    """Class probabilities ``[n_samples, K]``: the softmax of the scores (the
    logistic function of the log-odds for two classes)."""
    scores = self.decision_function(X)
    if scores.ndim == 1:
      p = expit(scores)
      return np.stack([1 - p, p], axis=1)
    return softmax(scores, axis=1)

  def predict_log_proba(self, X) -> np.ndarray:
    """``log(predict_proba(X))`` ``[n_samples, K]`` (zeros raised to the smallest
    normal number first, as scikit-learn does)."""
    p = self.predict_proba(X)
    p[p == 0.0] += np.finfo(p.dtype).smallest_normal
    return np.log(p)

  def transform(self, X) -> np.ndarray:
    """Projection onto the discriminant directions ``[n_samples, n_components]``
    (solvers ``"svd"`` and ``"eigen"``)."""
    if self._marginalize():
      raise NotImplementedError("transform is not available with missing='marginalize'.")
    if self.solver == "lsqr":
      raise NotImplementedError("transform not implemented for 'lsqr' solver (use"
                                " 'svd' or 'eigen').")
    check_is_fitted(self)
    X = validate_data(self, X, dtype=compute_dtype(), reset=False)
    out = (X - self.xbar_) @ self.scalings_ if self.solver == "svd" else (
        X @ self.scalings_)
    return out[:, :self._max_components]
