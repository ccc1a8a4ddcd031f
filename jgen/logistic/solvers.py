"""Solvers of the L2-penalised multinomial logistic objective, on free parameters.

The binary model has one free weight column (class 1 minus class 0), the multiclass
model ``K``; ``expand`` and ``shrink`` convert between free and full
``[D, K]`` parameters. ``lbfgs_fit`` runs optax's L-BFGS with its zoom line search
inside ``lax.while_loop``; ``minibatch_fit`` any optax optimiser on minibatches.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

__all__ = ["free_columns", "expand", "shrink", "losses", "lbfgs_fit", "minibatch_fit"]


def free_columns(num_classes: int) -> int:
  """Free weight columns: one for the binary model, ``K`` otherwise."""
  return 1 if num_classes == 2 else num_classes


def expand(w: jax.Array, b: jax.Array, num_classes: int) -> tuple[jax.Array, jax.Array]:
  """Free parameters ``[D, K']``, ``[K']`` -> full ``[D, K]``, ``[K]``."""
  if num_classes == 2:
    w = jnp.concatenate([jnp.zeros_like(w), w], axis=-1)
    b = jnp.concatenate([jnp.zeros_like(b), b], axis=-1)
  return w, b


def shrink(w: jax.Array, b: jax.Array, num_classes: int) -> tuple[jax.Array, jax.Array]:
  """Full ``[D, K]``, ``[K]`` parameters -> free ones (binary: class 1 minus class 0)."""
  if num_classes == 2:
    return w[:, 1:] - w[:, :1], b[1:] - b[:1]
  return w, b


def losses(w, b, x, y, num_classes):
  """Per-example cross-entropies ``[N]`` for free parameters."""
  w_full, b_full = expand(w, b, num_classes)
  z = x @ w_full + b_full[None, :]
  return jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[:, None], -1)[:, 0]


def _scaled_objective(free, x, y, sw, *, num_classes, C):
  """``J / (C sum(sw))``: a mean loss, so tolerances do not depend on N or C."""
  w, b = free
  total = jnp.sum(sw)
  return (jnp.sum(sw * losses(w, b, x, y, num_classes)) / total
          + 0.5 * jnp.sum(w * w) / (C * total))


def _inf_norm(tree) -> jax.Array:
  return jnp.max(jnp.stack([jnp.max(jnp.abs(t)) for t in jax.tree.leaves(tree)]))


def _preconditioner(x, sw, fit_intercept, C):
  """Weighted feature means ``[D]`` (zeros without intercept) and scales ``[D]``."""
  total = jnp.sum(sw)
  mu = jnp.sum(sw[:, None] * x, axis=0) / total
  var = jnp.sum(sw[:, None] * (x - mu[None, :]) ** 2, axis=0) / total
  # Curvature of the data term ~ var, of the penalty ~ 1 / (C sum w): scale by both.
  scale = jnp.sqrt(var + 1.0 / (C * total))
  # Without a penalty (C = inf) a constant feature has scale 0: leave it unscaled.
  scale = jnp.where(scale > 0, scale, jnp.ones_like(scale))
  if not fit_intercept:
    mu = jnp.zeros_like(mu)
  return mu, scale


# C, tol, ftol and max_iter are traced: one compilation per shape serves every setting.
@functools.partial(jax.jit, static_argnames=("num_classes", "fit_intercept",
                                              "memory_size"))
def lbfgs_fit(x, y, sw, w0, b0, *, num_classes, C, tol, ftol, max_iter,
               fit_intercept, memory_size):
  """L-BFGS on the scaled objective; returns free ``(w, b)``, iterations, grad norm.

  The solver works in centred and scaled coordinates ``W' = s W``, ``b' = b + mu W``
  (``x W + b = ((x - mu) / s) W' + b'``): the same objective and minimiser, but a far
  better conditioned problem for raw features such as wine's or breast_cancer's. The
  stopping rule uses the gradient in the original coordinates.
  """
  mu, s = _preconditioner(x, sw, fit_intercept, C)
  xs = (x - mu[None, :]) / s[None, :]

  def fun(free):
    w, b = free
    if not fit_intercept:
      b = jax.lax.stop_gradient(jnp.zeros_like(b))
    total = jnp.sum(sw)
    ce = losses(w, b, xs, y, num_classes)
    w_orig = w / s[:, None]
    return jnp.sum(sw * ce) / total + 0.5 * jnp.sum(w_orig * w_orig) / (C * total)

  def orig_grad_norm(grad):
    gw, gb = grad
    if not fit_intercept:
      gb = jnp.zeros_like(gb)
    return _inf_norm((s[:, None] * gw + mu[:, None] * gb[None, :], gb))

  def relative_stall(prev, value):
    return (prev - value) <= ftol * jnp.maximum(
        jnp.maximum(jnp.abs(prev), jnp.abs(value)), 1.0)

  opt = optax.lbfgs(memory_size=memory_size)

  def cond(carry):
    _, state, prev, it, gnorm = carry
    stalled = relative_stall(prev, otu.tree_get(state, "value"))
    return (it < max_iter) & ~((gnorm <= tol) | ((it > 0) & stalled))

  def body(carry):
    free, state, _, it, _ = carry
    # The state holds the value and gradient at ``free``: the start's, then those the
    # line search stored at each new point. Reading them (instead of optax's
    # value_and_grad_from_state, whose fallback branch is one more copy of the
    # objective and its gradient) keeps the program, and its compile time, smaller.
    value, grad = otu.tree_get(state, "value"), otu.tree_get(state, "grad")
    updates, state = opt.update(grad, state, free, value=value, grad=grad,
                                value_fn=fun)
    free = optax.apply_updates(free, updates)
    return free, state, value, it + 1, orig_grad_norm(otu.tree_get(state, "grad"))

  free0 = (s[:, None] * w0, b0 + mu @ w0 if fit_intercept else b0)
  v0, g0 = jax.value_and_grad(fun)(free0)
  state0 = otu.tree_set(opt.init(free0), value=v0, grad=g0)
  carry = (free0, state0, jnp.asarray(jnp.inf, v0.dtype),
           jnp.asarray(0, jnp.int32), orig_grad_norm(g0))
  free, state, prev, it, gnorm = jax.lax.while_loop(cond, body, carry)
  value = otu.tree_get(state, "value")
  converged = (gnorm <= tol) | ((it > 0) & (it < max_iter) & relative_stall(prev, value))
  w, b = free
  w = w / s[:, None]
  if fit_intercept:
    b = b - mu @ w
  return (w, b), it, gnorm, converged


@functools.partial(jax.jit, static_argnames=("opt", "num_classes", "C", "batch_size",
                                              "num_steps", "fit_intercept"))
def minibatch_fit(key, x, y, sw, w0, b0, opt, *, num_classes, C, batch_size,
                   num_steps, fit_intercept):
  """``num_steps`` optax steps on minibatches drawn without replacement per step.

  Each step's loss is the minibatch mean of ``w_i CE_i`` over the mean weight plus the
  full penalty ``0.5 ||W||^2 / (C sum w)``: an unbiased estimate of the scaled
  objective. Returns free ``(w, b)`` and the full-batch gradient norm at the end.
  """
  n = x.shape[0]
  total = jnp.sum(sw)

  def loss(free, idx):
    w, b = free
    if not fit_intercept:
      b = jax.lax.stop_gradient(jnp.zeros_like(b))
    ce = losses(w, b, x[idx], y[idx], num_classes)
    return (jnp.sum(sw[idx] * ce) * (n / batch_size) / total
            + 0.5 * jnp.sum(w * w) / (C * total))

  def step(carry, step_key):
    free, state = carry
    idx = jax.random.choice(step_key, n, (batch_size,), replace=False)
    grad = jax.grad(loss)(free, idx)
    updates, state = opt.update(grad, state, free)
    return (optax.apply_updates(free, updates), state), None

  free = (w0, b0)
  (free, _), _ = jax.lax.scan(step, (free, opt.init(free)),
                              jax.random.split(key, num_steps))
  full = lambda f: _scaled_objective(f, x, y, sw, num_classes=num_classes, C=C)
  grad = jax.grad(full)(free)
  if not fit_intercept:
    grad = (grad[0], jnp.zeros_like(grad[1]))
  return free, _inf_norm(grad)


