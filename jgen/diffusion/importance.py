r"""Importance sampling of timesteps from the per-t variance of paired class differences.

The Diffusion Classifier ranks classes by ``mean_t e_k(t)``; what decides the ranking is
the paired difference ``d(t) = e_c(t) - e_y(t)`` between a competitor ``c`` and the true
class ``y`` on the same ``(t, eps)``. Drawing ``t ~ q`` and weighting each error by
``1 / q(t)`` keeps every class's estimate unbiased for ``int_0^1 e_k(t) dt``, and the
variance of the difference is smallest for ``q(t) propto sqrt(E[d(t)^2])`` (the
optimal importance density for a mean, e.g. Owen, *Monte Carlo theory, methods and
examples*, 2013, section 9.1). [`fit_proposal`][jgen.diffusion.fit_proposal] estimates
that on pilot examples, on ``num_bins`` equal bins of ``t``, for the ``num_competitors``
closest competitors, and mixes in a ``floor`` of the uniform density (defensive
importance sampling, Hesterberg 1995) so no weight exceeds ``1 / (floor)``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jgen.core import compilation
from jgen.diffusion import validate
from jgen.diffusion.elbo import class_errors_at
from jgen.diffusion.losses import draw
from jgen.diffusion.parametrizations import Denoiser
from jgen.diffusion.schedules import Schedule
from jgen.diffusion.strategies import psum_over

__all__ = ["TimestepProposal", "uniform_proposal", "fit_proposal", "draw_importance",
           "adapted_probs", "add_square_differences", "round_draws"]


class TimestepProposal(NamedTuple):
  """A piecewise-constant density on ``t in [0, 1]``: ``probs [B]`` per equal bin.

  Attributes:
    probs: ``[B]`` probability of each bin ``[b / B, (b + 1) / B)``, summing to 1.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> q = jgen.diffusion.TimestepProposal(jnp.array([0.1, 0.2, 0.3, 0.4]))
    >>> t, w = jgen.diffusion.importance.draw_importance(jax.random.key(0), 8, q)
    >>> t.shape, bool(((t >= 0) & (t <= 1)).all()), bool((w > 0.6).all())
    ((8,), True, True)
  """
  probs: jax.Array


def uniform_proposal(num_bins: int = 16, dtype=jnp.float32) -> TimestepProposal:
  """The uniform density (weights all 1): the plain estimator.

  Examples:
    >>> from jgen.diffusion import importance
    >>> importance.uniform_proposal(4).probs.tolist()
    [0.25, 0.25, 0.25, 0.25]
  """
  num_bins = validate.check_static_int(num_bins, "num_bins")
  return TimestepProposal(jnp.full((num_bins,), 1.0 / num_bins, dtype))


def draw_importance(key: jax.Array, num_t: int, proposal: TimestepProposal,
                    dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
  """Stratified ``t ~ q`` (inverse CDF of ``u = mod(u0 + i / n, 1)``) and the weights
  ``1 / q(t)``: ``(t [num_t], w [num_t])``; ``mean(w e(t))`` is unbiased for ``int e``.

  Examples:
    >>> import jax
    >>> from jgen.diffusion import importance
    >>> t, w = importance.draw_importance(jax.random.key(0), 8,
    ...                                   importance.uniform_proposal(4))
    >>> w.tolist() == [1.0] * 8
    True
  """
  probs = proposal.probs.astype(dtype)
  num_bins = probs.shape[0]
  cdf = jnp.cumsum(probs)
  cdf = cdf / cdf[-1]
  i = jnp.arange(num_t, dtype=dtype)
  u = jnp.mod(jax.random.uniform(key, (), dtype) + i / num_t, 1.0)
  b = jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, num_bins - 1)
  lo = jnp.where(b > 0, cdf[jnp.maximum(b - 1, 0)], 0.0)
  frac = jnp.clip((u - lo) / probs[b], 0.0, 1.0)
  t = (b.astype(dtype) + frac) / num_bins
  return t, 1.0 / (num_bins * probs[b])


@functools.partial(compilation.jit, static_argnames=("denoiser", "schedule", "num_classes",
                                             "num_bins", "draws", "m", "weighting"))
def _pilot(key, params, x, y, *, denoiser, schedule, num_classes, num_bins, draws, m,
           weighting):
  """Per-bin ``E[d^2]`` over pilot examples and their ``m`` closest competitors."""
  n_t = num_bins * draws
  ids = jnp.arange(num_classes, dtype=jnp.int32)

  def one(k, xi, yi):
    tk, ek = jax.random.split(k)
    t = (jnp.repeat(jnp.arange(num_bins), draws)
         + jax.random.uniform(tk, (n_t,))).astype(xi.dtype) / num_bins
    eps = jax.random.normal(ek, (n_t,) + xi.shape, xi.dtype)
    err = class_errors_at(denoiser, params, xi, t, eps, ids, schedule=schedule,
                          weighting=weighting)                      # [K, n_t]
    d = err - err[yi][None, :]
    mean = jnp.where(ids == yi, jnp.inf, jnp.mean(d, axis=1))
    _, comp = jax.lax.top_k(-mean, m)
    return jnp.mean((d[comp] ** 2).reshape(m, num_bins, draws), axis=(0, 2))

  return jnp.mean(jax.lax.map(lambda a: one(*a), (jax.random.split(key, x.shape[0]),
                                                  x, y)), axis=0)


def fit_proposal(key: jax.Array, denoiser: Denoiser, params: Any, x: ArrayLike,
                 y: ArrayLike, num_classes: int, *, schedule: Schedule,
                 num_bins: int = 16, draws_per_bin: int = 2, num_competitors: int = 4,
                 floor: float = 0.2, weighting="elbo") -> TimestepProposal:
  """Fits ``q(t) propto sqrt(E[d(t)^2])`` on labelled pilot examples (module docstring).

  Args:
    key: PRNG key.
    denoiser, params: the model (params traced).
    x: pilot examples ``[N, *data_shape]``; y: their labels ``[N]``.
    num_classes: static ``K``.
    schedule: a continuous noise schedule.
    num_bins: equal bins of ``t``.
    draws_per_bin: ``(t, eps)`` draws per bin and pilot example.
    num_competitors: closest competitors (lowest mean error) per pilot example.
    floor: weight of the uniform density in the mixture, in ``(0, 1]``.
    weighting: as the classifier's (``"elbo"`` or ``"uniform"``).

  Returns:
    [`TimestepProposal`][jgen.diffusion.TimestepProposal].

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> from jgen.diffusion import importance
    >>> den, p = diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
    >>> q = importance.fit_proposal(jax.random.key(0), den, p, jnp.eye(3),
    ...     jnp.arange(3), 3, schedule=diffusion.linear_schedule(), num_bins=4)
    >>> q.probs.shape
    (4,)
  """
  if schedule.num_steps is not None:
    raise ValueError("fit_proposal needs a continuous schedule (num_steps=None).")
  num_classes = validate.check_num_classes_fit(validate.check_denoiser(denoiser),
                                               num_classes)
  num_bins = validate.check_static_int(num_bins, "num_bins")
  draws = validate.check_static_int(draws_per_bin, "draws_per_bin")
  m = min(validate.check_static_int(num_competitors, "num_competitors"),
          num_classes - 1)
  if not 0.0 < floor <= 1.0:
    raise ValueError(f"floor must lie in (0, 1], got {floor}.")
  x = validate.check_x(denoiser, params, x, batched=True)
  y = jnp.asarray(y, jnp.int32)
  second = _pilot(key, params, x, jnp.asarray(y, jnp.int32), denoiser=denoiser,
                  schedule=schedule, num_classes=num_classes, num_bins=num_bins,
                  draws=draws, m=m, weighting=weighting)
  rms = jnp.sqrt(second)
  q = rms / jnp.sum(rms)
  return TimestepProposal((1.0 - floor) * q + floor / num_bins)


# Per-image timestep adaptation (``adapt_t``): bins of the uniform start, the uniform
# floor mixed in (as fit_proposal's default: weights <= 5) and the pseudo-observations
# per bin of the starting proposal's shape.
ADAPT_BINS, ADAPT_FLOOR, ADAPT_PRIOR = 16, 0.2, 2.0


def adapted_probs(q0: jax.Array, s2: jax.Array, nb: jax.Array) -> jax.Array:
  """Next round's bin probabilities: ``sqrt`` of the per-bin mean squared difference,
  shrunk to ``q0``'s shape by ``ADAPT_PRIOR`` pseudo-observations, floored; ``q0``
  until an observation exists. ``q0, s2, nb [B]``: the starting probabilities, the
  sums of squared differences and their counts per bin. Depends on past rounds only.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import importance
    >>> q0 = jnp.full(4, 0.25)
    >>> importance.adapted_probs(q0, jnp.zeros(4), jnp.zeros(4)).tolist()  # no data
    [0.25, 0.25, 0.25, 0.25]
    >>> q = importance.adapted_probs(q0, jnp.array([0.0, 0, 0, 400]), jnp.full(4, 4.0))
    >>> bool(q[3] > q[0]), round(float(q.sum()), 6)
    (True, 1.0)
  """
  tot = jnp.sum(nb)
  mbar = jnp.sum(s2) / jnp.maximum(tot, 1.0)
  prior = mbar * q0 * q0 / jnp.mean(q0 * q0)
  rms = jnp.sqrt((s2 + ADAPT_PRIOR * prior) / (nb + ADAPT_PRIOR))
  total = jnp.sum(rms)
  q = (1.0 - ADAPT_FLOOR) * rms / jnp.where(total > 0, total, 1.0) + ADAPT_FLOOR / q0.size
  return jnp.where((tot > 0) & (total > 0), q, q0)


def add_square_differences(s2, nb, h_r, lead_r, t_r, w_r, comp, antithetic,
                           axis_name=None):
  """Adds one round's squared paired differences with the leader's errors ``lead_r``
  (unweighted, averaged over the competitors ``comp [K]``; one per antithetic pair)
  to their bins: ``h_r [K, n]`` weighted errors of one round, ``lead_r [n]`` the
  leader's, ``t_r, w_r [n]`` its times and weights; returns the new ``(s2, nb)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import importance
    >>> h = jnp.array([[1.0, 1.0], [3.0, 1.0]])
    >>> s2, nb = importance.add_square_differences(jnp.zeros(2), jnp.zeros(2), h, h[0],
    ...     jnp.array([0.2, 0.7]), jnp.ones(2), jnp.array([False, True]), False)
    >>> s2.tolist(), nb.tolist()
    ([4.0, 0.0], [1.0, 1.0])
  """
  raw = (h_r - lead_r[None, :]) / w_r[None, :]
  t_obs = t_r
  if antithetic:
    h = t_r.shape[0] // 2
    raw, t_obs = 0.5 * (raw[:, :h] + raw[:, h:]), t_r[:h]
  n_comp = psum_over(jnp.sum(comp), axis_name)
  d2 = psum_over(jnp.sum(jnp.where(comp[:, None], raw * raw, 0.0), axis=0), axis_name)
  d2 = d2 / jnp.maximum(n_comp, 1)
  ok = jnp.isfinite(d2) & (n_comp > 0)
  bins = jnp.clip(jnp.floor(t_obs * s2.shape[0]).astype(jnp.int32), 0, s2.shape[0] - 1)
  return (s2.at[bins].add(jnp.where(ok, d2, 0.0)),
          nb.at[bins].add(ok.astype(nb.dtype)))


def round_draws(key: jax.Array, x: jax.Array, cfg,
                proposal: TimestepProposal | None) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The ``cfg.chunk_t`` shared draws of one race round (``cfg`` a
  [`RaceConfig`][jgen.diffusion.RaceConfig]): ``(t [n], eps [n, *x.shape], w [n])``,
  stratified (weights 1) or ``t ~ q`` with weights ``1 / q(t)``; with
  ``cfg.antithetic`` the second half is ``(t, -eps)`` of the first.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> from jgen.diffusion import importance
    >>> den, _ = diffusion.gaussian_oracle(jnp.eye(2), jnp.ones((2, 2)))
    >>> cfg = diffusion.race_config(den, chunk_t=4, antithetic=True)
    >>> t, eps, w = importance.round_draws(jax.random.key(0), jnp.zeros(2), cfg, None)
    >>> t.shape, bool((eps[:2] == -eps[2:]).all()), w.tolist()
    ((4,), True, [1.0, 1.0, 1.0, 1.0])
  """
  if proposal is None:
    t, eps = draw(key, cfg.chunk_t, x, cfg.schedule, "stratified", cfg.antithetic)
    return t, eps, jnp.ones_like(t)
  tk, ek = jax.random.split(key)
  n = cfg.chunk_t // 2 if cfg.antithetic else cfg.chunk_t
  t, w = draw_importance(tk, n, proposal, x.dtype)
  eps = jax.random.normal(ek, (n,) + x.shape, x.dtype)
  if cfg.antithetic:
    t, eps, w = jnp.concatenate([t, t]), jnp.concatenate([eps, -eps]), jnp.concatenate([w, w])
  return t, eps, w
