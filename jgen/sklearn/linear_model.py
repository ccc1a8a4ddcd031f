"""``LogisticRegression``: scikit-learn's L2-penalised (multinomial) logistic regression
computed by [`jgen.logistic_regression`][jgen.logistic_regression] (L-BFGS, the same
objective and ``C``).

The constructor is scikit-learn 1.9's, keyword for keyword and default for default.
What jgen computes: ``solver="lbfgs"``, the L2 penalty (``l1_ratio=0``, or the
deprecated ``penalty="l2"``) or none (``C=np.inf``, or the deprecated ``penalty=None``),
``class_weight``, ``warm_start``, ``fit_intercept``, ``tol``, ``max_iter``. Other
solvers, L1 / elastic-net penalties and ``dual=True`` raise a ``ValueError`` naming the
supported values. ``random_state``, ``verbose``, ``intercept_scaling`` (used only by
scikit-learn's ``liblinear``) and ``n_jobs`` are accepted and change nothing, as in
scikit-learn with ``lbfgs``.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import sklearn.linear_model
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight
from sklearn.utils.validation import check_is_fitted
from sklearn.utils.validation import validate_data

from jgen.logistic.model import ConvergenceWarning
from jgen.logistic.model import FitInfo
from jgen.logistic.model import LogisticParams
from jgen.logistic.model import logistic_regression
from jgen.sklearn.base import JgenClassifier
from jgen.sklearn.base import compute_dtype

__all__ = ["LogisticRegression"]

_DTYPES = (np.float64, np.float32)   # scikit-learn's: other dtypes become float64

_SUPPORTED = ("jgen's LogisticRegression computes solver='lbfgs' with the L2 penalty"
              " (l1_ratio=0, C > 0) or no penalty (C=np.inf), dual=False")


def _effective_penalty(penalty, C, l1_ratio) -> str | None:
  """The penalty scikit-learn 1.9 fits for these parameters (``penalty`` deprecated in
  1.8: ``l1_ratio`` and ``C=np.inf`` say it), with scikit-learn's warnings."""
  if penalty == "deprecated":
    if l1_ratio is None or l1_ratio == 0:
      if l1_ratio is None:
        warnings.warn("'l1_ratio=None' was deprecated in version 1.8 and will trigger"
                      " an error in 1.10. Use 0<=l1_ratio<=1 instead.", FutureWarning)
      out = "l2"
    else:
      out = "l1" if l1_ratio == 1 else "elasticnet"
    return None if C == np.inf else out
  warnings.warn("'penalty' was deprecated in version 1.8 and will be removed in 1.10."
                " To avoid this warning, leave 'penalty' set to its default value and"
                " use 'l1_ratio' or 'C' instead. Use l1_ratio=0 instead of"
                " penalty='l2', l1_ratio=1 instead of penalty='l1', l1_ratio set to a"
                " float between 0 and 1 instead of penalty='elasticnet', and C=np.inf"
                " instead of penalty=None.", FutureWarning)
  if penalty is not None and l1_ratio is not None and 0 < l1_ratio < 1 and (
      penalty != "elasticnet"):
    warnings.warn(f"l1_ratio parameter is only used when penalty is 'elasticnet'."
                  f" Got (penalty={penalty})")
  if (penalty == "l2" and l1_ratio != 0) or (penalty == "l1" and l1_ratio != 1):
    warnings.warn(f"Inconsistent values: penalty={penalty} with l1_ratio={l1_ratio}."
                  " penalty is deprecated. Please use l1_ratio only.")
  if penalty is None and C != 1.0:
    warnings.warn("Setting penalty=None will ignore the C and l1_ratio parameters")
  return penalty


class LogisticRegression(JgenClassifier):
  """Logistic regression with an L2 penalty or none (scikit-learn's ``lbfgs``).

  Minimises ``C sum_i w_i CE_i + ||W||^2 / 2`` (intercept unpenalised; no penalty for
  ``C=np.inf``): the model of ``sklearn.linear_model.LogisticRegression(C=C)`` with its
  default ``lbfgs`` solver, binary for two classes and multinomial otherwise. ``w_i`` is
  the sample weight times the class weight. Parameters and defaults are scikit-learn
  1.9's; see the module docstring for the values jgen computes.

  ``X`` may be a scipy sparse matrix (CSR/CSC, e.g. TF-IDF): the fit densifies it
  (``n_samples * n_features`` floats), predictions multiply it as it is.

  Prediction methods read ``coef_`` and ``intercept_``: set them and the model changes.
  Fitted attributes have the input's dtype (float32 or float64) as in scikit-learn; the
  fit computes in float32 unless JAX's x64 mode is on.

  Args:
    penalty: deprecated by scikit-learn 1.8: ``"l2"`` or ``None`` (use ``l1_ratio=0``
      or ``C=np.inf``); ``"l1"``/``"elasticnet"`` raise ``ValueError``.
    C: inverse regularisation strength (> 0; ``np.inf``: no penalty).
    l1_ratio: ``0`` (L2) is supported; other values raise ``ValueError``.
    dual: ``False`` (``True`` raises ``ValueError``).
    tol: stop once the largest gradient entry of the mean-scaled objective is below.
    fit_intercept: learn the intercepts.
    intercept_scaling: used only by scikit-learn's ``liblinear``; ignored.
    class_weight: ``None``, a dict ``{label: weight}`` or ``"balanced"``.
    random_state: ignored (``lbfgs`` is deterministic).
    solver: ``"lbfgs"`` (others raise ``ValueError``).
    max_iter: L-BFGS iteration limit (``0``: return the starting point); reaching it
      warns with scikit-learn's ``ConvergenceWarning``.
    verbose: ignored.
    warm_start: start from the previous ``coef_``/``intercept_`` when they fit.
    n_jobs: ignored; not ``None`` warns as scikit-learn 1.9 does.

  Attributes:
    classes_: the labels ``[K]``, sorted.
    coef_: ``[K, D]`` (``[1, D]`` for two classes).
    intercept_: ``[K]`` (``[1]`` for two classes).
    n_iter_: L-BFGS iterations ``[1]``.
    n_features_in_: ``D``.
    params_: the jgen [`LogisticParams`][jgen.LogisticParams] of the last fit.

  Examples:
    >>> import numpy as np
    >>> from jgen.sklearn import LogisticRegression
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> LogisticRegression(C=10.0).fit(X, ["no", "no", "yes", "yes"]).predict(X).tolist()
    ['no', 'no', 'yes', 'yes']
  """

  _parameter_constraints: dict = dict(
      sklearn.linear_model.LogisticRegression._parameter_constraints)

  def __init__(self, penalty="deprecated", *, C=1.0, l1_ratio=0.0, dual=False, tol=1e-4,
               fit_intercept=True, intercept_scaling=1, class_weight=None,
               random_state=None, solver="lbfgs", max_iter=100, verbose=0,
               warm_start=False, n_jobs=None):
    self.penalty = penalty
    self.C = C
    self.l1_ratio = l1_ratio
    self.dual = dual
    self.tol = tol
    self.fit_intercept = fit_intercept
    self.intercept_scaling = intercept_scaling
    self.class_weight = class_weight
    self.random_state = random_state
    self.solver = solver
    self.max_iter = max_iter
    self.verbose = verbose
    self.warm_start = warm_start
    self.n_jobs = n_jobs

  def _check_supported(self) -> float:
    """Validates the parameters; returns the ``C`` jgen fits (``inf``: no penalty)."""
    self._validate_params()
    penalty = _effective_penalty(self.penalty, self.C, self.l1_ratio)
    if penalty in ("l1", "elasticnet"):
      raise ValueError(f"{_SUPPORTED}; got penalty={penalty!r} (l1_ratio="
                       f"{self.l1_ratio!r}, penalty={self.penalty!r}).")
    if self.solver != "lbfgs":
      raise ValueError(f"{_SUPPORTED}; got solver={self.solver!r}.")
    if self.dual:
      raise ValueError(f"{_SUPPORTED}; got dual=True.")
    if self.n_jobs is not None:
      warnings.warn(f"'n_jobs' has no effect since 1.8 and will be removed in 1.10."
                    f" You provided 'n_jobs={self.n_jobs}', please leave it"
                    " unspecified.", FutureWarning)
    return np.inf if penalty is None else float(self.C)

  def _model(self):
    C = self._check_supported()
    return logistic_regression(C=C, tol=max(float(self.tol), 1e-300),
                               max_iter=max(int(self.max_iter), 1),
                               fit_intercept=bool(self.fit_intercept))

  def _init(self, num_features: int):
    """Warm start: the previous fit as jgen parameters, or ``None``."""
    coef = getattr(self, "coef_", None) if self.warm_start else None
    if coef is None:
      return None
    coef = coef.toarray() if sp.issparse(coef) else np.asarray(coef, np.float64)
    intercept = np.asarray(getattr(self, "intercept_", np.zeros(len(coef))), np.float64)
    k = len(self.classes_)
    if coef.shape != ((1 if k == 2 else k), num_features):
      raise ValueError(f"warm_start: coef_ has shape {coef.shape}, which does not match"
                       f" {k} classes and {num_features} features.")
    if not self.fit_intercept:
      intercept = np.zeros_like(intercept)
    if k == 2:
      coef = np.concatenate([np.zeros_like(coef), coef])
      intercept = np.concatenate([np.zeros(1), intercept])
    return LogisticParams(coef.T, intercept)

  def fit(self, X, y, sample_weight=None):
    """Fits the model to ``X [n_samples, n_features]`` (dense or scipy sparse) and
    labels ``y [n_samples]``.

    Args:
      X: training features.
      y: labels of any type scikit-learn accepts for classification.
      sample_weight: optional non-negative weights ``[n_samples]``.

    Returns:
      ``self``.
    """
    model = self._model()
    X, y = validate_data(self, X, y, dtype=_DTYPES, accept_sparse=("csr", "csc"))
    dtype = X.dtype   # float32 stays float32, as in scikit-learn
    if compute_dtype() == np.float32:
      X = X.astype(np.float32)
    check_classification_targets(y)
    sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
    classes = np.unique(y)
    init = self._init(X.shape[1]) if len(classes) == len(getattr(
        self, "classes_", ())) and np.array_equal(classes, self.classes_) else None
    codes = self._encode(y)
    if self.class_weight is not None:
      cw = compute_class_weight(self.class_weight, classes=self.classes_, y=y,
                                sample_weight=sample_weight)
      sample_weight = sample_weight * cw[codes].astype(X.dtype)
    if sp.issparse(X):
      X = X.toarray()
    params = self._fit_weighted(model, X, codes, sample_weight, init)
    self._set_fitted(params)
    self.coef_ = self.coef_.astype(dtype)
    self.intercept_ = self.intercept_.astype(dtype)
    return self

  def _fit_weighted(self, model, X, codes, sample_weight, init):
    if self.max_iter == 0:   # scikit-learn: the starting point, and its warning
      warnings.warn("lbfgs failed to converge after 0 iteration(s): max_iter=0.",
                    SklearnConvergenceWarning, stacklevel=3)
      k, d = len(self.classes_), X.shape[1]
      if init is None:
        init = LogisticParams(np.zeros((d, k), X.dtype), np.zeros(k, X.dtype))
      zero = np.zeros((), np.int32)
      return LogisticParams(np.asarray(init.weights, X.dtype),
                            np.asarray(init.bias, X.dtype),
                            FitInfo(np.zeros((), bool), zero, np.full((), np.nan)))
    def fit(x, y, num_classes, sw):
      with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        params = model.fit(x, y, num_classes=num_classes, sample_weight=sw, init=init)
      for w in caught:
        if issubclass(w.category, ConvergenceWarning):   # scikit-learn's words
          warnings.warn(f"lbfgs failed to converge after {self.max_iter} iteration(s):"
                        f" {w.message}", SklearnConvergenceWarning, stacklevel=4)
        else:
          warnings.warn(str(w.message), w.category, stacklevel=4)
      return params
    return self._fit_padded(fit, X, codes, sample_weight)

  def _set_fitted(self, params) -> None:
    self.params_ = params
    coef = np.asarray(params.weights).T                          # [K, D]
    intercept = np.asarray(params.bias)
    if len(self.classes_) == 2:   # jgen pins class 0 at zero: class 1 holds the model
      coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
    self.coef_, self.intercept_ = coef, intercept
    self.n_iter_ = np.asarray([int(params.info.num_iter)], np.int32)

  def decision_function(self, X) -> np.ndarray:
    """``X @ coef_.T + intercept_``: ``[n_samples, K]``, or ``[n_samples]`` for two
    classes."""
    check_is_fitted(self)
    X = validate_data(self, X, dtype=_DTYPES, reset=False,
                      accept_sparse=("csr", "csc"))
    coef = self.coef_ if sp.issparse(self.coef_) else np.asarray(self.coef_)
    scores = np.asarray(safe_sparse_dot(X, coef.T, dense_output=True))
    scores = scores + np.asarray(self.intercept_)
    return scores[:, 0] if scores.shape[1] == 1 else scores

  def sparsify(self):
    """Stores ``coef_`` as a scipy CSR matrix (as scikit-learn's); returns ``self``."""
    check_is_fitted(self, "coef_")
    self.coef_ = sp.csr_matrix(self.coef_)
    return self

  def densify(self):
    """Stores ``coef_`` as a dense array again; returns ``self``."""
    check_is_fitted(self, "coef_")
    if sp.issparse(self.coef_):
      self.coef_ = self.coef_.toarray()
    return self

  def _joint(self, X) -> np.ndarray:
    """Logits ``[n_samples, K]`` from ``coef_``/``intercept_`` (binary: ``[0, d]``)."""
    scores = self.decision_function(X)
    return np.stack([np.zeros_like(scores), scores], -1) if scores.ndim == 1 else scores

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.sparse = True
    return tags
