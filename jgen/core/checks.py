"""Input validation shared by every public entry point.

Static properties (rank, shape, dtype, ``num_classes``) are always checked. Value
properties (labels in range, finite features) can only be checked on concrete arrays,
so they run eagerly and are skipped under ``jit``/``vmap`` tracing; jitted callers get
documented sentinels instead of errors (see each function's docstring).
"""

from __future__ import annotations

import contextvars
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

# Checks of scalar arguments and of arrays' types live in jgen.core.arguments; they
# are re-exported here so that every check is reachable as jgen.core.checks.<name>.
from jgen.core.arguments import as_array  # noqa: F401
from jgen.core.arguments import as_features  # noqa: F401
from jgen.core.arguments import check_int  # noqa: F401
from jgen.core.arguments import check_key  # noqa: F401
from jgen.core.arguments import check_number  # noqa: F401
# Non-finite counts live in jgen.core.finite, re-exported here likewise.
from jgen.core.finite import count_nonfinite  # noqa: F401
from jgen.core.finite import max_finite_abs  # noqa: F401
from jgen.core.finite import screen_nonfinite  # noqa: F401
from jgen.core.finite import value_screen
from jgen.core.finite import value_summary

# True while a function is being traced by jgen.checked: value checks that cannot run
# on tracers are then staged as checkify checks instead of being skipped.
_STAGE_CHECKS = contextvars.ContextVar("jgen_stage_checks", default=False)


def staged_check(ok: jax.Array, message: str) -> None:
  """Under [`checked`][jgen.checked], a run-time check of the traced predicate ``ok``."""
  if _STAGE_CHECKS.get():
    checkify.check(jnp.all(ok), message)


def checked(fn: Callable[..., Any]) -> Callable[..., Any]:
  """``fn`` compiled with its input checks kept: the eager errors, under ``jit``.

  Inside ``jit`` jgen cannot raise on values (only shapes and dtypes are known), so
  its value checks (finite features, labels in range, non-negative weights, a positive
  temperature) return documented sentinels instead. ``checked(fn)`` traces ``fn``
  with those checks staged through ``jax.experimental.checkify`` and compiles it;
  calling the result raises ``ValueError`` with the eager message when a check fails.
  Bind static arguments (``num_classes``) with a closure or ``functools.partial``.

  Args:
    fn: a function of arrays that calls jgen.

  Returns:
    A jitted function with ``fn``'s signature that raises ``ValueError`` on bad values.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> fit = jgen.checked(lambda x, y: jgen.qda(0.1).fit(x, y, num_classes=2))
    >>> x = jnp.array([[0.0], [0.5], [2.0], [2.5]])
    >>> fit(x, jnp.array([0, 0, 1, 1])).means.shape
    (2, 1)
    >>> try:
    ...   fit(x, jnp.array([0, 0, 1, 5]))
    ... except ValueError as e:
    ...   print(e)
    y must lie in [0, num_classes=2).
  """
  def staged(*args, **kwargs):
    token = _STAGE_CHECKS.set(True)
    try:
      return fn(*args, **kwargs)
    finally:
      _STAGE_CHECKS.reset(token)

  compiled = jax.jit(checkify.checkify(staged, errors=checkify.user_checks))

  @functools.wraps(fn)
  def run(*args, **kwargs):
    err, out = compiled(*args, **kwargs)
    message = err.get()
    if message is not None:
      raise ValueError(message.split(" (`check` failed")[0].split(" (check failed at")[0])
    return out

  return run


def is_concrete(x: Any) -> bool:
  """True when ``x`` holds values (not a tracer), so value checks can run."""
  return not isinstance(x, jax.core.Tracer)


def check_num_classes(num_classes: Any, name: str = "num_classes") -> int:
  """``num_classes`` must be a static Python int >= 2."""
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
    raise TypeError(
        f"{name} must be a static Python int, got {type(num_classes).__name__}"
        f" ({num_classes!r})."
    )
  if num_classes < 2:
    raise ValueError(f"{name} must be >= 2, got {num_classes}.")
  return int(num_classes)


def check_ndim(x: jax.Array, ndim: int | tuple[int, ...], name: str) -> None:
  """Raise ``ValueError`` unless ``x.ndim`` is ``ndim`` (or one of them)."""
  allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
  if x.ndim not in allowed:
    want = " or ".join(str(a) for a in allowed)
    raise ValueError(
        f"{name} must have rank {want}, got rank {x.ndim} with shape {tuple(x.shape)}."
    )


def check_min_ndim(x: jax.Array, ndim: int, name: str) -> None:
  if x.ndim < ndim:
    raise ValueError(
        f"{name} must have rank >= {ndim}, got rank {x.ndim} with shape"
        f" {tuple(x.shape)}."
    )


def check_float(x: jax.Array, name: str) -> None:
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{name} must have a floating dtype, got {x.dtype}.")


HOST_CHECK_ELEMENTS = 1 << 20
"""Concrete arrays on the CPU of at most this many entries are checked with NumPy:
the device screen compiles a program for every new shape (50 to 100 ms on 2 cores),
while NumPy reads a million entries in about a millisecond."""


def _small_on_cpu(x: jax.Array) -> bool:
  try:
    devices = x.devices()
  except Exception:   # a tracer, or an array whose buffers were deleted
    return False
  return x.size <= HOST_CHECK_ELEMENTS and all(d.platform == "cpu" for d in devices)


def _summary(x: jax.Array) -> tuple[int, float]:
  """``(number of non-finite entries, largest finite |x|)`` on the host for a concrete
  ``x``: one reduction and one small transfer."""
  if (isinstance(x, np.ndarray) or not isinstance(x, jax.Array)
      or _small_on_cpu(x)):
    xv = np.asarray(x)
    finite = np.isfinite(xv)
    return int(np.sum(~finite)), float(np.max(np.abs(xv[finite]), initial=0.0))
  bad, biggest = value_screen(x)
  if isinstance(bad, jax.core.Tracer):   # a concrete array inside someone's trace
    return _summary(np.asarray(x))
  bad, biggest = jax.device_get((bad, biggest))
  if bad:   # a non-finite or overflowing row sum: count the entries themselves
    bad, biggest = jax.device_get(value_summary(x))
  return int(bad), float(biggest)


def raise_for_value_summary(bad: int, biggest: float, x: jax.Array, name: str = "x",
                            count: int | None = None, *, underflow: bool = True) -> None:
  """The errors of ``check_values`` from a summary computed elsewhere (for example in
  the same program as a result): ``bad`` from
  ``screen_nonfinite`` or
  ``count_nonfinite`` (positive: ``x`` is counted
  exactly here), ``biggest`` the largest ``|x|``, used only when ``bad`` is zero."""
  if bad or not math.isfinite(biggest):
    check_values(x, name, count, underflow=underflow)
    return
  _check_scale_of(biggest, x, name, count, underflow)


def check_finite(x: jax.Array, name: str) -> None:
  """Raise ``ValueError`` if a concrete ``x`` contains NaN or Inf."""
  if not is_concrete(x):
    staged_check(jnp.isfinite(x), f"{name} contains non-finite value(s) (NaN or Inf).")
    return
  if not x.size:
    return
  bad, _ = _summary(x)
  if bad:
    raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or Inf).")


def check_labels(y: jax.Array, num_classes: int, name: str = "y") -> None:
  """Labels must be integers; concrete labels must lie in ``[0, num_classes)``."""
  if not jnp.issubdtype(y.dtype, jnp.integer):
    raise TypeError(f"{name} must have an integer dtype (class labels), got {y.dtype}.")
  if not is_concrete(y):
    staged_check((y >= 0) & (y < num_classes),
                 f"{name} must lie in [0, num_classes={num_classes}).")
  if is_concrete(y) and y.size:
    yv = np.asarray(y)
    lo, hi = int(yv.min()), int(yv.max())
    if lo < 0 or hi >= num_classes:
      raise ValueError(
          f"{name} must lie in [0, num_classes={num_classes}), got values in"
          f" [{lo}, {hi}]."
      )


XY_SUMMARY_SIZE = 3
"""Length of ``xy_summary``'s vector."""


def xy_summary(x: jax.Array, y: jax.Array, num_classes: int,
               sums: Any = None) -> jax.Array:
  """Traced value summary of training data, to compute inside a fit's own program:
  ``[non-finite sums, largest |x|, labels outside [0, num_classes)]`` in ``x``'s
  dtype (``XY_SUMMARY_SIZE`` entries). ``raise_for_xy_summary`` turns it into the
  eager errors, recomputing the details it names only when there is one.

  Without ``sums`` the non-finite values are counted in the row sums of ``x``
  (``screen_nonfinite``).
  ``sums`` (optional): arrays that the same program built by adding up every entry of
  ``x`` (a fit's class sums). The non-finite entries are then counted in them instead
  of in ``x``: by IEEE arithmetic a NaN or infinite entry of ``x`` makes a sum NaN or
  infinite, and counting ``[K, D]`` sums costs nothing, where counting ``x`` itself
  adds about 40% to a small naive Bayes fit on the CPU. A positive count only says
  "recount": ``raise_for_xy_summary`` counts ``x`` exactly (a sum of finite values
  may also overflow). The largest ``|x|`` serves the scale check once ``x`` is known
  to be finite; nothing relies on ``max`` propagating NaN."""
  off = jnp.sum((y < 0) | (y >= num_classes))
  if sums is None:   # a screen: raise_for_xy_summary counts x exactly when positive
    bad, biggest = screen_nonfinite(x), jnp.max(jnp.abs(x))
  else:
    bad = sum(count_nonfinite(s) for s in jax.tree.leaves(sums))
    biggest = jnp.max(jnp.abs(x))
  return jnp.stack([bad.astype(x.dtype), biggest.astype(x.dtype), off.astype(x.dtype)])


_xy_summary_jit = jax.jit(xy_summary, static_argnums=2)


def raise_for_xy_summary(summary, x: jax.Array, y: jax.Array, num_classes: int) -> None:
  """The errors of ``check_labels`` then ``check_values`` from a concrete
  ``xy_summary`` (device or host values: one small transfer)."""
  bad, biggest, off = (float(v) for v in np.asarray(summary)[:XY_SUMMARY_SIZE])
  if off:
    check_labels(y, num_classes)
  if bad or not math.isfinite(biggest):
    bad, biggest = _summary(x)   # exact: the summary may have counted sums
    if bad:
      raise ValueError(f"x contains {bad} non-finite value(s) (NaN or Inf).")
  _check_scale_of(biggest, x, "x", None, True)


def values_checkable(x: Any, y: Any) -> bool:
  """True when ``x`` and ``y`` are non-empty concrete jax arrays, so a value summary
  computed on device can be read back and raised on (a caller inside someone else's
  trace still gets tracers back, and must check with ``check_labels_and_values``)."""
  return (is_concrete(x) and is_concrete(y) and isinstance(x, jax.Array)
          and isinstance(y, jax.Array) and x.size > 0 and y.size > 0)


def check_labels_and_values(x: jax.Array, y: jax.Array, num_classes: int) -> None:
  """``check_labels`` on ``y``, then ``check_values`` on ``x``, from one
  device reduction and one small transfer when both are concrete jax arrays."""
  if not jnp.issubdtype(y.dtype, jnp.integer):
    raise TypeError(f"y must have an integer dtype (class labels), got {y.dtype}.")
  if not values_checkable(x, y):
    check_labels(y, num_classes)
    check_values(x, "x")
    return
  summary = _xy_summary_jit(x, y, num_classes)
  if isinstance(summary, jax.core.Tracer):   # concrete arrays inside a trace
    check_labels(y, num_classes)
    check_values(x, "x")
    return
  raise_for_xy_summary(summary, x, y, num_classes)


def check_same_leading(x: jax.Array, y: jax.Array, x_name: str = "x",
                       y_name: str = "y") -> None:
  """``x[N, ...]`` and ``y[N]`` must agree on ``N``."""
  if x.shape[0] != y.shape[0]:
    raise ValueError(
        f"{x_name} and {y_name} must have the same number of examples, got"
        f" {x_name}.shape[0]={x.shape[0]} and {y_name}.shape[0]={y.shape[0]}."
    )


def check_xy(x: Any, y: Any, num_classes: int) -> tuple[jax.Array, jax.Array]:
  """Validated training data ``(x [N, D], y [N])`` for a fit.

  ``x`` floating, rank 2 and (when concrete) finite; ``y`` integer labels of rank 1
  in ``[0, num_classes)``; both with the same ``N``.
  """
  x, y = jnp.asarray(x), jnp.asarray(y)
  check_ndim(x, 2, "x")
  check_float(x, "x")
  check_ndim(y, 1, "y")
  check_same_leading(x, y)
  check_labels(y, num_classes)
  check_finite(x, "x")
  return x, y


def as_trailing(v: jax.Array, ndim: int) -> jax.Array:
  """Reshapes ``v[..., K]`` to rank ``ndim`` with leading unit axes.

  The strict ``jax_numpy_rank_promotion="raise"`` setting forbids implicit rank
  broadcasting, so every ``[..., K] + [K]`` in jgen goes through here.
  """
  return v.reshape((1,) * (ndim - v.ndim) + v.shape)


def check_last_dim(x: jax.Array, size: int, name: str, what: str) -> None:
  if x.shape[-1] != size:
    raise ValueError(
        f"{name} must have last dimension {size} ({what}), got shape {tuple(x.shape)}."
    )


def check_sample_weight(sample_weight: Any, n: int, dtype) -> jax.Array | None:
  """Validated example weights ``[N]`` in ``dtype``, or ``None`` (every weight 1).

  Weights must be real numbers of rank 1 and length ``N``; concrete weights must be
  finite and non-negative, with a positive total. Integer weights are exact in
  ``dtype`` up to ``2**24`` (float32), so they are converted; complex ones are not.
  """
  if sample_weight is None:
    return None
  w = jnp.asarray(sample_weight)
  if not (jnp.issubdtype(w.dtype, jnp.floating) or jnp.issubdtype(w.dtype, jnp.integer)):
    raise TypeError(f"sample_weight must have a real (float or int) dtype, got {w.dtype}.")
  check_ndim(w, 1, "sample_weight")
  if w.shape[0] != n:
    raise ValueError(f"sample_weight must have one entry per example ({n}), got shape"
                     f" {tuple(w.shape)}.")
  if not is_concrete(w):
    staged_check(jnp.isfinite(w) & (w >= 0), "sample_weight must be finite and non-negative.")
  if is_concrete(w):
    wv = np.asarray(w)
    if not np.all(np.isfinite(wv)) or np.any(wv < 0):
      raise ValueError("sample_weight must be finite and non-negative.")
    if wv.size and not wv.sum() > 0:
      raise ValueError("sample_weight must have a positive sum.")
  return w.astype(dtype)


def check_scale(x: jax.Array, name: str = "x", count: int | None = None, *,
                underflow: bool = True) -> None:
  """Concrete ``x`` must have magnitudes whose squares (summed ``count`` times) are
  representable in its dtype: neither overflowing nor below the smallest normal
  number (``underflow=False`` skips the latter, for points being scored, where tiny
  values are legitimate). Raises ``ValueError`` naming the cause and the remedy.
  """
  if not is_concrete(x) or not x.size:
    return
  _check_scale_of(_summary(x)[1], x, name, count, underflow)


def check_values(x: jax.Array, name: str = "x", count: int | None = None, *,
                 underflow: bool = True) -> None:
  """``check_finite`` and ``check_scale`` from one pass over a concrete
  ``x`` (one device reduction and one small transfer instead of two host copies)."""
  if not is_concrete(x):
    check_finite(x, name)
    return
  if not x.size:
    return
  bad, biggest = _summary(x)
  if bad:
    raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or Inf).")
  _check_scale_of(biggest, x, name, count, underflow)


def _check_scale_of(a: float, x, name: str, count, underflow: bool) -> None:
  """``check_scale``'s decision given ``a``, the largest finite ``|x|``."""
  if a == 0.0:
    return
  info = np.finfo(np.dtype(x.dtype))
  n = max(int(count if count is not None else x.shape[0] if x.ndim else 1), 1)
  if a * a * n > float(info.max):
    raise ValueError(
        f"{name} has values up to {a:.3g}: their squared sums overflow {x.dtype}"
        f" (max {float(info.max):.3g}). Rescale {name} (e.g. standardise it) or use"
        " float64.")
  if underflow and a * a < float(info.tiny) / float(info.eps):
    raise ValueError(
        f"{name} has values of at most {a:.3g}: their squares underflow {x.dtype}"
        f" (smallest normal {float(info.tiny):.3g}), so variances lose all precision."
        f" Rescale {name} (e.g. standardise it) or use float64.")
