"""Validation shared by the [`jgen.bounds`][jgen.bounds] modules (bounds checks only).

Generic checks (rank, dtype, ``num_classes``, labels) live in ``jgen._checks``; this
module adds the checks the bounds need: probability vectors on the simplex, values in
``[0, 1]``, the comp-sum parameter ``tau`` and the score bound ``Lambda``. Value checks
run on concrete arrays (eagerly); under ``jit`` the public functions return ``NaN`` as
a documented sentinel instead (see ``simplex_ok``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import checks as _checks

TAU_MIN, TAU_MAX = 0.0, 2.0


def simplex_atol(dtype: Any) -> float:
  """Tolerance on ``p >= 0`` and ``sum(p) == 1``: 1e-6 in float64, 1e-4 otherwise.

  Loose enough for float32 probabilities cast to float64, tight enough to catch
  unnormalised inputs.
  """
  return 1e-6 if jnp.dtype(dtype) == jnp.float64 else 1e-4


def as_scores(h: ArrayLike, name: str = "h") -> jax.Array:
  """Float scores ``[..., K]`` with ``K >= 2``."""
  h = jnp.asarray(h)
  _checks.check_min_ndim(h, 1, name)
  _checks.check_float(h, name)
  if h.shape[-1] < 2:
    raise ValueError(
        f"{name} must have at least 2 classes on its last axis, got shape"
        f" {tuple(h.shape)}.")
  return h


def as_simplex(p: ArrayLike, name: str = "p", *, like: jax.Array | None = None
               ) -> jax.Array:
  """Probability vectors ``[..., K]``; concrete ones must lie on the simplex.

  Entries must be ``>= -atol`` and each row must sum to one within ``atol``
  (``simplex_atol``). Traced values are not checked here; callers mask their
  results with ``simplex_ok``.
  """
  p = as_scores(p, name)
  if like is not None and p.shape != like.shape:
    raise ValueError(
        f"{name} and h must have the same shape [..., K], got {name}.shape="
        f"{tuple(p.shape)} and h.shape={tuple(like.shape)}.")
  if _checks.is_concrete(p) and p.size:
    pv = np.asarray(p, np.float64)
    atol = simplex_atol(p.dtype)
    if not np.all(np.isfinite(pv)):
      raise ValueError(f"{name} contains non-finite values.")
    if pv.min() < -atol:
      raise ValueError(
          f"{name} must be non-negative (a distribution over classes), got a minimum"
          f" of {pv.min():.3g}.")
    err = np.abs(pv.sum(-1) - 1.0).max()
    if err > atol:
      raise ValueError(
          f"{name} must sum to 1 over its last axis within {atol:g}, got a deviation"
          f" of {err:.3g}.")
  return p


def simplex_ok(p: jax.Array) -> jax.Array:
  """Traced test ``[...]`` bool: ``p`` is on the simplex within ``simplex_atol``."""
  atol = simplex_atol(p.dtype)
  return (jnp.all(p >= -atol, axis=-1)
          & (jnp.abs(jnp.sum(p, axis=-1) - 1.0) <= atol))


def as_unit_interval(t: ArrayLike, name: str = "t") -> jax.Array:
  """Float array with concrete values in ``[0, 1]``."""
  t = jnp.asarray(t)
  if not jnp.issubdtype(t.dtype, jnp.floating):
    t = t.astype(jnp.result_type(float))
  if _checks.is_concrete(t) and t.size:
    tv = np.asarray(t, np.float64)
    if np.any(np.isnan(tv)) or tv.min() < 0.0 or tv.max() > 1.0:
      raise ValueError(
          f"{name} must lie in [0, 1], got values in [{np.nanmin(tv):.3g},"
          f" {np.nanmax(tv):.3g}]" + (" and NaN" if np.any(np.isnan(tv)) else "")
          + ".")
  return t


def as_nonnegative(u: ArrayLike, name: str) -> jax.Array:
  """Float array with concrete values ``>= 0`` (an excess risk)."""
  u = jnp.asarray(u)
  if not jnp.issubdtype(u.dtype, jnp.floating):
    u = u.astype(jnp.result_type(float))
  if _checks.is_concrete(u) and u.size:
    uv = np.asarray(u, np.float64)
    if np.any(np.isnan(uv)) or uv.min() < 0.0:
      raise ValueError(
          f"{name} must be >= 0 (an excess risk), got a minimum of {np.nanmin(uv):.3g}"
          + (" and NaN" if np.any(np.isnan(uv)) else "") + ".")
  return u


def check_tau(tau: Any) -> float:
  """``tau`` must be a static Python number in ``[0, 2]``."""
  if tau is None:
    raise ValueError("tau is required for the comp_sum loss (a number in [0, 2]).")
  if isinstance(tau, bool) or not isinstance(tau, (int, float, np.integer, np.floating)):
    raise TypeError(f"tau must be a static Python number, got {type(tau).__name__}.")
  tau = float(tau)
  if not (math.isfinite(tau) and TAU_MIN <= tau <= TAU_MAX):
    raise ValueError(f"tau must lie in [{TAU_MIN:g}, {TAU_MAX:g}], got {tau}.")
  return tau


def check_score_bound(score_bound: Any) -> float:
  """``score_bound`` (Lambda) must be a static positive finite Python number."""
  if isinstance(score_bound, bool) or not isinstance(
      score_bound, (int, float, np.integer, np.floating)):
    raise TypeError(
        f"score_bound must be a static Python number, got {type(score_bound).__name__}.")
  score_bound = float(score_bound)
  if not (math.isfinite(score_bound) and score_bound > 0):
    raise ValueError(f"score_bound must be positive and finite, got {score_bound}.")
  return score_bound


def nan_where(ok: jax.Array, value: jax.Array) -> jax.Array:
  """``value`` where ``ok``, else ``NaN`` (the documented sentinel under ``jit``)."""
  return jnp.where(ok, value, jnp.asarray(jnp.nan, value.dtype))
