"""``GenerativeEM``: a semi-supervised scikit-learn estimator around a jgen Gaussian one.

scikit-learn's semi-supervised estimators (``SelfTrainingClassifier``,
``LabelSpreading``) take unlabeled examples with the target ``-1``; so does this one.
It fits the generative model of its ``estimator`` (``GaussianNB``,
``LinearDiscriminantAnalysis`` or ``QuadraticDiscriminantAnalysis`` from
``jgen.sklearn``) by EM, unlabeled examples entering every class with their posterior
as weight ([`jgen.parallel.semi_supervised_fit`][jgen.parallel.semi_supervised_fit]).
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight
from sklearn.utils.validation import validate_data

from jgen.gaussian.params import GaussianNBParams
from jgen.parallel.semi_supervised import semi_supervised_fit
from jgen.sklearn.base import JgenClassifier
from jgen.sklearn.base import bucket_size
from jgen.sklearn.base import check_priors
from jgen.sklearn.base import compute_dtype
from jgen.sklearn.base import to_device
from jgen.sklearn.base import pad_rows
from jgen.sklearn.missing import MarginalizeMissing
from jgen.sklearn.naive_bayes import GaussianNB

__all__ = ["GenerativeEM"]


class GenerativeEM(JgenClassifier):
  """Semi-supervised EM for the Gaussian estimators; ``-1`` marks an unlabeled target.

  Args:
    estimator: a ``jgen.sklearn`` ``GaussianNB`` (default, with ``var_smoothing=1e-9``),
      ``LinearDiscriminantAnalysis`` or ``QuadraticDiscriminantAnalysis``: the model
      and its regularisation (and ``priors``, if set).
    unlabeled_weight: weight ``>= 0`` of each unlabeled example (``0``: labelled only).
    max_iter: most EM iterations.
    tol: stop when the observed-data log-likelihood changes by at most ``tol`` times
      its magnitude.

  Attributes:
    classes_: the labels seen among the labelled examples ``[K]``, sorted.
    estimator_: a fitted clone of ``estimator`` holding the EM params.
    params_: the jgen params.
    log_likelihood_: the observed-data log-likelihood at each iteration.
    n_iter_: EM iterations run.
    converged_: whether ``tol`` was met.
    n_features_in_: ``D``.

  Examples:
    >>> import numpy as np
    >>> from jgen.sklearn import GenerativeEM
    >>> X = np.array([[0.0], [2.0], [0.3], [-0.2], [2.3], [1.8], [0.1], [2.1]])
    >>> y = np.array([0, 1, -1, -1, -1, -1, -1, -1])
    >>> clf = GenerativeEM().fit(X, y)
    >>> clf.predict([[0.2], [1.9]]).tolist(), bool(clf.converged_)
    ([0, 1], True)
  """

  def __init__(self, estimator=None, *, unlabeled_weight: float = 1.0,
               max_iter: int = 100, tol: float = 1e-6):
    self.estimator = estimator
    self.unlabeled_weight = unlabeled_weight
    self.max_iter = max_iter
    self.tol = tol

  def _base(self):
    est = GaussianNB() if self.estimator is None else self.estimator
    if not isinstance(est, MarginalizeMissing):   # the Gaussian estimators
      raise ValueError("estimator must be a jgen.sklearn GaussianNB,"
                       " LinearDiscriminantAnalysis or QuadraticDiscriminantAnalysis,"
                       f" got {type(est).__name__}.")
    return est

  def _model(self):
    return self._base()._model()

  def _check_params(self):
    if isinstance(self.unlabeled_weight, bool) or not isinstance(
        self.unlabeled_weight, numbers.Real) or not self.unlabeled_weight >= 0:
      raise ValueError(f"unlabeled_weight must be a number >= 0, got"
                       f" {self.unlabeled_weight!r}.")
    if isinstance(self.max_iter, bool) or not isinstance(
        self.max_iter, numbers.Integral) or self.max_iter < 1:
      raise ValueError(f"max_iter must be an int >= 1, got {self.max_iter!r}.")
    if not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
      raise ValueError(f"tol must be a number >= 0, got {self.tol!r}.")

  def fit(self, X, y, sample_weight=None):
    """Fits to ``X [n, D]`` and ``y [n]`` in which ``-1`` marks an unlabeled example.

    Returns:
      ``self``.
    """
    self._check_params()
    dtype = compute_dtype()
    X, y = validate_data(self, X, y, dtype=dtype, reset=True)
    labelled = ~_is_unlabeled(y)
    if not labelled.any():
      raise ValueError("y has no labelled example (every target is -1).")
    check_classification_targets(y[labelled])
    if sample_weight is not None:
      sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype)
    else:
      sample_weight = np.ones(X.shape[0], X.dtype)
    codes = np.full(X.shape[0], -1, np.int32)
    codes[labelled] = self._encode(y[labelled])
    k = len(self.classes_)
    base = self._base()
    priors = check_priors(getattr(base, "priors", None), k, dtype)
    kwargs = {} if priors is None else {"priors": to_device(priors)}
    rows = bucket_size(X.shape[0])   # padding: label -1, weight 0 (no effect)
    pad_codes = np.concatenate([codes, np.full(rows - X.shape[0], -1, np.int32)])
    res = semi_supervised_fit(
        self._model(), to_device(pad_rows(X, rows)), to_device(pad_codes),
        num_classes=k, unlabeled_weight=float(self.unlabeled_weight),
        sample_weight=to_device(pad_rows(sample_weight, rows)),
        max_iter=int(self.max_iter), tol=float(self.tol), **kwargs)
    self.params_ = res.params
    self.n_iter_ = int(res.num_iter)
    self.converged_ = bool(res.converged)
    hist = np.asarray(res.log_likelihood)
    self.log_likelihood_ = hist[:self.n_iter_ + 1]
    self.estimator_ = clone(base)
    self.estimator_.classes_ = self.classes_
    self.estimator_.n_features_in_ = self.n_features_in_
    if isinstance(res.params, GaussianNBParams):
      p = res.params
      self.estimator_.params_ = p
      self.estimator_.theta_ = np.asarray(p.means)
      self.estimator_.var_ = np.asarray(p.variances)
      self.estimator_.class_prior_ = np.exp(np.asarray(p.log_prior))
    else:
      self.estimator_._set_fitted(res.params)
    return self

  def _fit_params(self, x, y, num_classes, sample_weight):  # fit is overridden
    raise NotImplementedError


def _is_unlabeled(y: np.ndarray) -> np.ndarray:
  """``y == -1`` for numeric and object targets (string targets have none)."""
  if y.dtype.kind in "iuf":
    return y == -1
  if y.dtype.kind == "O":
    return np.array([isinstance(v, numbers.Number) and v == -1 for v in y], bool)
  return np.zeros(y.shape, bool)
