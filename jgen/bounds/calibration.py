r"""Numerical calibration function: the tightest transform for any loss.

$$
\delta(t) = \inf \{ \Delta C_\ell(h, p) : \Delta C_{01}(h, p) \ge t \}
$$

over distributions ``p`` on the simplex and scores ``h`` (all of ``R^K``, or the box
``|h_y| <= Lambda``). Every closed-form transform ``T`` of
``jgen.bounds.transforms`` must satisfy ``T <= delta``.

Method. By symmetry of the losses under class permutations, fix the predicted class
to 0 and the class gaining probability to 1. Both constraints hold by construction:

* scores ``h = (max(u) + a^2, u_1, ..., u_{K-1})``, so class 0 is an argmax (ties go
  to class 0, the first maximal class, as in
  [`jgen.bounds.zero_one_regret`][jgen.bounds.zero_one_regret]); with a score bound,
  that vector clipped to ``[-Lambda, Lambda]`` (and ``u`` projected into the box after
  each step), which keeps ties at the bound reachable;
* ``p = t e_1 + (1 - t) q`` with ``q = w / sum(w)``, ``w = v^2 + 1e-12`` and
  ``q_0 <= q_1`` (the two entries sorted). This maps onto every ``p`` with
  ``p_1 - p_0 >= t``, hence ``Delta C_01 >= t``; squares reach the simplex faces.

Each of ``num_restarts`` random starts (a third restricted to two classes, a third
sparse, a third dense, with score scales from 0.01 to 3) runs Adam with a cosine
step-size decay; all ``len(t) * num_restarts`` problems run as one vmapped, jitted
call (with ``progress``, one call per fixed-size chunk of ``t``: every ``t`` uses the
same starts, so the values do not depend on the chunking). Every iterate is a feasible point, so the reported value (the lowest attained)
is an *upper* estimate of ``delta(t)``: a valid closed-form ``T`` is below it with no
tolerance beyond rounding, while a tight one matches it to the optimiser's accuracy.

``C*(p)`` uses the closed forms of
[`jgen.bounds.best_conditional_risk`][jgen.bounds.best_conditional_risk] for the
library's losses (complete set). For other losses, and for bounded scores, ``C*`` is
tracked by an inner (projected, for bounded scores) Adam loop warm-started across outer
steps and re-solved from the warm start at the end; the value is then an upper estimate
only up to the accuracy of that inner solve (an unconverged inner solve overestimates
``C*`` and so underestimates ``delta``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core.progress import check_progress, report
from jgen.bounds import common as _common
from jgen.bounds import regret as _regret

__all__ = ["CalibrationResult", "calibration_function"]

_EPS_W = 1e-12
_PROGRESS_UPDATES = 20   # chunks of t when a progress bar is shown


class CalibrationResult(NamedTuple):
  """Numerical calibration function and its minimisers.

  Attributes:
    delta: ``[T]`` upper estimates of ``delta(t)``.
    h: ``[T, K]`` scores attaining ``delta`` (class 0 predicted).
    p: ``[T, K]`` distributions attaining ``delta``.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> t = jnp.array([0.25, 0.5])
    >>> kw = dict(num_classes=2, key=jax.random.key(0), num_restarts=2, num_steps=50)
    >>> res = jgen.bounds.calibration_function("logistic", t, return_argmin=True, **kw)
    >>> res.h.shape, bool(jnp.all(jnp.argmax(res.h, axis=-1) == 0))
    ((2, 2), True)
  """
  delta: jax.Array
  h: jax.Array
  p: jax.Array


def _build(params, t, lam):
  u, a, v = params
  raw = jnp.concatenate([(jnp.max(u) + jnp.square(a))[None], u])
  h = raw if lam is None else jnp.clip(raw, -lam, lam)
  w = jnp.square(v) + _EPS_W
  q = w / jnp.sum(w)
  q = q.at[0].set(jnp.minimum(q[0], q[1])).at[1].set(jnp.maximum(q[0], q[1]))
  e1 = jnp.zeros_like(q).at[1].set(1.0)
  return h, t * e1 + (1.0 - t) * q


def _inits(z, k):
  """Starts ``(u [R, K-1], a [R], v [R, K])`` from standard normals ``z [R, 3K+1]``.

  ``restart % 3`` picks two-class, sparse or dense ``p``; score scales are log-normal
  around 0.2 (about 0.01 to 3).
  """
  num_restarts = z.shape[0]
  scale = jnp.exp(jnp.log(0.2) + 1.3 * z[:, :1])
  u = scale * z[:, 1:k]
  a = 0.1 * z[:, k]
  v = z[:, k + 1:2 * k + 1]
  first_two = _checks.as_trailing(jnp.arange(k) < 2, 2)
  sparse = first_two | (z[:, 2 * k + 1:] > 0.0)
  kind = (jnp.arange(num_restarts) % 3)[:, None]
  mask = jnp.where(kind == 0, first_two, jnp.where(kind == 1, sparse, True))
  # Two-class starts also push the other scores far down, where comp-sum optima lie.
  far = _checks.as_trailing(jnp.arange(1, k) >= 2, 2) & (kind == 0)
  u = jnp.where(far, u - 6.0, u)
  return u, a, jnp.where(mask, v, 0.0)


def _best_risk(fn, g, p, lam):
  # With a score bound the inner iterate g is kept in the box by projection (below),
  # which reaches box-boundary optima exactly; a tanh map would only approach them.
  return _regret.expected_loss(fn, g, p)


def _loss_parts(fn, ident, lam):
  """``(objective(params, g, t), inner_grad(g, p), closed)`` for one loss."""
  closed = ident is not None and lam is None

  def objective(params, g, t):
    h, p = _build(params, t, lam)
    if closed:
      best = _regret.closed_form_best_risk(ident[0], ident[1], p)
    else:
      best = _best_risk(fn, jax.lax.stop_gradient(g), p, lam)
    return _regret.expected_loss(fn, h, p) - best

  def inner_grad(g, p):
    return jax.grad(_best_risk, argnums=1)(fn, g, p, lam)

  return objective, inner_grad, closed


def _solve_one(fn, ident, lam, k, num_steps, lr, inner_steps, params, t):
  """Minimises ``Delta C`` of one loss at level ``t`` from one start."""
  obj, inner_grad, closed = _loss_parts(fn, ident, lam)
  objective = lambda params, g: obj(params, g, t)
  needs_inner = not closed
  sched = optax.cosine_decay_schedule(lr, num_steps, alpha=1e-3)
  opt, inner = optax.adam(sched), optax.adam(lr)

  def inner_solve(g, g_state, params, steps, opt_in=inner):
    p = _build(params, t, lam)[1]
    def body(_, c):
      upd, s = opt_in.update(inner_grad(c[0], p), c[1], c[0])
      g = optax.apply_updates(c[0], upd)
      return (g if lam is None else jnp.clip(g, -lam, lam)), s
    return jax.lax.fori_loop(0, steps, body, (g, g_state))

  def step(carry, _):
    params, state, g, g_state, best, best_hp = carry
    if needs_inner:
      g, g_state = inner_solve(g, g_state, params, inner_steps)
    val, grad = jax.value_and_grad(objective)(params, g)
    # On a simplex face (p_k = 0, or t = 1) closed-form C* has infinite partials that
    # meet zero chain factors; those 0 * inf components carry no direction: drop them.
    grad = jax.tree.map(lambda d: jnp.where(jnp.isfinite(d), d, 0.0), grad)
    upd, state = opt.update(grad, state, params)
    # Iterates are feasible, so with an exact C* the lowest value seen is attained;
    # keep its (h, p) as the witness.
    improved = (val < best) if closed else jnp.zeros((), bool)
    best = jnp.where(improved, val, best)
    best_hp = jax.tree.map(lambda new, old: jnp.where(improved, new, old),
                           _build(params, t, lam), best_hp)
    params = optax.apply_updates(params, upd)
    if lam is not None:
      # Projected step: keep u in the box so clipped scores keep their gradients.
      params = (jnp.clip(params[0], -lam, lam),) + tuple(params[1:])
    return (params, state, g, g_state, best, best_hp), None

  g0 = jnp.zeros((k,), t.dtype)
  carry = (params, opt.init(params), g0, inner.init(g0), jnp.asarray(jnp.inf, t.dtype),
           _build(params, t, lam))
  params, _, g, g_state, best, best_hp = jax.lax.scan(step, carry, None,
                                                      length=num_steps)[0]
  if needs_inner:
    # Final C* solve from the warm start with a decaying step: a constant-step Adam
    # hovers around the minimiser and would overestimate C* (underestimate delta).
    final_opt = optax.adam(optax.cosine_decay_schedule(lr, 4 * num_steps, alpha=1e-4))
    g, _ = inner_solve(g, final_opt.init(g), params, 4 * num_steps, final_opt)
  final = objective(params, g)
  use_final = final <= best
  h, p = jax.tree.map(lambda a, b: jnp.where(use_final, a, b), _build(params, t, lam),
                      best_hp)
  return jnp.minimum(best, final), h, p


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6))
def _calibrate(fns, idents, lam, k, num_steps, lr, inner_steps, z, t):
  num_l, num_t, num_r = len(fns), t.shape[0], z.shape[0]
  starts = _inits(z, k)
  # One vmap over (t, restart) pairs per loss (a static loop: no per-step branch
  # selection); every (loss, t) reuses the same starts.
  tile = lambda a: jnp.broadcast_to(a[None], (num_t,) + a.shape).reshape(
      (num_t * num_r,) + a.shape[1:])
  flat_t = jnp.repeat(t, num_r)
  per_loss = []
  for fn, ident in zip(fns, idents):
    solve = functools.partial(_solve_one, fn, ident, lam, k, num_steps, lr,
                              inner_steps)
    per_loss.append(jax.vmap(solve)(jax.tree.map(tile, starts), flat_t))
  vals, hs, ps = (jnp.stack(parts) for parts in zip(*per_loss))
  vals = jnp.where(jnp.isnan(vals), jnp.inf, vals).reshape(num_l * num_t, num_r)
  best = jnp.argmin(vals, axis=1)
  rows = jnp.arange(num_l * num_t) * num_r + best
  shape = (num_l, num_t)
  hs, ps = hs.reshape(-1, k), ps.reshape(-1, k)
  return CalibrationResult(vals[jnp.arange(num_l * num_t), best].reshape(shape),
                           hs[rows].reshape(shape + (k,)), ps[rows].reshape(shape + (k,)))


def _in_chunks(solve, flat, update) -> CalibrationResult:
  """``solve`` over ``flat [T]`` in chunks of ``ceil(T / 20)`` values; the last chunk
  is padded with copies of the last ``t`` (one compiled shape), then trimmed."""
  n = flat.shape[0]
  size = max(1, -(-n // _PROGRESS_UPDATES))
  padded = jnp.concatenate([flat, jnp.broadcast_to(flat[-1:], (-n % size,))])
  parts = []
  for start in range(0, n, size):
    part = jax.block_until_ready(solve(padded[start:start + size]))
    parts.append(part)
    update(min(size, n - start))
  return jax.tree.map(lambda *a: jnp.concatenate(a, axis=1)[:, :n], *parts)


def calibration_function(loss_fn, t: ArrayLike, *, num_classes: int, key: jax.Array,
                         tau: float | None = None, score_bound: float | None = None,
                         num_restarts: int = 24, num_steps: int = 400,
                         learning_rate: float = 0.05, inner_steps: int = 5,
                         return_argmin: bool = False, progress=False):
  """Numerical tightest transform ``delta(t)`` of a loss (see the module docstring).

  Assumes the loss is symmetric under permutations of the classes (all library losses
  are). The value is an upper estimate of the infimum; raise ``num_restarts`` and
  ``num_steps`` for tighter estimates.

  Args:
    loss_fn: a loss callable ``(h [..., K], y [...]) -> [...]`` or a loss name; or a
      list/tuple of callables, all computed in one compiled call (the output gets a
      leading loss axis ``[L]``).
    t: 0-1 regret levels ``[T]`` (or a scalar) in ``[0, 1]``; the output follows its
      float dtype. Traced values outside ``[0, 1]`` give NaN.
    num_classes: static ``K >= 2``.
    key: PRNG key for the random restarts.
    tau: comp-sum parameter when ``loss_fn == "comp_sum"``.
    score_bound: ``Lambda`` to restrict scores to ``|h_y| <= Lambda`` (``C*`` is then
      computed over the same box, numerically).
    num_restarts, num_steps, learning_rate: optimiser budget (static).
    inner_steps: inner ``C*`` steps per outer step (numerical ``C*`` only).
    return_argmin: also return the minimising ``h`` and ``p``.
    progress: ``True`` for a tqdm bar over the ``t`` values, or a callable called
      with the number of ``t`` values finished
      ([`jgen.core.progress`][jgen.core.progress]). Solves
      ``t`` in chunks of ``ceil(T / 20)`` (one compile, the last chunk padded) with
      the same starts as the single call, hence the same values; needs concrete ``t``.

  Returns:
    ``delta`` with the shape of ``t`` (``[L, *t.shape]`` for a list of losses); or a
    [`CalibrationResult`][jgen.bounds.CalibrationResult] with leading shape ``[T]``
    (``[L, T]``) when ``return_argmin``.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> t = jnp.array([0.25, 0.5])
    >>> kw = dict(num_classes=2, key=jax.random.key(0), num_restarts=2, num_steps=50)
    >>> delta = jgen.bounds.calibration_function("logistic", t, **kw)
    >>> tuple(round(float(v), 3) for v in delta)  # the logistic transform is tight
    (0.032, 0.131)
    >>> tuple(round(float(v), 3) for v in jgen.bounds.psi("logistic", t, num_classes=2))
    (0.032, 0.131)
  """
  many = isinstance(loss_fn, (list, tuple))
  if many and tau is not None:
    raise ValueError("tau applies to a single loss name; for a list pass callables"
                     " from jgen.bounds.get_loss('comp_sum', tau=...).")
  resolved = [_regret.resolve_loss(f, None if many else tau)
              for f in (loss_fn if many else [loss_fn])]
  if not resolved:
    raise ValueError("loss_fn must not be an empty list.")
  fns, idents = tuple(r[0] for r in resolved), tuple(r[1] for r in resolved)
  k = _checks.check_num_classes(num_classes)
  lam = None if score_bound is None else _common.check_score_bound(score_bound)
  for name, val in (("num_restarts", num_restarts), ("num_steps", num_steps),
                    ("inner_steps", inner_steps)):
    if not isinstance(val, int) or isinstance(val, bool) or val < 1:
      raise ValueError(f"{name} must be a positive int, got {val!r}.")
  check_progress(progress)
  t = _common.as_unit_interval(t, "t")
  flat = t.reshape(-1)
  # Drawn outside the jitted solver: the draw compiles once per (R, K), shared by
  # every loss, instead of once per solver compile.
  z = jax.random.normal(key, (num_restarts, 3 * k + 1), flat.dtype)
  solve = functools.partial(_calibrate, fns, idents, lam, k, num_steps,
                            float(learning_rate), inner_steps, z)
  if progress is None or progress is False or flat.shape[0] == 0:
    out = solve(flat)
  else:
    with report(progress, flat.shape[0], unit="t", desc="calibration_function") as update:
      out = _in_chunks(solve, flat, update)
  ok = _checks.as_trailing((flat >= 0.0) & (flat <= 1.0), 2)
  out = out._replace(delta=_common.nan_where(ok, out.delta))
  if not many:
    out = jax.tree.map(lambda a: a[0], out)
  if return_argmin:
    return out
  return out.delta.reshape(out.delta.shape[:-1] + t.shape)
