r"""Minimizability gaps and expected excess risks given the true posterior.

The minimizability gap of a loss ``l`` and hypothesis set ``H`` is

$$
M_\ell(H) = R^*_\ell(H) - \mathbb{E}_x[C^*_\ell(H, x)] \ge 0 .
$$

For the complete hypothesis set (all measurable score functions) ``C*(H, x)`` is the
unconstrained infimum at every ``x`` and the gap is zero; that is the default of
[`jgen.bounds.zero_one_bound`][jgen.bounds.zero_one_bound]. For linear scores
``h(x) = x W + b`` the gap is positive unless the loss's pointwise minimiser is itself
linear in ``x``.

When the true posterior ``p(y | x)`` is known (simulations), everything is a plain
average over a sample of ``x``:

* [`expected_excess_risks`][jgen.bounds.expected_excess_risks]:
  ``E_x[Delta C_l(h(x), p(x))]`` and ``E_x[Delta C_01(h(x), p(x))]``, the excess risks
  relative to the Bayes (complete set) risks, exact given the sample (no label noise);
* [`linear_minimizability_gap`][jgen.bounds.linear_minimizability_gap]:
  ``min_{W, b} E_x[C_l(x W + b, p(x))] - E_x[C*_l(p(x))]``, the best linear conditional
  risk found by L-BFGS minus the Bayes conditional risk. The minimiser is attained by
  the optimiser, so the estimate is an upper estimate of the gap on the sample, which
  keeps the bound ``Gamma(excess + M)`` valid.

Note that ``R_l(h) - R*_l(H) + M_l(H) = R_l(h) - E_x[C*_l(x)]``: given the true
posterior the surrogate excess relative to the complete set already includes the gap,
so ``zero_one_bound(expected_excess_risks(...).surrogate)`` bounds
``R_01(h) - R*_01`` for any ``h``, linear or not.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core import lbfgs as _optim
from jgen.bounds import common as _common
from jgen.bounds import regret as _regret

_RIDGE = 1e-8

__all__ = ["ExcessRisks", "GapEstimate", "expected_excess_risks",
           "linear_minimizability_gap"]


class ExcessRisks(NamedTuple):
  """Sample averages of conditional regrets (scalars).

  Attributes:
    surrogate: ``E_x[C_l(h(x), p(x)) - C*_l(p(x))]``.
    zero_one: ``E_x[max_y p(y|x) - p(argmax h(x) | x)]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> scores = jnp.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> posterior = jnp.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    >>> risks = jgen.bounds.expected_excess_risks("logistic", scores, posterior)
    >>> bound = jgen.bounds.zero_one_bound("logistic", risks.surrogate, num_classes=2)
    >>> bool(risks.zero_one <= bound)
    True
  """
  surrogate: jax.Array
  zero_one: jax.Array


class GapEstimate(NamedTuple):
  """Linear-hypothesis minimizability gap estimate.

  Attributes:
    gap: ``best_risk - bayes_risk`` (scalar, ``>= 0`` up to rounding).
    best_risk: ``E_x[C_l(x W + b, p(x))]`` at the fitted ``(W, b)``.
    bayes_risk: ``E_x[C*_l(p(x))]``.
    weights: ``[D, K]`` fitted weights.
    bias: ``[K]`` fitted bias.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[-1.0], [0.0], [1.0]])
    >>> posterior = jnp.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])  # not monotone in x
    >>> est = jgen.bounds.linear_minimizability_gap("logistic", x, posterior,
    ...                                             num_steps=20)
    >>> est.weights.shape, est.bias.shape
    ((1, 2), (2,))
  """
  gap: jax.Array
  best_risk: jax.Array
  bayes_risk: jax.Array
  weights: jax.Array
  bias: jax.Array


def _check_pair(x_name, scores, posterior):
  scores = _common.as_scores(scores, x_name)
  _checks.check_ndim(scores, 2, x_name)
  posterior = _common.as_simplex(posterior, "posterior")
  _checks.check_ndim(posterior, 2, "posterior")
  return scores, posterior


def expected_excess_risks(loss_fn, scores: ArrayLike, posterior: ArrayLike, *,
                          tau: float | None = None) -> ExcessRisks:
  """Surrogate and 0-1 excess risks of scores given the true posterior.

  Args:
    loss_fn: a loss callable or a loss name (closed-form ``C*`` recommended).
    scores: model scores ``[N, K]`` at a sample ``x_1..x_N``.
    posterior: true ``p(y | x_i)`` ``[N, K]``.
    tau: comp-sum parameter when ``loss_fn == "comp_sum"``.

  Returns:
    [`ExcessRisks`][jgen.bounds.ExcessRisks] of scalars.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> scores = jnp.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    >>> posterior = jnp.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    >>> risks = jgen.bounds.expected_excess_risks("logistic", scores, posterior)
    >>> round(float(risks.surrogate), 3), round(float(risks.zero_one), 3)
    (0.085, 0.067)
  """
  scores, posterior = _check_pair("scores", scores, posterior)
  if scores.shape != posterior.shape:
    raise ValueError(f"scores and posterior must have the same shape [N, K], got"
                     f" {tuple(scores.shape)} and {tuple(posterior.shape)}.")
  posterior = posterior.astype(scores.dtype)
  surrogate = _regret.conditional_regret(loss_fn, scores, posterior, tau=tau)
  zero_one = _regret.zero_one_regret(scores, posterior)
  return ExcessRisks(jnp.mean(surrogate), jnp.mean(zero_one))


def linear_minimizability_gap(loss_fn, x: ArrayLike, posterior: ArrayLike, *,
                              tau: float | None = None, num_steps: int = 200
                              ) -> GapEstimate:
  """Estimate ``M_l(H_lin)`` for linear scores ``x W + b`` given the true posterior.

  Minimises the sample conditional risk ``mean_i C_l(x_i W + b, p_i)`` over
  ``(W, b)`` (from zero, ``num_steps`` L-BFGS steps with optax's zoom line search,
  inside ``jit``, with a 1e-8 ridge penalty that only removes flat directions) and
  subtracts ``mean_i C*_l(p_i)``; ``best_risk`` is the unpenalised risk at the fit.
  Smooth losses converge; for the non-smooth hinge-type losses the result is an upper
  estimate.

  Args:
    loss_fn: a loss callable or a loss name.
    x: features ``[N, D]``.
    posterior: true ``p(y | x_i)`` ``[N, K]``.
    tau: comp-sum parameter when ``loss_fn == "comp_sum"``.
    num_steps: static number of L-BFGS steps.

  Returns:
    [`GapEstimate`][jgen.bounds.GapEstimate].

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[-1.0], [0.0], [1.0]])
    >>> posterior = jnp.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])  # not monotone in x
    >>> est = jgen.bounds.linear_minimizability_gap("logistic", x, posterior,
    ...                                             num_steps=20)
    >>> round(float(est.gap), 2)  # entropy of the mean posterior minus the mean entropy
    0.33
  """
  fn, _ = _regret.resolve_loss(loss_fn, tau)
  # x holds features [N, D] (any D >= 1), not class scores: only the posterior
  # needs K >= 2 columns.
  x = jnp.asarray(x)
  _checks.check_ndim(x, 2, "x")
  _checks.check_float(x, "x")
  _checks.check_finite(x, "x")
  if x.shape[1] < 1:
    raise ValueError(f"x must have at least one feature, got shape {tuple(x.shape)}.")
  posterior = _common.as_simplex(posterior, "posterior")
  _checks.check_ndim(posterior, 2, "posterior")
  _checks.check_same_leading(x, posterior, "x", "posterior")
  posterior = posterior.astype(x.dtype)
  bayes = jnp.mean(_regret.best_conditional_risk(fn, posterior))
  w, b, best = _fit_linear(fn, x, posterior, num_steps)
  return GapEstimate(best - bayes, best, bayes, w, b)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _fit_linear(fn, x, posterior, num_steps):
  k = posterior.shape[-1]

  def objective(params):
    w, b = params
    scores = x @ w + _checks.as_trailing(b, 2)
    # A tiny ridge removes the flat directions of shift-invariant losses, along which
    # L-BFGS can drift to scores so large that centring them loses all precision.
    ridge = _RIDGE * (jnp.sum(jnp.square(w)) + jnp.sum(jnp.square(b)))
    return jnp.mean(_regret.expected_loss(fn, scores, posterior)) + ridge

  params = (jnp.zeros((x.shape[1], k), x.dtype), jnp.zeros((k,), x.dtype))
  params = _optim.lbfgs_fixed_steps(objective, params, num_steps)
  w, b = params
  return w, b, jnp.mean(_regret.expected_loss(fn, x @ w + _checks.as_trailing(b, 2), posterior))
