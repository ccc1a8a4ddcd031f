r"""The Diffusion Classifier (Li et al., ICCV 2023): ``argmax_k`` of a shared-noise score.

Scores are ELBO estimates of ``log p(x | y=k)`` with ``weighting="elbo", loss="l2"``
(feed them to :func:`jgen.log_posterior`), otherwise minus the mean weighted error.
Three strategies, all reporting denoiser evaluations (``(class, t)`` pairs):

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
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.diffusion import elbo as _elbo
from jgen.diffusion.schedules import Schedule, linear_schedule

__all__ = ["ClassifyResult", "classify", "batch_classify", "adaptive_plan",
           "DEFAULT_SCHEDULE"]

DEFAULT_SCHEDULE = linear_schedule()
_STRATEGIES = ("full", "adaptive", "sequential")


class ClassifyResult(NamedTuple):
  """Result of :func:`classify` (leading batch axis ``[N]`` from :func:`batch_classify`).

  Attributes:
    label: predicted class id, ``int32 []``.
    scores: ``[K]`` scores (ELBO estimates for ``weighting="elbo"``); classes
      eliminated early are scored from fewer draws.
    num_evals: denoiser evaluations used, ``int32 []``.
  """
  label: jax.Array
  scores: jax.Array
  num_evals: jax.Array


class _Cfg(NamedTuple):
  eps_fn: Callable
  schedule: Schedule
  timesteps: str
  weighting: object
  loss: str
  chunk_size: int | None
  antithetic: bool


def _to_scores(mean_err: jax.Array, x: jax.Array, cfg: _Cfg) -> jax.Array:
  if cfg.weighting == "elbo" and cfg.loss == "l2":
    return _elbo.elbo_from_errors(mean_err[..., None], x, cfg.schedule)
  return -mean_err


def _draws(key, x, positions, n_base, cfg):
  """``t`` and ``eps`` at base-grid ``positions``; eps keyed by position."""
  t_key, eps_key = jax.random.split(key)
  t_all = _elbo.draw_timesteps(t_key, n_base, cfg.schedule, cfg.timesteps, x.dtype)
  pos = jnp.asarray(positions, jnp.int32)
  eps = jax.vmap(lambda p: jax.random.normal(jax.random.fold_in(eps_key, p), x.shape,
                                             x.dtype))(pos)
  return t_all[pos], eps


def _errors(x, t, eps, cls, cfg):
  return _elbo.class_errors_at(cfg.eps_fn, x, t, eps, cls, schedule=cfg.schedule,
                               weighting=cfg.weighting, loss=cfg.loss,
                               chunk_size=cfg.chunk_size)


# ----------------------------------------------------------------------------- full
def _full(key, x, class_ids, *, num_t, cfg):
  # The same draws as class_errors(key, ...), so scores == class_log_likelihoods.
  t, eps = _elbo.draw(key, num_t, x, cfg.schedule, cfg.timesteps, cfg.antithetic)
  err = _errors(x, t, eps, class_ids, cfg)
  scores = _to_scores(jnp.mean(err, axis=1), x, cfg)
  num_evals = jnp.asarray(class_ids.shape[0] * num_t, jnp.int32)
  return ClassifyResult(class_ids[jnp.argmax(scores)].astype(jnp.int32), scores,
                        num_evals)


# ------------------------------------------------------------------------- adaptive
def adaptive_plan(n_samples: Sequence[int], to_keep: Sequence[int],
                  num_classes: int) -> tuple[list[tuple[int, ...]], list[int], int]:
  """The paper's stage bookkeeping (reference implementation's index arithmetic).

  Returns:
    ``(positions, classes, num_evals)``: per stage the NEW base-grid positions
    evaluated, the number of classes evaluated, and the total evaluations.
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


def _adaptive_stage(key, x, class_ids, active, sums, counts, *, positions, n_base,
                    keep, cfg):
  """One stage for one example: ``active [C]`` -> best ``keep`` of them."""
  t, eps = _draws(key, x, positions, n_base, cfg)
  err = _errors(x, t, eps, class_ids[active], cfg)          # [C, m]
  sums = sums.at[active].add(jnp.sum(err, axis=1))
  counts = counts.at[active].add(len(positions))
  mean = sums[active] / counts[active]
  _, best = jax.lax.top_k(-mean, keep)                      # lowest mean error first
  return active[best], sums, counts


@functools.partial(jax.jit, static_argnames=("positions", "n_base", "keep", "cfg",
                                             "batched"))
def _stage_jit(key, x, class_ids, active, sums, counts, *, positions, n_base, keep,
               cfg, batched):
  fn = functools.partial(_adaptive_stage, positions=positions, n_base=n_base,
                         keep=keep, cfg=cfg)
  if batched:
    return jax.vmap(fn, in_axes=(0, 0, None, 0, 0, 0))(key, x, class_ids, active,
                                                       sums, counts)
  return fn(key, x, class_ids, active, sums, counts)


def _adaptive(key, x, class_ids, *, n_samples, to_keep, cfg, batched):
  num_c = class_ids.shape[-1]
  positions, _, total = adaptive_plan(n_samples, to_keep, num_c)
  lead = (x.shape[0],) if batched else ()
  active = jnp.broadcast_to(jnp.arange(num_c, dtype=jnp.int32), lead + (num_c,))
  sums = jnp.zeros(lead + (num_c,), x.dtype)
  counts = jnp.zeros(lead + (num_c,), x.dtype)
  for pos, keep in zip(positions, to_keep):
    active, sums, counts = _stage_jit(key, x, class_ids, active, sums, counts,
                                      positions=pos,
                                      n_base=n_samples[-1], keep=keep, cfg=cfg,
                                      batched=batched)
  xs = x if batched else x[None]
  mean = (sums / jnp.maximum(counts, 1)).reshape((-1, num_c))
  scores = jax.vmap(lambda m, xi: _to_scores(m, xi, cfg))(mean, xs).reshape(lead + (num_c,))
  label = class_ids[active[..., 0]]
  return ClassifyResult(label.astype(jnp.int32), scores,
                        jnp.full(lead, total, jnp.int32))


# ----------------------------------------------------------------------- sequential
def _buckets(num_c: int) -> list[int]:
  sizes, b = [], 1
  while b < num_c:
    sizes.append(b)
    b *= 2
  return sizes + [num_c]


def _t_quantiles(num_c: int, rounds: int, confidence: float) -> np.ndarray:
  """One-sided Student-t critical values for n = r + 1 chunks (dof r); inf at r = 0."""
  level = (1.0 - confidence) / (max(num_c - 1, 1) * rounds)
  q = np.full(rounds, np.inf)
  dof = np.arange(1, rounds)
  q[1:] = scipy.stats.t.ppf(1.0 - level, dof)
  return q


def _sequential(key, x, class_ids, *, num_t, chunk_t, confidence, cfg):
  num_c = class_ids.shape[0]
  rounds = num_t // chunk_t
  q = jnp.asarray(_t_quantiles(num_c, rounds, confidence), x.dtype)
  buckets = _buckets(num_c)

  def evaluate(b, r, order):
    def branch(_):
      cls = order[:b]
      t, eps = _elbo.draw(jax.random.fold_in(key, r), chunk_t, x, cfg.schedule,
                          cfg.timesteps, cfg.antithetic)
      m = jnp.mean(_errors(x, t, eps, class_ids[cls], cfg), axis=1)
      return jnp.zeros((num_c,), x.dtype).at[cls].set(-m)
    return branch

  def body(state):
    r, order, n_active, hist, seen, evals = state
    bidx = jnp.searchsorted(jnp.asarray(buckets), n_active)
    branches = [lambda o, b=b: evaluate(b, r, o)(None) for b in buckets]
    vals = jax.lax.switch(bidx, branches, order)
    active = jnp.zeros((num_c,), bool).at[order].set(jnp.arange(num_c) < n_active)
    hist = hist.at[r].set(vals)
    seen = seen.at[r].set(active)
    n = (r + 1).astype(x.dtype)
    rows = (jnp.arange(rounds) <= r)[:, None]
    mean = jnp.sum(jnp.where(rows, hist, 0.0), axis=0) / n
    leader = jnp.argmax(jnp.where(active, mean, -jnp.inf))
    d = jnp.where(rows, hist[:, leader][:, None] - hist, 0.0)       # [R, C]
    d_mean = jnp.sum(d, axis=0) / n
    d_var = jnp.sum(jnp.where(rows, (d - d_mean[None, :]) ** 2, 0.0), axis=0) / jnp.maximum(n - 1, 1)
    elim = active & (d_mean > q[r] * jnp.sqrt(d_var / n))
    active = active & ~elim
    order = jnp.argsort(~active, stable=True).astype(jnp.int32)
    evals = evals + jnp.asarray(buckets, jnp.int32)[bidx] * chunk_t
    return r + 1, order, jnp.sum(active).astype(jnp.int32), hist, seen, evals

  def cond(state):
    r, _, n_active = state[:3]
    return (r < rounds) & (n_active > 1)

  init = (jnp.asarray(0, jnp.int32), jnp.arange(num_c, dtype=jnp.int32),
          jnp.asarray(num_c, jnp.int32), jnp.zeros((rounds, num_c), x.dtype),
          jnp.zeros((rounds, num_c), bool), jnp.asarray(0, jnp.int32))
  r, order, n_active, hist, seen, evals = jax.lax.while_loop(cond, body, init)
  count = jnp.maximum(jnp.sum(seen, axis=0), 1).astype(x.dtype)
  mean_score = jnp.sum(jnp.where(seen, hist, 0.0), axis=0) / count
  scores = _to_scores(-mean_score, x, cfg)
  active = jnp.zeros((num_c,), bool).at[order].set(jnp.arange(num_c) < n_active)
  label = class_ids[jnp.argmax(jnp.where(active, scores, -jnp.inf))]
  return ClassifyResult(label.astype(jnp.int32), scores, evals)


# ---------------------------------------------------------------------- entry points
@functools.partial(jax.jit, static_argnames=("strategy", "opts", "cfg", "batched"))
def _run_jit(key, x, class_ids, *, strategy, opts, cfg, batched):
  fn = {"full": _full, "sequential": _sequential}[strategy]
  fn = functools.partial(fn, cfg=cfg, **dict(opts))
  if not batched:
    return fn(key, x, class_ids)
  if strategy == "sequential":
    # lax.map (a loop), not vmap: keeps lax.switch a real branch so eliminated classes
    # are not evaluated.
    return jax.lax.map(lambda a: fn(a[0], a[1], class_ids), (key, x))
  return jax.vmap(fn, in_axes=(0, 0, None))(key, x, class_ids)


def _prepare(eps_fn, x, num_classes, strategy, schedule, num_t, timesteps, weighting,
             loss, classes, chunk_size, n_samples, to_keep, chunk_t, confidence,
             antithetic, batched):
  num_classes = _checks.check_num_classes(num_classes)
  if strategy not in _STRATEGIES:
    raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}.")
  _elbo._check_options(weighting, loss, timesteps)
  x = jnp.asarray(x)
  _checks.check_float(x, "x")
  _checks.check_finite(x, "x")
  if batched:
    _checks.check_min_ndim(x, 1, "x")
  _elbo._check_eps_fn(eps_fn, x[0] if batched else x)
  class_ids = _elbo._classes(classes, num_classes).astype(jnp.int32)
  num_c = class_ids.shape[0]
  if num_c < 1:
    raise ValueError("classes must not be empty.")
  if chunk_size is not None:
    _elbo._check_num_t(chunk_size, "chunk_size")
  schedule = DEFAULT_SCHEDULE if schedule is None else schedule
  cfg = _Cfg(eps_fn, schedule, timesteps, weighting, loss, chunk_size,
             bool(antithetic))
  if strategy == "full":
    opts = (("num_t", _elbo._check_num_t(num_t)),)
    _elbo._check_antithetic(antithetic, num_t)
  elif strategy == "adaptive":
    if antithetic:
      raise ValueError("antithetic draws are not supported by strategy='adaptive'"
                       " (its timesteps come from the paper's strided grid).")
    adaptive_plan(n_samples, to_keep, num_c)  # validates
    opts = (("n_samples", tuple(int(n) for n in n_samples)),
            ("to_keep", tuple(int(k) for k in to_keep)))
  else:
    num_t = _elbo._check_num_t(num_t)
    chunk_t = _elbo._check_num_t(chunk_t, "chunk_t")
    if num_t % chunk_t:
      raise ValueError(f"num_t={num_t} must be a multiple of chunk_t={chunk_t}.")
    _elbo._check_antithetic(antithetic, chunk_t)
    if not 0.0 < confidence < 1.0:
      raise ValueError(f"confidence must lie in (0, 1), got {confidence}.")
    opts = (("num_t", num_t), ("chunk_t", chunk_t), ("confidence", float(confidence)))
  return x, class_ids, cfg, opts


def classify(key: jax.Array, eps_fn: Callable, x: ArrayLike, num_classes: int, *,
             strategy: str = "full", schedule: Schedule | None = None,
             num_t: int = 256, timesteps: str = "stratified", weighting="elbo",
             loss: str = "l2", classes: ArrayLike | None = None,
             chunk_size: int | None = None, n_samples: Sequence[int] = (50, 500),
             to_keep: Sequence[int] = (5, 1), chunk_t: int = 8,
             confidence: float = 0.99, antithetic: bool = False) -> ClassifyResult:
  """Classifies one example by its shared-noise diffusion scores.

  Args:
    key: PRNG key.
    eps_fn: ``eps_fn(z, gamma, y) -> eps_hat`` for one example. Compiled functions
      are cached on ``eps_fn`` and ``schedule`` identity: build them once.
    x: one example, any shape accepted by ``eps_fn``.
    num_classes: static ``K``.
    strategy: ``"full"``, ``"adaptive"`` or ``"sequential"`` (module docstring).
    schedule: noise schedule (default :data:`DEFAULT_SCHEDULE`, VDM linear).
    num_t: draws per class (``full``) or the per-class budget (``sequential``).
    timesteps: ``"stratified"``, ``"grid"`` or ``"iid"``.
    weighting: ``"elbo"``, ``"uniform"`` or callable ``t -> w``.
    loss: ``"l2"``, ``"l1"`` or ``"huber"``.
    classes: optional keep-list ``[C]`` of class ids to score (default all ``K``);
      ``scores`` then follow this list and ``label`` is one of its ids.
    chunk_size: bound on (class, t) pairs per vectorised denoiser call.
    n_samples: ``adaptive``: cumulative timesteps per stage, increasing.
    to_keep: ``adaptive``: classes kept after each stage, decreasing.
    chunk_t: ``sequential``: timesteps per round.
    confidence: ``sequential``: ``1 - delta`` of the guarantee.
    antithetic: ``full``/``sequential``: pair ``(t, eps)`` with ``(t, -eps)``
      (:func:`jgen.diffusion.elbo.draw`); fewer draws for the same precision.

  Returns:
    :class:`ClassifyResult` ``(label [], scores [C], num_evals [])``.
  """
  x, class_ids, cfg, opts = _prepare(eps_fn, x, num_classes, strategy, schedule,
                                     num_t, timesteps, weighting, loss, classes,
                                     chunk_size, n_samples, to_keep, chunk_t,
                                     confidence, antithetic, batched=False)
  if strategy == "adaptive":
    return _adaptive(key, x, class_ids, cfg=cfg, batched=False, **dict(opts))
  return _run_jit(key, x, class_ids, strategy=strategy, opts=opts, cfg=cfg,
                  batched=False)


def batch_classify(key: jax.Array, eps_fn: Callable, x: ArrayLike, num_classes: int,
                   **kwargs) -> ClassifyResult:
  """:func:`classify` for a batch ``x [N, ...]`` with independent draws per example.

  Row ``n`` equals ``classify(jax.random.split(key, N)[n], eps_fn, x[n], ...)``.
  ``full`` and ``adaptive`` are vmapped; ``sequential`` loops over examples on device
  (``lax.map``) so that eliminated classes are really skipped.

  Returns:
    :class:`ClassifyResult` with ``label [N]``, ``scores [N, C]``, ``num_evals [N]``.
  """
  opts = dict(strategy="full", schedule=None, num_t=256, timesteps="stratified",
              weighting="elbo", loss="l2", classes=None, chunk_size=None,
              n_samples=(50, 500), to_keep=(5, 1), chunk_t=8, confidence=0.99,
              antithetic=False)
  unknown = set(kwargs) - set(opts)
  if unknown:
    raise TypeError(f"batch_classify got unexpected arguments {sorted(unknown)}.")
  opts.update(kwargs)
  x, class_ids, cfg, run_opts = _prepare(eps_fn, x, num_classes, opts["strategy"],
                                         opts["schedule"], opts["num_t"],
                                         opts["timesteps"], opts["weighting"],
                                         opts["loss"], opts["classes"],
                                         opts["chunk_size"], opts["n_samples"],
                                         opts["to_keep"], opts["chunk_t"],
                                         opts["confidence"], opts["antithetic"],
                                         batched=True)
  keys = jax.random.split(key, x.shape[0])
  if opts["strategy"] == "adaptive":
    return _adaptive(keys, x, class_ids, cfg=cfg, batched=True, **dict(run_opts))
  return _run_jit(keys, x, class_ids, strategy=opts["strategy"], opts=run_opts,
                  cfg=cfg, batched=True)
