r"""Racing: sift the classes one shared timestep batch at a time, then refine survivors.

In the spirit of Sift-and-Refine (arXiv 2402.02316): round ``r`` draws ``chunk_t``
fresh ``(t, eps)`` (shared by every class), evaluates the classes still in the race and
updates each class's running mean error. A class leaves the race when

* ``rule="margin"``: its running mean exceeds the leader's by ``margin`` (nats per draw
  of the weighted error), after ``min_rounds`` rounds; or
* ``rule="test"``: the paired one-sided Student-t test on its per-draw differences
  with the leader, ``d_j = e_c(t_j) - e_leader(t_j)``, rejects at level
  ``(1 - confidence) / ((K - 1) R)`` (a union bound over competitors and ``R``
  rounds; the draws of a round are stratified, so the plain variance is conservative);
* ``rule="cs"``: anytime-valid. The same paired differences, but tested against a
  confidence sequence, a boundary that holds at every number of draws at once, so the
  level does not depend on ``max_rounds`` and the race may stop whenever it is met: the
  asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas
  ("Time-uniform central limit theory and asymptotic confidence sequences", Annals of
  Statistics 2024, Theorem 2.2; the normal-mixture boundary of Robbins 1970 and Howard,
  Ramdas, McAuliffe, Sekhon, Annals of Statistics 2021, with the variance estimated).
  After ``n`` observations with sample standard deviation ``s`` a class leaves when
  ``mean(d) > s sqrt(2 (n rho^2 + 1) / (n^2 rho^2) log(sqrt(n rho^2 + 1) / a))``,
  ``a = (1 - confidence) / (K - 1)`` (a union bound over the best class's ``K - 1``
  pairs only), ``rho`` tuned for ``cs_draws`` observations. An observation is one
  draw, or one antithetic pair's mean (the two halves of a pair are not independent).
  **Guarantee** (as ``n`` grows; the boundary is two-sided, so one-sided use is
  conservative): with probability ``>= confidence`` the class with the best expected
  error is never eliminated, however long the race runs.

Once at most ``keep`` classes remain, ``refine_rounds`` more rounds run on the survivors
(the refine stage; elimination continues), and the race stops as soon as one class is
left or after ``max_rounds`` sifting rounds. Survivors are evaluated in power-of-two
buckets (``lax.switch``), padded evaluations counted in ``num_evals``.

A cheap first stage may name the classes that enter the race: ``candidates [K]`` (``[N,
K]`` batched) is a boolean mask, e.g. the classes a Gaussian classifier on ``x`` ranks
among its top few; the others are never evaluated and score ``-inf``.

Variance reduction: ``antithetic`` draws ``(t, eps), (t, -eps)``, and an importance
proposal ``q`` (``jgen.diffusion.importance``) for the times with weights
``1 / q(t)``: both keep every class's mean unbiased.

Per-image timesteps (``adapt_t=True``): the proposal adapts during the race. Round
``r`` draws from ``q_r propto sqrt(m_b)`` on equal bins of ``t``, ``m_b`` the mean
squared paired difference (leader against the classes still racing, unweighted)
seen in bin ``b`` in rounds ``< r``, shrunk to the starting proposal's shape (the
given ``proposal``, or uniform on 16 bins) and mixed with a uniform floor of 0.2. As
``q_r`` depends on earlier rounds only, each round's weighted errors are conditionally
unbiased given the past, so every class's running mean stays unbiased and the paired
differences keep a constant conditional mean: the tests see martingale differences,
which the martingale form of the asymptotic confidence sequence covers (Waudby-Smith
et al. 2024).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jgen.core import compilation
from jgen.core import plan as plan_lib
from jgen.diffusion import validate
from jgen.diffusion.chunking import activation_bytes
from jgen.diffusion.elbo import class_errors_at, elbo_from_errors
from jgen.diffusion import boundaries, importance
from jgen.diffusion.boundaries import cs_multipliers
from jgen.diffusion.importance import (TimestepProposal, add_square_differences,
                                       adapted_probs, round_draws)
from jgen.diffusion.parametrizations import Denoiser
from jgen.diffusion.schedules import Schedule, linear_schedule
from jgen.diffusion.strategies import (ClassifyResult, buckets, class_offset,
                                       first_argmax, id_at, psum_over)

__all__ = ["RaceConfig", "race_config", "cs_multipliers", "race",
           "race_survivors", "batch_race"]


class RaceConfig(NamedTuple):
  """Static racing settings (hashable); build with
  [`race_config`][jgen.diffusion.race_config].

  The fields are [`race_config`][jgen.diffusion.race_config]'s arguments; the module
  docstring gives their meaning.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> den, p = jgen.diffusion.gaussian_oracle(3 * jnp.eye(3), jnp.ones((3, 3)))
    >>> cfg = jgen.diffusion.race_config(den, rule="margin", margin=0.5)
    >>> cfg.rule, cfg.margin, cfg.chunk_t, cfg.schedule.name
    ('margin', 0.5, 8, 'linear[-13.3,5]')
    >>> cfg == cfg._replace(chunk_t=8), hash(cfg) == hash(cfg)  # a static jit key
    (True, True)
  """
  denoiser: Denoiser
  schedule: Schedule
  chunk_t: int = 8
  max_rounds: int = 32
  keep: int = 1
  refine_rounds: int = 0
  rule: str = "test"
  margin: float = 1.0
  confidence: float = 0.99
  min_rounds: int = 2
  antithetic: bool = False
  weighting: str = "elbo"
  cs_draws: int = 32
  adapt_t: bool = False


def race_config(denoiser: Denoiser, *, schedule: Schedule | None = None,
                chunk_t: int = 8, max_rounds: int = 32, keep: int = 1,
                refine_rounds: int = 0, rule: str = "test", margin: float = 1.0,
                confidence: float = 0.99, min_rounds: int = 2,
                antithetic: bool = False, weighting: str = "elbo",
                cs_draws: int = 32, adapt_t: bool = False) -> RaceConfig:
  """Checked [`RaceConfig`][jgen.diffusion.RaceConfig] (module docstring for the meaning
  of each field).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, _ = diffusion.gaussian_oracle(jnp.eye(2), jnp.ones((2, 2)))
    >>> diffusion.race_config(den, keep=10, refine_rounds=2).keep
    10
    >>> diffusion.race_config(den, rule="cs", confidence=0.95).rule  # anytime-valid
    'cs'
  """
  validate.check_denoiser(denoiser)
  for name, v in (("chunk_t", chunk_t), ("max_rounds", max_rounds), ("keep", keep),
                  ("min_rounds", min_rounds), ("cs_draws", cs_draws)):
    validate.check_static_int(v, name)
  validate.check_static_int(refine_rounds, "refine_rounds", 0)
  validate.check_antithetic(antithetic, chunk_t, "chunk_t")
  if rule not in ("test", "margin", "cs"):
    raise ValueError(f"rule must be 'test', 'margin' or 'cs', got {rule!r}.")
  if not margin > 0:
    raise ValueError(f"margin must be > 0, got {margin}.")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must lie in (0, 1), got {confidence}.")
  validate.check_options(weighting, "l2")
  if not isinstance(adapt_t, bool):
    raise TypeError(f"adapt_t must be a bool, got {type(adapt_t).__name__}.")
  schedule = linear_schedule() if schedule is None else schedule
  if adapt_t and schedule.num_steps is not None:
    raise ValueError("adapt_t needs a continuous schedule (num_steps=None).")
  return RaceConfig(denoiser, schedule, int(chunk_t), int(max_rounds), int(keep),
                    int(refine_rounds), rule, float(margin), float(confidence),
                    int(min_rounds), bool(antithetic), weighting, int(cs_draws),
                    bool(adapt_t))


def race(key, params, x, proposal: TimestepProposal | None, *, cfg: RaceConfig,
         num_classes: int, candidates=None, classes=None, axis_name=None,
         num_classes_total: int | None = None) -> ClassifyResult:
  """Races the ``num_classes`` classes for ONE example (module docstring); jittable.

  ``candidates``: optional ``[K]`` bool mask of the classes that enter the race (at
  least one ``True``; all classes when ``None``).

  ``classes``: optional ``[K]`` int32 class ids the ``K = num_classes`` race slots
  stand for (a race among a few classes of a larger model, e.g. the survivors of
  [`hierarchical_race`][jgen.diffusion.hierarchy.hierarchical_race]); slot ``i``
  is class ``classes[i]``, and ``label`` is a class id. The error level's union bound
  is over the ``K - 1`` slots.

  ``axis_name``: the class axis of a ``shard_map`` (``None``: one device). With a
  name, ``classes`` is this device's slice of the class ids (padded with ``-1``, which
  never enter), ``num_classes`` its length, and ``num_classes_total`` the count the
  union bound covers; the leader, its draws, the survivor count and ``num_evals`` are
  reduced over the axis (``pmin``/``psum``), so every device returns the same label
  and, for the same key, the single-device result.

  Returns:
    [`ClassifyResult`][jgen.diffusion.ClassifyResult]: ``scores [K]`` (per slot) are ELBO
    estimates (``weighting="elbo"``) or minus mean errors, from each class's own draws;
    ``-inf`` for classes never evaluated.
  """
  active, hist, evals, ids = _sift(key, params, x, proposal, cfg, num_classes, candidates,
                                   classes, axis_name, num_classes_total)
  seen = jnp.any(hist != 0.0, axis=2)                                 # [R, K]
  count = jnp.maximum(jnp.sum(seen, axis=0), 1).astype(x.dtype) * cfg.chunk_t
  mean_err = jnp.sum(hist, axis=(0, 2)) / count
  if cfg.weighting == "elbo":
    scores = elbo_from_errors(mean_err[:, None], x, cfg.schedule)
  else:
    scores = -mean_err
  scores = jnp.where(jnp.isnan(scores) | ~jnp.any(seen, axis=0), -jnp.inf, scores)
  pos = first_argmax(jnp.where(active, scores, -jnp.inf), axis_name)
  # a single candidate wins without evaluations
  pos = jnp.where(evals > 0, pos, first_argmax(active.astype(jnp.int32), axis_name))
  return ClassifyResult(id_at(ids, pos, axis_name).astype(jnp.int32), scores, evals)


def race_survivors(key, params, x, proposal: TimestepProposal | None, *,
                   cfg: RaceConfig, num_classes: int, candidates=None, classes=None,
                   axis_name=None, num_classes_total: int | None = None
                   ) -> tuple[jax.Array, jax.Array]:
  """The classes [`race`][jgen.diffusion.racing.race] has not eliminated when it stops, with
  the same arguments (same key, same draws, same tests): ``(survivors [K] bool,
  num_evals [])``, padded evaluations counted. With ``cfg.keep > 1`` the race stops
  once at most ``keep`` remain, or after ``max_rounds`` rounds with all the classes no
  test has eliminated (the tree stage of
  [`hierarchical_race`][jgen.diffusion.hierarchy.hierarchical_race] with
  ``prune="test"``).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> from jgen.diffusion import racing
    >>> den, p = diffusion.gaussian_oracle(jnp.array([[0.], [0.2], [9.]]), jnp.ones((3, 1)))
    >>> cfg = diffusion.race_config(den, rule="cs", keep=2, max_rounds=8)
    >>> kept, n = racing.race_survivors(jax.random.key(0), p, jnp.zeros(1), None,
    ...                                 cfg=cfg, num_classes=3)
    >>> kept.tolist()
    [True, True, False]
  """
  active, _, evals, _ = _sift(key, params, x, proposal, cfg, num_classes, candidates,
                              classes, axis_name, num_classes_total)
  return active, evals


def _sift(key, params, x, proposal, cfg: RaceConfig, num_classes, candidates, classes,
          axis_name, num_classes_total):
  """The race's rounds: ``(active [K], hist [R, K, chunk_t], evals, ids [K])``."""
  k, rounds = num_classes, cfg.max_rounds + cfg.refine_rounds
  k_total = k if num_classes_total is None else num_classes_total
  ids = (jnp.arange(k, dtype=jnp.int32) if classes is None
         else jnp.asarray(classes, jnp.int32))
  q = jnp.asarray(boundaries.race_multipliers(cfg, k_total, rounds), x.dtype)
  sizes = buckets(k)
  n_draw = cfg.chunk_t
  slot = jnp.arange(k, dtype=jnp.int32)
  offset = class_offset(k, axis_name)

  if cfg.adapt_t:   # the first round's proposal; later rounds adapt (module docstring)
    q0 = (jnp.full((importance.ADAPT_BINS,), 1.0 / importance.ADAPT_BINS, x.dtype) if proposal is None
          else proposal.probs.astype(x.dtype))
  n_bins = q0.shape[0] if cfg.adapt_t else 1

  def evaluate(b, r, order, probs):
    cls = order[:b]
    prop = TimestepProposal(probs) if cfg.adapt_t else proposal
    t, eps, w = round_draws(jax.random.fold_in(key, r), x, cfg, prop)
    err = class_errors_at(cfg.denoiser, params, x, t, eps, ids[cls],
                          schedule=cfg.schedule, weighting=cfg.weighting) * w[None, :]
    return jnp.zeros((k, n_draw), x.dtype).at[cls].set(err), t, w

  def body(state):
    r, active, n_glob, hist, evals, refine, (s2, nb) = state
    order = jnp.argsort(~active, stable=True).astype(jnp.int32)
    bidx = jnp.searchsorted(jnp.asarray(sizes), jnp.sum(active))
    probs = adapted_probs(q0, s2, nb) if cfg.adapt_t else jnp.zeros((1,), x.dtype)
    h_r, t_r, w_r = lax.switch(bidx, [functools.partial(evaluate, b, r)
                                      for b in sizes], order, probs)
    # a bucket's padding evaluations (classes already out) are counted, not kept: a
    # class's score uses the rounds it raced in, however the classes are split
    hist = hist.at[r].set(jnp.where(active[:, None], h_r, 0.0))
    rows = (jnp.arange(rounds) <= r)[:, None, None]
    n = ((r + 1) * n_draw).astype(x.dtype)
    mean = jnp.sum(jnp.where(rows, hist, 0.0), axis=(0, 2)) / n
    mean = jnp.where(jnp.isnan(mean), jnp.inf, mean)
    leader = first_argmax(jnp.where(active, -mean, -jnp.inf), axis_name)
    local = jnp.clip(leader - offset, 0, k - 1)
    is_leader = (slot == leader - offset)
    lead = psum_over(jnp.where(jnp.any(is_leader), hist[:, local], 0.0), axis_name)
    d = jnp.where(rows, hist - lead[:, None, :], 0.0)
    d_mean = jnp.sum(d, axis=(0, 2)) / n
    if cfg.rule == "margin":
      out = (d_mean > cfg.margin) & (r + 1 >= cfg.min_rounds)
    else:
      obs, n_obs = d, n
      if cfg.rule == "cs" and cfg.antithetic:   # one observation per antithetic pair
        h = n_draw // 2
        obs, n_obs = 0.5 * (d[..., :h] + d[..., h:]), n / 2
      var = jnp.sum(jnp.where(rows, (obs - d_mean[None, :, None]) ** 2, 0.0),
                    axis=(0, 2)) / jnp.maximum(n_obs - 1, 1)
      out = d_mean > q[r] * jnp.sqrt(var / n_obs)
    if cfg.adapt_t:
      s2, nb = add_square_differences(s2, nb, h_r, lead[r], t_r, w_r, active & ~is_leader,
                            cfg.antithetic, axis_name)
    active = (active & ~(out | (mean == jnp.inf))) | is_leader
    refine = refine - (n_glob <= cfg.keep).astype(jnp.int32)
    spent = psum_over(jnp.asarray(sizes, jnp.int32)[bidx], axis_name) * n_draw
    n_glob = psum_over(jnp.sum(active).astype(jnp.int32), axis_name)
    return r + 1, active, n_glob, hist, evals + spent, refine, (s2, nb)

  def cond(state):
    r, _, n_act, _, _, refine, _ = state
    sifting = (n_act > cfg.keep) & (r < cfg.max_rounds)
    return (n_act > 1) & (sifting | ((n_act <= cfg.keep) & (refine > 0)))

  start = jnp.ones((k,), bool) if candidates is None else jnp.asarray(candidates, bool)
  if axis_name is not None:
    start = start & (ids >= 0)
  init = (jnp.asarray(0, jnp.int32), start,
          psum_over(jnp.sum(start).astype(jnp.int32), axis_name),
          jnp.zeros((rounds, k, n_draw), x.dtype), jnp.asarray(0, jnp.int32),
          jnp.asarray(cfg.refine_rounds, jnp.int32),
          (jnp.zeros((n_bins,), x.dtype), jnp.zeros((n_bins,), x.dtype)))
  _, active, _, hist, evals, _, _ = lax.while_loop(cond, body, init)
  return active, hist, evals, ids


@functools.partial(compilation.jit,
                   static_argnames=("cfg", "num_classes", "vectorize", "rows"))
def _batch(keys, params, x, proposal, candidates, *, cfg, num_classes, vectorize,
           rows=None):
  fn = lambda k, p, xi, q, c: race(k, p, xi, q, cfg=cfg, num_classes=num_classes,
                                   candidates=c)
  if vectorize and rows is not None:   # vmapped in chunks of ``rows`` examples
    return lax.map(lambda a: fn(a[0], params, a[1], proposal, a[2]),
                   (keys, x, candidates), batch_size=rows)
  if vectorize:
    return jax.vmap(fn, in_axes=(0, None, 0, None, 0))(keys, params, x, proposal,
                                                       candidates)
  return lax.map(lambda a: fn(a[0], params, a[1], proposal, a[2]), (keys, x, candidates))


def _check_candidates(candidates, n: int, k: int) -> jax.Array:
  if candidates is None:
    return jnp.ones((n, k), bool)
  c = np.asarray(candidates)
  if c.dtype != bool:
    raise TypeError(f"candidates must be a bool mask, got dtype {c.dtype}.")
  if c.shape != (n, k):
    raise ValueError(f"candidates must have shape {(n, k)} (examples, classes), got"
                     f" {c.shape}.")
  empty = np.count_nonzero(~c.any(axis=1))
  if empty:
    raise ValueError(f"candidates must name at least one class per example; {empty}"
                     " rows name none.")
  return jnp.asarray(c)


def batch_race(key: jax.Array, params: Any, x, num_classes: int, *, cfg: RaceConfig,
               proposal: TimestepProposal | None = None,
               vectorize: bool = False, candidates=None) -> ClassifyResult:
  """``race`` for ``x [N, *data_shape]`` (keys ``split(key, N)``), one compile per
  architecture (``params``, ``proposal`` and ``candidates`` traced).

  ``candidates``: optional ``[N, K]`` bool mask of the classes that enter each
  example's race (a cheap first stage; module docstring).

  ``vectorize=False`` loops over examples (``lax.map``), so the bucket switch skips
  eliminated classes; ``vectorize=True`` vmaps, which runs every branch and every
  lane to the slowest (``benchmarks/diffusion_ode.py`` measures both). Under a memory
  plan (GPU/TPU, ``jgen.core.plan``) the vmapped examples run in chunks the plan sizes
  (one round of ``K`` classes by ``chunk_t`` draws per example); a CPU cache plan
  vmaps all of them in one call, as XLA blocks for the cache itself.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, p = diffusion.gaussian_oracle(3 * jnp.eye(3), jnp.ones((3, 3)))
    >>> res = diffusion.batch_race(jax.random.key(0), p, 3 * jnp.eye(3), 3,
    ...                            cfg=diffusion.race_config(den))
    >>> res.label.tolist()
    [0, 1, 2]
    >>> mask = jnp.array([[True, True, False]] * 3)  # class 2 never enters
    >>> res = diffusion.batch_race(jax.random.key(0), p, 3 * jnp.eye(3), 3,
    ...                            candidates=mask, cfg=diffusion.race_config(den))
    >>> res.label[:2].tolist(), res.scores[:, 2].tolist()
    ([0, 1], [-inf, -inf, -inf])
  """
  if not isinstance(cfg, RaceConfig):
    raise TypeError(f"cfg must be a RaceConfig (race_config()), got"
                    f" {type(cfg).__name__}.")
  num_classes = validate.check_num_classes_fit(cfg.denoiser, num_classes)
  x = validate.check_x(cfg.denoiser, params, x, batched=True)
  cand = _check_candidates(candidates, x.shape[0], num_classes)
  keys = jax.random.split(key, x.shape[0])
  plan, rows = plan_lib.current_plan(), None
  if vectorize and plan.kind == "memory":
    per = num_classes * cfg.chunk_t * activation_bytes(cfg.denoiser, params,
                                                       x.shape[1:], x.dtype)
    rows = plan.per_call(per, x.shape[0])
    rows = None if rows >= x.shape[0] else rows
  return _batch(keys, params, x, proposal, cand, cfg=cfg, num_classes=num_classes,
                vectorize=bool(vectorize), rows=rows)
