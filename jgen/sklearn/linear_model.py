"""``LogisticRegression``: scikit-learn's penalised (multinomial) logistic regression
computed by [`jgen.logistic_regression`][jgen.logistic_regression] (the same objective,
``C`` and ``l1_ratio``).

The constructor is scikit-learn 1.9's, keyword for keyword and default for default.
Every solver name is accepted and minimises scikit-learn's objective for it with a jgen
algorithm: ``"lbfgs"`` by L-BFGS (up to ``host_bytes`` of data by scipy's, as
scikit-learn: [`jgen.logistic.fit_host`][jgen.logistic.fit_host]);
``"newton-cholesky"`` by Newton's method with a Cholesky solve (L-BFGS after a singular
Hessian, as scikit-learn); ``"newton-cg"``, ``"sag"`` and ``"saga"`` (L2 or none) by
Newton's method with conjugate gradients; ``"saga"`` with an L1 or elastic-net penalty
by proximal Newton; ``"liblinear"`` (two classes) on liblinear's own objective (the
constant feature ``intercept_scaling`` appended to ``X``, its weight penalised) by
liblinear's trust-region Newton method (L2, primal:
[`jgen.logistic.fit_trust_region`][jgen.logistic.fit_trust_region]), Newton-CG (L2,
dual) or proximal Newton (L1). The solver / penalty / ``dual`` combinations
scikit-learn rejects raise its ``ValueError`` with its message. ``random_state``,
``verbose`` and ``n_jobs`` change nothing (every jgen solver is deterministic).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.special import log_softmax
import sklearn.linear_model
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight
from sklearn.utils.validation import check_is_fitted
from sklearn.utils.validation import validate_data

from jgen.logistic.host import fit_host
from jgen.logistic.model import ConvergenceWarning
from jgen.logistic.model import FitInfo
from jgen.logistic.model import LogisticParams
from jgen.logistic.model import logistic_regression
from jgen.logistic.trust_region import fit_trust_region
from jgen.sklearn.base import JgenClassifier
from jgen.sklearn.base import compute_dtype
from jgen.sklearn.base import host_bytes
from jgen.sklearn.logistic_rules import check_solver
from jgen.sklearn.logistic_rules import convergence_message
from jgen.sklearn.logistic_rules import effective_penalty

__all__ = ["LogisticRegression"]

_DTYPES = (np.float64, np.float32)   # scikit-learn's: other dtypes become float64

# scikit-learn's solver names -> the jgen solver that computes the same minimiser (for
# the L2 penalty or none; an L1 part always runs proximal Newton).
_FAMILY_SOLVER = {"lbfgs": "lbfgs", "sag": "newton-cg", "saga": "newton-cg",
                  "newton-cg": "newton-cg", "newton-cholesky": "newton-cholesky",
                  "liblinear": "newton-cg"}


class LogisticRegression(JgenClassifier):
  """Logistic regression with scikit-learn's L2, L1 or elastic-net penalty and solvers.

  Minimises ``C sum_i w_i CE_i + (1 - rho) ||W||^2 / 2 + rho ||W||_1`` (``rho`` the
  effective L1 ratio; intercept unpenalised except with ``liblinear``; no penalty for
  ``C=np.inf``): the model of ``sklearn.linear_model.LogisticRegression`` with the same
  parameters, binary for two classes and multinomial otherwise. ``w_i`` is the sample
  weight times the class weight. Parameters and defaults are scikit-learn 1.9's; the
  module docstring says which jgen algorithm each solver name runs.

  ``X`` may be a scipy sparse matrix (CSR/CSC, e.g. TF-IDF): the fit densifies it
  (``n_samples * n_features`` floats), predictions multiply it as it is.

  Prediction methods read ``coef_`` and ``intercept_``: set them and the model changes.
  Fitted attributes have the input's dtype (float32 or float64; float64 for
  ``liblinear``) as in scikit-learn; the compiled fits compute in float32 unless JAX's
  x64 mode is on (the host fits, ``lbfgs`` on small data and ``liblinear``'s primal L2
  problem, always in float64).

  Args:
    penalty: deprecated by scikit-learn 1.8 (use ``l1_ratio`` or ``C=np.inf``):
      ``"l2"``, ``"l1"``, ``"elasticnet"`` or ``None``.
    C: inverse regularisation strength (> 0; ``np.inf``: no penalty).
    l1_ratio: the L1 share of the penalty in ``[0, 1]``; above 0 needs ``"saga"`` (or
      ``1`` with ``"liblinear"``), as in scikit-learn.
    dual: ``True`` only with ``"liblinear"`` and the L2 penalty (jgen solves the
      primal problem, which has the same minimiser).
    tol: stop once the largest entry of the gradient (the smallest subgradient with an
      L1 part) of the objective divided by ``C sum w`` is below; the Newton-type
      solvers also wait for their last step (relative) or half the squared Newton
      decrement (``newton-cholesky``) to be below.
    fit_intercept: learn the intercepts.
    intercept_scaling: ``liblinear``'s constant feature; ignored by the other solvers.
    class_weight: ``None``, a dict ``{label: weight}`` or ``"balanced"``.
    random_state: ignored (jgen's solvers are deterministic).
    solver: ``"lbfgs"``, ``"newton-cholesky"``, ``"newton-cg"``, ``"sag"``,
      ``"saga"`` or ``"liblinear"``.
    max_iter: iteration limit of the solver (``0``: return the starting point);
      reaching it warns with scikit-learn's ``ConvergenceWarning`` for that solver.
    verbose: ignored.
    warm_start: start from the previous ``coef_``/``intercept_`` when they fit (not
      with ``liblinear``).
    n_jobs: ignored; not ``None`` warns as scikit-learn 1.9 does.

  Attributes:
    classes_: the labels ``[K]``, sorted.
    coef_: ``[K, D]`` (``[1, D]`` for two classes).
    intercept_: ``[K]`` (``[1]`` for two classes).
    n_iter_: jgen's solver iterations ``[1]``.
    n_features_in_: ``D``.
    params_: the jgen [`LogisticParams`][jgen.LogisticParams] of the last fit (with
      ``liblinear`` and an intercept, its last feature is the appended column).

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

  def _check_supported(self) -> tuple[str, float, float]:
    """Validates the parameters as scikit-learn 1.9 does (same errors and warnings).

    Returns:
      ``(family_solver, C, l1_ratio)`` of the objective jgen fits (``C = inf``: no
      penalty).
    """
    self._validate_params()
    penalty = effective_penalty(self.penalty, self.C, self.l1_ratio)
    check_solver(self.solver, penalty, self.dual)
    l1_ratio = self.l1_ratio
    if penalty != "elasticnet" and l1_ratio is not None and 0 < l1_ratio < 1:
      warnings.warn(f"l1_ratio parameter is only used when penalty is 'elasticnet'."
                    f" Got (penalty={penalty})")
    if (self.penalty == "l2" and l1_ratio != 0) or (
        self.penalty == "l1" and l1_ratio != 1):
      warnings.warn(f"Inconsistent values: penalty={self.penalty} with"
                    f" l1_ratio={l1_ratio}. penalty is deprecated. Please use"
                    " l1_ratio only.")
    if penalty == "elasticnet" and l1_ratio is None:
      raise ValueError("l1_ratio must be specified when penalty is elasticnet.")
    if self.penalty is None and self.C != 1.0:
      warnings.warn("Setting penalty=None will ignore the C and l1_ratio parameters")
    if self.n_jobs is not None:
      warnings.warn(f"'n_jobs' has no effect since 1.8 and will be removed in 1.10."
                    f" You provided 'n_jobs={self.n_jobs}', please leave it"
                    " unspecified.", FutureWarning)
    if penalty is None:
      return _FAMILY_SOLVER[self.solver], np.inf, 0.0
    rho = {"l2": 0.0, "l1": 1.0}.get(penalty, l1_ratio)
    rho = float(rho)
    solver = "proximal-newton" if rho > 0 else _FAMILY_SOLVER[self.solver]
    return solver, float(self.C), rho

  def _model(self):
    solver, C, l1_ratio = self._check_supported()
    fit_intercept = bool(self.fit_intercept) and self.solver != "liblinear"
    return logistic_regression(C=C, l1_ratio=l1_ratio, solver=solver,
                               tol=max(float(self.tol), 1e-300),
                               max_iter=max(int(self.max_iter), 1),
                               fit_intercept=fit_intercept)

  def _init(self, num_features: int):
    """Warm start: the previous fit as jgen parameters, or ``None``."""
    coef = getattr(self, "coef_", None) if self.warm_start else None
    if coef is None or self.solver == "liblinear":   # liblinear: no warm start
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

  def _liblinear_features(self, X, classes, l1: bool):
    """scikit-learn's ``liblinear`` checks; ``X`` with its intercept column appended."""
    if len(classes) != 2:
      raise ValueError("The 'liblinear' solver does not support multiclass"
                       " classification (n_classes >= 3). Either use another solver"
                       " or wrap the estimator in a OneVsRestClassifier to keep"
                       " applying a one-versus-rest scheme.")
    if X.max() > 1e30:
      raise ValueError("Using the 'liblinear' solver while X contains a maximum value"
                       " > 1e30 results in a frozen fit. Please choose another solver"
                       " or rescale the input X.")
    if self.fit_intercept and self.intercept_scaling <= 0:
      raise ValueError(f"Intercept scaling is {self.intercept_scaling!r} but needs to be"
                       " greater than 0. To disable fitting an intercept, set"
                       " fit_intercept=False.")
    if l1 and self.dual:
      raise ValueError("Unsupported set of arguments: The combination of penalty='l1'"
                       " and loss='logistic_regression' are not supported when"
                       " dual=True, Parameters: penalty='l1',"
                       " loss='logistic_regression', dual=True")
    if not self.fit_intercept:
      return X
    # liblinear's model: a constant feature intercept_scaling whose weight is
    # penalised like the others; intercept_ = intercept_scaling * that weight.
    column = np.full((X.shape[0], 1), self.intercept_scaling, X.dtype)
    return np.concatenate([X, column], axis=1)

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
    X, y = validate_data(
        self, X, y, dtype=_DTYPES, accept_sparse=("csr", "csc"),
        accept_large_sparse=self.solver not in ("liblinear", "sag", "saga"))
    # float32 stays float32, as in scikit-learn; liblinear always returns float64.
    dtype = np.float64 if self.solver == "liblinear" else X.dtype
    host = self._host_fitter(model, X)
    if compute_dtype() == np.float32 and host is None:
      X = X.astype(np.float32)
    check_classification_targets(y)
    sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
    classes = np.unique(y)
    if sp.issparse(X):
      X = X.toarray()
    if self.solver == "liblinear":
      X = self._liblinear_features(X, classes, model.hyperparams["l1_ratio"] > 0)
    init = self._init(X.shape[1]) if len(classes) == len(getattr(
        self, "classes_", ())) and np.array_equal(classes, self.classes_) else None
    codes = self._encode(y)
    if self.class_weight is not None:
      cw = compute_class_weight(self.class_weight, classes=self.classes_, y=y,
                                sample_weight=sample_weight)
      sample_weight = sample_weight * cw[codes].astype(X.dtype)
    params = self._fit_weighted(model, X, codes, sample_weight, init, host)
    self._set_fitted(params)
    self.coef_ = self.coef_.astype(dtype)
    self.intercept_ = self.intercept_.astype(dtype)
    return self

  def _host_fitter(self, model, X):
    """scikit-learn's own algorithm on the host (float64), where jgen has it: scipy's
    L-BFGS-B (``lbfgs``, data up to ``host_bytes``) or liblinear's trust-region Newton
    (``liblinear``, L2, primal); ``None`` otherwise."""
    if self.solver == "lbfgs" and X.shape[0] * X.shape[1] * 8 <= host_bytes():
      return functools.partial(fit_host, model)
    primal_l2 = not self.dual and not model.hyperparams["l1_ratio"]
    if self.solver == "liblinear" and primal_l2:
      return lambda x, y, *, num_classes, sample_weight, init: fit_trust_region(
          model, x, y, sample_weight=sample_weight)
    return None

  def _fit_weighted(self, model, X, codes, sample_weight, init, host=None):
    if self.max_iter == 0:   # scikit-learn: the starting point, and its warning
      message = convergence_message(self.solver, 0)
      warnings.warn(message + (": max_iter=0." if self.solver == "lbfgs" else ""),
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
        warnings.simplefilter("always")
        params = fitter(x, y, num_classes=num_classes, sample_weight=sw, init=init)
      # After a fall-back from Newton-Cholesky to L-BFGS, L-BFGS is what stopped.
      solver = "lbfgs" if any(issubclass(w.category, scipy.linalg.LinAlgWarning)
                              for w in caught) else self.solver
      for w in caught:
        if issubclass(w.category, ConvergenceWarning):   # scikit-learn's words
          n_iter = int(params.info.num_iter)
          warnings.warn(f"{convergence_message(solver, n_iter)}: {w.message}",
                        SklearnConvergenceWarning, stacklevel=4)
        else:
          warnings.warn(str(w.message), w.category, stacklevel=4)
      return params
    fitter = host or model.fit
    if host is not None:
      return fit(X, codes, len(self.classes_), sample_weight)
    return self._fit_padded(fit, X, codes, sample_weight)

  def _set_fitted(self, params) -> None:
    self.params_ = params
    coef = np.asarray(params.weights).T                          # [K, D]
    intercept = np.asarray(params.bias)
    if len(self.classes_) == 2:   # jgen pins class 0 at zero: class 1 holds the model
      coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
    if self.solver == "liblinear":
      intercept = np.zeros(1, coef.dtype)
      if self.fit_intercept:   # the appended column's weight, scaled back
        intercept = self.intercept_scaling * coef[:, -1]
        coef = coef[:, :-1]
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

  def _log_proba(self, X) -> np.ndarray:
    return log_softmax(self._joint(X), axis=-1)

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.sparse = True
    return tags
