"""``missing="marginalize"``: the Gaussian estimators on data with NaN entries.

scikit-learn's ``GaussianNB`` and discriminant analyses refuse NaN, so users impute
first. The jgen estimators take ``missing="marginalize"`` instead: NaN marks a missing
entry, ``fit`` estimates from the observed entries
([`jgen.gaussian.fit_missing`][jgen.gaussian.fit_missing]: per feature for naive Bayes,
EM for LDA and QDA) and ``predict*`` score the exact marginal density of each example's
observed features. The default, ``missing="error"``, refuses NaN as scikit-learn does.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
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
from jgen.gaussian.scoring import qda_log_likelihood
from jgen.sklearn.base import JgenClassifier
from jgen.sklearn.base import bucket_size
from jgen.sklearn.base import check_priors
from jgen.sklearn.base import compute_dtype
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
    res = fit_missing(self._model(), jnp.asarray(pad_rows(np.where(observed, X, 0), rows)),
                      jnp.asarray(pad_rows(codes, rows)),
                      jnp.asarray(pad_rows(observed, rows)), num_classes=k,
                      sample_weight=jnp.asarray(pad_rows(sample_weight, rows)),
                      priors=None if priors is None else jnp.asarray(priors))
    self.n_iter_ = int(res.num_iter)
    params = res.params
    if isinstance(params, GaussianNBParams):
      self.params_ = params
      self.theta_, self.var_ = np.asarray(params.means), np.asarray(params.variances)
      self.class_count_ = np.bincount(codes, weights=sample_weight, minlength=k)
      self.class_prior_ = np.exp(np.asarray(params.log_prior))
    else:
      self._set_fitted(params)
    return self

  def fit(self, X, y, sample_weight=None):
    """Fits to ``X [n, D]`` (NaN = missing with ``missing="marginalize"``), ``y [n]``."""
    if self._marginalize():
      return self._fit_marginal(X, y, sample_weight)
    return super().fit(X, y, sample_weight=sample_weight)

  def _score_kernel(self):
    # The families' kernels, called on validated row blocks (base._joint).
    kernels = {GaussianNBParams: nb_log_likelihood, LDAParams: lda_log_likelihood,
               QDAParams: qda_log_likelihood}
    return kernels.get(type(getattr(self, "params_", None)))

  def _joint(self, X) -> np.ndarray:
    if not self._marginalize():
      return super()._joint(X)
    check_is_fitted(self)
    X = self._validate_nan(X, reset=False)
    observed = ~np.isnan(X)
    rows = bucket_size(X.shape[0])
    x = jnp.asarray(pad_rows(np.where(observed, X, 0), rows))
    o = jnp.asarray(pad_rows(observed, rows))
    model, params = self._model(), self.params_
    scores = model.log_likelihood(params, x, observed=o) + params.log_prior[None, :]
    return np.asarray(scores)[:X.shape[0]]

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.allow_nan = getattr(self, "missing", "error") == "marginalize"
    return tags
