"""Multiclass logistic regression with an L2, L1 or elastic-net penalty: the
discriminative baseline.

The objective follows scikit-learn's convention, so ``C`` and ``l1_ratio`` mean the same
thing:

$$
J(W, b) = C \\sum_i w_i \\, \\mathrm{CE}(x_i W + b, y_i)
  + \\tfrac{1 - \\rho}{2} \\lVert W \\rVert_2^2 + \\rho \\lVert W \\rVert_1,
$$

with sample weights ``w_i`` (1 by default), the L1 ratio ``rho`` (0 by default: the L2
penalty) and the intercept ``b`` unpenalised. With ``K >= 3`` classes the model is the
overparametrised multinomial one (``K`` weight vectors, identifiable thanks to the
penalty; intercepts are centred to sum to zero as scikit-learn does). With ``K = 2`` it
is scikit-learn's binary model: one weight vector for class 1 and class 0 pinned at
zero, stored as ``weights[:, 0] = 0``.

Solvers:

* ``fit`` with ``solver="lbfgs"`` (default): full-batch L-BFGS (``optax.lbfgs`` with
  its zoom line search) inside ``jax.lax.while_loop``, run until the infinity norm of
  the gradient of ``J / (C sum_i w_i)`` is at most ``tol`` (scikit-learn's ``gtol`` on
  its mean-scaled loss), or until the relative decrease of the objective falls below
  ``ftol`` (scipy's second stopping rule), or ``max_iter``. ``jax.vmap(fit)`` works
  over datasets of one shape.
* ``solver="newton-cholesky"`` / ``"newton-cg"`` / ``"proximal-newton"``: the
  second-order solvers of ``jgen/logistic/newton.py`` (Newton's method; proximal Newton
  for an L1 part), with the same gradient tolerance.
* [`fit_minibatch`][jgen.logistic.fit_minibatch]: stochastic optimisation of the L2
  objective with an optax optimiser (Adam by default) for data that does not fit a full
  batch.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core.contract import Classifier
from jgen.core.contract import check_params_type
from jgen.logistic.dispatch import check_hyper
from jgen.logistic.dispatch import solve
from jgen.logistic.solvers import expand
from jgen.logistic.solvers import free_columns
from jgen.logistic.solvers import losses
from jgen.logistic.solvers import minibatch_fit
from jgen.logistic.solvers import shrink

__all__ = [
    "ConvergenceWarning",
    "FitInfo",
    "LogisticParams",
    "logistic_regression",
    "fit_minibatch",
    "objective",
]


class ConvergenceWarning(UserWarning):
  """An iterative fit stopped at its iteration limit before meeting its tolerance.

  Examples:
    >>> import warnings, jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]]); y = jnp.array([0, 0, 1, 1])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...   warnings.simplefilter("always")
    ...   params = jgen.logistic_regression(C=10.0, max_iter=1).fit(x, y, num_classes=2)
    >>> any(issubclass(w.category, jgen.logistic.ConvergenceWarning) for w in caught)
    True
  """


class FitInfo(NamedTuple):
  """Diagnostics of a fit (all scalars, or ``[R]`` under ``vmap``).

  Attributes:
    converged: ``bool``; the gradient or objective-decrease tolerance was met.
    num_iter: ``int32``; optimiser iterations taken.
    grad_norm: infinity norm of the gradient of the mean-scaled objective at the end.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]]); y = jnp.array([0, 0, 1, 1])
    >>> info = jgen.logistic_regression(C=10.0).fit(x, y, num_classes=2).info
    >>> bool(info.converged), info.num_iter.dtype, bool(info.grad_norm <= 1e-4)
    (True, dtype('int32'), True)
  """
  converged: jax.Array
  num_iter: jax.Array
  grad_norm: jax.Array


class LogisticParams(NamedTuple):
  """Fitted logistic regression.

  Attributes:
    weights: ``[D, K]``.
    bias: ``[K]`` (zeros when ``fit_intercept=False``).
    info: [`FitInfo`][jgen.logistic.FitInfo], or ``None`` for hand-made parameters.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> params = jgen.LogisticParams(weights=jnp.array([[0.0, 2.0]]),  # hand-made: D=1, K=2
    ...                              bias=jnp.array([0.0, -3.0]))
    >>> jgen.predict(jgen.logistic_regression(), params, jnp.array([[0.5], [2.5]]))
    Array([0, 1], dtype=int32)
  """
  weights: jax.Array
  bias: jax.Array
  info: FitInfo | None = None


def _shrink(params: LogisticParams, num_classes: int) -> tuple[jax.Array, jax.Array]:
  return shrink(params.weights, params.bias, num_classes)


def _logits(params: LogisticParams, x: ArrayLike) -> jax.Array:
  """Class scores ``x @ weights + bias``: ``x [..., D]`` -> ``[..., K]``."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    # Integer features are promoted to the weights' dtype; casting the weights to an
    # integer dtype would truncate them (every logit 0).
    if not jnp.issubdtype(x.dtype, jnp.integer) and x.dtype != jnp.bool_:
      raise TypeError(f"x must have a real (float or int) dtype, got {x.dtype}.")
    x = x.astype(params.weights.dtype)
  _checks.check_min_ndim(x, 1, "x")
  _checks.check_last_dim(x, params.weights.shape[0], "x",
                         "the number of features of params.weights")
  _checks.check_values(x, "x", count=x.shape[-1], underflow=False)
  z = x @ params.weights.astype(x.dtype)
  return z + _checks.as_trailing(params.bias.astype(x.dtype), z.ndim)


def check_data(x, y, sample_weight, num_classes):
  """Validated ``(x [N, D], y [N], sample_weight [N])`` for a logistic fit."""
  x, y = _checks.check_xy(_checks.as_features(x, "x"), y, num_classes)
  if x.shape[0] == 0:
    raise ValueError("x must contain at least one example, got shape (0, D).")
  if x.shape[1] == 0:
    raise ValueError("x must have at least one feature, got shape (N, 0).")
  _checks.check_scale(x, "x")
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


def init_free(init, d, num_classes, dtype):
  """Checked free ``(W [D, K'], b [K'])`` of a warm start ``init`` in ``dtype``
  (zeros for ``None``)."""
  k = free_columns(num_classes)
  if init is None:   # host zeros: no eager program to compile on a first fit
    return np.zeros((d, k), dtype), np.zeros((k,), dtype)
  if not isinstance(init, LogisticParams):
    raise TypeError(f"init must be LogisticParams (from logistic_regression's fit), got"
                    f" {type(init).__name__}.")
  if init.weights.shape[-2:] != (d, num_classes):
    raise ValueError(f"init.weights must have shape ({d}, {num_classes}), got"
                     f" {tuple(init.weights.shape)}.")
  if tuple(jnp.shape(init.bias)) != (num_classes,):
    raise ValueError(f"init.bias must have shape ({num_classes},), got"
                     f" {tuple(jnp.shape(init.bias))}.")
  _checks.check_finite(jnp.asarray(init.weights), "init.weights")
  _checks.check_finite(jnp.asarray(init.bias), "init.bias")
  w, b = _shrink(init, num_classes)
  return w.astype(dtype), b.astype(dtype)


@functools.partial(jax.jit, static_argnums=(2, 3))   # one program, not two eager ones
def _finish(w, b, num_classes, fit_intercept):
  if num_classes > 2 and fit_intercept:
    # The softmax is invariant to a shared shift of the intercepts; centre them, as
    # scikit-learn does, so the fit is unique.
    b = b - jnp.mean(b)
  if not fit_intercept:
    b = jnp.zeros_like(b)
  return expand(w, b, num_classes)


def check_model(model: Classifier) -> dict:
  """``model``'s hyperparameters; ``TypeError`` unless it is a logistic regression."""
  if getattr(model, "name", None) != "logistic_regression":
    raise TypeError("model must come from jgen.logistic_regression(...), got"
                    f" {getattr(model, 'name', type(model).__name__)!r}.")
  return dict(model.hyperparams)


def _logits_contract(params: LogisticParams, x: ArrayLike, *,
                     key: jax.Array | None = None) -> jax.Array:
  del key
  check_params_type(params, LogisticParams, "logistic_regression")
  return _logits(params, x)


def _no_prior(params: LogisticParams) -> None:
  del params  # logits are already conditional: no class prior is added
  return None


def _class_axes(params: LogisticParams) -> LogisticParams:
  info = None if params.info is None else FitInfo(None, None, None)
  return LogisticParams(weights=1, bias=0, info=info)


def logistic_regression(C: float = 1.0, *, l1_ratio: float = 0.0, solver: str = "lbfgs",
                        tol: float = 1e-4, max_iter: int = 1000,
                        fit_intercept: bool = True, ftol: float | None = None,
                        memory_size: int = 10) -> Classifier:
  """Builds a penalised multinomial logistic regression family.

  The objective is scikit-learn's: ``C sum_i w_i CE_i + (1 - l1_ratio) ||W||^2 / 2 +
  l1_ratio ||W||_1`` (intercepts unpenalised; ``l1_ratio=0`` is the L2 penalty).

  Args:
    C: inverse regularisation strength (> 0), scikit-learn's convention; ``inf`` fits
      without a penalty (the minimiser exists only for non-separable data).
    l1_ratio: the L1 share of the penalty, in ``[0, 1]``; above 0 it needs
      ``solver="proximal-newton"``.
    solver: the algorithm, all minimising the same objective:

      * ``"lbfgs"``: optax's L-BFGS with its zoom line search (L2 or none);
      * ``"newton-cholesky"``: Newton's method, the Newton system solved by a Cholesky
        factorisation of the dense ``[P, P]`` Hessian (``P = (D + 1) K'`` parameters)
        with backtracking; if the Hessian is singular or very ill-conditioned it warns
        (``scipy.linalg.LinAlgWarning``) and continues with L-BFGS, as scikit-learn's
        ``newton-cholesky`` does;
      * ``"newton-cg"``: Newton's method with the system solved by truncated conjugate
        gradients on Hessian-vector products (no dense Hessian);
      * ``"proximal-newton"``: proximal Newton for any ``l1_ratio`` (the GLMNET step:
        coordinate descent on the second-order model plus the exact L1 term, then
        backtracking), with a dense Hessian.

      The module ``jgen/logistic/newton.py`` gives the formulas and references.
    tol: stop once ``max |grad J / (C sum w)| <= tol`` (scikit-learn's ``tol`` for
      ``solver="lbfgs"``); with an L1 part the minimum-norm subgradient replaces the
      gradient.
    max_iter: iteration limit of the solver (L-BFGS, Newton or proximal Newton steps);
      hitting it sets ``info.converged=False`` and, in eager calls, emits a
      [`ConvergenceWarning`][jgen.logistic.ConvergenceWarning].
    fit_intercept: learn ``bias`` (unpenalised) or keep it at zero.
    ftol: L-BFGS only: stop once the relative objective decrease of one step is below
      this (scipy's ``ftol``); default ``64 * eps(float64)`` for float64 data and
      ``4 * eps(float32)`` for float32, where the objective is only that precise.
    memory_size: L-BFGS history length.

  Returns:
    A [`jgen.Classifier`][jgen.Classifier] named ``"logistic_regression"`` with
    ``conditional=True`` (its scores are logits, no prior is added):

    * ``fit(x [N, D], y [N], *, num_classes, sample_weight=None [N], init=None)
      -> LogisticParams(weights [D, K], bias [K], info)``;
    * ``log_likelihood(params, x [..., D], *, key=None) -> [..., K]`` logits.

    [`fit_minibatch`][jgen.logistic.fit_minibatch] and
    [`objective`][jgen.logistic.objective] take the model as first argument.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]]); y = jnp.array([0, 0, 1, 1])
    >>> lr = jgen.logistic_regression(C=10.0)
    >>> params = lr.fit(x, y, num_classes=2)
    >>> lr.log_likelihood(params, x).argmax(-1).tolist()
    [0, 0, 1, 1]
    >>> sparse = jgen.logistic_regression(C=0.5, l1_ratio=1.0, solver="proximal-newton")
    >>> x2 = jnp.array([[0.0, 1.0], [1.0, -1.0], [2.0, 1.0], [3.0, -1.0]])
    >>> sparse.fit(x2, y, num_classes=2).weights[1].tolist()   # the noise feature: 0
    [0.0, 0.0]
  """
  check_hyper(C, l1_ratio, solver, tol, max_iter, ftol, memory_size)
  C, tol, l1_ratio = float(C), float(tol), float(l1_ratio)
  hyper = {"C": C, "l1_ratio": l1_ratio, "solver": solver, "tol": tol,
           "max_iter": max_iter, "fit_intercept": bool(fit_intercept), "ftol": ftol,
           "memory_size": memory_size}

  def fit(x, y, *, num_classes, sample_weight=None, init=None) -> LogisticParams:
    """Fit by the family's solver; see [`logistic_regression`][jgen.logistic_regression]."""
    num_classes = _checks.check_num_classes(num_classes)
    x, y, sw = check_data(x, y, sample_weight, num_classes)
    w0, b0 = init_free(init, x.shape[1], num_classes, x.dtype)
    (w, b), it, gnorm, converged = solve(x, y, sw, w0, b0, num_classes, hyper)
    if _checks.is_concrete(converged) and not bool(converged):
      warnings.warn(
          f"logistic_regression.fit hit max_iter={max_iter} with gradient norm"
          f" {float(gnorm):.3g} > tol={tol}; info.converged is False. Increase"
          " max_iter or scale the features.", ConvergenceWarning, stacklevel=2)
    w, b = _finish(w, b, num_classes, fit_intercept)
    return LogisticParams(w, b, FitInfo(converged, it, gnorm))

  return Classifier(fit=fit, log_likelihood=_logits_contract, log_prior=_no_prior,
                    class_axes=_class_axes, name="logistic_regression",
                    hyperparams=hyper, params_type=LogisticParams, conditional=True)


def fit_minibatch(model: Classifier, key: jax.Array, x: ArrayLike, y: ArrayLike, *,
                  num_classes: int, batch_size: int, num_steps: int,
                  learning_rate: float = 1e-2, optimizer=None, sample_weight=None,
                  init: LogisticParams | None = None) -> LogisticParams:
  """Minibatch fit of ``model``'s objective with an optax optimiser (Adam by default).

  Args:
    model: ``jgen.logistic_regression(...)`` (its ``C``, ``tol``, ``fit_intercept``).
    key: PRNG key of the minibatch draws.
    x: ``[N, D]``; y: ``[N]``; num_classes: static ``K``.
    batch_size: examples per step, in ``[1, N]``; num_steps: optimiser steps.
    learning_rate: Adam's learning rate when ``optimizer`` is ``None``.
    optimizer: any ``optax.GradientTransformation``.
    sample_weight: optional ``[N]`` weights; init: optional warm start.

  Returns:
    [`LogisticParams`][jgen.LogisticParams]; ``info.converged`` says whether the final
    full gradient norm is at most ``tol``.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]]); y = jnp.array([0, 0, 1, 1])
    >>> lr = jgen.logistic_regression(C=10.0)
    >>> p = jgen.logistic.fit_minibatch(lr, jax.random.key(0), x, y, num_classes=2,
    ...                                 batch_size=2, num_steps=300, learning_rate=0.1)
    >>> lr.log_likelihood(p, x).argmax(-1).tolist()
    [0, 0, 1, 1]
  """
  h = check_model(model)
  if h.get("l1_ratio", 0.0) > 0:
    raise ValueError("fit_minibatch optimises the L2 objective; the model has l1_ratio="
                     f"{h['l1_ratio']} (use its fit, solver='proximal-newton').")
  key = _checks.check_key(key)
  num_classes = _checks.check_num_classes(num_classes)
  batch_size = _checks.check_int(batch_size, "batch_size", 1)
  num_steps = _checks.check_int(num_steps, "num_steps", 1)
  if optimizer is None:
    learning_rate = _checks.check_number(learning_rate, "learning_rate", positive=True)
  x, y, sw = check_data(x, y, sample_weight, num_classes)
  w0, b0 = init_free(init, x.shape[1], num_classes, x.dtype)
  if not 1 <= batch_size <= x.shape[0]:
    raise ValueError(f"batch_size must lie in [1, N={x.shape[0]}], got {batch_size}.")
  opt = optimizer if optimizer is not None else optax.adam(learning_rate)
  (w, b), gnorm = minibatch_fit(
      key, x, y, sw, w0, b0, opt, num_classes=num_classes, C=h["C"],
      batch_size=int(batch_size), num_steps=int(num_steps),
      fit_intercept=h["fit_intercept"])
  w, b = _finish(w, b, num_classes, h["fit_intercept"])
  info = FitInfo(gnorm <= h["tol"], jnp.asarray(num_steps, jnp.int32), gnorm)
  return LogisticParams(w, b, info)


def objective(model: Classifier, params: LogisticParams, x: ArrayLike, y: ArrayLike,
              sample_weight: ArrayLike | None = None) -> jax.Array:
  """``C * sum_i w_i CE(x_i) + (1 - l1_ratio) ||W||^2 / 2 + l1_ratio ||W||_1`` (scalar,
  scikit-learn's convention; ``C = inf``: the cross-entropy sum alone).

  The binary model's ``W`` is its class-1 column.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [1.0]]); y = jnp.array([0, 1])
    >>> lr = jgen.logistic_regression(C=1.0)
    >>> zero = jgen.logistic.LogisticParams(jnp.zeros((1, 2)), jnp.zeros(2))
    >>> round(float(jgen.logistic.objective(lr, zero, x, y)), 4)   # 2 log 2
    1.3863
  """
  h = check_model(model)
  check_params_type(params, LogisticParams, "logistic_regression")
  num_classes = params.weights.shape[-1]
  x, y, sw = check_data(x, y, sample_weight, num_classes)
  if params.weights.ndim != 2 or params.weights.shape[0] != x.shape[1]:
    raise ValueError(f"params.weights must have shape (D, K) = ({x.shape[1]},"
                     f" {num_classes}) for x with D={x.shape[1]} features, got"
                     f" {tuple(params.weights.shape)}.")
  if tuple(jnp.shape(params.bias)) != (num_classes,):
    raise ValueError(f"params.bias must have shape ({num_classes},), got"
                     f" {tuple(jnp.shape(params.bias))}.")
  w, b = _shrink(params, num_classes)
  w = w.astype(x.dtype)
  ce = jnp.sum(sw * losses(w, b.astype(x.dtype), x, y, num_classes))
  if h["C"] == float("inf"):
    return ce
  rho = h.get("l1_ratio", 0.0)
  return (h["C"] * ce + 0.5 * (1.0 - rho) * jnp.sum(w ** 2)
          + rho * jnp.sum(jnp.abs(w)))
