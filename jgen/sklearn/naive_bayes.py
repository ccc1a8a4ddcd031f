"""``GaussianNB``: scikit-learn's Gaussian naive Bayes estimator computed by jgen.

``fit`` and ``partial_fit`` both accumulate additive sufficient statistics
([`jgen.gaussian.sufficient_stats`][jgen.sufficient_stats] with ``weights=``, summed as
[`jgen.gaussian.merge_stats`][jgen.gaussian.merge_stats] sums them) and fit the
parameters from them by the parameter map of
[`jgen.gaussian.fit_stats`][jgen.gaussian.fit_stats] (in float64 on the host: ``[K, D]``
work, no program to compile), so any sequence of
``partial_fit`` calls gives the model ``fit`` gives on the concatenated data, including
``var_smoothing``'s scale ``epsilon_``, which is the largest feature variance of *all*
data seen (scikit-learn uses the last batch's).
"""

from __future__ import annotations

from numbers import Real

import jax
import numpy as np
from sklearn.utils._param_validation import Interval
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import _check_partial_fit_first_call

from jgen.core.checks import raise_for_value_summary
from jgen.gaussian.families import gaussian_nb
from jgen.gaussian.params import GaussianNBParams
from jgen.gaussian.params import valid_classes
from jgen.gaussian.stats import GaussianStats
from jgen.gaussian.stats import streamed_diag_stats
from jgen.sklearn.base import host_bytes
from jgen.sklearn.base import block_rows
from jgen.sklearn.base import check_priors
from jgen.sklearn.base import compute_dtype
from jgen.sklearn.base import row_blocks
from jgen.sklearn.missing import MarginalizeMissing

__all__ = ["GaussianNB"]


def _host_diag_stats(x, codes, w, shift) -> tuple[GaussianStats, np.ndarray]:
  """``streamed_diag_stats`` of one small batch with NumPy: per-class weighted sums
  of ``x - c`` and their squares (accumulated in float64, stored in ``shift``'s
  dtype), and ``[non-finite sums, largest |x|]``."""
  k = shift.shape[0]
  member = (codes[:, None] == np.arange(k)[None, :]) * np.asarray(w, np.float64)[:, None]
  xc = x.astype(np.float64) - shift[codes]
  with np.errstate(over="ignore", invalid="ignore"):   # overflow: the summary says
    count, sums, squares = member.sum(0), member.T @ xc, member.T @ (xc * xc)
  bad = np.count_nonzero(~np.isfinite(sums)) + np.count_nonzero(~np.isfinite(squares))
  dt = shift.dtype
  stats = GaussianStats(*(a.astype(dt) for a in (count, count[:, None] * shift, sums,
                                                squares)))
  return stats, np.array([bad, np.max(np.abs(x), initial=0.0)], np.float64)


def _moments(stats: GaussianStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """NumPy float64 ``(count [K], means [K, D], within scatter [K, D])``."""
  n = np.asarray(stats.count, np.float64)
  s = np.asarray(stats.centered_sum, np.float64)
  safe = np.where(n > 0, n, 1)[:, None]
  means = (np.asarray(stats.shift_sum, np.float64) + s) / safe
  scatter = np.asarray(stats.centered_sq, np.float64) - s * s / safe
  return n, means, scatter


class GaussianNB(MarginalizeMissing):
  """Gaussian naive Bayes (scikit-learn's ``GaussianNB``), fitted by jgen.

  Same parameters, attributes and methods as ``sklearn.naive_bayes.GaussianNB``;
  the model is [`jgen.gaussian_nb`][jgen.gaussian_nb] (per-class MLE variances plus
  ``var_smoothing * max_d Var(x_d)``).

  Args:
    priors: class prior probabilities ``[K]``; ``None`` uses the (weighted) class
      frequencies.
    var_smoothing: fraction of the largest feature variance added to every variance.
    missing: ``"error"`` refuses NaN (scikit-learn's behaviour); ``"marginalize"``
      treats NaN as a missing entry: each feature is fitted from the examples that
      observe it, and predictions use the observed features only
      (``jgen.sklearn.MarginalizeMissing``); ``partial_fit`` adds batches with NaN.

  Attributes:
    classes_: the labels ``[K]``, sorted.
    class_count_: (weighted) examples per class ``[K]``.
    class_prior_: ``[K]``.
    theta_: class means ``[K, D]``.
    var_: class variances ``[K, D]``.
    epsilon_: the variance added to every ``var_`` entry.
    n_features_in_: ``D``.
    params_: the jgen [`GaussianNBParams`][jgen.gaussian.GaussianNBParams].

  Examples:
    >>> import numpy as np
    >>> from jgen.sklearn import GaussianNB
    >>> X = np.array([[0.0], [0.2], [2.0], [2.4]]); y = np.array(["a", "a", "b", "b"])
    >>> GaussianNB().fit(X, y).predict([[0.1], [2.1]]).tolist()
    ['a', 'b']
  """

  _parameter_constraints: dict = {
      "priors": ["array-like", None],
      "var_smoothing": [Interval(Real, 0, None, closed="left")],
      "missing": [StrOptions({"error", "marginalize"})],
  }

  def __init__(self, *, priors=None, var_smoothing: float = 1e-9, missing: str = "error"):
    self.priors = priors
    self.var_smoothing = var_smoothing
    self.missing = missing

  def _model(self):
    return gaussian_nb(var_smoothing=self.var_smoothing)

  def fit(self, X, y, sample_weight=None):
    """Fits to ``X [n, D]``, ``y [n]`` (optionally weighted); returns ``self``."""
    self._validate_params()
    if self._marginalize():
      return self._fit_marginal(X, y, sample_weight)
    X, y, sample_weight = self._validate_fit(X, y, sample_weight)
    for name in ("classes_", "_stats"):
      self.__dict__.pop(name, None)
    classes = np.unique(y)
    if len(classes) < 2:
      self._encode(y)   # raises scikit-learn's one-class error
    return self._partial(X, y, classes, sample_weight, first=True)

  def partial_fit(self, X, y, classes=None, sample_weight=None):
    """Adds a batch; ``classes`` (every label that can occur) on the first call.

    Returns:
      ``self``, fitted on all batches seen so far.
    """
    self._validate_params()
    if self._marginalize():
      return self._partial_fit_marginal(X, y, classes, sample_weight)
    if hasattr(self, "classes_") and "_stats" not in self.__dict__:
      raise ValueError("partial_fit with missing='error' cannot continue a fit made"
                       " with missing='marginalize'.")
    first = _check_partial_fit_first_call(self, classes)
    X, y, sample_weight = self._validate_fit(X, y, sample_weight, reset=first)
    if first:
      self.__dict__.pop("_stats", None)
    return self._partial(X, y, self.classes_, sample_weight, first=first)

  def _partial(self, X, y, classes, sample_weight, *, first: bool):
    classes = np.asarray(classes)
    if len(classes) < 2:
      raise ValueError(f"GaussianNB needs at least 2 classes, got 1 class: {classes!r}.")
    known = np.isin(y, classes)
    if not known.all():
      raise ValueError(f"The target label(s) {np.unique(y[~known])} in y do not exist in"
                       f" the initial classes {classes}")
    self.classes_ = classes
    codes = np.searchsorted(classes, y).astype(np.int32)
    rows = block_rows(X.shape[0], X.shape[1] * X.dtype.itemsize)
    if first:
      # One shift for every batch keeps the statistics additive; the class means of
      # the first block of the first batch (its overall mean for classes it lacks)
      # avoid cancellation: they are within a sampling error of the class means.
      k, head, head_codes = len(classes), X[:rows], codes[:rows]
      shift = np.broadcast_to(head.mean(axis=0), (k, X.shape[1])).copy()
      for c in np.unique(head_codes):
        shift[c] = head[head_codes == c].mean(axis=0)
      self._shift = shift
    if sample_weight is None:
      sample_weight = np.ones(X.shape[0], X.dtype)
    if X.nbytes <= host_bytes():
      # Small data: the same sums with NumPy (float64), nothing to compile.
      batch, summary = _host_diag_stats(X, codes, sample_weight, self._shift)
    else:
      # Row blocks of one shape (zero-weight padding in the last): one compiled
      # program for every fold and batch size, and each block's temporaries stay in
      # cache. NumPy blocks go straight to the compiled call (its dispatch copies
      # them). One transfer brings back the statistics and their value summary.
      blocks = zip(*(row_blocks(a, rows) for a in (X, codes, sample_weight)))
      batch, summary = jax.device_get(streamed_diag_stats(blocks, self._shift))
    bad, biggest = (float(v) for v in summary)
    raise_for_value_summary(int(bad), biggest, X, "x")
    self._stats = batch if first else GaussianStats(
        *(np.add(u, v) for u, v in zip(jax.device_get(self._stats), batch)))
    self._refit()
    return self

  def _refit(self) -> None:
    # [K, D] host work in float64 from the statistics (no program to compile): the
    # parameter map of jgen.gaussian_nb, i.e. fit_stats, written for NumPy.
    stats, k = jax.device_get(self._stats), len(self.classes_)
    dtype = compute_dtype()
    priors = check_priors(self.priors, k, dtype)
    n, means, scatter = _moments(stats)
    seen = np.flatnonzero(n > 0)
    if len(seen) == 0:
      raise ValueError("GaussianNB: every sample has zero weight.")
    grand = (n @ means) / n.sum()
    total_var = (scatter.sum(0) + n @ (means - grand) ** 2) / n.sum()
    self.epsilon_ = float(self.var_smoothing * total_var.max())
    # Classes not seen yet (partial_fit) get prior 0, mean 0 and variance epsilon_.
    theta = np.zeros(means.shape, dtype)
    var = np.full(means.shape, self.epsilon_, dtype)
    theta[seen] = means[seen]
    # Rounding can leave -1e-17 where a feature is constant within a class.
    var[seen] = np.maximum(scatter[seen] / n[seen, None], 0) + self.epsilon_
    # The family's decision (each variance resolvable against its squared mean).
    ok = valid_classes(GaussianNBParams(theta, var, np.zeros(k, dtype)), xp=np)
    if not ok[seen].all():
      bad = seen[np.argmin(ok[seen])]
      raise ValueError(f"gaussian_nb(pooled=False): class {self.classes_[bad].tolist()!r} has a"
                       " zero (or non-finite) variance (constant features in x); use"
                       " var_smoothing > 0.")
    self.class_count_ = np.asarray(stats.count)
    if priors is None:
      priors = self.class_count_ / self.class_count_.sum()
    self.class_prior_ = np.asarray(priors, dtype)
    self.theta_, self.var_ = theta, var
    with np.errstate(divide="ignore"):
      log_prior = np.log(self.class_prior_)
    self.params_ = GaussianNBParams(*jax.device_put((theta, var, log_prior)))

  def predict_joint_log_proba(self, X) -> np.ndarray:
    """Joint log-probabilities ``log p(x, y=k)`` ``[n_samples, K]`` (columns follow
    ``classes_``).

    Examples:
      >>> import numpy as np
      >>> from jgen.sklearn import GaussianNB
      >>> X = np.array([[0.0], [0.2], [2.0], [2.4]])
      >>> clf = GaussianNB().fit(X, [0, 0, 1, 1])
      >>> clf.predict_joint_log_proba([[0.1]]).shape
      (1, 2)
    """
    return self._joint(X)

  def _fit_params(self, x, y, num_classes, sample_weight):  # fit is overridden
    raise NotImplementedError
