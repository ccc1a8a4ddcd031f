"""Second-order solvers of the penalised logistic objective: Newton's method (Cholesky
or conjugate-gradient solve of the Newton system) and proximal Newton for L1 /
elastic-net penalties.

Both work on the mean-scaled objective of [`jgen.logistic_regression`][jgen.logistic_regression],

$$
F(\\theta) = \\sum_i c_i \\, \\mathrm{CE}_i(\\theta)
  + \\tfrac{\\lambda_2}{2} \\lVert W \\rVert_2^2 + \\lambda_1 \\lVert W \\rVert_1,
\\qquad c_i = \\frac{w_i}{\\sum_j w_j},\\;
\\lambda_2 = \\frac{1 - \\rho}{C \\sum_j w_j},\\; \\lambda_1 = \\frac{\\rho}{C \\sum_j w_j},
$$

(``rho`` the L1 ratio), in the parameters ``theta = [W; b]`` of shape ``[D + 1, K']``
(the intercept as the last row; ``K' = 1`` for the binary model), with the gradient and
Hessian written out in closed form (``X~ = [X, 1]``):

* gradient ``X~^T (c * (P - Y)) + lambda_2 [W; 0]``;
* Hessian ``sum_i c_i (x~_i x~_i^T) kron A_i + lambda_2 diag([1..1, 0])`` with
  ``A_i = p_i (1 - p_i)`` (binary) or ``diag(p_i) - p_i p_i^T`` (multinomial).

The multinomial loss does not change when one vector is added to every class's
weights; with the L2 penalty or none the minimiser jgen returns is the centred one
(weights and intercepts summing to zero over classes, the symmetric parametrisation of
Zhu & Hastie 2004). Newton's method starts from the centred point and keeps its steps
centred: on centred parameters the Hessian plus the projector on the class-constant
directions equals the Hessian, so the solve is exact.

References:
  J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Springer 2006
  (Newton's method with backtracking, chapter 3; Newton-CG, chapter 7).
  J. D. Lee, Y. Sun and M. A. Saunders, "Proximal Newton-type methods for minimizing
  composite functions", SIAM J. Optim. 24(3), 2014, [arXiv:1206.1623](https://arxiv.org/abs/1206.1623).
  G.-X. Yuan, C.-H. Ho and C.-J. Lin, "An improved GLMNET for L1-regularized logistic
  regression", JMLR 13, 2012 (the proximal Newton step solved by coordinate descent).
  J. Zhu and T. Hastie, "Classification of gene microarrays by penalized logistic
  regression", Biostatistics 5(3), 2004.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jgen.logistic.solvers import losses

__all__ = ["newton_fit", "prox_newton_fit"]

_ARMIJO = 1e-4          # sufficient-decrease constant of the line searches
_MAX_HALVINGS = 40      # backtracking steps before a line search gives up
_MAX_CG = 200           # inner conjugate-gradient iterations (scikit-learn's maxinner)
_MAX_SWEEPS = 100       # coordinate-descent sweeps per proximal Newton step


class _Problem:
  """Data, weights and penalty of one fit, and the closed-form derivatives."""

  def __init__(self, x, y, sw, *, num_classes, C, l1_ratio, fit_intercept, centre):
    total = jnp.sum(sw)
    self.c = sw / total
    self.num_classes = num_classes
    self.k = 1 if num_classes == 2 else num_classes
    dtype = x.dtype
    # Feature means (weighted) when the intercept is fitted: the reparametrisation
    # b' = b + mu W leaves the objective unchanged (the penalties act on W only) and
    # decorrelates the intercept from the weights, which helps coordinate descent.
    mu = (self.c @ x if (centre and fit_intercept)
          else jnp.zeros(x.shape[1], dtype))
    self.mu = mu
    self.xa = jnp.concatenate([x - mu[None, :], jnp.ones((x.shape[0], 1), dtype)], 1)
    self.y = y
    self.onehot = (y == 1)[:, None].astype(dtype) if num_classes == 2 else (
        jax.nn.one_hot(y, num_classes, dtype=dtype))
    lam = 1.0 / (C * total)   # 0 for C = inf
    self.lam1 = l1_ratio * lam
    self.lam2 = (1.0 - l1_ratio) * lam
    d1 = x.shape[1] + 1
    # 1 on the weight rows, 0 on the intercept row: where the penalties act.
    self.wmask = jnp.concatenate([jnp.ones((d1 - 1, 1), dtype), jnp.zeros((1, 1), dtype)])
    # 1 where a parameter is free (the intercept row is fixed at 0 without intercept).
    self.free = jnp.ones((d1, 1), dtype) if fit_intercept else self.wmask

  def to_theta(self, w, b):
    return jnp.concatenate([w, (b + self.mu @ w)[None, :]], 0) * self.free

  def from_theta(self, theta):
    w = theta[:-1]
    return w, theta[-1] - self.mu @ w

  def smooth(self, theta):
    """Mean cross-entropy plus the L2 part."""
    ce = losses(theta[:-1], theta[-1], self.xa[:, :-1], self.y, self.num_classes)
    w = theta * self.wmask
    return self.c @ ce + 0.5 * self.lam2 * jnp.sum(w * w)

  def l1(self, theta):
    return self.lam1 * jnp.sum(jnp.abs(theta * self.wmask))

  def probs(self, theta):
    z = self.xa @ theta
    return jax.nn.sigmoid(z) if self.num_classes == 2 else jax.nn.softmax(z, -1)

  def grad(self, theta, p):
    g = self.xa.T @ (self.c[:, None] * (p - self.onehot))
    return (g + self.lam2 * self.wmask * theta) * self.free

  def hessian(self, p):
    """Dense Hessian ``[P, P]`` of ``smooth`` over the flat ``theta`` (row-major)."""
    d1, k = self.xa.shape[1], self.k
    if self.num_classes == 2:
      s = self.c * p[:, 0] * (1.0 - p[:, 0])
      h = (self.xa * s[:, None]).T @ self.xa
    else:
      a = self.c[:, None, None] * (p[:, :, None] * jnp.eye(k, dtype=p.dtype)[None]
                                   - p[:, :, None] * p[:, None, :])
      h = jnp.einsum("ia,ikm,ib->akbm", self.xa, a, self.xa).reshape(d1 * k, d1 * k)
    reg = (self.lam2 * self.wmask * jnp.ones((1, k), p.dtype)).reshape(-1)
    free = (self.free * jnp.ones((1, k), p.dtype)).reshape(-1)
    h = h + jnp.diag(reg)
    # A fixed intercept: identity rows and columns, so its (zero) step stays zero.
    return h * free[:, None] * free[None, :] + jnp.diag(1.0 - free)

  def hvp(self, p, v):
    """Hessian-vector product for ``v [D + 1, K']``."""
    z = self.xa @ (v * self.free)
    if self.num_classes == 2:
      az = self.c[:, None] * p * (1.0 - p) * z
    else:
      az = self.c[:, None] * p * (z - jnp.sum(p * z, -1, keepdims=True))
    return (self.xa.T @ az + self.lam2 * self.wmask * v) * self.free


def _centre(theta, num_classes):
  return theta if num_classes == 2 else theta - jnp.mean(theta, -1, keepdims=True)


def _inf_norm(a):
  return jnp.max(jnp.abs(a))


def _relative_step(step, theta):
  """``max |step| / max(1, max |theta|)``: scikit-learn's ``sag``/``saga`` stopping
  measure (the change of the weights relative to their size)."""
  return _inf_norm(step) / jnp.maximum(1.0, _inf_norm(theta))


def _done(gnorm, step, tol):
  """Stop once the gradient (or minimum-norm subgradient) and a step measure are both
  at most ``tol``.

  The gradient rule alone is scikit-learn's ``lbfgs``/``newton-cg`` rule; a Newton-type
  step is close to the distance to the minimiser, so the relative-step rule
  (scikit-learn's ``sag``/``saga`` rule) keeps a loose ``tol`` from stopping far from
  it: one more Newton step costs little and usually squares the error.
  """
  return (gnorm <= tol) & (step <= tol)


def _line_search(fun, theta, d, value, slope):
  """Backtracking from the full step: the largest ``t = 2^-j`` with
  ``fun(theta + t d) <= value + 1e-4 t slope``; ``ok`` is False when none is found."""
  def cond(carry):
    t, j, new = carry
    return (new > value + _ARMIJO * t * slope) & (j < _MAX_HALVINGS)

  def body(carry):
    t, j, _ = carry
    t = 0.5 * t
    return t, j + 1, fun(theta + t * d)

  one = jnp.ones((), theta.dtype)
  t, _, new = jax.lax.while_loop(cond, body, (one, jnp.zeros((), jnp.int32),
                                              fun(theta + d)))
  ok = (new <= value + _ARMIJO * t * slope) & jnp.isfinite(new) & (slope < 0)
  return t, ok


def _cg(hvp, g, dtype):
  """Truncated conjugate gradient on ``H d = -g`` (forcing term of scikit-learn's
  newton-cg: stop at ``||r||_1 <= min(0.5, sqrt(||g||_1)) ||g||_1``)."""
  gnorm1 = jnp.sum(jnp.abs(g))
  stop = jnp.minimum(0.5, jnp.sqrt(gnorm1)) * gnorm1

  def cond(carry):
    _, r, _, _, i, done = carry
    return (jnp.sum(jnp.abs(r)) > stop) & (i < _MAX_CG) & ~done

  def body(carry):
    d, r, p, rr, i, _ = carry
    hp = hvp(p)
    curv = jnp.sum(p * hp)
    bad = curv <= jnp.finfo(dtype).tiny   # no positive curvature: keep d
    alpha = jnp.where(bad, 0.0, rr / jnp.where(bad, 1.0, curv))
    d = d + alpha * p
    r = r - alpha * hp
    rr_new = jnp.sum(r * r)
    p = r + (rr_new / jnp.where(rr > 0, rr, 1.0)) * p
    return d, r, p, rr_new, i + 1, bad

  zero = jnp.zeros_like(g)
  d, *_ = jax.lax.while_loop(cond, body, (zero, -g, -g, jnp.sum(g * g),
                                          jnp.zeros((), jnp.int32),
                                          jnp.zeros((), bool)))
  # Negative curvature at the first step: fall back to steepest descent.
  return jnp.where(jnp.any(d != 0), d, -g)


def _cholesky_step(h, g, num_classes, k, dtype):
  """``d = -H^{-1} g`` by Cholesky; ``singular`` when the factor is not finite or its
  reciprocal condition estimate ``(min diag L / max diag L)^2`` is below ``eps``."""
  n = h.shape[0]
  if num_classes > 2:
    # Add the projector on the class-constant directions (scaled like H): exact on
    # centred parameters and gradients, and it makes the unpenalised case invertible.
    scale = jnp.mean(jnp.diag(h))
    h = h + scale * jnp.kron(jnp.eye(n // k, dtype=dtype),
                             jnp.full((k, k), 1.0 / k, dtype))
  chol = jnp.linalg.cholesky(h)
  diag = jnp.diag(chol)
  finite = jnp.all(jnp.isfinite(chol))
  rcond = (jnp.min(jnp.abs(diag)) / jnp.max(jnp.abs(diag))) ** 2
  singular = ~finite | ~(rcond >= jnp.finfo(dtype).eps)
  safe = jnp.where(finite, chol, jnp.eye(n, dtype=dtype))
  d = -jax.scipy.linalg.cho_solve((safe, True), g.reshape(-1))
  return d, singular


# C, l1_ratio, tol and max_iter are traced: one compilation per shape serves them all.
@functools.partial(jax.jit, static_argnames=("num_classes", "fit_intercept",
                                              "linear_solver"))
def newton_fit(x, y, sw, w0, b0, *, num_classes, C, tol, max_iter, fit_intercept,
               linear_solver):
  """Newton's method with backtracking on the L2-penalised (or unpenalised) objective.

  Args:
    x: ``[N, D]``; y: ``[N]`` codes; sw: ``[N]`` sample weights.
    w0, b0: free starting parameters ``[D, K']``, ``[K']``.
    linear_solver: ``"cholesky"`` (dense Hessian) or ``"cg"`` (Hessian-vector
      products).

  The iteration stops once the gradient's infinity norm is at most ``tol`` and a
  second measure is too: for ``"cg"`` the last step relative to the parameters' size,
  for ``"cholesky"`` half the squared Newton decrement of the last step (scikit-learn's
  ``newton-cholesky`` rule). ``converged`` reports the gradient rule alone.

  Returns:
    ``((w, b), num_iter, grad_norm, converged, singular)``: ``singular`` says the
    Cholesky solve met a singular or very ill-conditioned Hessian; the iterate then is
    the last one before that step, for a caller to continue with another solver.
  """
  prob = _Problem(x, y, sw, num_classes=num_classes, C=C, l1_ratio=0.0,
                  fit_intercept=fit_intercept, centre=False)
  dtype = x.dtype
  theta0 = _centre(prob.to_theta(w0, b0), num_classes)

  def state(theta):
    p = prob.probs(theta)
    g = _centre(prob.grad(theta, p), num_classes)
    return p, g

  def cond(carry):
    _, _, g, it, stalled, singular, step = carry
    return (it < max_iter) & ~_done(_inf_norm(g), step, tol) & ~stalled & ~singular

  def body(carry):
    theta, p, g, it, _, _, _ = carry
    if linear_solver == "cholesky":
      d, singular = _cholesky_step(prob.hessian(p), g, num_classes, prob.k, dtype)
      d = d.reshape(theta.shape)
    else:
      d, singular = _cg(lambda v: prob.hvp(p, v), g, dtype), jnp.zeros((), bool)
    d = _centre(d * prob.free, num_classes)
    value = prob.smooth(theta)
    t, ok = _line_search(prob.smooth, theta, d, value, jnp.sum(g * d))
    move = ok & ~singular
    new = jnp.where(move, theta + t * d, theta)
    p_new, g_new = state(new)
    # The second stopping measure: the relative step (newton-cg, as scikit-learn's
    # saga), or half the squared Newton decrement d^T H d = -g.d (scikit-learn's
    # newton-cholesky rule), which also vanishes when the minimiser is at infinity.
    measure = (_relative_step(t * d, new) if linear_solver == "cg"
               else -0.5 * jnp.sum(g * d))
    return (new, p_new, g_new, it + move.astype(jnp.int32), ~ok & ~singular, singular,
            measure)

  p0, g0 = state(theta0)
  false = jnp.zeros((), bool)
  inf = jnp.asarray(jnp.inf, dtype)
  theta, _, g, it, stalled, singular, _ = jax.lax.while_loop(
      cond, body, (theta0, p0, g0, jnp.zeros((), jnp.int32), false, false, inf))
  gnorm = _inf_norm(g)
  # A line search that finds no decrease means the objective is flat to rounding
  # error (scipy's ftol rule): converged, like L-BFGS's relative-decrease stop.
  converged = (gnorm <= tol) | stalled
  return prob.from_theta(theta), it, gnorm, converged, singular


def _min_norm_subgradient(theta, g, l1w):
  """Per-entry smallest subgradient of ``smooth + l1`` (0 at a minimiser)."""
  nonzero = g + l1w * jnp.sign(theta)
  at_zero = jnp.maximum(jnp.abs(g) - l1w, 0.0)
  return jnp.where(theta != 0, jnp.abs(nonzero), at_zero)


def _cd_solve(h, g, theta, l1w, dtype):
  """Coordinate descent on the proximal Newton model
  ``min_d g.d + d^T H d / 2 + sum_j l1w_j |theta_j + d_j|`` (flat vectors)."""
  n = g.shape[0]
  diag = jnp.diag(h)
  damp = diag + 1e-12 * jnp.max(diag) + jnp.finfo(dtype).tiny

  def sweep(carry):
    d, hd, _, sweeps, first = carry

    def coord(j, inner):
      d, hd, biggest = inner
      z = theta[j] + d[j]
      u = z - (g[j] + hd[j]) / damp[j]
      z_new = jnp.sign(u) * jnp.maximum(jnp.abs(u) - l1w[j] / damp[j], 0.0)
      delta = z_new - z
      return (d.at[j].add(delta), hd + delta * h[:, j],
              jnp.maximum(biggest, jnp.abs(delta)))

    d, hd, biggest = jax.lax.fori_loop(0, n, coord, (d, hd, jnp.zeros((), dtype)))
    first = jnp.where(sweeps == 0, biggest, first)
    return d, hd, biggest, sweeps + 1, first

  def cond(carry):
    _, _, biggest, sweeps, first = carry
    # Solve the model to 1e-3 of the first sweep's change: enough for a superlinear
    # outer rate in practice, without solving far-from-optimal models exactly.
    return (sweeps == 0) | ((biggest > 1e-3 * first) & (biggest > 0)
                            & (sweeps < _MAX_SWEEPS))

  zero = jnp.zeros_like(g)
  scalar = jnp.zeros((), dtype)
  d, *_ = jax.lax.while_loop(cond, sweep, (zero, zero, scalar,
                                           jnp.zeros((), jnp.int32), scalar))
  return d


@functools.partial(jax.jit, static_argnames=("num_classes", "fit_intercept"))
def prox_newton_fit(x, y, sw, w0, b0, *, num_classes, C, l1_ratio, tol, max_iter,
                    fit_intercept):
  """Proximal Newton with backtracking on the elastic-net penalised objective.

  Each step minimises the second-order model of the smooth part plus the exact L1
  term by coordinate descent (the GLMNET step), then backtracks on the full objective
  (Lee, Sun & Saunders 2014). The fit stops once the infinity norm of the minimum-norm
  subgradient (the gradient for ``l1_ratio = 0``) is at most ``tol``.

  Returns:
    ``((w, b), num_iter, optimality, converged)``.
  """
  prob = _Problem(x, y, sw, num_classes=num_classes, C=C, l1_ratio=l1_ratio,
                  fit_intercept=fit_intercept, centre=True)
  dtype = x.dtype
  theta0 = prob.to_theta(w0, b0)
  l1w = prob.lam1 * prob.wmask * jnp.ones((1, prob.k), dtype)

  def full(theta):
    return prob.smooth(theta) + prob.l1(theta)

  def state(theta):
    p = prob.probs(theta)
    g = prob.grad(theta, p)
    return p, g, _inf_norm(_min_norm_subgradient(theta, g, l1w) * prob.free)

  def cond(carry):
    _, _, _, opt, it, stalled, step = carry
    return (it < max_iter) & ~_done(opt, step, tol) & ~stalled

  def body(carry):
    theta, p, g, _, it, _, _ = carry
    d = _cd_solve(prob.hessian(p), g.reshape(-1), theta.reshape(-1),
                  l1w.reshape(-1), dtype).reshape(theta.shape) * prob.free
    slope = jnp.sum(g * d) + prob.l1(theta + d) - prob.l1(theta)
    t, ok = _line_search(full, theta, d, full(theta), slope)
    new = jnp.where(ok, theta + t * d, theta)
    p_new, g_new, opt = state(new)
    return (new, p_new, g_new, opt, it + ok.astype(jnp.int32), ~ok,
            _relative_step(t * d, new))

  p0, g0, opt0 = state(theta0)
  theta, _, _, opt, it, stalled, _ = jax.lax.while_loop(
      cond, body, (theta0, p0, g0, opt0, jnp.zeros((), jnp.int32),
                   jnp.zeros((), bool), jnp.asarray(jnp.inf, dtype)))
  converged = (opt <= tol) | stalled
  return prob.from_theta(theta), it, opt, converged
