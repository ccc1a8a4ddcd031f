"""``LogisticRegression``: scikit-learn's L2-penalised (multinomial) logistic regression
computed by [`jgen.logistic_regression`][jgen.logistic_regression] (L-BFGS, the same
objective and ``C``)."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.utils.validation import check_is_fitted
from sklearn.utils.validation import validate_data

from jgen.logistic.model import ConvergenceWarning
from jgen.logistic.model import logistic_regression
from jgen.sklearn.base import JgenClassifier
from jgen.sklearn.base import compute_dtype

__all__ = ["LogisticRegression"]


class LogisticRegression(JgenClassifier):
  """Multinomial logistic regression with an L2 penalty (scikit-learn's ``lbfgs``).

  Minimises ``C sum_i w_i CE_i + ||W||^2 / 2`` (intercept unpenalised): the model of
  ``sklearn.linear_model.LogisticRegression(C=C)`` with its default ``lbfgs`` solver,
  binary for two classes and multinomial otherwise. Not supported: L1/elastic-net
  penalties, ``class_weight`` (use ``sample_weight``), ``warm_start``.

  Args:
    C: inverse regularisation strength (> 0).
    tol: stop once the largest gradient entry of the mean-scaled objective is below.
    fit_intercept: learn the intercepts.
    max_iter: L-BFGS iteration limit; reaching it warns with scikit-learn's
      ``ConvergenceWarning``.

  Attributes:
    classes_: the labels ``[K]``, sorted.
    coef_: ``[K, D]`` (``[1, D]`` for two classes).
    intercept_: ``[K]`` (``[1]`` for two classes).
    n_iter_: L-BFGS iterations ``[1]``.
    n_features_in_: ``D``.
    params_: the jgen [`LogisticParams`][jgen.LogisticParams].

  Examples:
    >>> import numpy as np
    >>> from jgen.sklearn import LogisticRegression
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> LogisticRegression(C=10.0).fit(X, ["no", "no", "yes", "yes"]).predict(X).tolist()
    ['no', 'no', 'yes', 'yes']
  """

  def __init__(self, *, C: float = 1.0, tol: float = 1e-4, fit_intercept: bool = True,
               max_iter: int = 100):
    self.C = C
    self.tol = tol
    self.fit_intercept = fit_intercept
    self.max_iter = max_iter

  def _model(self):
    for name, value in (("C", self.C), ("tol", self.tol)):
      if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"The '{name}' parameter must be a float in the range"
                         f" (0.0, inf), got {value!r}.")
    if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, numbers.Integral):
      raise ValueError(f"The 'max_iter' parameter must be an int in the range [1, inf),"
                       f" got {self.max_iter!r}.")
    return logistic_regression(C=float(self.C), tol=float(self.tol),
                               max_iter=max(int(self.max_iter), 1),
                               fit_intercept=bool(self.fit_intercept))

  def _fit_params(self, x, y, num_classes, sample_weight):
    model = self._model()
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always", ConvergenceWarning)
      params = model.fit(x, y, num_classes=num_classes, sample_weight=sample_weight)
    for w in caught:
      category = (SklearnConvergenceWarning if issubclass(w.category, ConvergenceWarning)
                  else w.category)
      warnings.warn(str(w.message), category, stacklevel=3)
    return params

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
    X = validate_data(self, X, dtype=compute_dtype(), reset=False)
    scores = X @ self.coef_.T + self.intercept_
    return scores[:, 0] if scores.shape[1] == 1 else scores
