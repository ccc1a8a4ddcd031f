"""Additive sufficient statistics of labelled data for the Gaussian families.

Public names are re-exported from [`jgen.gaussian`][jgen.gaussian].
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jgen.core import checks as _checks

_HIGHEST = lax.Precision.HIGHEST  # exact float32 matmuls on GPU/TPU (no TF32/bf16).
_SMALL = 1 << 21  # N * K * D up to which per-class second moments use one einsum


class GaussianStats(NamedTuple):
  """Additive sufficient statistics of labelled data about a fixed shift ``c``.

  Attributes:
    count: examples per class ``[K]``.
    shift_sum: ``sum_i c_{y_i}`` per class ``[K, D]`` (``count_k * c_k``).
    centered_sum: ``sum_i (x_i - c_{y_i})`` per class ``[K, D]``.
    centered_sq: ``sum_i (x_i - c)(x_i - c)^T`` restricted to what was requested:
      per class ``[K, D, D]`` (full) or ``[K, D]`` (diagonal); summed over classes
      (pooled) ``[1, D, D]`` or ``[1, D]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.2, 1.4], [2.0, 0.0], [2.4, 0.2]])
    >>> y = jnp.array([0, 0, 1, 1])
    >>> stats = jgen.gaussian.sufficient_stats(x, y, 2, full_covariance=False)
    >>> stats.count, stats.centered_sq.shape
    (Array([2., 2.], dtype=float32), (2, 2))
  """
  count: jax.Array
  shift_sum: jax.Array
  centered_sum: jax.Array
  centered_sq: jax.Array


# --------------------------------------------------------------------------- inputs


def as_features(x: ArrayLike) -> jax.Array:
  """``x`` as float32/float64 (integers converted; complex, object, float16 rejected)."""
  return _checks.as_features(x, "x")


def _check_xy(x: ArrayLike, y: ArrayLike,
              num_classes: int) -> tuple[jax.Array, jax.Array]:
  x, y = _check_xy_shapes(x, y)
  _checks.check_labels_and_values(x, y, num_classes)
  return x, y


def _check_xy_shapes(x: ArrayLike, y: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """Static checks (dtypes, ranks, sizes) of training data; values not looked at."""
  x = as_features(x)
  y = y if isinstance(y, jax.Array) else jnp.asarray(y)
  _checks.check_ndim(x, 2, "x")
  _checks.check_ndim(y, 1, "y")
  _checks.check_same_leading(x, y)
  if x.shape[0] == 0:
    raise ValueError("x must contain at least one example, got shape (0, D).")
  if x.shape[1] == 0:
    raise ValueError("x must have at least one feature, got shape (N, 0).")
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


def _stats(x, y, w, shift, num_classes, full_covariance, pooled):
  n, d = x.shape
  if w is None:
    count_int = jnp.zeros((num_classes,), jnp.int32).at[y].add(1, mode="drop")
    count = count_int.astype(x.dtype)
  else:
    # Weighted statistics: each example counts w_i times; weight 0 = absent.
    count = jnp.zeros((num_classes,), x.dtype).at[y].add(w, mode="drop")
    count_int = None
  if shift.ndim == 1:
    shift = jnp.broadcast_to(shift[None, :], (num_classes, d))
  xc = x - shift[jnp.clip(y, 0, num_classes - 1)]
  seg = lambda v: jax.ops.segment_sum(v, y, num_classes)
  shift_sum = count[:, None] * shift
  if w is None:
    centered_sum = seg(xc)
  else:
    # Each example counts w_i times: first moments take w_i (x_i - c), second
    # moments sqrt(w_i) on both factors. Rows with w_i = 0 are zeroed exactly
    # (never 0 * inf), so padding rows may hold any finite values.
    live = (w > 0)[:, None]
    centered_sum = seg(jnp.where(live, xc * w[:, None], 0))
    xc = jnp.where(live, xc * jnp.sqrt(w)[:, None], 0)
  if full_covariance and pooled:
    centered_sq = jnp.matmul(xc.T, xc, precision=_HIGHEST)[None]
  elif full_covariance and n * num_classes * d <= _SMALL:
    # Small problems: one masked contraction (K N D^2 work) compiles much faster than
    # the sorted, blocked loop and is just as fast at this size.
    # Masked with `where`, not by multiplying with a one-hot: 0 * NaN would spread a
    # non-finite example to every class.
    member = y[:, None] == jnp.arange(num_classes)[None, :]
    xk = jnp.where(member[:, :, None], xc[:, None, :], 0)           # [N, K, D]
    centered_sq = jnp.einsum("nkd,nke->kde", xk, xk, precision=_HIGHEST)
  elif full_covariance:
    if count_int is None:   # weighted: the class runs are the examples, not sum(w)
      count_int = jnp.zeros((num_classes,), jnp.int32).at[y].add(1, mode="drop")
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


_stats_jit = jax.jit(_stats, static_argnums=(4, 5, 6))


def sufficient_stats(x: ArrayLike, y: ArrayLike, num_classes: int, *,
                     full_covariance: bool = True, pooled: bool = False,
                     shift: ArrayLike | None = None,
                     weights: ArrayLike | None = None) -> GaussianStats:
  r"""Additive sufficient statistics of ``(x, y)`` for every Gaussian family.

  Moments are taken about a fixed ``shift`` ``c`` (``[D]`` or per class ``[K, D]``),
  which keeps them additive while avoiding the cancellation of raw moments: use the
  same ``shift`` (for example the mean of a first chunk) for every chunk, then add.

  $$
  n_k = \sum_{y_i=k} 1,\quad s_k = \sum_{y_i=k} (x_i - c_k),\quad
  S_k = \sum_{y_i=k} (x_i - c_k)(x_i - c_k)^\top
  $$

  Args:
    x: features ``[N, D]``.
    y: integer labels ``[N]`` in ``[0, num_classes)``.
    num_classes: static number of classes ``K >= 2``.
    full_covariance: keep full ``[D, D]`` second moments (LDA, QDA) instead of only
      their diagonals (naive Bayes).
    pooled: sum the second moments over classes (enough for LDA and pooled naive
      Bayes; ``[1, ...]`` leading axis) instead of keeping them per class.
    shift: ``[D]`` or ``[K, D]`` shift; ``None`` means zeros.
    weights: optional non-negative example weights ``[N]``: example ``i`` counts
      ``w_i`` times (``count_k`` is then the class's total weight). A weight of zero
      removes the example exactly, so padding rows with weight zero change nothing.

  Returns:
    [`GaussianStats`][jgen.gaussian.GaussianStats]; ``merge_stats(a, b)`` (or
    ``lax.psum``) combines chunks.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.2, 1.4], [2.0, 0.0], [2.4, 0.2]])
    >>> y = jnp.array([0, 0, 1, 1])
    >>> jgen.sufficient_stats(x, y, 2).centered_sq.shape  # per-class full [K, D, D]
    (2, 2, 2)
    >>> diag = jgen.sufficient_stats(x, y, 2, pooled=True, full_covariance=False)
    >>> diag.centered_sq.shape  # pooled diagonal [1, D]
    (1, 2)
    >>> w = jnp.array([1.0, 1.0, 2.0, 0.0])  # the last example is removed
    >>> jgen.sufficient_stats(x, y, 2, weights=w).count
    Array([2., 2.], dtype=float32)
  """
  num_classes = _checks.check_num_classes(num_classes)
  x, y = _check_xy(x, y, num_classes)
  shift = jnp.zeros((x.shape[1],), x.dtype) if shift is None else jnp.asarray(
      shift, x.dtype)
  _checks.check_ndim(shift, (1, 2), "shift")
  if shift.shape not in ((x.shape[1],), (num_classes, x.shape[1])):
    raise ValueError(f"shift must have shape ({x.shape[1]},) or ({num_classes},"
                     f" {x.shape[1]}), got {tuple(shift.shape)}.")
  w = _checks.check_sample_weight(weights, x.shape[0], x.dtype)
  return _stats_jit(x, y, w, shift, num_classes, bool(full_covariance), bool(pooled))


def merge_stats(a: GaussianStats, b: GaussianStats) -> GaussianStats:
  """Statistics of the union of two chunks (same ``shift``): a tree-wise sum.

  Args:
    a: [`GaussianStats`][jgen.gaussian.GaussianStats] of one chunk.
    b: [`GaussianStats`][jgen.gaussian.GaussianStats] of another chunk, taken about the
      same ``shift`` with the same ``full_covariance`` and ``pooled``.

  Returns:
    [`GaussianStats`][jgen.gaussian.GaussianStats] of both chunks together.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.2, 1.4], [2.0, 0.0], [2.4, 0.2]])
    >>> y = jnp.array([0, 0, 1, 1])
    >>> c = x[0]  # one shift for every chunk keeps the statistics additive
    >>> a = jgen.gaussian.sufficient_stats(x[:3], y[:3], 2, shift=c)
    >>> b = jgen.gaussian.sufficient_stats(x[3:], y[3:], 2, shift=c)
    >>> whole = jgen.gaussian.sufficient_stats(x, y, 2, shift=c)
    >>> merged = jgen.gaussian.merge_stats(a, b)
    >>> all(bool(jnp.allclose(u, v)) for u, v in zip(merged, whole))
    True
  """
  return jax.tree.map(jnp.add, a, b)


def check_stats(stats: GaussianStats, *, need_full: bool, need_per_class: bool,
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


def moments(stats: GaussianStats):
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


def _stats_class_shift(x, y, w, num_classes, full_covariance, pooled):
  if w is None:
    count = jnp.zeros((num_classes,), x.dtype).at[y].add(1, mode="drop")
    weigh = lambda v: v
  else:
    count = jnp.zeros((num_classes,), x.dtype).at[y].add(w, mode="drop")
    weigh = lambda v: jnp.where((w > 0)[:, None], v * w[:, None], 0)
  safe = jnp.maximum(count, jnp.finfo(x.dtype).tiny)[:, None]
  mean = jax.ops.segment_sum(weigh(x), y, num_classes) / safe
  # One correction pass (the mean of the residuals): the shift is then exact to a few
  # ulps whatever the summation order, so a constant feature has deviations of at most
  # a few ulps and the degeneracy tests in jgen.gaussian see it as constant.
  resid = weigh(x - mean[jnp.clip(y, 0, num_classes - 1)])
  mean = mean + jax.ops.segment_sum(resid, y, num_classes) / safe
  return _stats(x, y, w, mean, num_classes, full_covariance, pooled)


_stats_class_shift_jit = jax.jit(_stats_class_shift, static_argnums=(3, 4, 5))


def checked_stats(x, y, w, num_classes, full_covariance, pooled):
  """The statistics and, from the same pass over the data, the value summary that
  decides whether they may be returned (traceable: ``fit`` runs it inside one program
  with the family's parameter map, and reads back only the summary)."""
  stats = _stats_class_shift(x, y, w, num_classes, full_covariance, pooled)
  # Without weights every entry of x is added into the class sums, so counting their
  # non-finite entries finds one in x (a zero weight could hide it: count x then).
  sums = None if w is not None else (stats.shift_sum, stats.centered_sum)
  return stats, _checks.xy_summary(x, y, num_classes, sums)


def prepare_fit(x, y, num_classes, sample_weight=None):
  """The static checks of ``fit``'s inputs: ``(num_classes, x, y, w, checkable)``.

  When ``checkable`` is true the values of ``x`` and ``y`` are still to be checked,
  from ``checked_stats``'s summary (``jgen.core.checks.raise_for_xy_summary``);
  otherwise they have been checked here (or are tracers, checked as far as possible).
  """
  num_classes = _checks.check_num_classes(num_classes)
  x, y = _check_xy_shapes(x, y)
  if not jnp.issubdtype(y.dtype, jnp.integer):
    raise TypeError(f"y must have an integer dtype (class labels), got {y.dtype}.")
  checkable = _checks.values_checkable(x, y)
  if not checkable:
    _checks.check_labels_and_values(x, y, num_classes)
  w = _checks.check_sample_weight(sample_weight, x.shape[0], x.dtype)
  return num_classes, x, y, w, checkable


def class_mean_stats(x, y, w, num_classes, full_covariance, pooled) -> GaussianStats:
  """Statistics about the class means (two passes, no cancellation) of inputs that
  ``prepare_fit`` has checked; the value checks are the caller's."""
  return _stats_class_shift_jit(x, y, w, num_classes, full_covariance, pooled)


def _diag_block(acc, x, y, w, shift):
  """``acc`` plus one block's per-class weighted sums of ``x - c`` and its squares."""
  count, sums, squares, biggest = acc
  k = shift.shape[0]
  weight = jnp.where(y[:, None] == jnp.arange(k)[None, :], w[:, None], 0).astype(x.dtype)
  xc = x - shift[jnp.clip(y, 0, k - 1)]
  # [K, B] @ [B, D] matmuls: on XLA's CPU backend about 3x faster than segment sums.
  sums = sums + jnp.matmul(weight.T, xc, precision=_HIGHEST)
  squares = squares + jnp.matmul(weight.T, xc * xc, precision=_HIGHEST)
  return (count + jnp.sum(weight, axis=0), sums, squares,
          jnp.maximum(biggest, jnp.max(jnp.abs(x))))


_diag_block_jit = jax.jit(_diag_block)


def streamed_diag_stats(blocks: Iterable[tuple[ArrayLike, ArrayLike, ArrayLike]],
                        shift: ArrayLike) -> tuple[GaussianStats, jax.Array]:
  r"""Per-class diagonal statistics (naive Bayes) of data given in row blocks.

  The statistics of ``sufficient_stats(x, y, K, full_covariance=False, shift=shift,
  weights=w)`` on the concatenated blocks, computed one block at a time: each block
  (of one shape, so one compiled program serves them all) stays in cache while its
  class sums are taken as two ``[K, B] @ [B, D]`` matmuls, and no ``[N, D]``
  temporary is formed. Values are not checked here: the returned summary says
  whether they may be used (``jgen.core.checks.raise_for_value_summary``).

  A non-finite entry makes the sums of every class non-finite (the one-hot weights
  multiply it by zero), which the summary's count reports; unlike
  ``sufficient_stats`` under ``jit``, such statistics are an error, not a sentinel.

  Args:
    blocks: ``(x [B, D], y [B] int, w [B])`` triples with labels in ``[0, K)`` and
      non-negative weights (zero-weight rows, e.g. padding, change nothing).
    shift: ``[K, D]`` shift ``c`` (the same for every block).

  Returns:
    ``(stats, summary)``: [`GaussianStats`][jgen.gaussian.GaussianStats] with
    ``[K, D]`` second moments, and ``[non-finite class sums, largest |x|]``, as NumPy
    arrays (the ``[K, D]`` finish runs on the host); JAX arrays under a trace.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.2, 1.4], [2.0, 0.0], [2.4, 0.2]])
    >>> y = jnp.array([0, 0, 1, 1]); w = jnp.ones(4)
    >>> c = jnp.zeros((2, 2))
    >>> stats, summary = jgen.gaussian.streamed_diag_stats(
    ...     [(x[:2], y[:2], w[:2]), (x[2:], y[2:], w[2:])], c)
    >>> whole = jgen.gaussian.sufficient_stats(x, y, 2, full_covariance=False,
    ...                                        shift=c, weights=w)
    >>> all(bool(jnp.allclose(u, v)) for u, v in zip(stats, whole)), summary.tolist()
    (True, [0.0, 2.4000000953674316])
  """
  # NumPy zeros and shift (the compiled call's dispatch copies them) and the [K, D]
  # finish on the host: no small programs to compile on a process's first fit.
  shift = shift if isinstance(shift, jax.core.Tracer) else np.asarray(shift)
  _checks.check_ndim(shift, 2, "shift")
  k, d = shift.shape
  dtype = np.dtype(shift.dtype)
  acc = tuple(np.zeros(s, dtype) for s in ((k,), (k, d), (k, d), ()))
  for x, y, w in blocks:
    acc = _diag_block_jit(acc, x, y, w, shift)
  traced = any(isinstance(a, jax.core.Tracer) for a in (*acc, shift))
  xp = jnp if traced else np
  count, sums, squares, biggest = acc if traced else jax.device_get(acc)
  bad = xp.sum(~xp.isfinite(sums)) + xp.sum(~xp.isfinite(squares))
  stats = GaussianStats(count, count[:, None] * shift, sums, squares)
  return stats, xp.stack([bad.astype(dtype), xp.asarray(biggest, dtype)])
