r"""H-consistency transforms ``T`` (Psi) and their inverses ``Gamma``.

For a surrogate loss ``l`` and hypothesis set ``H`` the papers prove

$$
T\big(R_{01}(h) - R^*_{01}(H) + M_{01}(H)\big) \le R_\ell(h) - R^*_\ell(H) + M_\ell(H),
$$

with ``T`` convex and increasing on ``[0, 1]``, ``T(0) = 0``, so that with
``Gamma = T^{-1}`` (``Gamma(u) = sup{t in [0, 1] : T(t) <= u}``, 1 beyond ``T(1)``)

$$
R_{01}(h) - R^*_{01}(H) \le \min\big(1,\ \Gamma(R_\ell(h) - R^*_\ell(H) + M_\ell(H)) - M_{01}(H)\big).
$$

The same inequality holds pointwise for conditional regrets,
``Delta C_01(h, p) <= Gamma(Delta C_l(h, p))`` (complete hypothesis set).

Transforms for the complete hypothesis set, ``n = num_classes`` (sources and status;
theorem numbers are not given because they could not be re-read here — every formula
below is checked numerically against
[`jgen.bounds.calibration_function`][jgen.bounds.calibration_function] in the tests and
in ``experiments/hconsistency.py``):

* ``logistic`` (comp-sum ``tau = 1``): ``T(t) = (1+t)/2 log(1+t) + (1-t)/2 log(1-t)``
  (Mao, Mohri and Zhong, ICML 2023, as recalled; theorem number unconfirmed). Verified
  tight (equal to the numerical calibration function) for n = 2, 3, 5, 10.
* ``comp_sum``, ``tau in [0, 1)``:
  ``T = 2^(1-tau)/(1-tau) [1 - (((1+t)^(1/(2-tau)) + (1-t)^(1/(2-tau)))/2)^(2-tau)]``;
  ``tau = 0`` gives ``1 - sqrt(1 - t^2)``. ``tau in (1, 2)``:
  ``T = [(((1+t)^(1/(2-tau)) + (1-t)^(1/(2-tau)))/2)^(2-tau) - 1] / ((tau-1) n^(tau-1))``;
  ``tau = 2`` (MAE): ``T = t / n`` (same source, as recalled; theorem number
  unconfirmed). Verified: tight for ``tau <= 1`` at every n tested; for ``tau > 1`` a
  valid lower bound, tight at n = 2 only (MAE: also for ``t <= 1/(n-1)``,
  n = 3, 5, 10).
* ``constrained_exponential``: ``T = 2 - sqrt(4 - t^2)``; ``squared_hinge``:
  ``T = t^2 / 2``; ``hinge``: ``T = t`` (Awasthi, Mao, Mohri and Zhong, NeurIPS 2022,
  constrained losses; as recalled; theorem numbers unconfirmed). Verified valid for
  every n tested; not tight at finite n.
* ``crammer_singer``: ``T = t`` for n = 2 and ``T = max(0, 2t - 1)`` for n >= 3.
  Derived here (not transcribed): with ``C* = min(1, 2(1 - max p))`` a distribution
  with ``max p < 1/2`` makes every prediction cost-free, so no bound below 1/2 exists
  for n >= 3 (consistent with the papers' negative result for max losses). Verified
  tight for n = 2, 3, 5, 10.
* Bounded scores ``|h_y| <= Lambda`` (``score_bound``), logistic, **n = 2 only**:
  ``T = T_logistic(t)`` for ``t <= tanh(Lambda)``, else ``t Lambda - log cosh Lambda``
  (the tangent continuation; the n = 2 case of the recalled statement with
  ``s_max = 1/(1 + (n-1) e^(-2 Lambda))``; Mao, Mohri and Zhong, NeurIPS 2023, as
  recalled; theorem number unconfirmed). Verified tight for n = 2. Not offered for
  n >= 3: with box-bounded scores, ties at ``+Lambda`` make the exact transform 0 for
  small t (checked numerically), so the recalled formula cannot hold for that set and
  its precise hypothesis-set assumption could not be confirmed.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import xlog1py
from jax.typing import ArrayLike

import numpy as np

from jgen.core import checks as _checks
from jgen.bounds import common as _common
from jgen.bounds import losses as _losses

__all__ = ["psi", "inverse_psi", "zero_one_bound"]

_BISECTION_STEPS = 64   # 2^-64 < float64 spacing near 1: exact to rounding.


def _t_logistic(t: jax.Array) -> jax.Array:
  return 0.5 * (xlog1py(1.0 + t, t) + xlog1py(1.0 - t, -t))


def _t_comp_sum(t: jax.Array, tau: float, n: int) -> jax.Array:
  if tau == 1.0:
    return _t_logistic(t)
  if tau == 2.0:
    return t / n
  a = 1.0 / (2.0 - tau)
  if tau <= 1.5:
    # M - 1 with M = ((1+t)^a + (1-t)^a)/2, accurate when M is near 1 (tau near 1).
    m_minus_1 = 0.5 * (jnp.expm1(a * jnp.log1p(t)) + jnp.expm1(a * jnp.log1p(-t)))
    log_m = jnp.log1p(m_minus_1)
  else:
    # a = 1/(2 - tau) is large: (1+t)^a overflows, so add in log space.
    log_m = jnp.logaddexp(a * jnp.log1p(t), a * jnp.log1p(-t)) - math.log(2.0)
  log_m_pow = (2.0 - tau) * log_m                            # log(M^(2-tau))
  if tau < 1.0:
    return -(2.0 ** (1.0 - tau)) * jnp.expm1(log_m_pow) / (1.0 - tau)
  return jnp.expm1(log_m_pow) / ((tau - 1.0) * n ** (tau - 1.0))


def _t_bounded_logistic(t: jax.Array, lam: float) -> jax.Array:
  log_cosh = lam + math.log1p(math.exp(-2.0 * lam)) - math.log(2.0)
  return jnp.where(t <= math.tanh(lam), _t_logistic(t), t * lam - log_cosh)


def _transform(name: str, t: jax.Array, n: int, tau: float | None,
               lam: float | None) -> jax.Array:
  if lam is not None:
    return _t_bounded_logistic(t, lam)
  if name == "logistic":
    return _t_logistic(t)
  if name == "comp_sum":
    return _t_comp_sum(t, tau, n)
  if name == "constrained_exponential":
    return jnp.square(t) / (2.0 + jnp.sqrt(4.0 - jnp.square(t)))  # = 2 - sqrt(4 - t^2)
  if name == "squared_hinge":
    return 0.5 * jnp.square(t)
  if name == "hinge":
    return t
  if name == "crammer_singer":
    return t if n == 2 else jax.nn.relu(2.0 * t - 1.0)
  raise AssertionError(name)


def _closed_inverse(name: str, u: jax.Array, n: int, tau: float | None,
                    lam: float | None):
  """``Gamma(u)`` before capping at 1, or ``None`` where bisection is used."""
  if lam is not None:
    return None
  if name == "comp_sum" and tau == 0.0:
    return jnp.sqrt(jnp.clip(u * (2.0 - u), 0.0, None))
  if name == "comp_sum" and tau == 2.0:
    return n * u
  if name == "constrained_exponential":
    return jnp.sqrt(jnp.clip(u * (4.0 - u), 0.0, None))
  if name == "squared_hinge":
    return jnp.sqrt(2.0 * u)
  if name == "hinge" or (name == "crammer_singer" and n == 2):
    return u
  if name == "crammer_singer":
    return 0.5 * (1.0 + u)
  return None


def _check(loss_name, num_classes, tau, score_bound):
  n = _checks.check_num_classes(num_classes)
  if loss_name == "zero_one" or loss_name not in _losses.LOSS_NAMES:
    raise ValueError(f"loss_name must be one of {_losses.LOSS_NAMES}, got {loss_name!r}.")
  tau = _losses.check_loss_name(loss_name, tau)
  lam = None
  if score_bound is not None:
    lam = _common.check_score_bound(score_bound)
    if not (loss_name == "logistic" or (loss_name == "comp_sum" and tau == 1.0)):
      raise ValueError(f"score_bound is supported for the logistic loss only, got"
                       f" {loss_name!r}.")
    if n != 2:
      raise ValueError(
          "score_bound (bounded scores) is supported for num_classes == 2 only: for"
          f" num_classes={n} with box-bounded scores the exact transform is 0 for small"
          " t (ties at the bound), see jgen.bounds.transforms.")
  return n, tau, lam


def psi(loss_name: str, t: ArrayLike, *, num_classes: int, tau: float | None = None,
        score_bound: float | None = None) -> jax.Array:
  """The H-consistency transform ``T(t)`` for a named loss (see the module docstring).

  Args:
    loss_name: one of [`jgen.bounds.LOSS_NAMES`][jgen.bounds.LOSS_NAMES].
    t: 0-1 excess risks ``[...]`` in ``[0, 1]``. Under ``jit`` values outside give NaN.
    num_classes: static number of classes ``n >= 2``.
    tau: comp-sum parameter in ``[0, 2]`` (``loss_name="comp_sum"`` only).
    score_bound: ``Lambda`` for scores bounded by ``|h_y| <= Lambda`` (logistic,
      ``num_classes == 2`` only); ``None`` for the complete hypothesis set.

  Returns:
    ``T(t)`` ``[...]``, same dtype as ``t``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> t = jnp.array([0.0, 0.5, 1.0])
    >>> tuple(round(float(v), 3) for v in jgen.bounds.psi("logistic", t, num_classes=3))
    (0.0, 0.131, 0.693)
    >>> round(float(jgen.bounds.psi("squared_hinge", 0.5, num_classes=3)), 3)
    0.125
  """
  n, tau, lam = _check(loss_name, num_classes, tau, score_bound)
  return _psi_kernel(loss_name, n, tau, lam, _common.as_unit_interval(t, "t"))


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _psi_kernel(name, n, tau, lam, t):
  ok = (t >= 0.0) & (t <= 1.0)
  return _common.nan_where(ok, _transform(name, jnp.clip(t, 0.0, 1.0), n, tau, lam))


def inverse_psi(loss_name: str, u: ArrayLike, *, num_classes: int,
                tau: float | None = None, score_bound: float | None = None
                ) -> jax.Array:
  """``Gamma(u) = sup{t in [0, 1] : T(t) <= u}`` (1 where ``u >= T(1)``).

  Closed forms where they exist (``tau = 0``: ``sqrt(2u - u^2)``; MAE: ``n u``;
  constrained exponential ``sqrt(4u - u^2)``; squared hinge ``sqrt(2u)``; hinge
  ``u``; Crammer-Singer ``u`` for n = 2, ``(1 + u)/2`` for n >= 3); otherwise a
  64-step bisection in ``lax.fori_loop`` that returns the upper end of the final
  bracket, so the result is never below the exact inverse (accurate to rounding in
  float64).

  Args:
    loss_name, num_classes, tau, score_bound: as in [`psi`][jgen.bounds.psi].
    u: surrogate excess risks ``[...]``, ``>= 0``. Under ``jit`` negative values
      give NaN.

  Returns:
    ``Gamma(u)`` ``[...]`` in ``[0, 1]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> round(float(jgen.bounds.inverse_psi("squared_hinge", 0.125, num_classes=3)), 3)
    0.5
    >>> u = jnp.array([0.1, 1.0])
    >>> tuple(round(float(v), 3) for v in jgen.bounds.inverse_psi("logistic", u, num_classes=3))
    (0.44, 1.0)
  """
  n, tau, lam = _check(loss_name, num_classes, tau, score_bound)
  return _inverse_kernel(loss_name, n, tau, lam,
                         _common.as_nonnegative(u, "surrogate_excess"))


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _inverse_kernel(loss_name, n, tau, lam, u):
  ok = u >= 0.0
  u_safe = jnp.where(ok, u, 0.0)
  t_one = _transform(loss_name, jnp.ones((), u.dtype), n, tau, lam)
  closed = _closed_inverse(loss_name, u_safe, n, tau, lam)
  if closed is None:
    transform = lambda s: _transform(loss_name, s, n, tau, lam)

    def body(_, bracket):
      lo, hi = bracket
      mid = 0.5 * (lo + hi)
      below = transform(mid) <= u_safe
      return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    zeros = jnp.zeros_like(u_safe)
    _, closed = jax.lax.fori_loop(0, _BISECTION_STEPS, body, (zeros, zeros + 1.0))
  gamma = jnp.where(u_safe >= t_one, 1.0, jnp.minimum(closed, 1.0))
  return _common.nan_where(ok, gamma.astype(u.dtype))


def zero_one_bound(loss_name: str, surrogate_excess: ArrayLike, *, num_classes: int,
                   tau: float | None = None, score_bound: float | None = None,
                   surrogate_gap: ArrayLike = 0.0, zero_one_gap: ArrayLike = 0.0
                   ) -> jax.Array:
  """Bound on the 0-1 excess risk: ``min(1, Gamma(excess + M_l) - M_01)``.

  For the complete hypothesis set both minimizability gaps vanish (the defaults);
  for other sets pass estimates (e.g.
  [`jgen.bounds.linear_minimizability_gap`][jgen.bounds.linear_minimizability_gap]).
  Applied to a conditional regret it bounds the conditional 0-1 regret.

  Args:
    loss_name, num_classes, tau, score_bound: as in [`psi`][jgen.bounds.psi].
    surrogate_excess: ``R_l(h) - R*_l(H)`` ``[...]``, ``>= 0``.
    surrogate_gap: the surrogate minimizability gap ``M_l(H) >= 0``.
    zero_one_gap: the 0-1 minimizability gap ``M_01(H) >= 0``.

  Returns:
    ``[...]`` upper bounds on ``R_01(h) - R*_01(H)``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> round(float(jgen.bounds.zero_one_bound("logistic", 0.05, num_classes=3)), 3)
    0.314
    >>> excess = jnp.array([0.1, 0.3])
    >>> b = jgen.bounds.zero_one_bound("hinge", excess, num_classes=3, zero_one_gap=0.05)
    >>> tuple(round(float(v), 3) for v in b)
    (0.05, 0.25)
  """
  u = _common.as_nonnegative(surrogate_excess, "surrogate_excess")
  u = u + _common.as_nonnegative(surrogate_gap, "surrogate_gap").astype(u.dtype)
  gamma = inverse_psi(loss_name, u, num_classes=num_classes, tau=tau,
                      score_bound=score_bound)
  m01 = _common.as_nonnegative(zero_one_gap, "zero_one_gap").astype(u.dtype)
  if _checks.is_concrete(m01) and m01.size and float(np.max(np.asarray(m01))) > 1.0:
    raise ValueError("zero_one_gap must lie in [0, 1] (a gap between 0-1 risks), got"
                     f" {float(np.max(np.asarray(m01))):.3g}.")
  # Under jit, where nothing can raise, a gap outside [0, 1] gives NaN rather than a
  # meaningless (possibly negative) bound.
  ok = (m01 >= 0) & (m01 <= 1)
  return jnp.where(ok, jnp.minimum(1.0, gamma - m01), jnp.nan)
