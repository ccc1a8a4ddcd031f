r"""The Diffusion Classifier (Li et al., ICCV 2023): ``argmax_k`` of a shared-noise score.

Scores are ELBO estimates of ``log p(x | y=k)`` with ``weighting="elbo", loss="l2"``
(feed them to [`jgen.log_posterior`][jgen.log_posterior]), otherwise minus the mean
weighted error. Three strategies, all reporting denoiser evaluations (``(class, t)``
pairs):

* ``full``: every class on the same ``num_t`` draws; ``K * num_t`` evaluations.
* ``adaptive``: the paper's stages. Stage ``k`` evaluates the surviving classes on the
  timesteps of the strided subset ``n_samples[k]`` of a base grid of
  ``max(n_samples)`` points not evaluated before, then keeps the ``to_keep[k]`` classes
  with the best mean over everything evaluated so far. Shapes are static per stage, so
  each stage compiles once.
* ``sequential``: paired successive elimination. Round ``r`` draws a fresh stratified
  chunk of ``chunk_t`` timesteps, evaluates the surviving classes and records each
  class's chunk-mean score. Class ``c`` is eliminated when the one-sided Student-t
  test on the ``n = r + 1`` paired chunk differences ``s_leader - s_c`` rejects at
  level ``delta / ((K - 1) R)`` (``R = num_t / chunk_t`` rounds, ``delta = 1 -
  confidence``). **Guarantee**: if the chunk means are Gaussian (they are means of
  ``chunk_t`` stratified draws, so this holds approximately by the CLT), then with
  probability ``>= confidence`` the class with the highest expected score (the limit of
  ``full`` as ``num_t -> inf``) is never eliminated; a union bound over the ``K - 1``
  possible leaders and the ``R`` rounds covers the data-dependent leader and repeated
  looks. Surviving classes are evaluated in power-of-two buckets (``lax.switch``);
  padded evaluations are counted in ``num_evals``.

Each strategy is written once for one example with an optional class-axis name
(optax ``contrib/_sam.py`` style): ``axis_name=None`` scores the classes ``ids`` on
one device; with a name, ``ids`` is this device's slice of the classes (padded with
``-1``) and the reductions (argmax, top-k, leader, counts) become ``pmax``/``pmin``/
``psum``/``all_gather`` over that axis, so every device returns the same label.
A class whose score is NaN gets the ``-inf`` sentinel: it never wins.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jgen.diffusion.elbo import class_errors_at, elbo_from_errors
from jgen.diffusion.losses import draw, draw_timesteps
from jgen.diffusion.parametrizations import Denoiser
from jgen.diffusion.schedules import Schedule

__all__ = ["ClassifyResult", "StrategyConfig", "STRATEGIES", "adaptive_plan", "full",
           "adaptive", "sequential", "run", "t_quantiles", "buckets", "psum_over",
           "class_offset", "first_argmax", "id_at"]


class ClassifyResult(NamedTuple):
  """Result of [`classify`][jgen.diffusion.classify] (leading ``[N]`` when batched).

  Attributes:
    label: predicted class id, ``int32 []``.
    scores: ``[K]`` scores (ELBO estimates for ``weighting="elbo"``); classes
      eliminated early are scored from fewer draws; NaN scores are ``-inf``.
    num_evals: denoiser evaluations used, ``int32 []``.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> den, params = jgen.diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
    >>> res = jgen.diffusion.classify(jax.random.key(0), den, params, jnp.eye(3)[2], 3,
    ...                               num_t=64)
    >>> int(res.label), res.scores.shape, int(res.num_evals)  # 3 classes x 64 draws
    (2, (3,), 192)
  """
  label: jax.Array
  scores: jax.Array
  num_evals: jax.Array


class StrategyConfig(NamedTuple):
  """Static settings shared by the strategies (hashable: part of the compile key)."""
  denoiser: Denoiser
  schedule: Schedule
  timesteps: str = "stratified"
  weighting: Any = "elbo"
  loss: str = "l2"
  chunk_size: int | None = None
  antithetic: bool = False


# ----------------------------------------------------------------- shared pieces
def _scores(mean_err: jax.Array, x: jax.Array, cfg: StrategyConfig) -> jax.Array:
  if cfg.weighting == "elbo" and cfg.loss == "l2":
    s = elbo_from_errors(mean_err[..., None], x, cfg.schedule)
  else:
    s = -mean_err
  return jnp.where(jnp.isnan(s), -jnp.inf, s)  # a NaN class never wins


def _errors(params, x, t, eps, ids, cfg):
  return class_errors_at(cfg.denoiser, params, x, t, eps, jnp.maximum(ids, 0),
                         schedule=cfg.schedule, weighting=cfg.weighting,
                         loss=cfg.loss, chunk_size=cfg.chunk_size)


def psum_over(v, axis_name):
  """``v`` summed over the class axis ``axis_name`` (``v`` itself when ``None``)."""
  return v if axis_name is None else lax.psum(v, axis_name)


def class_offset(k_local: int, axis_name):
  """Global position of this device's first class slot (``0`` when ``None``)."""
  return 0 if axis_name is None else lax.axis_index(axis_name) * k_local


def first_argmax(v: jax.Array, axis_name) -> jax.Array:
  """Global position of the first maximum of the class-split vector ``v``."""
  i = jnp.argmax(v).astype(jnp.int32)
  if axis_name is None:
    return i
  best = v[i]
  pos = class_offset(v.shape[0], axis_name) + i
  top = lax.pmax(best, axis_name)
  return lax.pmin(jnp.where(best == top, pos, jnp.iinfo(jnp.int32).max), axis_name)


def id_at(ids: jax.Array, pos: jax.Array, axis_name) -> jax.Array:
  """The class id at global position ``pos`` of the class-split ``ids``."""
  if axis_name is None:
    return ids[pos]
  local = pos - class_offset(ids.shape[0], axis_name)
  mine = (local >= 0) & (local < ids.shape[0])
  return lax.psum(jnp.where(mine, ids[jnp.clip(local, 0, ids.shape[0] - 1)], 0),
                  axis_name)


def _draws(key, x, positions, n_base, cfg):
  """``t`` and ``eps`` at base-grid ``positions``; eps keyed by position."""
  t_key, eps_key = jax.random.split(key)
  t_all = draw_timesteps(t_key, n_base, cfg.schedule, cfg.timesteps, x.dtype)
  pos = jnp.asarray(positions, jnp.int32)
  eps = jax.vmap(lambda p: jax.random.normal(jax.random.fold_in(eps_key, p), x.shape,
                                             x.dtype))(pos)
  return t_all[pos], eps


# ------------------------------------------------------------------------- full
def full(key, params, x, ids, *, cfg: StrategyConfig, num_t: int, axis_name=None):
  """Every class on the same ``num_t`` draws (those of ``class_errors(key, ...)``)."""
  t, eps = draw(key, num_t, x, cfg.schedule, cfg.timesteps, cfg.antithetic)
  scores = _scores(jnp.mean(_errors(params, x, t, eps, ids, cfg), axis=1), x, cfg)
  scores = jnp.where(ids >= 0, scores, -jnp.inf)
  label = id_at(ids, first_argmax(scores, axis_name), axis_name)
  evals = psum_over(ids.shape[0], axis_name) * num_t
  return ClassifyResult(label.astype(jnp.int32), scores, jnp.asarray(evals, jnp.int32))


# --------------------------------------------------------------------- adaptive
def adaptive_plan(n_samples: Sequence[int], to_keep: Sequence[int],
                  num_classes: int) -> tuple[list[tuple[int, ...]], list[int], int]:
  """The paper's stage bookkeeping (reference implementation's index arithmetic).

  Returns:
    ``(positions, classes, num_evals)``: per stage the NEW base-grid positions
    evaluated, the number of classes evaluated, and the total evaluations.

  Examples:
    >>> from jgen import diffusion
    >>> diffusion.adaptive_plan((50, 500), (5, 1), 10)[2]  # Li et al. 2023: 2,750
    2750
  """
  n_samples, to_keep = tuple(n_samples), tuple(to_keep)
  if len(n_samples) != len(to_keep) or not n_samples:
    raise ValueError("n_samples and to_keep must be non-empty and of the same length,"
                     f" got n_samples={n_samples}, to_keep={to_keep}.")
  for name, v in (("n_samples", n_samples), ("to_keep", to_keep)):
    if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 1
           for a in v):
      raise ValueError(f"{name} must hold positive ints, got {v}.")
  if any(b <= a for a, b in zip(n_samples, n_samples[1:])):
    raise ValueError(f"n_samples must be strictly increasing, got {n_samples}.")
  if any(b >= a for a, b in zip(to_keep, to_keep[1:])):
    raise ValueError(f"to_keep must be strictly decreasing, got {to_keep}.")
  if to_keep[0] > num_classes:
    raise ValueError(f"to_keep[0]={to_keep[0]} exceeds the number of classes"
                     f" {num_classes}.")
  n_max = n_samples[-1]
  seen: set[int] = set()
  positions, classes, total, active = [], [], 0, num_classes
  for n, keep in zip(n_samples, to_keep):
    stride = n_max // n
    new = [p for p in range(stride // 2, n_max, stride)[:n] if p not in seen]
    seen.update(new)
    positions.append(tuple(new))
    classes.append(active)
    total += active * len(new)
    active = keep
  return positions, classes, total


def adaptive(key, params, x, ids, *, cfg: StrategyConfig, n_samples, to_keep,
             axis_name=None):
  """The paper's stages; stage 1 on this device's classes, then an exact global top-k
  (every global winner is in its own shard's local top-k) and replicated stages."""
  positions, _, _ = adaptive_plan(n_samples, to_keep, to_keep[0])
  n_base, k_local = n_samples[-1], ids.shape[0]
  offset = class_offset(k_local, axis_name)
  t, eps = _draws(key, x, positions[0], n_base, cfg)
  sums = jnp.sum(_errors(params, x, t, eps, ids, cfg), axis=1)          # [k_local]
  counts = jnp.full((k_local,), len(positions[0]), x.dtype)
  neg = -(sums / counts)
  neg = jnp.where((ids >= 0) & ~jnp.isnan(neg), neg, -jnp.inf)
  val, idx = lax.top_k(neg, min(to_keep[0], k_local))
  a_pos, a_ids, a_sums = offset + idx, ids[idx], sums[idx]
  if axis_name is not None:
    gather = functools.partial(lax.all_gather, axis_name=axis_name, tiled=True)
    _, best = lax.top_k(gather(val), to_keep[0])
    a_pos, a_ids, a_sums = (gather(a)[best] for a in (a_pos, a_ids, a_sums))
  a_counts = jnp.full(a_pos.shape, len(positions[0]), x.dtype)
  evals = psum_over(k_local, axis_name) * len(positions[0])
  for pos, keep, prev in zip(positions[1:], to_keep[1:], to_keep):
    t, eps = _draws(key, x, pos, n_base, cfg)
    stage = jnp.sum(_errors(params, x, t, eps, a_ids, cfg), axis=1)
    a_sums, a_counts = a_sums + stage, a_counts + len(pos)
    local = jnp.where((a_pos >= offset) & (a_pos < offset + k_local), a_pos - offset,
                      k_local)                                          # k_local: drop
    sums = sums.at[local].add(stage, mode="drop")
    counts = counts.at[local].add(len(pos), mode="drop")
    mean = a_sums / a_counts
    _, best = lax.top_k(jnp.where(jnp.isnan(mean), -jnp.inf, -mean), keep)
    a_pos, a_ids, a_sums, a_counts = (a[best] for a in (a_pos, a_ids, a_sums, a_counts))
    evals = evals + prev * len(pos)
  scores = _scores(sums / jnp.maximum(counts, 1), x, cfg)
  scores = jnp.where(ids >= 0, scores, -jnp.inf)
  return ClassifyResult(a_ids[0].astype(jnp.int32), scores,
                        jnp.asarray(evals, jnp.int32))


# ------------------------------------------------------------------- sequential
def buckets(num_c: int) -> list[int]:
  """Power-of-two evaluation sizes ``1, 2, 4, ..., num_c``."""
  sizes, b = [], 1
  while b < num_c:
    sizes.append(b)
    b *= 2
  return sizes + [num_c]


def t_quantiles(num_c: int, rounds: int, confidence: float) -> np.ndarray:
  """One-sided Student-t critical values for n = r + 1 chunks (dof r); inf at r = 0."""
  level = (1.0 - confidence) / (max(num_c - 1, 1) * rounds)
  q = np.full(rounds, np.inf)
  import scipy.stats  # here: importing jgen.diffusion must not load scipy

  q[1:] = scipy.stats.t.ppf(1.0 - level, np.arange(1, rounds))
  return q


def sequential(key, params, x, ids, *, cfg: StrategyConfig, num_t, chunk_t,
               confidence, num_classes_total, axis_name=None):
  """Paired successive elimination (module docstring); every device evaluates its own
  survivors in a power-of-two bucket and all agree on the leader every round."""
  k_local, rounds = ids.shape[0], num_t // chunk_t
  offset = class_offset(k_local, axis_name)
  q = jnp.asarray(t_quantiles(num_classes_total, rounds, confidence), x.dtype)
  sizes = buckets(k_local)

  def evaluate(b, r, order):
    cls = order[:b]
    t, eps = draw(jax.random.fold_in(key, r), chunk_t, x, cfg.schedule, cfg.timesteps,
                  cfg.antithetic)
    m = jnp.mean(_errors(params, x, t, eps, ids[cls], cfg), axis=1)
    return jnp.zeros((k_local,), x.dtype).at[cls].set(
        jnp.where(jnp.isnan(m), -jnp.inf, -m))

  def body(state):
    r, active, n_active, hist, seen, evals = state
    order = jnp.argsort(~active, stable=True).astype(jnp.int32)
    bidx = jnp.searchsorted(jnp.asarray(sizes), jnp.sum(active))
    vals = lax.switch(bidx, [functools.partial(evaluate, b, r) for b in sizes], order)
    hist, seen = hist.at[r].set(vals), seen.at[r].set(active)
    n = (r + 1).astype(x.dtype)
    rows = (jnp.arange(rounds) <= r)[:, None]
    mean = jnp.sum(jnp.where(rows, hist, 0.0), axis=0) / n
    leader = first_argmax(jnp.where(active, mean, -jnp.inf), axis_name)
    mine = (leader >= offset) & (leader < offset + k_local)
    col = hist[:, jnp.clip(leader - offset, 0, k_local - 1)]
    lead_hist = psum_over(jnp.where(mine, col, 0.0), axis_name)           # [R]
    d = jnp.where(rows, lead_hist[:, None] - hist, 0.0)
    d_mean = jnp.sum(d, axis=0) / n
    d_var = (jnp.sum(jnp.where(rows, (d - d_mean[None, :]) ** 2, 0.0), axis=0)
             / jnp.maximum(n - 1, 1))
    active = active & ~(d_mean > q[r] * jnp.sqrt(d_var / n))
    n_active = psum_over(jnp.sum(active).astype(jnp.int32), axis_name)
    spent = psum_over(jnp.asarray(sizes, jnp.int32)[bidx], axis_name) * chunk_t
    return r + 1, active, n_active, hist, seen, evals + spent

  init = (jnp.asarray(0, jnp.int32), ids >= 0,
          jnp.asarray(num_classes_total, jnp.int32),
          jnp.zeros((rounds, k_local), x.dtype), jnp.zeros((rounds, k_local), bool),
          jnp.asarray(0, jnp.int32))
  _, active, _, hist, seen, evals = lax.while_loop(
      lambda s: (s[0] < rounds) & (s[2] > 1), body, init)
  count = jnp.maximum(jnp.sum(seen, axis=0), 1).astype(x.dtype)
  scores = _scores(-jnp.sum(jnp.where(seen, hist, 0.0), axis=0) / count, x, cfg)
  scores = jnp.where(ids >= 0, scores, -jnp.inf)
  pos = first_argmax(jnp.where(active, scores, -jnp.inf), axis_name)
  return ClassifyResult(id_at(ids, pos, axis_name).astype(jnp.int32), scores, evals)


STRATEGIES = {"full": full, "adaptive": adaptive, "sequential": sequential}


def run(strategy: str, key, params, x, ids, *, cfg: StrategyConfig, opts: dict,
        axis_name=None, batched: bool = False) -> ClassifyResult:
  """Runs ``strategy`` on one example, or on ``x [N, ...]`` with keys ``[N]``.

  ``full``/``adaptive`` are vmapped over examples; ``sequential`` loops (``lax.map``)
  so that ``lax.switch`` stays a real branch and eliminated classes are skipped.
  """
  fn = functools.partial(STRATEGIES[strategy], cfg=cfg, axis_name=axis_name, **opts)
  if not batched:
    return fn(key, params, x, ids)
  if strategy == "sequential":
    return lax.map(lambda a: fn(a[0], params, a[1], ids), (key, x))
  return jax.vmap(fn, in_axes=(0, None, 0, None))(key, params, x, ids)
