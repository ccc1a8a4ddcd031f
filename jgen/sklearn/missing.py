"""``missing="marginalize"``: the Gaussian estimators on data with NaN entries.

scikit-learn's ``GaussianNB`` and discriminant analyses refuse NaN, so users impute
first. The jgen estimators take ``missing="marginalize"`` instead: NaN marks a missing
entry, ``fit`` estimates from the observed entries
([`jgen.gaussian.fit_missing`][jgen.gaussian.fit_missing]: per feature for naive Bayes,
EM for LDA and QDA) and ``predict*`` score the exact marginal density of each example's
observed features. The default, ``missing="error"``, refuses NaN as scikit-learn does.
"""

from __future__ import annotations

import jax
import numpy as np
from scipy.special import log_softmax
from sklearn.utils.multiclass import _check_partial_fit_first_call
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight
from sklearn.utils.validation import check_is_fitted
from sklearn.utils.validation import validate_data

from jgen.gaussian.missing_fit import fit_missing
from jgen.gaussian.params import GaussianNBParams
from jgen.gaussian.params import LDAParams
from jgen.gaussian.params import QDAParams
from jgen.gaussian.scoring import lda_log_likelihood
from jgen.gaussian.scoring import nb_log_likelihood
from jgen.gaussian.scoring import nb_scores
from jgen.gaussian.scoring import qda_log_likelihood
from jgen.gaussian.scoring import qda_scores
from jgen.sklearn.base import JgenClassifier
from jgen.sklearn.base import bucket_size
from jgen.sklearn.base import check_priors
from jgen.sklearn.base import compute_dtype
from jgen.sklearn.base import to_device
from jgen.sklearn.base import pad_rows

__all__ = ["MISSING", "MarginalizeMissing"]

MISSING = ("error", "marginalize")


class MarginalizeMissing(JgenClassifier):
  """Adds ``missing="error" | "marginalize"`` to a Gaussian estimator.

  With ``"marginalize"``, ``fit`` and ``predict*`` accept NaN (a missing entry) and
  use the observed entries only; infinities are still refused.

  Examples:
    >>> import numpy as np
    >>> from jgen.sklearn import GaussianNB
    >>> X = np.array([[0.0, 1.0], [0.2, np.nan], [0.1, 1.2], [np.nan, 0.8],
    ...               [2.0, 0.1], [np.nan, 0.3], [2.2, -0.1], [1.9, np.nan]])
    >>> clf = GaussianNB(missing="marginalize").fit(X, [0, 0, 0, 0, 1, 1, 1, 1])
    >>> clf.predict([[np.nan, 1.1], [2.1, np.nan], [np.nan, np.nan]]).tolist()
    [0, 1, 0]
  """

  def _marginalize(self) -> bool:
    missing = getattr(self, "missing", "error")
    if missing not in MISSING:
      raise ValueError(f"missing must be one of {MISSING}, got {missing!r}.")
    return missing == "marginalize"

  def _validate_nan(self, X, *, reset: bool):
    return validate_data(self, X, dtype=compute_dtype(), reset=reset,
                         ensure_all_finite="allow-nan")

  def _fit_marginal(self, X, y, sample_weight):
    """``fit`` from the observed entries; sets the same attributes as ``fit``."""
    X, y = validate_data(self, X, y, dtype=compute_dtype(), ensure_all_finite="allow-nan")
    check_classification_targets(y)
    if sample_weight is not None:
      sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
    codes = self._encode(y)
    k = len(self.classes_)
    if sample_weight is None:
      sample_weight = np.ones(X.shape[0], X.dtype)
    observed = ~np.isnan(X)
    rows = bucket_size(X.shape[0])   # zero-weight padding: fewer compiled shapes
    priors = check_priors(getattr(self, "priors", None), k, X.dtype)
    res = fit_missing(self._model(), to_device(pad_rows(np.where(observed, X, 0), rows)),
                      to_device(pad_rows(codes, rows)),
                      to_device(pad_rows(observed, rows)), num_classes=k,
                      sample_weight=to_device(pad_rows(sample_weight, rows)),
                      priors=None if priors is None else to_device(priors))
    self.n_iter_ = int(res.num_iter)
    params = res.params
    if isinstance(params, GaussianNBParams):
      self.params_ = params
      self.theta_, self.var_ = np.asarray(params.means), np.asarray(params.variances)
      self.class_count_ = np.bincount(codes, weights=sample_weight, minlength=k)
      self.class_prior_ = np.exp(np.asarray(params.log_prior))
      self._observed_stats = _observed_stats(X, codes, sample_weight, k, None)
    else:
      self._set_fitted(params)
    return self

  def _partial_fit_marginal(self, X, y, classes, sample_weight):
    """``partial_fit`` of naive Bayes from observed entries: per class and feature,
    weighted counts, sums and sums of squares of the observed entries (about the first
    batch's means) add up over batches, so any split gives the one-batch fit."""
    first = _check_partial_fit_first_call(self, classes)
    if not first and "_observed_stats" not in self.__dict__:
      raise ValueError("partial_fit with missing='marginalize' cannot continue a fit"
                       " made with missing='error'.")
    X, y = validate_data(self, X, y, dtype=compute_dtype(), reset=first,
                         ensure_all_finite="allow-nan")
    k = len(self.classes_)
    known = np.isin(y, self.classes_)
    if not known.all():
      raise ValueError(f"The target label(s) {np.unique(y[~known])} in y do not exist in"
                       f" the initial classes {self.classes_}")
    codes = np.searchsorted(self.classes_, y)
    w = (np.ones(X.shape[0]) if sample_weight is None
         else _check_sample_weight(sample_weight, X, dtype=np.float64))
    old = None if first else self._observed_stats
    batch = _observed_stats(X, codes, w, k, None if old is None else old[0])
    self._observed_stats = batch if old is None else (
        old[0], *(a + b for a, b in zip(old[1:], batch[1:])))
    self._set_from_observed_stats(X.dtype)
    return self

  def _set_from_observed_stats(self, dtype) -> None:
    shift, count, n, s1, s2 = self._observed_stats
    seen = count > 0
    bad = seen[:, None] & (n <= 0)
    if bad.any():
      k, d = np.argwhere(bad)[0]
      raise ValueError(f"observed: feature {d} is never observed in class"
                       f" {self.classes_[k]!r}, so GaussianNB cannot estimate it.")
    safe = np.where(n > 0, n, 1)
    mean = s1 / safe
    var = np.maximum(s2 / safe - mean**2, 0)
    # var_smoothing times the largest feature variance over its observed entries.
    full = np.where(n > 0, shift + mean, 0)
    tot = np.maximum(n.sum(0), 1)
    grand = (n * full).sum(0) / tot
    total_var = (n * var + n * (full - grand) ** 2).sum(0) / tot
    self.epsilon_ = float(self.var_smoothing * total_var.max())
    theta = np.where(seen[:, None], full, 0)
    var = np.where(seen[:, None], var, 0) + self.epsilon_
    self.class_count_ = count
    priors = check_priors(getattr(self, "priors", None), len(count), dtype)
    self.class_prior_ = np.asarray(count / count.sum() if priors is None else priors, dtype)
    self.theta_, self.var_ = theta.astype(dtype), var.astype(dtype)
    with np.errstate(divide="ignore"):
      log_prior = np.log(self.class_prior_)
    self.params_ = GaussianNBParams(to_device(self.theta_), to_device(self.var_),
                                    to_device(log_prior))

  def fit(self, X, y, sample_weight=None):
    """Fits to ``X [n, D]`` (NaN = missing with ``missing="marginalize"``), ``y [n]``."""
    if self._marginalize():
      return self._fit_marginal(X, y, sample_weight)
    return super().fit(X, y, sample_weight=sample_weight)

  def _host_kernel(self):
    # The kernels with NumPy (xp=numpy) for inputs that fit one block (base._scores):
    # naive Bayes and QDA; LDA predicts from coef_ and intercept_ on the host anyway.
    scores = {GaussianNBParams: nb_scores, QDAParams: qda_scores}.get(
        type(getattr(self, "params_", None)))
    if scores is None:
      return None
    params = type(self.params_)(*jax.device_get(tuple(self.params_)))

    def kernel(x):
      with np.errstate(over="ignore", invalid="ignore"):   # check_scores names it
        return scores(params, x, xp=np) + params.log_prior[None, :]
    return kernel

  def _score_kernel(self):
    # The families' kernels, called on validated row blocks (base._joint).
    kernels = {GaussianNBParams: nb_log_likelihood, LDAParams: lda_log_likelihood,
               QDAParams: qda_log_likelihood}
    return kernels.get(type(getattr(self, "params_", None)))

  def _log_proba(self, X) -> np.ndarray:
    if not self._marginalize():
      return super()._log_proba(X)
    return log_softmax(self._joint(X), axis=-1)

  def _joint(self, X) -> np.ndarray:
    if not self._marginalize():
      return super()._joint(X)
    check_is_fitted(self)
    X = self._validate_nan(X, reset=False)
    observed = ~np.isnan(X)
    rows = bucket_size(X.shape[0])
    x = to_device(pad_rows(np.where(observed, X, 0), rows))
    o = to_device(pad_rows(observed, rows))
    model, params = self._model(), self.params_
    scores = model.log_likelihood(params, x, observed=o) + params.log_prior[None, :]
    return np.asarray(scores)[:X.shape[0]]

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.allow_nan = getattr(self, "missing", "error") == "marginalize"
    return tags


def _observed_stats(X, codes, w, k, shift):
  """``(shift [K, D], class counts [K], observed counts, sums and squares about shift
  [K, D])`` of the non-NaN entries, in float64; ``shift`` defaults to the class means
  of the observed entries (the feature's observed mean, or 0, where a class has none)."""
  o = ~np.isnan(X)
  x = np.where(o, X, 0).astype(np.float64)
  member = np.eye(k)[codes] * np.asarray(w, np.float64)[:, None]        # [N, K]
  wo = o.astype(np.float64)
  n = member.T @ wo
  if shift is None:
    grand = (wo * x).sum(0) / np.maximum(wo.sum(0), 1)
    shift = np.where(n > 0, (member.T @ x) / np.where(n > 0, n, 1), grand[None, :])
  r = np.where(o, x - shift[codes], 0)
  return shift, member.sum(0), n, member.T @ r, member.T @ (r * r)
