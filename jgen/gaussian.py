"""Gaussian class-conditional densities: naive Bayes, LDA and QDA.

Each family is a :class:`GaussianClassifier`, a NamedTuple of three pure functions
(optax style):

* ``fit(x[N, D], y[N], *, num_classes, priors=None) -> params``
* ``fit_stats(stats, *, priors=None) -> params`` from :func:`sufficient_stats`
* ``log_likelihood(params, x[..., D]) -> [..., K]``, the exact ``log p(x | y=k)`` in nats

Sufficient statistics add with plain ``+`` (``merge_stats``, ``jax.tree.map(jnp.add,
...)``, ``lax.psum``), so data larger than memory, or sharded over devices, is fitted by
summing the statistics of its chunks.

Invalid classes. Eager calls raise ``ValueError`` for an empty class, a QDA class with
one sample, or a covariance that is not positive definite. Under ``jit`` such a class
(and, for out-of-range labels, every class) gets NaN means; :func:`log_likelihood`
returns ``-inf`` for it, never NaN. :func:`valid_classes` reports which classes are valid.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import solve_triangular
from jax.typing import ArrayLike

from jgen import _checks
from jgen import bayes

__all__ = [
    "GaussianStats",
    "GaussianNBParams",
    "LDAParams",
    "QDAParams",
    "GaussianClassifier",
    "sufficient_stats",
    "merge_stats",
    "gaussian_nb",
    "lda",
    "qda",
    "valid_classes",
]

_HIGHEST = lax.Precision.HIGHEST  # exact float32 matmuls on GPU/TPU (no TF32/bf16).
_LOG_2PI = math.log(2.0 * math.pi)


class GaussianStats(NamedTuple):
  """Additive sufficient statistics of labelled data about a fixed shift ``c``.

  Attributes:
    count: examples per class ``[K]``.
    shift_sum: ``sum_i c_{y_i}`` per class ``[K, D]`` (``count_k * c_k``).
    centered_sum: ``sum_i (x_i - c_{y_i})`` per class ``[K, D]``.
    centered_sq: ``sum_i (x_i - c)(x_i - c)^T`` restricted to what was requested:
      per class ``[K, D, D]`` (full) or ``[K, D]`` (diagonal); summed over classes
      (pooled) ``[1, D, D]`` or ``[1, D]``.
  """
  count: jax.Array
  shift_sum: jax.Array
  centered_sum: jax.Array
  centered_sq: jax.Array


class GaussianNBParams(NamedTuple):
  """Naive Bayes: ``means [K, D]``, ``variances [K, D]``, ``log_prior [K]``."""
  means: jax.Array
  variances: jax.Array
  log_prior: jax.Array


class LDAParams(NamedTuple):
  """LDA: ``means [K, D]``, ``prec_chol [D, D]``, ``log_prior [K]``.

  ``prec_chol`` is the upper-triangular ``U`` with ``Sigma^{-1} = U U^T``
  (``U = L^{-T}`` for the Cholesky factor ``L`` of the shared covariance).
  """
  means: jax.Array
  prec_chol: jax.Array
  log_prior: jax.Array


class QDAParams(NamedTuple):
  """QDA: ``means [K, D]``, per-class ``prec_chol [K, D, D]``, ``log_prior [K]``."""
  means: jax.Array
  prec_chol: jax.Array
  log_prior: jax.Array


class GaussianClassifier(NamedTuple):
  """A Gaussian model family: ``fit``, ``fit_stats`` and ``log_likelihood``."""
  fit: Callable[..., Any]
  fit_stats: Callable[..., Any]
  log_likelihood: Callable[..., jax.Array]


# --------------------------------------------------------------------------- inputs


def _as_features(x: ArrayLike, name: str = "x") -> jax.Array:
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.result_type(float))
  return x


def _check_xy(x: ArrayLike, y: ArrayLike, num_classes: int) -> tuple[jax.Array, jax.Array]:
  x, y = _as_features(x), jnp.asarray(y)
  _checks.check_ndim(x, 2, "x")
  _checks.check_ndim(y, 1, "y")
  _checks.check_labels(y, num_classes)
  _checks.check_same_leading(x, y)
  _checks.check_finite(x, "x")
  return x, y


# ----------------------------------------------------------------- sufficient stats


def _class_grams(xc: jax.Array, y: jax.Array, count: jax.Array,
                 num_classes: int) -> jax.Array:
  """Per-class ``sum_i xc_i xc_i^T`` ``[K, D, D]`` in O(N D^2) work.

  Rows are sorted by label and each class's contiguous run is accumulated in blocks of
  static size, so the cost is that of one ``[D, N] @ [N, D]`` product (plus at most one
  partial block per class) rather than ``K`` masked products.
  """
  n, d = xc.shape
  block = max(8, min(512, n // num_classes))
  order = jnp.argsort(y, stable=True)
  xs = jnp.concatenate([xc[order], jnp.zeros((block, d), xc.dtype)])
  start = jnp.cumsum(count) - count

  def gram(k):
    def body(j, acc):
      rows = lax.dynamic_slice_in_dim(xs, start[k] + j * block, block)
      keep = (j * block + jnp.arange(block)) < count[k]
      rows = jnp.where(keep[:, None], rows, 0)
      return acc + jnp.matmul(rows.T, rows, precision=_HIGHEST)
    num_blocks = (count[k] + block - 1) // block
    return lax.fori_loop(0, num_blocks, body, jnp.zeros((d, d), xc.dtype))

  return lax.map(gram, jnp.arange(num_classes))


def _stats(x, y, shift, num_classes, full_covariance, pooled):
  n, d = x.shape
  count_int = jnp.zeros((num_classes,), jnp.int32).at[y].add(1, mode="drop")
  count = count_int.astype(x.dtype)
  if shift.ndim == 1:
    shift = jnp.broadcast_to(shift[None, :], (num_classes, d))
  xc = x - shift[jnp.clip(y, 0, num_classes - 1)]
  seg = lambda v: jax.ops.segment_sum(v, y, num_classes)
  shift_sum = count[:, None] * shift
  centered_sum = seg(xc)
  if full_covariance and pooled:
    centered_sq = jnp.matmul(xc.T, xc, precision=_HIGHEST)[None]
  elif full_covariance:
    centered_sq = _class_grams(xc, y, count_int, num_classes)
  elif pooled:
    centered_sq = jnp.sum(xc * xc, axis=0)[None]
  else:
    centered_sq = seg(xc * xc)
  # Out-of-range labels (only possible under jit) poison every class: NaN means make
  # log_likelihood return -inf rather than a fit on silently dropped rows.
  bad = jnp.any((y < 0) | (y >= num_classes))
  shift_sum = jnp.where(bad, jnp.nan, shift_sum)
  return GaussianStats(count, shift_sum, centered_sum, centered_sq)


_stats_jit = jax.jit(_stats, static_argnums=(3, 4, 5))


def sufficient_stats(x: ArrayLike, y: ArrayLike, num_classes: int, *,
                     full_covariance: bool = True, pooled: bool = False,
                     shift: ArrayLike | None = None) -> GaussianStats:
  r"""Additive sufficient statistics of ``(x, y)`` for every Gaussian family.

  Moments are taken about a fixed ``shift`` ``c`` (``[D]`` or per class ``[K, D]``),
  which keeps them additive while avoiding the cancellation of raw moments: use the
  same ``shift`` (for example the mean of a first chunk) for every chunk, then add.

  .. math::
     n_k = \sum_{y_i=k} 1,\quad s_k = \sum_{y_i=k} (x_i - c_k),\quad
     S_k = \sum_{y_i=k} (x_i - c_k)(x_i - c_k)^\top

  Args:
    x: features ``[N, D]``.
    y: integer labels ``[N]`` in ``[0, num_classes)``.
    num_classes: static number of classes ``K >= 2``.
    full_covariance: keep full ``[D, D]`` second moments (LDA, QDA) instead of only
      their diagonals (naive Bayes).
    pooled: sum the second moments over classes (enough for LDA and pooled naive
      Bayes; ``[1, ...]`` leading axis) instead of keeping them per class.
    shift: ``[D]`` or ``[K, D]`` shift; ``None`` means zeros.

  Returns:
    :class:`GaussianStats`; ``merge_stats(a, b)`` (or ``lax.psum``) combines chunks.
  """
  num_classes = _checks.check_num_classes(num_classes)
  x, y = _check_xy(x, y, num_classes)
  shift = jnp.zeros((x.shape[1],), x.dtype) if shift is None else jnp.asarray(
      shift, x.dtype)
  _checks.check_ndim(shift, (1, 2), "shift")
  if shift.shape not in ((x.shape[1],), (num_classes, x.shape[1])):
    raise ValueError(f"shift must have shape ({x.shape[1]},) or ({num_classes},"
                     f" {x.shape[1]}), got {tuple(shift.shape)}.")
  return _stats_jit(x, y, shift, num_classes, bool(full_covariance), bool(pooled))


def merge_stats(a: GaussianStats, b: GaussianStats) -> GaussianStats:
  """Statistics of the union of two chunks (same ``shift``): a tree-wise sum."""
  return jax.tree.map(jnp.add, a, b)


def _check_stats(stats: GaussianStats, *, need_full: bool, need_per_class: bool,
                 family: str) -> tuple[int, int]:
  if not isinstance(stats, GaussianStats):
    raise TypeError(f"stats must be a GaussianStats, got {type(stats).__name__}.")
  _checks.check_ndim(stats.count, 1, "stats.count")
  k = _checks.check_num_classes(stats.count.shape[0], "stats.count.shape[0]")
  d = stats.shift_sum.shape[-1]
  sq = stats.centered_sq
  full, per_class = sq.ndim == 3, sq.shape[0] == k
  if sq.ndim not in (2, 3) or sq.shape[0] not in (1, k) or sq.shape[-1] != d:
    raise ValueError(f"stats.centered_sq has shape {tuple(sq.shape)}, expected"
                     f" ({k}|1, {d}) or ({k}|1, {d}, {d}).")
  if need_full and not full:
    raise ValueError(f"{family} needs full-covariance statistics"
                     " (sufficient_stats(..., full_covariance=True)).")
  if need_per_class and not per_class:
    raise ValueError(f"{family} needs per-class statistics"
                     " (sufficient_stats(..., pooled=False)).")
  return k, d


def _moments(stats: GaussianStats):
  """Class means ``[K, D]`` and central scatter (per class or pooled, diag or full)."""
  n = stats.count
  safe = jnp.where(n > 0, n, 1)[:, None]
  dev = stats.centered_sum / safe          # mean_k - c_k
  means = stats.shift_sum / safe + dev
  sq = stats.centered_sq
  if sq.ndim == 3:
    corr = n[:, None, None] * dev[:, :, None] * dev[:, None, :]
  else:
    corr = n[:, None] * dev * dev
  pooled = sq.shape[0] == 1
  return means, sq - (jnp.sum(corr, axis=0, keepdims=True) if pooled else corr)


def _log_prior(stats: GaussianStats, priors, num_classes: int) -> jax.Array:
  if priors is None:
    n = stats.count
    return jnp.log(n) - jnp.log(jnp.sum(n))
  priors = jnp.asarray(priors)
  _checks.check_float(priors, "priors")
  if _checks.is_concrete(priors) and np.any(np.asarray(priors) < 0):
    raise ValueError(f"priors must be non-negative probabilities, got {priors}.")
  return bayes.validate_log_prior(jnp.log(priors.astype(stats.count.dtype)),
                                  num_classes)


def _mask_invalid(means: jax.Array, valid: jax.Array) -> jax.Array:
  return jnp.where(valid[:, None], means, jnp.nan)


def _raise_if_invalid(stats: GaussianStats, params, min_count: int, family: str,
                      remedy: str) -> None:
  """Eager counterpart of the -inf sentinel: name the first bad class and why."""
  if not (_checks.is_concrete(stats.count) and _checks.is_concrete(params.means)):
    return
  count = np.asarray(stats.count)
  for k, c in enumerate(count):
    if c < min_count:
      what = "no samples" if c == 0 else f"{int(c)} sample(s)"
      raise ValueError(f"y: class {k} has {what}; {family} needs at least {min_count}"
                       f" per class (num_classes={count.shape[0]}).")
  ok = np.asarray(valid_classes(params))
  if not ok.all():
    k = int(np.argmin(ok))
    if isinstance(params, LDAParams):
      what = "the pooled within-class covariance is not positive definite"
    elif isinstance(params, GaussianNBParams):
      what = f"class {k} has a zero (or non-finite) variance"
    else:
      what = f"the covariance of class {k} is not positive definite"
    raise ValueError(f"{family}: {what} (constant or collinear features in x, or"
                     f" non-finite statistics); {remedy}.")


# ---------------------------------------------------------------------- validity


def valid_classes(params: GaussianNBParams | LDAParams | QDAParams) -> jax.Array:
  """``[K]`` bool: classes whose fitted parameters define a proper density.

  Invalid classes (empty, degenerate covariance, or fitted under ``jit`` from bad
  labels) score ``-inf`` in ``log_likelihood``.
  """
  finite_means = jnp.all(jnp.isfinite(params.means), axis=-1)
  if isinstance(params, GaussianNBParams):
    v = params.variances
    return finite_means & jnp.all(jnp.isfinite(v) & (v > 0), axis=-1)
  return finite_means & _chol_ok(params.prec_chol)  # [] for LDA (broadcasts), [K] QDA


def _chol_ok(u: jax.Array) -> jax.Array:
  """Finite triangular factor(s) ``[..., D, D]`` with a positive diagonal."""
  diag = jnp.diagonal(u, axis1=-2, axis2=-1)
  return jnp.all(jnp.isfinite(u), axis=(-2, -1)) & jnp.all(diag > 0, axis=-1)


def _prepare_x(params, x: ArrayLike) -> tuple[jax.Array, tuple[int, ...]]:
  x = _as_features(x)
  _checks.check_min_ndim(x, 1, "x")
  d = params.means.shape[-1]
  _checks.check_last_dim(x, d, "x", "the number of features the model was fitted on")
  _checks.check_finite(x, "x")
  return x.reshape(-1, d).astype(params.means.dtype), x.shape[:-1]


def _centre(means: jax.Array, valid: jax.Array) -> jax.Array:
  """Mean of the valid class means ``[D]``: scoring around it avoids cancellation."""
  w = valid.astype(means.dtype)
  total = jnp.sum(jnp.where(valid[:, None], means, 0), axis=0)
  return total / jnp.maximum(jnp.sum(w), 1)


# ------------------------------------------------------------------- naive Bayes


def _nb_core(stats: GaussianStats, log_prior: jax.Array, var_smoothing: float,
             pooled: bool) -> GaussianNBParams:
  means, scatter = _moments(stats)
  if scatter.ndim == 3:
    scatter = jnp.diagonal(scatter, axis1=-2, axis2=-1)
  n = stats.count
  total = jnp.sum(n)
  within = jnp.sum(scatter, axis=0)                                   # [D]
  if pooled:
    # Zheng et al. (2023): one diagonal variance for all classes, the pooled
    # within-class MLE sum_k pi_k var_k (ddof 0), plus an absolute epsilon.
    var = jnp.broadcast_to((within / total + var_smoothing)[None, :], means.shape)
  else:
    # scikit-learn GaussianNB: per-class MLE variances plus var_smoothing times the
    # largest per-feature variance of all of x (ddof 0) = (within + between) / N.
    # Classes with non-finite statistics (NaN data under jit) are left out here so
    # that only they, not every class, become invalid.
    ok = jnp.all(jnp.isfinite(means) & jnp.isfinite(scatter), axis=1)
    w = jnp.where(ok, n, 0)
    means_ok = jnp.where(ok[:, None], means, 0)
    total_ok = jnp.sum(w)
    grand = jnp.sum(w[:, None] * means_ok, axis=0) / total_ok
    between = jnp.sum(w[:, None] * (means_ok - grand[None, :]) ** 2, axis=0)
    within_ok = jnp.sum(jnp.where(ok[:, None], scatter, 0), axis=0)
    eps = var_smoothing * jnp.max((within_ok + between) / total_ok)
    # Rounding can leave -1e-17 where a feature is constant within a class.
    var = jnp.maximum(scatter / jnp.where(n > 0, n, 1)[:, None], 0) + eps
  return GaussianNBParams(_mask_invalid(means, n >= 1), var, log_prior)


def _nb_log_likelihood(params: GaussianNBParams, x: jax.Array) -> jax.Array:
  valid = valid_classes(params)
  means = jnp.where(valid[:, None], params.means, 0)
  var = jnp.where(valid[:, None], params.variances, 1)
  prec = 1.0 / var
  # Centre each feature at the precision-weighted mean of the class means: classes
  # with tiny variances (constant pixels) then sit near the origin, which keeps the
  # cancellation in the expansion below small in float32.
  wp = jnp.where(valid[:, None], prec, 0)
  c = jnp.sum(wp * means, axis=0) / jnp.maximum(jnp.sum(wp, axis=0), jnp.finfo(x.dtype).tiny)
  mc, xc = means - c[None, :], x - c[None, :]
  # (x - m)^2 / v = x^2 / v - 2 x m / v + m^2 / v: one [M, 2D] @ [2D, K] matmul.
  w = jnp.concatenate([-0.5 * prec, mc * prec], axis=1)              # [K, 2D]
  b = -0.5 * jnp.sum(mc * mc * prec + jnp.log(var) + _LOG_2PI, axis=1)
  feats = jnp.concatenate([xc * xc, xc], axis=1)                      # [M, 2D]
  ll = jnp.matmul(feats, w.T, precision=_HIGHEST) + b[None, :]
  return jnp.where(valid[None, :], ll, -jnp.inf)


def gaussian_nb(var_smoothing: float = 1e-9, pooled: bool = False) -> GaussianClassifier:
  r"""Gaussian naive Bayes: ``p(x | y=k) = prod_d N(x_d; mu_kd, v_kd)``.

  Two variants:

  * ``pooled=False`` (scikit-learn ``GaussianNB``): per-class MLE variances
    ``v_kd`` (ddof 0) plus ``var_smoothing * max_d Var(x_d)``, the largest per-feature
    variance of all training data.
  * ``pooled=True`` (Zheng et al., 2023): one diagonal variance for all classes, the
    pooled within-class MLE ``v_d = sum_k pi_k v_kd`` (``pi_k`` the class frequencies),
    plus ``var_smoothing`` as an *absolute* epsilon. The model is linear in ``x``.

  Args:
    var_smoothing: ``>= 0``; relative (``pooled=False``) or absolute (``pooled=True``).
    pooled: share one diagonal variance across classes.

  Returns:
    A :class:`GaussianClassifier` with :class:`GaussianNBParams`.

  Example:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> nb = jgen.gaussian_nb()
    >>> params = nb.fit(x, y, num_classes=2)
    >>> jgen.predict(nb.log_likelihood(params, jnp.array([[0.1], [2.1]])), params.log_prior)
    Array([0, 1], dtype=int32)

  References:
    Zheng, Xu, Zhang, Sun, Lu. Revisiting Discriminative vs. Generative Classifiers:
    Theory and Implications. ICML 2023.
  """
  if not var_smoothing >= 0:
    raise ValueError(f"var_smoothing must be >= 0, got {var_smoothing!r}.")
  var_smoothing, pooled = float(var_smoothing), bool(pooled)
  family = f"gaussian_nb(pooled={pooled})"
  core = _nb_core_jit

  def fit_stats(stats: GaussianStats, *, priors: ArrayLike | None = None):
    k, _ = _check_stats(stats, need_full=False, need_per_class=not pooled,
                        family=family)
    params = core(stats, _log_prior(stats, priors, k), var_smoothing, pooled)
    _raise_if_invalid(stats, params, 1, family, "use var_smoothing > 0")
    return params

  def fit(x: ArrayLike, y: ArrayLike, *, num_classes: int,
          priors: ArrayLike | None = None) -> GaussianNBParams:
    return fit_stats(_fit_stats_of(x, y, num_classes, False, pooled), priors=priors)

  def log_likelihood(params: GaussianNBParams, x: ArrayLike) -> jax.Array:
    _check_params(params, GaussianNBParams)
    x2, lead = _prepare_x(params, x)
    return _nb_ll_jit(params, x2).reshape(lead + params.log_prior.shape)

  return GaussianClassifier(fit, fit_stats, log_likelihood)


# Hyperparameters are traced scalars: one compilation serves every setting.
_nb_core_jit = jax.jit(_nb_core, static_argnums=(3,))
_nb_ll_jit = jax.jit(_nb_log_likelihood)


# ------------------------------------------------------------------------ LDA / QDA


def _prec_chol(cov: jax.Array) -> jax.Array:
  """Upper-triangular ``U = L^{-T}`` with ``cov^{-1} = U U^T``; NaN if not PD."""
  chol = jnp.linalg.cholesky(cov)
  eye = jnp.eye(cov.shape[-1], dtype=cov.dtype)
  return solve_triangular(chol, eye, lower=True).T


def _lda_core(stats: GaussianStats, log_prior: jax.Array,
              shrinkage: float) -> LDAParams:
  means, scatter = _moments(stats)
  d = means.shape[-1]
  cov = jnp.sum(scatter, axis=0) / jnp.sum(stats.count)
  # scikit-learn's shrunk_covariance: (1 - s) C + s tr(C)/D I (linear, so shrinking
  # each class covariance and pooling, as scikit-learn does, gives the same matrix).
  mu = jnp.trace(cov) / d
  cov = (1.0 - shrinkage) * cov + shrinkage * mu * jnp.eye(d, dtype=cov.dtype)
  return LDAParams(_mask_invalid(means, stats.count >= 1), _prec_chol(cov), log_prior)


def _qda_core(stats: GaussianStats, log_prior: jax.Array, reg_param: float) -> QDAParams:
  means, scatter = _moments(stats)
  n = stats.count
  d = means.shape[-1]
  cov = scatter / jnp.where(n > 0, n, 1)[:, None, None]
  # scikit-learn QuadraticDiscriminantAnalysis: (1 - r) S^2 / n_k + r on the singular
  # values of the centred class data, i.e. (1 - r) C_k + r I with C_k the MLE (ddof 0).
  cov = (1.0 - reg_param) * cov + reg_param * jnp.eye(d, dtype=cov.dtype)[None]
  return QDAParams(_mask_invalid(means, n >= 2), jax.vmap(_prec_chol)(cov), log_prior)


def _lda_log_likelihood(params: LDAParams, x: jax.Array) -> jax.Array:
  valid = valid_classes(params)
  eye = jnp.eye(x.shape[1], dtype=x.dtype)
  u = jnp.where(_chol_ok(params.prec_chol), params.prec_chol, eye)
  means = jnp.where(valid[:, None], params.means, 0)
  c = _centre(means, valid)
  z = jnp.matmul(x - c[None, :], u, precision=_HIGHEST)               # [M, D]
  m = jnp.matmul(means - c[None, :], u, precision=_HIGHEST)           # [K, D]
  cross = jnp.matmul(z, m.T, precision=_HIGHEST)                      # [M, K]
  maha = jnp.sum(z * z, axis=1)[:, None] - 2.0 * cross + jnp.sum(m * m, axis=1)[None]
  half_logdet_prec = jnp.sum(jnp.log(jnp.diagonal(u)))
  ll = -0.5 * maha + half_logdet_prec - 0.5 * x.shape[1] * _LOG_2PI
  return jnp.where(valid[None, :], ll, -jnp.inf)


def _qda_log_likelihood(params: QDAParams, x: jax.Array) -> jax.Array:
  valid = valid_classes(params)
  d = x.shape[1]
  eye = jnp.eye(d, dtype=x.dtype)
  u = jnp.where(valid[:, None, None], params.prec_chol, eye[None])
  means = jnp.where(valid[:, None], params.means, 0)

  # One class at a time keeps memory at [M, D]; each step is one [M, D] @ [D, D]
  # matmul, which on CPU runs ~3x faster than a triangular solve with the factor.
  def maha(args):
    u_k, mu_k = args
    z = jnp.matmul(x - mu_k[None, :], u_k, precision=_HIGHEST)
    return jnp.sum(z * z, axis=1)

  sq = lax.map(maha, (u, means)).T                                    # [M, K]
  half_logdet_prec = jnp.sum(jnp.log(jnp.diagonal(u, axis1=1, axis2=2)), axis=1)
  ll = -0.5 * sq + half_logdet_prec[None, :] - 0.5 * d * _LOG_2PI
  return jnp.where(valid[None, :], ll, -jnp.inf)


_lda_core_jit = jax.jit(_lda_core)
_qda_core_jit = jax.jit(_qda_core)
_lda_ll_jit = jax.jit(_lda_log_likelihood)
_qda_ll_jit = jax.jit(_qda_log_likelihood)


def lda(shrinkage: float = 0.0) -> GaussianClassifier:
  r"""Linear discriminant analysis: ``p(x | y=k) = N(x; mu_k, Sigma)``, shared ``Sigma``.

  ``Sigma`` is the pooled within-class MLE covariance ``sum_k pi_k C_k`` (ddof 0),
  shrunk toward the scaled identity, ``(1 - s) Sigma + s tr(Sigma)/D I``: the model of
  scikit-learn's ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage=s)``. Scoring
  whitens with the inverse Cholesky factor and expands the squared distance into one
  ``[M, D] @ [D, K]`` matmul.

  Args:
    shrinkage: ``s`` in ``[0, 1]``.

  Returns:
    A :class:`GaussianClassifier` with :class:`LDAParams`.
  """
  if not 0.0 <= shrinkage <= 1.0:
    raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage!r}.")
  return _full_family(_lda_core_jit, float(shrinkage), LDAParams, _lda_ll_jit,
                      pooled=True, min_count=1, family=f"lda(shrinkage={shrinkage})",
                      remedy="use shrinkage > 0")


def qda(reg_param: float = 0.0) -> GaussianClassifier:
  r"""Quadratic discriminant analysis: ``p(x | y=k) = N(x; mu_k, Sigma_k)``.

  ``Sigma_k = (1 - r) C_k + r I`` with ``C_k`` the class MLE covariance (ddof 0): the
  model of scikit-learn's ``QuadraticDiscriminantAnalysis(reg_param=r)``. Every class
  needs at least two samples.

  Args:
    reg_param: ``r`` in ``[0, 1]``.

  Returns:
    A :class:`GaussianClassifier` with :class:`QDAParams`.
  """
  if not 0.0 <= reg_param <= 1.0:
    raise ValueError(f"reg_param must lie in [0, 1], got {reg_param!r}.")
  return _full_family(_qda_core_jit, float(reg_param), QDAParams, _qda_ll_jit,
                      pooled=False, min_count=2, family=f"qda(reg_param={reg_param})",
                      remedy="use reg_param > 0")


def _full_family(core, reg, params_type, ll_jit, *, pooled, min_count, family,
                 remedy) -> GaussianClassifier:

  def fit_stats(stats: GaussianStats, *, priors: ArrayLike | None = None):
    k, _ = _check_stats(stats, need_full=True, need_per_class=not pooled, family=family)
    params = core(stats, _log_prior(stats, priors, k), reg)
    _raise_if_invalid(stats, params, min_count, family, remedy)
    return params

  def fit(x: ArrayLike, y: ArrayLike, *, num_classes: int,
          priors: ArrayLike | None = None):
    return fit_stats(_fit_stats_of(x, y, num_classes, True, pooled), priors=priors)

  def log_likelihood(params, x: ArrayLike) -> jax.Array:
    _check_params(params, params_type)
    x2, lead = _prepare_x(params, x)
    return ll_jit(params, x2).reshape(lead + params.log_prior.shape)

  return GaussianClassifier(fit, fit_stats, log_likelihood)


# ----------------------------------------------------------------------- helpers


def _stats_class_shift(x, y, num_classes, full_covariance, pooled):
  count = jnp.zeros((num_classes,), x.dtype).at[y].add(1, mode="drop")
  mean = jax.ops.segment_sum(x, y, num_classes) / jnp.maximum(count, 1)[:, None]
  return _stats(x, y, mean, num_classes, full_covariance, pooled)


_stats_class_shift_jit = jax.jit(_stats_class_shift, static_argnums=(2, 3, 4))


def _fit_stats_of(x, y, num_classes, full_covariance, pooled) -> GaussianStats:
  """Statistics about the class means (two passes, no cancellation) for ``fit``."""
  num_classes = _checks.check_num_classes(num_classes)
  x, y = _check_xy(x, y, num_classes)
  return _stats_class_shift_jit(x, y, num_classes, full_covariance, pooled)


def _check_params(params: Any, params_type: type) -> None:
  if not isinstance(params, params_type):
    raise TypeError(f"params must be {params_type.__name__} (from this family's fit),"
                    f" got {type(params).__name__}.")
