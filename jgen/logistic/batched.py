r"""Logistic regression whose ``vmap`` does no wasted work: L-BFGS with an exact line search.

The logits of a linear model are linear in the parameters, so along a search direction
``d = (dW, db)`` they are ``z(t) = z + t dz`` with ``dz = x dW + db``: one matmul gives
``dz``, after which the one-dimensional objective

$$
\phi(t) = \frac{1}{T} \sum_i w_i \mathrm{CE}(z_i + t\,dz_i, y_i) + \frac{\lVert W + t\,dW \rVert^2}{2 C T}
$$

and its first two derivatives cost ``O(N K)`` each, not ``O(N D K)``. The line search
is a fixed number of safeguarded Newton steps on ``phi`` (bisection when a step leaves
the bracket), chosen with ``jnp.where``: no ``lax.cond``, no inner ``while_loop``. One
iteration is therefore exactly two passes over the data (``x dW`` and the gradient
``x^T r``) whatever the data, and under ``vmap`` every lane does the same work per
iteration; lanes that have converged are frozen by ``while_loop``'s batching rule.

The objective and coordinates are those of
[`jgen.logistic.logistic_regression`][jgen.logistic_regression] (scikit-learn's ``C``;
features centred and scaled inside the solver), so both families return the same
minimiser. Stopping: ``tol`` on the gradient of ``J / (C sum w)`` (scikit-learn's),
``max_iter``, or a stall: a step that does not move, or whose measured relative decrease
is below ``ftol`` (scipy's rule; off by default, used only when given). A
quasi-Newton step that stalls first clears the L-BFGS history, so only a stalled
steepest-descent step ends the fit. Where ``phi``'s decrease rounds away (float32 near
the optimum) the line search takes the largest trial with ``phi' < 0``, which decreases
``phi`` by convexity. ``converged`` is true exactly when the gradient test holds.
[`batched_logistic_regression`][jgen.logistic.batched_logistic_regression] returns the
same [`jgen.Classifier`][jgen.Classifier] (name ``"logistic_regression"``,
``LogisticParams``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jgen.core import checks as _checks
from jgen.core.contract import Classifier
from jgen.logistic import model as _model
from jgen.logistic.solvers import expand
from jgen.logistic.solvers import free_columns
from jgen.logistic.solvers import shrink

__all__ = ["batched_logistic_regression", "exact_ls_fit"]

_LS_STEPS = 10


def _two_loop(g, s_mem, y_mem, rho, newest, memory):
  """L-BFGS direction ``-H g`` from the history (unused slots have ``rho = 0``)."""
  def back(i, carry):
    q, alpha = carry
    j = (newest - i) % memory
    a = rho[j] * jnp.dot(s_mem[j], q)
    return q - a * y_mem[j], alpha.at[j].set(a)

  q, alpha = jax.lax.fori_loop(0, memory, back, (g, jnp.zeros_like(rho)))
  yy = jnp.dot(y_mem[newest], y_mem[newest])
  gamma = jnp.where(rho[newest] > 0, 1.0 / jnp.maximum(rho[newest] * yy, 1e-30), 1.0)
  r = gamma.astype(g.dtype) * q

  def fwd(i, r):
    j = (newest + 1 + i) % memory
    b = rho[j] * jnp.dot(y_mem[j], r)
    return r + (alpha[j] - b) * s_mem[j]

  return -jax.lax.fori_loop(0, memory, fwd, r)


def _line_derivs(t, z, dz, sw_t, pen):
  """``phi(t)``, ``phi'(t)``, ``phi''(t)`` from logits only.

  ``pen = (a, b, c)`` holds the terms linear and quadratic in ``t``: the penalty's and the
  true-class logits' (``sum_i w_i z_{i y_i}`` is linear in ``t``, so it is summed once per
  direction, outside the search).
  """
  zt = z + t * dz
  lse = jax.nn.logsumexp(zt, axis=-1)
  p = jnp.exp(zt - lse[:, None])
  pdz = jnp.sum(p * dz, -1)
  a, b, c = pen
  f = jnp.sum(sw_t * lse) + a + t * b + 0.5 * c * t * t
  d1 = jnp.sum(sw_t * pdz) + b + c * t
  d2 = jnp.sum(sw_t * (jnp.sum(p * dz * dz, -1) - pdz * pdz)) + c
  return f, d1, d2


def _line_search(z, dz, onehot, sw_t, pen):
  """Safeguarded Newton on the convex ``phi``.

  Returns ``(t, phi(t), phi(0), measured)``: the trial with the lowest ``phi`` or, when
  no trial compares below ``phi(0)`` (``measured`` false), the largest trial with
  ``phi' < 0`` (``0`` if none).
  """
  dtype = z.dtype
  # The true-class term, linear in t, is summed here once. Written inside
  # `_line_derivs` as sum(onehot * (z + t dz)), XLA's CPU compiler (jax 0.10) returned a
  # wrong phi(t) for some lanes of a vmapped fit (phi rising where phi' < 0), so every
  # trial step looked worse than t = 0 and the fit stopped after one or two iterations.
  a, b, c = pen
  pen = (a - jnp.sum(sw_t * jnp.sum(onehot * z, -1)),
         b - jnp.sum(sw_t * jnp.sum(onehot * dz, -1)), c)
  f0, _, _ = _line_derivs(jnp.zeros((), dtype), z, dz, sw_t, pen)

  def step(_, c):
    t, lo, hi, best_t, best_f = c
    f, d1, d2 = _line_derivs(t, z, dz, sw_t, pen)
    better = f < best_f
    best_t, best_f = jnp.where(better, t, best_t), jnp.where(better, f, best_f)
    lo, hi = jnp.where(d1 < 0, t, lo), jnp.where(d1 < 0, hi, t)
    newton = t - d1 / jnp.maximum(d2, jnp.finfo(dtype).tiny)
    fallback = jnp.where(jnp.isfinite(hi), 0.5 * (lo + hi), 4.0 * t)
    inside = jnp.isfinite(newton) & (newton > lo) & (newton < hi)
    return jnp.where(inside, newton, fallback), lo, hi, best_t, best_f

  one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)
  init = (one, zero, jnp.asarray(jnp.inf, dtype), zero, f0)
  _, lo, _, t, f = jax.lax.fori_loop(0, _LS_STEPS, step, init)
  # Near the minimum phi's changes fall below its rounding (float32) and no trial
  # compares lower than phi(0); phi'(lo) < 0 still proves phi(lo) < phi(0) (convexity).
  measured = t > 0  # a trial compared lower than phi(0)
  f_lo, _, _ = _line_derivs(lo, z, dz, sw_t, pen)
  return (jnp.where(measured, t, lo), jnp.where(measured, f, jnp.minimum(f_lo, f0)), f0,
          measured)


def _flat(w, b):
  return jnp.concatenate([w.reshape(-1), b])


@functools.partial(jax.jit, static_argnames=("num_classes", "fit_intercept", "memory_size"))
def exact_ls_fit(x, y, sw, w0, b0, *, num_classes, C, tol, ftol, max_iter,
                 fit_intercept=True, memory_size=10):
  """Minimises the scaled L2 logistic objective; free parameters in and out.

  Args:
    x: ``[N, D]`` features; y: ``[N]`` int labels; sw: ``[N]`` weights (``0`` = padding).
    w0, b0: free starting parameters ``[D, K']``, ``[K']`` (``K' = 1`` when ``K = 2``).
    num_classes: static ``K``; C, tol, ftol, max_iter: traced scalars.

  Returns:
    ``((w [D, K'], b [K']), num_iter, grad_norm, converged)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.logistic.batched import exact_ls_fit
    >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]]); y = jnp.array([0, 0, 1, 1])
    >>> (w, b), it, g, ok = exact_ls_fit(x, y, jnp.ones(4), jnp.zeros((1, 1)),
    ...     jnp.zeros(1), num_classes=2, C=1.0, tol=1e-6, ftol=1e-12, max_iter=100)
    >>> bool(ok), bool(w[0, 0] > 0)
    (True, True)
  """
  dtype = x.dtype
  total = jnp.sum(sw)
  sw_t = sw / total
  mu = jnp.sum(sw[:, None] * x, 0) / total
  s = jnp.sqrt(jnp.sum(sw[:, None] * (x - mu[None, :]) ** 2, 0) / total + 1.0 / (C * total))
  mu = mu if fit_intercept else jnp.zeros_like(mu)
  xs = (x - mu[None, :]) / s[None, :]
  onehot = jax.nn.one_hot(y, num_classes, dtype=dtype)
  d, kf = w0.shape
  inv_s2 = (1.0 / (s * s))[:, None] / (C * total)
  bmask = jnp.asarray(1.0 if fit_intercept else 0.0, dtype)

  def logits(w, b):  # linear in (w, b)
    wf, bf = expand(w, b, num_classes)
    return xs @ wf + bf[None, :]

  # The gradient contracts over the examples: written on a row-major copy of xs^T
  # its matmul reads memory in order (2.6x faster on the CPU at N = 4096, D = 1000
  # than contracting xs over its leading axis).
  xst = jax.lax.optimization_barrier(jnp.transpose(xs))

  def logits_t(w, b):  # the map of `logits`, read from the transposed copy
    wf, bf = expand(w, b, num_classes)
    return xst.T @ wf + bf[None, :]

  def grad_at(z, w):
    r = sw_t[:, None] * (jax.nn.softmax(z, -1) - onehot)
    gw, gb = jax.vjp(logits_t, w, jnp.zeros((kf,), dtype))[1](r)
    return _flat(gw + w * inv_s2, bmask * gb)

  def orig_norm(g):
    gw, gb = g[:d * kf].reshape(d, kf), g[d * kf:]
    return jnp.maximum(jnp.max(jnp.abs(s[:, None] * gw + mu[:, None] * gb[None, :])),
                       jnp.max(jnp.abs(gb)))

  def stalled(f0, f1):
    return (f0 - f1) <= ftol * jnp.maximum(jnp.maximum(jnp.abs(f0), jnp.abs(f1)), 1.0)

  def body(c):
    w, b, z, g, s_mem, y_mem, rho, newest, it, _, _ = c
    fresh = jnp.all(rho == 0)  # no curvature pairs: this step is steepest descent
    p = _two_loop(g, s_mem, y_mem, rho, newest, memory_size)
    p = jnp.where(jnp.dot(p, g) < 0, p, -g)  # a descent direction, always
    dw, db = p[:d * kf].reshape(d, kf), bmask * p[d * kf:]
    dz = logits(dw, db)
    pen = (0.5 * jnp.sum(w * w * inv_s2), jnp.sum(w * dw * inv_s2),
           jnp.sum(dw * dw * inv_s2))
    t, f_new, f0, measured = _line_search(z, dz, onehot, sw_t, pen)
    w, b, z = w + t * dw, b + t * db, z + t * dz
    g_new = grad_at(z, w)
    sv, yv = t * _flat(dw, db), g_new - g
    sy = jnp.dot(sv, yv)
    keep = sy > jnp.finfo(dtype).eps * jnp.dot(yv, yv)
    slot = jnp.where(keep, (newest + 1) % memory_size, newest)
    s_mem = jnp.where(keep, s_mem.at[slot].set(sv), s_mem)
    y_mem = jnp.where(keep, y_mem.at[slot].set(yv), y_mem)
    rho = jnp.where(keep, rho.at[slot].set(1.0 / jnp.where(keep, sy, 1.0)), rho)
    # A quasi-Newton step that stalls drops the history, so that the next step is
    # steepest descent; only a steepest-descent step that stalls ends the fit.
    # A step is stalled if it did not move, or if its decrease was measured and is
    # below ftol (scipy's rule); a decrease proven by phi' alone is progress.
    stall = (t == 0) | (measured & stalled(f0, f_new))
    rho = jnp.where(stall, jnp.zeros_like(rho), rho)
    return (w, b, z, g_new, s_mem, y_mem, rho, slot, it + 1, orig_norm(g_new),
            stall & fresh)

  def cond(c):
    it, gnorm, stop = c[8], c[9], c[10]
    return (it < max_iter) & (gnorm > tol) & ~stop

  w, b = s[:, None] * w0, (b0 + mu @ w0) * bmask
  z = logits(w, b)
  g = grad_at(z, w)
  p_size = d * kf + kf
  carry = (w, b, z, g, jnp.zeros((memory_size, p_size), dtype),
           jnp.zeros((memory_size, p_size), dtype), jnp.zeros((memory_size,), dtype),
           jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32), orig_norm(g),
           jnp.asarray(False))
  w, b, _, _, _, _, _, _, it, _, _ = jax.lax.while_loop(cond, body, carry)
  gnorm = orig_norm(grad_at(logits(w, b), w))  # exact, not the running logits
  # Converged means the gradient criterion holds: a fit that stopped because its
  # objective stalled (rounding, a failed line search) or at max_iter is not converged.
  converged = gnorm <= tol
  w = w / s[:, None]
  b = b - mu @ w if fit_intercept else jnp.zeros_like(b)
  return (w, b), it, gnorm, converged


def batched_logistic_regression(C: float = 1.0, *, tol: float = 1e-4, max_iter: int = 1000,
                                fit_intercept: bool = True, ftol: float | None = None,
                                memory_size: int = 10) -> Classifier:
  """[`jgen.logistic_regression`][jgen.logistic_regression] with the branch-free solver
  ``exact_ls_fit``.

  Same objective, stopping rule, arguments and
  [`jgen.logistic.LogisticParams`][jgen.LogisticParams]; use it wherever fits are
  vmapped (repetitions, seeds, hyperparameters).

  Returns:
    A [`jgen.Classifier`][jgen.Classifier] named ``"logistic_regression"``:
    ``fit(x [N, D], y [N], *, num_classes, sample_weight=None [N], init=None) -> LogisticParams``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.logistic.batched import batched_logistic_regression
    >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]]); y = jnp.array([0, 0, 1, 1])
    >>> lr = batched_logistic_regression(C=10.0)
    >>> p = lr.fit(x, y, num_classes=2)
    >>> lr.log_likelihood(p, x).argmax(-1).tolist()
    [0, 0, 1, 1]
  """
  base = _model.logistic_regression(C, tol=tol, max_iter=max_iter,
                                    fit_intercept=fit_intercept, ftol=ftol,
                                    memory_size=memory_size)
  h = dict(base.hyperparams)

  def fit(x, y, *, num_classes, sample_weight=None, init=None):
    """Branch-free L-BFGS fit; see
    [`batched_logistic_regression`][jgen.logistic.batched_logistic_regression]."""
    num_classes = _checks.check_num_classes(num_classes)
    x, y, sw = _model.check_data(x, y, sample_weight, num_classes)
    if init is None:
      kf = free_columns(num_classes)
      w0, b0 = jnp.zeros((x.shape[1], kf), x.dtype), jnp.zeros((kf,), x.dtype)
    else:
      w0, b0 = (a.astype(x.dtype) for a in shrink(init.weights, init.bias, num_classes))
    f = h["ftol"]
    if f is None:
      # No relative-change rule by default: near the optimum it fired while the
      # gradient was still above tol (4 eps in float32, 64 eps in float64), and the
      # line search proves progress from phi' where phi's change rounds away; the fit
      # stops at tol, at max_iter, or when a steepest-descent step cannot move.
      f = 0.0
    (w, b), it, gnorm, ok = exact_ls_fit(
        x, y, sw, w0, b0, num_classes=num_classes, C=h["C"], tol=h["tol"], ftol=f,
        max_iter=h["max_iter"], fit_intercept=h["fit_intercept"],
        memory_size=h["memory_size"])
    if num_classes > 2 and h["fit_intercept"]:
      b = b - jnp.mean(b)  # softmax is shift invariant: centre, as scikit-learn does
    w, b = expand(w, b, num_classes)
    return _model.LogisticParams(w, b, _model.FitInfo(ok, it, gnorm))

  return base._replace(fit=fit)
