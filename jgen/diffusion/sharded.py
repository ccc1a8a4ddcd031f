"""The Diffusion Classifier with the class axis split over the ``classes`` mesh axis.

Every device scores its slice of the classes on the SAME ``(t, eps)`` draws as
:func:`jgen.diffusion.classify` (the draws depend only on the key), so the paired
comparison is preserved and, for the same key, errors, scores and labels equal the
single-device ones. Only ``[N]``-sized (``full``, ``sequential``) or
``[N, to_keep[0]]``-sized (``adaptive``) vectors cross devices.

* ``full``: each device evaluates ``K_pad / S`` classes; one argmax reduction.
* ``adaptive``: stage 1 (all classes) is class-sharded; each device proposes its local
  top ``to_keep[0]`` and an ``all_gather`` of these candidates gives the exact global
  top ``to_keep[0]``. Later stages hold only ``to_keep[0]`` classes and run replicated.
* ``sequential``: each device evaluates its own surviving classes per round (its own
  power-of-two bucket); the leader and the number of survivors are agreed by
  collectives every round, so all devices stop together.

``num_evals`` counts the denoiser evaluations performed on all devices, including the
padded dummy classes (``K_pad - K``) and, for ``sequential``, each device's bucket.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from jgen.core import checks as _checks
from jgen.parallel import collectives as _coll
from jgen.parallel import mesh as _sh
from jgen.diffusion import elbo as _elbo

# The package re-exports the function ``classify``, which shadows the module name.
from jgen.diffusion import strategies as _cl

__all__ = ["sharded_class_errors", "sharded_classify", "sharded_batch_classify"]


def _argmax(v: jax.Array, num_real: int) -> jax.Array:
  """Global first argmax (a position) of a class-sharded vector ``v [k_local]``."""
  return _coll.bayes_reduce_block(v[None, :], num_real).label[0]


def _varying(a: jax.Array, axes: tuple[str, ...]) -> jax.Array:
  """Types an invariant loop carry as varying over ``axes`` (shard_map checks that
  loop carries keep their types)."""
  return lax.pcast(a, axes, to="varying") if axes else a


def _full(key, x, ids, all_ids, *, num_real, num_t, cfg):
  del all_ids
  # The draws of classify(strategy="full") and class_errors for this key.
  t, eps = _elbo.draw(key, num_t, x, cfg.schedule, cfg.timesteps, cfg.antithetic)
  err = _cl._errors(x, t, eps, ids, cfg)
  scores = _cl._to_scores(jnp.mean(err, axis=1), x, cfg)
  scores = jnp.where(_valid(ids.shape[0], num_real), scores, -jnp.inf)
  evals = lax.psum(ids.shape[0], _sh.CLASSES) * num_t
  return _argmax(scores, num_real), scores, jnp.asarray(evals, jnp.int32)


def _valid(k_local: int, num_real: int) -> jax.Array:
  return lax.axis_index(_sh.CLASSES) * k_local + jnp.arange(k_local) < num_real


def _adaptive(key, x, ids, all_ids, *, num_real, n_samples, to_keep, cfg):
  positions, _, total = _cl.adaptive_plan(n_samples, to_keep, num_real)
  n_base, k_local = n_samples[-1], ids.shape[0]
  offset = lax.axis_index(_sh.CLASSES) * k_local
  t, eps = _cl._draws(key, x, positions[0], n_base, cfg)
  sums = jnp.sum(_cl._errors(x, t, eps, ids, cfg), axis=1)          # [k_local]
  counts = jnp.full((k_local,), len(positions[0]), x.dtype)
  neg = jnp.where(_valid(k_local, num_real), -(sums / counts), -jnp.inf)
  # Exact global top-k: every global winner is in its own shard's local top-k.
  val, idx = lax.top_k(neg, min(to_keep[0], k_local))
  # "invarying": the gathered candidates are the same on every device (typed so).
  gather = functools.partial(lax.all_gather, axis_name=_sh.CLASSES, tiled=True,
                             to="invarying")
  _, best = lax.top_k(gather(val), to_keep[0])
  active, a_sums = gather(offset + idx)[best], gather(sums[idx])[best]
  a_counts = jnp.full(active.shape, len(positions[0]), x.dtype)
  for pos, keep in zip(positions[1:], to_keep[1:]):
    t, eps = _cl._draws(key, x, pos, n_base, cfg)
    stage = jnp.sum(_cl._errors(x, t, eps, all_ids[active], cfg), axis=1)
    a_sums, a_counts = a_sums + stage, a_counts + len(pos)
    local = jnp.where((active >= offset) & (active < offset + k_local),
                      active - offset, k_local)                      # k_local: dropped
    sums = sums.at[local].add(stage, mode="drop")
    counts = counts.at[local].add(len(pos), mode="drop")
    _, best = lax.top_k(-(a_sums / a_counts), keep)
    active, a_sums, a_counts = active[best], a_sums[best], a_counts[best]
  scores = _cl._to_scores(sums / jnp.maximum(counts, 1), x, cfg)
  scores = jnp.where(_valid(k_local, num_real), scores, -jnp.inf)
  padded = (lax.psum(k_local, _sh.CLASSES) - num_real) * len(positions[0])
  return active[0], scores, jnp.asarray(total + padded, jnp.int32)


def _sequential(key, x, ids, all_ids, *, num_real, num_t, chunk_t, confidence, cfg,
                batched):
  del all_ids
  k_local, rounds = ids.shape[0], num_t // chunk_t
  offset = lax.axis_index(_sh.CLASSES) * k_local
  q = jnp.asarray(_cl._t_quantiles(num_real, rounds, confidence), x.dtype)
  buckets = _cl._buckets(k_local)

  def evaluate(b, r, order):
    cls = order[:b]
    t, eps = _elbo.draw(jax.random.fold_in(key, r), chunk_t, x, cfg.schedule,
                        cfg.timesteps, cfg.antithetic)
    m = jnp.mean(_cl._errors(x, t, eps, ids[cls], cfg), axis=1)
    return jnp.zeros((k_local,), x.dtype).at[cls].set(-m)

  def body(state):
    r, active, n_active, hist, seen, evals = state
    order = jnp.argsort(~active, stable=True).astype(jnp.int32)
    bidx = jnp.searchsorted(jnp.asarray(buckets), jnp.sum(active))
    vals = lax.switch(bidx, [functools.partial(evaluate, b, r) for b in buckets], order)
    hist, seen = hist.at[r].set(vals), seen.at[r].set(active)
    n = (r + 1).astype(x.dtype)
    rows = (jnp.arange(rounds) <= r)[:, None]
    mean = jnp.sum(jnp.where(rows, hist, 0.0), axis=0) / n
    leader = _argmax(jnp.where(active, mean, -jnp.inf), num_real)
    mine = (leader >= offset) & (leader < offset + k_local)
    col = hist[:, jnp.clip(leader - offset, 0, k_local - 1)]
    lead_hist = lax.psum(jnp.where(mine, col, 0.0), _sh.CLASSES)     # [R]
    d = jnp.where(rows, lead_hist[:, None] - hist, 0.0)
    d_mean = jnp.sum(d, axis=0) / n
    d_var = (jnp.sum(jnp.where(rows, (d - d_mean[None, :]) ** 2, 0.0), axis=0)
             / jnp.maximum(n - 1, 1))
    active = active & ~(d_mean > q[r] * jnp.sqrt(d_var / n))
    n_active = lax.psum(jnp.sum(active).astype(jnp.int32), _sh.CLASSES)
    spent = lax.psum(jnp.asarray(buckets, jnp.int32)[bidx], _sh.CLASSES) * chunk_t
    return r + 1, active, n_active, hist, seen, evals + spent

  # Loop carries keep one type: those that depend on the example vary over ``data``
  # when rows are split, and the per-class ones over ``classes``.
  rows = (_sh.DATA,) if batched else ()
  per_class = rows + (_sh.CLASSES,)
  init = (jnp.asarray(0, jnp.int32), _varying(_valid(k_local, num_real), rows),
          _varying(jnp.asarray(num_real, jnp.int32), rows),
          _varying(jnp.zeros((rounds, k_local), x.dtype), per_class),
          _varying(jnp.zeros((rounds, k_local), bool), per_class),
          _varying(jnp.asarray(0, jnp.int32), rows))
  _, active, _, hist, seen, evals = lax.while_loop(
      lambda s: (s[0] < rounds) & (s[2] > 1), body, init)
  count = jnp.maximum(jnp.sum(seen, axis=0), 1).astype(x.dtype)
  scores = _cl._to_scores(-jnp.sum(jnp.where(seen, hist, 0.0), axis=0) / count, x, cfg)
  scores = jnp.where(_valid(k_local, num_real), scores, -jnp.inf)
  return _argmax(jnp.where(active, scores, -jnp.inf), num_real), scores, evals


_STRATEGY_FNS = {"full": _full, "adaptive": _adaptive, "sequential": _sequential}


@functools.partial(jax.jit, static_argnames=("mesh", "strategy", "opts", "cfg",
                                             "num_real", "batched", "impl"))
def _run(key_data, x, class_ids, *, mesh, strategy, opts, cfg, num_real, batched,
         impl):
  c_pad = _sh.padded_num_classes(num_real, mesh)
  ids = _sh.pad_classes(class_ids, c_pad, axis=0)
  fn = functools.partial(_STRATEGY_FNS[strategy], num_real=num_real, cfg=cfg,
                         **dict(opts))
  if strategy == "sequential":
    fn = functools.partial(fn, batched=batched)

  def block(kd, xs, ids_local, all_ids):
    keys = kd if impl is None else jax.random.wrap_key_data(kd, impl=impl)
    one = lambda k, xi: fn(k, xi, ids_local, all_ids)  # noqa: E731
    if strategy == "sequential":  # a loop, so lax.switch stays a real branch
      return lax.map(lambda a: one(*a), (keys, xs))
    return jax.vmap(one)(keys, xs)

  rows = P(_sh.DATA) if batched else P(None)
  n = x.shape[0]
  if batched:
    d = _sh.axis_size(mesh, _sh.DATA)
    key_data, x = _sh.pad_rows(key_data, d), _sh.pad_rows(x, d)
  pos, scores, evals = jax.shard_map(
      block, mesh=mesh, in_specs=(rows, rows, P(_sh.CLASSES), P()),
      out_specs=(rows, P(*rows, _sh.CLASSES), rows))(key_data, x, ids, ids)
  pos, scores, evals = _sh.unpad_rows((pos, scores, evals), n, mesh)
  return _cl.ClassifyResult(ids[pos].astype(jnp.int32), scores, evals)


def _key_data(keys: jax.Array):
  if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(keys), jax.random.key_impl(keys)
  return keys, None  # raw uint32 keys pass through unchanged


def _classify_defaults() -> dict:
  """The keyword options of :func:`jgen.diffusion.classify` and their defaults."""
  params = inspect.signature(_cl.classify).parameters.values()
  return {p.name: p.default for p in params if p.kind == p.KEYWORD_ONLY}


def _call(key, eps_fn, x, num_classes, mesh, kwargs, batched):
  opts = _classify_defaults()
  unknown = set(kwargs) - set(opts)
  if unknown:
    raise TypeError(f"unexpected arguments {sorted(unknown)}.")
  opts.update(kwargs)
  # Validation and configuration exactly as the single-device entry point.
  wanted = list(inspect.signature(_cl._prepare).parameters)[3:-1]
  x, class_ids, cfg, run_opts = _cl._prepare(
      eps_fn, x, num_classes, **{k: opts[k] for k in wanted}, batched=batched)
  keys = jax.random.split(key, x.shape[0]) if batched else key[None]
  key_data, impl = _key_data(keys)
  out = _run(key_data, x if batched else x[None], class_ids, mesh=mesh,
             strategy=opts["strategy"], opts=run_opts, cfg=cfg,
             num_real=int(class_ids.shape[0]), batched=batched, impl=impl)
  return out if batched else jax.tree.map(lambda a: a[0], out)


def sharded_classify(key: jax.Array, eps_fn: Callable, x, num_classes: int,
                     mesh: Mesh, **kwargs) -> _cl.ClassifyResult:
  """:func:`jgen.diffusion.classify` with the classes split over ``mesh``'s
  ``classes`` axis (the ``data`` axis computes redundantly: use ``data=1``).

  Args:
    key, eps_fn, x, num_classes: as :func:`jgen.diffusion.classify`.
    mesh: a ``(data, classes)`` mesh (:func:`jgen.sharding.make_mesh`).
    **kwargs: every keyword of :func:`jgen.diffusion.classify` (``strategy``,
      ``num_t``, ``classes``, ``n_samples``, ``to_keep``, ``chunk_t``, ...).

  Returns:
    ``ClassifyResult(label [], scores [C_pad], num_evals [])``: ``label`` and
    ``scores[:C]`` equal the single-device result for the same key; ``scores`` stay
    sharded over ``classes`` and the padded entries are ``-inf``.
  """
  return _call(key, eps_fn, x, num_classes, mesh, kwargs, batched=False)


def sharded_batch_classify(key: jax.Array, eps_fn: Callable, x, num_classes: int,
                           mesh: Mesh, **kwargs) -> _cl.ClassifyResult:
  """:func:`jgen.diffusion.batch_classify` on a mesh: examples ``x [N, ...]`` split
  over ``data``, classes over ``classes``. Row ``n`` uses
  ``jax.random.split(key, N)[n]``, as the single-device function does.

  Returns:
    ``ClassifyResult(label [N], scores [N, C_pad], num_evals [N])``.
  """
  return _call(key, eps_fn, x, num_classes, mesh, kwargs, batched=True)


@functools.partial(jax.jit, static_argnames=("eps_fn", "mesh", "num_classes", "num_real",
                                             "opts"))
def _errors_run(key, x, class_ids, *, eps_fn, mesh, num_classes, num_real, opts):
  c_pad = _sh.padded_num_classes(num_real, mesh)
  ids = _sh.pad_classes(class_ids, c_pad, axis=0)

  def block(ids_local):
    err = _elbo.class_errors(key, eps_fn, x, num_classes, classes=ids_local,
                             **dict(opts))
    return jnp.where(_valid(ids_local.shape[0], num_real)[:, None], err, jnp.inf)

  return jax.shard_map(block, mesh=mesh, in_specs=P(_sh.CLASSES),
                       out_specs=P(_sh.CLASSES))(ids)


def sharded_class_errors(key: jax.Array, eps_fn: Callable, x, num_classes: int,
                         mesh: Mesh, *, num_t: int, schedule, timesteps="stratified",
                         weighting="elbo", loss="l2", classes=None,
                         chunk_size=None, antithetic: bool = False) -> jax.Array:
  """:func:`jgen.diffusion.class_errors` with the class axis split over devices.

  Returns:
    ``[C_pad, num_t]`` errors sharded over ``classes``: rows ``[:C]`` equal
    ``class_errors(key, ...)`` (same ``(t, eps)`` for every class); padded rows are
    ``+inf`` (lower is better, so a dummy class never wins).
  """
  num_classes = _checks.check_num_classes(num_classes)
  x = _elbo._check_x(x, eps_fn)
  class_ids = _elbo._classes(classes, num_classes).astype(jnp.int32)
  opts = (("num_t", _elbo._check_num_t(num_t)), ("schedule", schedule),
          ("timesteps", timesteps), ("weighting", weighting), ("loss", loss),
          ("chunk_size", chunk_size), ("antithetic", bool(antithetic)))
  _elbo._check_options(weighting, loss, timesteps)
  return _errors_run(key, x, class_ids, eps_fn=eps_fn, mesh=mesh,
                     num_classes=num_classes, num_real=int(class_ids.shape[0]), opts=opts)
