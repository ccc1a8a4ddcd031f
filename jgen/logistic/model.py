"""Multiclass logistic regression with an L2 penalty: the discriminative baseline.

The objective follows scikit-learn's convention, so ``C`` means the same thing:

.. math::
   J(W, b) = C \\sum_i w_i \\, \\mathrm{CE}(x_i W + b, y_i) + \\tfrac12 \\lVert W \\rVert^2,

with sample weights ``w_i`` (1 by default) and the intercept ``b`` unpenalised.
With ``K >= 3`` classes the model is the overparametrised multinomial one (``K`` weight
vectors, identifiable thanks to the penalty; intercepts are centred to sum to zero as
scikit-learn does). With ``K = 2`` it is scikit-learn's binary model: one weight vector
for class 1 and class 0 pinned at zero, stored as ``weights[:, 0] = 0``.

Two solvers:

* ``fit``: full-batch L-BFGS (``optax.lbfgs`` with its zoom line search) inside
  ``jax.lax.while_loop``, run until the infinity norm of the gradient of ``J / (C
  sum_i w_i)`` is at most ``tol`` (scikit-learn's ``gtol`` on its mean-scaled loss), or
  until the relative decrease of the objective falls below ``ftol`` (scipy's second
  stopping rule), or ``max_iter``. ``jax.vmap(fit)`` works over datasets of one shape.
* ``fit_minibatch``: stochastic optimisation of the same objective with an optax
  optimiser (Adam by default) for data that does not fit a full batch.
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jax.typing import ArrayLike

from jgen.core import checks as _checks

__all__ = [
    "ConvergenceWarning",
    "FitInfo",
    "LogisticParams",
    "LogisticRegression",
    "logistic_regression",
]


class ConvergenceWarning(UserWarning):
  """An iterative fit stopped at its iteration limit before meeting its tolerance."""


class FitInfo(NamedTuple):
  """Diagnostics of a fit (all scalars, or ``[R]`` under ``vmap``).

  Attributes:
    converged: ``bool``; the gradient or objective-decrease tolerance was met.
    num_iter: ``int32``; optimiser iterations taken.
    grad_norm: infinity norm of the gradient of the mean-scaled objective at the end.
  """
  converged: jax.Array
  num_iter: jax.Array
  grad_norm: jax.Array


class LogisticParams(NamedTuple):
  """Fitted logistic regression.

  Attributes:
    weights: ``[D, K]``.
    bias: ``[K]`` (zeros when ``fit_intercept=False``).
    info: :class:`FitInfo`, or ``None`` for hand-made parameters.
  """
  weights: jax.Array
  bias: jax.Array
  info: FitInfo | None = None


class LogisticRegression(NamedTuple):
  """A logistic-regression family: pure functions sharing one configuration."""
  fit: Callable[..., LogisticParams]
  fit_minibatch: Callable[..., LogisticParams]
  logits: Callable[[LogisticParams, ArrayLike], jax.Array]
  objective: Callable[..., jax.Array]


def _free(num_classes: int) -> int:
  """Free weight columns: one for the binary model, ``K`` otherwise."""
  return 1 if num_classes == 2 else num_classes


def _expand(w: jax.Array, b: jax.Array, num_classes: int) -> tuple[jax.Array, jax.Array]:
  """Free parameters ``[D, K']``, ``[K']`` -> full ``[D, K]``, ``[K]``."""
  if num_classes == 2:
    w = jnp.concatenate([jnp.zeros_like(w), w], axis=-1)
    b = jnp.concatenate([jnp.zeros_like(b), b], axis=-1)
  return w, b


def _shrink(params: LogisticParams, num_classes: int) -> tuple[jax.Array, jax.Array]:
  """Full ``[D, K]`` parameters -> free ones (binary: class 1 minus class 0)."""
  w, b = params.weights, params.bias
  if num_classes == 2:
    return w[:, 1:] - w[:, :1], b[1:] - b[:1]
  return w, b


def _logits(params: LogisticParams, x: ArrayLike) -> jax.Array:
  """Class scores ``x @ weights + bias``: ``x [..., D]`` -> ``[..., K]``."""
  x = jnp.asarray(x)
  _checks.check_min_ndim(x, 1, "x")
  _checks.check_last_dim(x, params.weights.shape[0], "x",
                         "the number of features of params.weights")
  z = x @ params.weights.astype(x.dtype)
  return z + _checks.as_trailing(params.bias.astype(x.dtype), z.ndim)


def _losses(w, b, x, y, num_classes):
  """Per-example cross-entropies ``[N]`` for free parameters."""
  w_full, b_full = _expand(w, b, num_classes)
  z = x @ w_full + b_full[None, :]
  return jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[:, None], -1)[:, 0]


def _scaled_objective(free, x, y, sw, *, num_classes, C):
  """``J / (C sum(sw))``: a mean loss, so tolerances do not depend on N or C."""
  w, b = free
  total = jnp.sum(sw)
  return (jnp.sum(sw * _losses(w, b, x, y, num_classes)) / total
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
  if not fit_intercept:
    mu = jnp.zeros_like(mu)
  return mu, scale


# C, tol, ftol and max_iter are traced: one compilation per shape serves every setting.
@functools.partial(jax.jit, static_argnames=("num_classes", "fit_intercept",
                                              "memory_size"))
def _lbfgs_fit(x, y, sw, w0, b0, *, num_classes, C, tol, ftol, max_iter,
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
    ce = _losses(w, b, xs, y, num_classes)
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
  value_and_grad = optax.value_and_grad_from_state(fun)

  def cond(carry):
    _, state, prev, it, gnorm = carry
    stalled = relative_stall(prev, otu.tree_get(state, "value"))
    return (it < max_iter) & ~((gnorm <= tol) | ((it > 0) & stalled))

  def body(carry):
    free, state, _, it, _ = carry
    value, grad = value_and_grad(free, state=state)
    updates, state = opt.update(grad, state, free, value=value, grad=grad,
                                value_fn=fun)
    free = optax.apply_updates(free, updates)
    # The line search stored the value and gradient at the new point.
    return free, state, value, it + 1, orig_grad_norm(otu.tree_get(state, "grad"))

  free0 = (s[:, None] * w0, b0 + mu @ w0 if fit_intercept else b0)
  v0, g0 = jax.value_and_grad(fun)(free0)
  carry = (free0, opt.init(free0), jnp.asarray(jnp.inf, v0.dtype),
           jnp.asarray(0, jnp.int32), orig_grad_norm(g0))
  free, _, prev, it, _ = jax.lax.while_loop(cond, body, carry)
  # Recompute at the returned point so the report does not rely on optimiser state.
  value, grad = jax.value_and_grad(fun)(free)
  gnorm = orig_grad_norm(grad)
  converged = (gnorm <= tol) | ((it > 0) & (it < max_iter) & relative_stall(prev, value))
  w, b = free
  w = w / s[:, None]
  if fit_intercept:
    b = b - mu @ w
  return (w, b), it, gnorm, converged


@functools.partial(jax.jit, static_argnames=("opt", "num_classes", "C", "batch_size",
                                              "num_steps", "fit_intercept"))
def _minibatch_fit(key, x, y, sw, w0, b0, opt, *, num_classes, C, batch_size,
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
    ce = _losses(w, b, x[idx], y[idx], num_classes)
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


def _check_data(x, y, sample_weight, num_classes):
  x, y = _checks.check_xy(x, y, num_classes)
  if x.shape[0] == 0:
    raise ValueError("x must contain at least one example, got shape (0, D).")
  if sample_weight is None:
    sw = jnp.ones(x.shape[:1], x.dtype)
  else:
    sw = jnp.asarray(sample_weight, x.dtype)
    _checks.check_ndim(sw, 1, "sample_weight")
    _checks.check_same_leading(x, sw, "x", "sample_weight")
    _checks.check_finite(sw, "sample_weight")
    if _checks.is_concrete(sw):
      swv = np.asarray(sw)
      if np.any(swv < 0) or not np.any(swv > 0):
        raise ValueError("sample_weight must be >= 0 with a positive entry, got"
                         f" min {swv.min()} and max {swv.max()}.")
  return x, y, sw


def _init_free(init, d, num_classes, dtype):
  k = _free(num_classes)
  if init is None:
    return jnp.zeros((d, k), dtype), jnp.zeros((k,), dtype)
  if init.weights.shape[-2:] != (d, num_classes):
    raise ValueError(f"init.weights must have shape ({d}, {num_classes}), got"
                     f" {tuple(init.weights.shape)}.")
  w, b = _shrink(init, num_classes)
  return w.astype(dtype), b.astype(dtype)


def _finish(w, b, num_classes, fit_intercept):
  if num_classes > 2 and fit_intercept:
    # The softmax is invariant to a shared shift of the intercepts; centre them, as
    # scikit-learn does, so the fit is unique.
    b = b - jnp.mean(b)
  if not fit_intercept:
    b = jnp.zeros_like(b)
  return _expand(w, b, num_classes)


def logistic_regression(C: float = 1.0, *, tol: float = 1e-4, max_iter: int = 1000,
                        fit_intercept: bool = True, ftol: float | None = None,
                        memory_size: int = 10) -> LogisticRegression:
  """Builds an L2-penalised multinomial logistic regression family.

  Args:
    C: inverse regularisation strength (> 0), scikit-learn's convention.
    tol: L-BFGS stops once ``max |grad J / (C sum w)| <= tol`` (scikit-learn's
      ``tol`` for ``solver="lbfgs"``).
    max_iter: L-BFGS iteration limit; hitting it sets ``info.converged=False`` and, in
      eager calls, emits a :class:`ConvergenceWarning`.
    fit_intercept: learn ``bias`` (unpenalised) or keep it at zero.
    ftol: stop once the relative objective decrease of one step is below this
      (scipy's ``ftol``); default ``64 * eps(float64)`` for float64 data and
      ``4 * eps(float32)`` for float32, where the objective is only that precise.
    memory_size: L-BFGS history length.

  Returns:
    A :class:`LogisticRegression` with

    * ``fit(x [N, D], y [N], *, num_classes, sample_weight=None [N], init=None)
      -> LogisticParams(weights [D, K], bias [K], info)``;
    * ``fit_minibatch(key, x, y, *, num_classes, batch_size, num_steps,
      learning_rate=1e-2, optimizer=None, sample_weight=None, init=None)``;
    * ``logits(params, x [..., D]) -> [..., K]``;
    * ``objective(params, x, y, sample_weight=None) -> []``:
      ``C * sum_i w_i CE_i + 0.5 ||W||^2`` (the binary model's ``W`` is the class-1
      column).

  Example:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]]); y = jnp.array([0, 0, 1, 1])
    >>> lr = jgen.logistic_regression(C=10.0)
    >>> params = lr.fit(x, y, num_classes=2)
    >>> lr.logits(params, x).argmax(-1).tolist()
    [0, 0, 1, 1]
  """
  if isinstance(C, bool) or not isinstance(C, (int, float, np.floating, np.integer)):
    raise TypeError(f"C must be a Python float, got {type(C).__name__}.")
  if not np.isfinite(C) or C <= 0:
    raise ValueError(f"C must be a finite number > 0, got {C}.")
  if not tol > 0:
    raise ValueError(f"tol must be > 0, got {tol}.")
  if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
    raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}.")
  C, tol = float(C), float(tol)

  def fit(x, y, *, num_classes, sample_weight=None, init=None) -> LogisticParams:
    """Full-batch L-BFGS fit; see :func:`logistic_regression`."""
    num_classes = _checks.check_num_classes(num_classes)
    x, y, sw = _check_data(x, y, sample_weight, num_classes)
    w0, b0 = _init_free(init, x.shape[1], num_classes, x.dtype)
    f = ftol
    if f is None:
      f = 64 * float(np.finfo(np.float64).eps) if x.dtype == jnp.float64 else (
          4 * float(np.finfo(np.float32).eps))
    (w, b), it, gnorm, converged = _lbfgs_fit(
        x, y, sw, w0, b0, num_classes=num_classes, C=C, tol=tol, ftol=float(f),
        max_iter=max_iter, fit_intercept=fit_intercept, memory_size=memory_size)
    if _checks.is_concrete(converged) and not bool(converged):
      warnings.warn(
          f"logistic_regression.fit hit max_iter={max_iter} with gradient norm"
          f" {float(gnorm):.3g} > tol={tol}; info.converged is False. Increase"
          " max_iter or scale the features.", ConvergenceWarning, stacklevel=2)
    w, b = _finish(w, b, num_classes, fit_intercept)
    return LogisticParams(w, b, FitInfo(converged, it, gnorm))

  def fit_minibatch(key, x, y, *, num_classes, batch_size, num_steps,
                    learning_rate=1e-2, optimizer=None, sample_weight=None,
                    init=None) -> LogisticParams:
    """Minibatch fit of the same objective; see :func:`_minibatch_fit`."""
    num_classes = _checks.check_num_classes(num_classes)
    x, y, sw = _check_data(x, y, sample_weight, num_classes)
    w0, b0 = _init_free(init, x.shape[1], num_classes, x.dtype)
    if not 1 <= batch_size <= x.shape[0]:
      raise ValueError(f"batch_size must lie in [1, N={x.shape[0]}], got {batch_size}.")
    if num_steps < 1:
      raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
    opt = optimizer if optimizer is not None else optax.adam(learning_rate)
    (w, b), gnorm = _minibatch_fit(
        key, x, y, sw, w0, b0, opt, num_classes=num_classes, C=C,
        batch_size=int(batch_size), num_steps=int(num_steps),
        fit_intercept=fit_intercept)
    w, b = _finish(w, b, num_classes, fit_intercept)
    info = FitInfo(gnorm <= tol, jnp.asarray(num_steps, jnp.int32), gnorm)
    return LogisticParams(w, b, info)

  def objective(params, x, y, sample_weight=None) -> jax.Array:
    """``C * sum_i w_i CE(x_i) + 0.5 ||W||^2`` (scalar, scikit-learn's convention)."""
    num_classes = params.weights.shape[-1]
    x, y, sw = _check_data(x, y, sample_weight, num_classes)
    w, b = _shrink(params, num_classes)
    ce = _losses(w.astype(x.dtype), b.astype(x.dtype), x, y, num_classes)
    return C * jnp.sum(sw * ce) + 0.5 * jnp.sum(w.astype(x.dtype) ** 2)

  return LogisticRegression(fit, fit_minibatch, _logits, objective)
