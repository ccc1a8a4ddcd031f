r"""Conditional risks, best-in-class conditional risks and conditional regrets.

For a conditional distribution ``p [K]`` of the label given ``x`` and scores ``h [K]``:

$$
C_\ell(h, p) = \sum_y p_y\, \ell(h, y), \qquad
C^*_\ell(p) = \inf_{h} C_\ell(h, p), \qquad
\Delta C_\ell(h, p) = C_\ell(h, p) - C^*_\ell(p),
$$

with the infimum over the complete hypothesis set (all score vectors). For the 0-1
loss, $\Delta C_{01}(h, p) = \max_y p_y - p_{\operatorname{argmax} h}$.

Every function accepts any leading batch shape ``[..., K]`` (``h`` and ``p`` of equal
shape) and composes with ``jit``/``vmap``. ``loss_fn`` is either a callable
``loss_fn(h [..., K], y [...]) -> [...]`` or a loss name (see
[`jgen.bounds.LOSS_NAMES`][jgen.bounds.LOSS_NAMES], plus ``"zero_one"``), with ``tau``
for ``"comp_sum"``.

Bad ``p``: concrete ``p`` off the simplex (an entry below ``-atol`` or a row sum off 1
by more than ``atol``; ``atol`` = 1e-6 in float64, 1e-4 in float32) raises
``ValueError``. Under ``jit`` such rows give ``NaN`` (the documented sentinel).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jgen.bounds import common as _common
from jgen.bounds import losses as _losses

__all__ = [
    "conditional_risk",
    "best_conditional_risk",
    "conditional_regret",
    "zero_one_regret",
]

LossSpec = str | Callable[[ArrayLike, ArrayLike], jax.Array]


def resolve_loss(loss_fn: LossSpec, tau: float | None = None):
  """``(callable, (name, tau) or None)`` for a loss name or a loss callable."""
  if isinstance(loss_fn, str):
    fn = _losses.get_loss(loss_fn, tau=tau)
    return fn, (loss_fn, _losses.check_loss_name(loss_fn, tau))
  if not callable(loss_fn):
    raise TypeError(f"loss_fn must be a callable or a loss name, got {loss_fn!r}.")
  if tau is not None:
    raise ValueError("tau is only used with a loss name; bind it into loss_fn instead"
                     " (jgen.bounds.get_loss('comp_sum', tau=...)).")
  return loss_fn, _losses.identify(loss_fn)


def expected_loss(fn, h: jax.Array, p: jax.Array) -> jax.Array:
  """``sum_y p_y loss(h, y)``; ``0 * inf`` terms count as 0."""
  k = h.shape[-1]
  hh = jnp.broadcast_to(h[..., None, :], h.shape[:-1] + (k, k))
  yy = jnp.broadcast_to(jnp.arange(k), h.shape[:-1] + (k,))
  per_label = fn(hh, yy)
  return jnp.sum(jnp.where(p > 0, p * per_label, 0.0), axis=-1)


def conditional_risk(loss_fn: LossSpec, h: ArrayLike, p: ArrayLike, *,
                     tau: float | None = None) -> jax.Array:
  """Conditional risk ``C(h, p) = sum_y p_y loss(h, y)``.

  Args:
    loss_fn: a loss callable ``(h [..., K], y [...]) -> [...]`` or a loss name.
    h: scores ``[..., K]``.
    p: conditional label distributions ``[..., K]`` (same shape as ``h``).
    tau: comp-sum parameter when ``loss_fn == "comp_sum"``.

  Returns:
    ``[...]`` conditional risks.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> h = jnp.array([0.0, 1.0, 0.0]); p = jnp.array([0.7, 0.2, 0.1])
    >>> round(float(jgen.bounds.conditional_risk("logistic", h, p)), 3)
    1.351
  """
  fn, _ = resolve_loss(loss_fn, tau)
  h = _common.as_scores(h, "h")
  p = _common.as_simplex(p, "p", like=h).astype(h.dtype)
  return _risk_kernel(fn, h, p)


def closed_form_best_risk(name: str, tau: float | None, p: jax.Array) -> jax.Array:
  """Closed-form ``C*(p)`` over all scores (derivations in docs/bounds.md)."""
  k = p.shape[-1]
  p_max = jnp.max(p, axis=-1)
  if name == "logistic" or (name == "comp_sum" and tau == 1.0):
    return jnp.sum(jax.scipy.special.entr(p), axis=-1)       # Shannon entropy
  if name == "comp_sum" and tau == 2.0:
    return 1.0 - p_max
  if name == "comp_sum":
    # ((sum_y p_y^(1/(2-tau)))^(2-tau) - 1) / (1 - tau), via expm1 near tau = 1.
    a = 1.0 / (2.0 - tau)
    log_s = jax.nn.logsumexp(a * jnp.log(p), axis=-1)
    return jnp.expm1((2.0 - tau) * log_s) / (1.0 - tau)
  if name == "constrained_exponential":
    # min sum_k (1 - p_k) e^{h_k} s.t. sum h = 0: K * geometric mean of (1 - p_k).
    return k * jnp.exp(jnp.mean(jnp.log1p(-p), axis=-1))
  if name == "squared_hinge":
    # min sum_k (1 - p_k) (1 + h_k)_+^2 s.t. sum h = 0: K^2 / sum_k 1/(1 - p_k).
    return k**2 / jnp.sum(1.0 / (1.0 - p), axis=-1)
  if name == "hinge":
    return k * (1.0 - p_max)                                  # Lee, Lin, Wahba (2004)
  if name == "crammer_singer":
    return jnp.minimum(1.0, 2.0 * (1.0 - p_max))
  if name == "zero_one":
    return 1.0 - p_max
  raise AssertionError(name)


def _numerical_best(fn, p: jax.Array, num_steps: int, learning_rate: float
                    ) -> jax.Array:
  """Upper estimate of ``inf_h C(h, p)`` for one ``p [K]`` by Adam from two starts."""
  schedule = optax.cosine_decay_schedule(learning_rate, num_steps, alpha=1e-3)
  opt = optax.adam(schedule)
  objective = lambda g: expected_loss(fn, g, p)

  def solve(g0):
    def step(carry, _):
      g, state, best = carry
      val, grad = jax.value_and_grad(objective)(g)
      updates, state = opt.update(grad, state, g)
      return (optax.apply_updates(g, updates), state, jnp.minimum(best, val)), None
    init = (g0, opt.init(g0), objective(g0))
    (g, _, best), _ = jax.lax.scan(step, init, None, length=num_steps)
    return jnp.minimum(best, objective(g))

  starts = jnp.stack([jnp.zeros_like(p), jnp.log(p + 1e-3)])
  return jnp.min(jax.vmap(solve)(starts))


def _best(fn, ident, p, num_steps, learning_rate):
  if ident is not None:
    return closed_form_best_risk(ident[0], ident[1], p)
  flat = p.reshape(-1, p.shape[-1])
  best = jax.vmap(lambda q: _numerical_best(fn, q, num_steps, learning_rate))(flat)
  return best.reshape(p.shape[:-1])


# Jitted kernels behind the public functions: an eager call compiles once per shape
# instead of dispatching every primitive on its own.
@functools.partial(jax.jit, static_argnums=(0,))
def _risk_kernel(fn, h, p):
  return _common.nan_where(_common.simplex_ok(p), expected_loss(fn, h, p))


@functools.partial(jax.jit, static_argnums=(0, 1, 3, 4))
def _best_kernel(fn, ident, p, num_steps, learning_rate):
  best = _best(fn, ident, p, num_steps, learning_rate)
  return _common.nan_where(_common.simplex_ok(p), best)


@functools.partial(jax.jit, static_argnums=(0, 1, 4, 5))
def _regret_kernel(fn, ident, h, p, num_steps, learning_rate):
  regret = expected_loss(fn, h, p) - _best(fn, ident, p, num_steps, learning_rate)
  return _common.nan_where(_common.simplex_ok(p), regret)


@jax.jit
def _zero_one_kernel(h, p):
  picked = jnp.sum(jnp.where(jax.nn.one_hot(jnp.argmax(h, axis=-1), h.shape[-1],
                                            dtype=bool), p, 0.0), axis=-1)
  return _common.nan_where(_common.simplex_ok(p), jnp.max(p, axis=-1) - picked)


def best_conditional_risk(loss_fn: LossSpec, p: ArrayLike, *, tau: float | None = None,
                          num_steps: int = 1000, learning_rate: float = 0.1
                          ) -> jax.Array:
  r"""Best-in-class conditional risk ``C*(p) = inf_h C(h, p)`` (complete hypothesis set).

  Closed forms for the library's losses (derived; each checked against an independent
  numerical minimiser in the tests): logistic, entropy $-\sum p \log p$;
  comp-sum $((\sum_y p_y^{1/(2-\tau)})^{2-\tau} - 1)/(1-\tau)$ (``tau = 2``:
  ``1 - max p``); constrained exponential $K \prod_k (1-p_k)^{1/K}$; squared
  hinge $K^2 / \sum_k (1-p_k)^{-1}$; hinge $K (1 - \max p)$;
  Crammer-Singer $\min(1, 2(1 - \max p))$; 0-1 ``1 - max p``.

  Any other ``loss_fn`` is minimised numerically: Adam (cosine-decayed step size) from
  ``h = 0`` and ``h = log(p + 1e-3)`` for ``num_steps`` steps inside ``jit``, keeping
  the lowest value seen. The result is then an *upper* estimate of ``C*`` (a value the
  optimiser attained), so the derived regret is a lower estimate; infima reached only
  as ``|h| -> inf`` are approached, not attained.

  Args:
    loss_fn: a loss callable or a loss name.
    p: conditional label distributions ``[..., K]``.
    tau: comp-sum parameter when ``loss_fn == "comp_sum"``.
    num_steps: static number of optimiser steps (numerical path only).
    learning_rate: initial Adam step size (numerical path only).

  Returns:
    ``[...]`` best conditional risks.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> p = jnp.array([[0.7, 0.2, 0.1], [1/3, 1/3, 1/3]])
    >>> tuple(round(float(v), 3) for v in jgen.bounds.best_conditional_risk("logistic", p))
    (0.802, 1.099)
    >>> tuple(round(float(v), 3) for v in jgen.bounds.best_conditional_risk("hinge", p))
    (0.9, 2.0)
  """
  fn, ident = resolve_loss(loss_fn, tau)
  p = _common.as_simplex(p, "p")
  return _best_kernel(fn, ident, p, int(num_steps), float(learning_rate))


def conditional_regret(loss_fn: LossSpec, h: ArrayLike, p: ArrayLike, *,
                       tau: float | None = None, num_steps: int = 1000,
                       learning_rate: float = 0.1) -> jax.Array:
  """Conditional regret ``C(h, p) - C*(p)`` for the complete hypothesis set.

  Args:
    loss_fn: a loss callable or a loss name.
    h: scores ``[..., K]``.
    p: conditional label distributions ``[..., K]`` (same shape as ``h``).
    tau: comp-sum parameter when ``loss_fn == "comp_sum"``.
    num_steps, learning_rate: numerical ``C*`` for losses without a closed form
      (see [`best_conditional_risk`][jgen.bounds.best_conditional_risk]).

  Returns:
    ``[...]`` regrets (``>= 0`` up to rounding).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> h = jnp.array([0.0, 1.0, 0.0]); p = jnp.array([0.7, 0.2, 0.1])
    >>> round(float(jgen.bounds.conditional_regret("logistic", h, p)), 3)
    0.55
    >>> round(float(jgen.bounds.conditional_regret("hinge", h, p)), 3)
    1.233
  """
  fn, ident = resolve_loss(loss_fn, tau)
  h = _common.as_scores(h, "h")
  p = _common.as_simplex(p, "p", like=h).astype(h.dtype)
  return _regret_kernel(fn, ident, h, p, int(num_steps), float(learning_rate))


def zero_one_regret(h: ArrayLike, p: ArrayLike) -> jax.Array:
  """Conditional 0-1 regret ``max_y p_y - p_{argmax h}`` (first maximal class on ties).

  Args:
    h: scores ``[..., K]``.
    p: conditional label distributions ``[..., K]`` (same shape as ``h``).

  Returns:
    ``[...]`` regrets in ``[0, 1]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> h = jnp.array([0.0, 1.0, 0.0]); p = jnp.array([0.7, 0.2, 0.1])
    >>> round(float(jgen.bounds.zero_one_regret(h, p)), 3)
    0.5
  """
  h = _common.as_scores(h, "h")
  p = _common.as_simplex(p, "p", like=h)
  return _zero_one_kernel(h, p)
