r"""Hierarchical class pruning: cut whole subtrees, screen the rest, race the survivors.

With many classes the race's first round alone costs ``K x chunk_t`` evaluations, and a
confidence sequence needs several observations per class before it can drop any. In the
spirit of the Hierarchical Diffusion Classifier (Shanbhag et al., arXiv 2411.12073),
which scores a label tree's upper nodes first and keeps only the best subtrees,
[`hierarchical_race`][jgen.diffusion.hierarchy.hierarchical_race] runs three stages on
one example, each on fresh shared ``(t, eps)`` draws (the race's
[`round_draws`][jgen.diffusion.importance.round_draws]: stratified or importance-sampled,
antithetic when the race is):

1. **Tree** (optional, a [`ClassTree`][jgen.diffusion.class_tree.ClassTree] of ``G``
   groups), one of two cuts (``prune``):

   * ``"top_k"`` (default): each group's representative class is scored with
     ``node_draws`` draws and the ``keep_groups`` best groups are kept (HDC's top-k
     per level), whatever the evidence.
   * ``"test"``: the groups race. Each group is scored through its representative, and
     the representatives run [`race`][jgen.diffusion.racing.race]'s own rounds
     ([`race_survivors`][jgen.diffusion.racing.race_survivors]: rounds of
     ``node_draws`` shared draws, the paired differences with the leading
     representative, the race's rule, boundary and ``confidence``, a union bound over
     the ``G - 1`` other groups), stopping once at most ``keep_groups`` groups remain or
     after ``node_rounds`` rounds (the draw budget); every group no test has eliminated
     is kept. Why the representative and not the best member: the representatives are
     fixed before any draw, so each group's per-draw score is one class's unbiased
     weighted error and the race's guarantee carries over word for word (with
     probability ``>= confidence`` the group whose representative has the lowest
     expected error is never cut), at ``G`` evaluations per draw. A group's running
     best member would be chosen by the same draws that test it (the minimum of noisy
     means is biased low, more so for larger groups) and would cost every member's
     evaluation, as much as no tree at all.

   Either way, what a representative says about its siblings is an assumption on the
   tree, not a test: the cut pays only when the classes of a group really are close
   (a label hierarchy, or clusters of the denoiser's confusions), and its recall must be
   measured.
2. **Screen**: every class left is scored with ``screen_draws`` draws and the ``keep``
   lowest mean errors go on (the top-k cut of Li et al. 2023's adaptive stages). After a
   ``"test"`` cut the number of classes left varies: they are evaluated in the race's
   power-of-two buckets (padding counted), and the screen is skipped when at most
   ``keep`` are left.
3. **Race**: [`race`][jgen.diffusion.racing.race] among the ``keep`` survivors with the
   configured rule (``rule="cs"``: anytime-valid among them, the survivors being
   fixed by draws independent of the race's).

``num_evals`` counts every denoiser call of the three stages, padding included (a tree's
groups are padded to the largest under ``"top_k"``; the buckets' padding under
``"test"``).

A tree comes from ``jgen.diffusion.class_tree`` (re-exported here).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jgen.core import compilation
from jgen.diffusion import validate
from jgen.diffusion.class_tree import ClassTree, build_tree, check_tree, tree_from_groups
from jgen.diffusion.elbo import class_errors_at
from jgen.diffusion.importance import TimestepProposal
from jgen.diffusion.importance import round_draws
from jgen.diffusion.racing import RaceConfig, race, race_survivors
from jgen.diffusion.strategies import ClassifyResult, buckets, psum_over
from jgen.parallel import mesh as pmesh

__all__ = ["ClassTree", "HierarchyConfig", "batch_hierarchical_race", "build_tree",
           "hierarchical_race", "hierarchy_config", "node_race_config",
           "tree_from_groups"]


class HierarchyConfig(NamedTuple):
  """Static settings (hashable) of
  [`hierarchical_race`][jgen.diffusion.hierarchy.hierarchical_race]; build with
  [`hierarchy_config`][jgen.diffusion.hierarchy_config].

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, _ = diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
    >>> cfg = diffusion.hierarchy.hierarchy_config(diffusion.race_config(den), keep=2)
    >>> cfg.keep, cfg.screen_draws, hash(cfg) == hash(cfg)
    (2, 8, True)
  """
  race: RaceConfig
  screen_draws: int = 2
  keep: int = 32
  node_draws: int = 2
  keep_groups: int = 4
  prune: str = "top_k"
  node_rounds: int = 8


PRUNE = ("top_k", "test")


def hierarchy_config(race_cfg: RaceConfig, *, screen_draws: int | None = None,
                     keep: int = 32, node_draws: int | None = None,
                     keep_groups: int = 4, prune: str = "top_k",
                     node_rounds: int = 8) -> HierarchyConfig:
  """Checked [`HierarchyConfig`][jgen.diffusion.hierarchy.HierarchyConfig].

  Args:
    race_cfg: the final race's [`RaceConfig`][jgen.diffusion.RaceConfig] (its
      denoiser, schedule, rule and ``antithetic`` serve every stage).
    screen_draws: draws per class of the screen (default ``race_cfg.chunk_t``); even
      when antithetic.
    keep: classes that enter the race.
    node_draws: draws per representative of the tree stage (default
      ``screen_draws``).
    keep_groups: groups the tree stage keeps (``"top_k"``), or at which the groups'
      race stops early (``"test"``; more are kept when the budget runs out first).
    prune: ``"top_k"`` (the ``keep_groups`` best representatives) or ``"test"`` (the
      race's paired tests among the representatives; module docstring).
    node_rounds: the groups' race's budget, in rounds of ``node_draws`` draws
      (``"test"`` only).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, _ = diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
    >>> race = diffusion.race_config(den, rule="cs", antithetic=True, chunk_t=8)
    >>> diffusion.hierarchy.hierarchy_config(race, screen_draws=2).node_draws
    2
    >>> diffusion.hierarchy.hierarchy_config(race, prune="test", node_rounds=4).prune
    'test'
  """
  if not isinstance(race_cfg, RaceConfig):
    raise TypeError(f"race_cfg must be a RaceConfig (race_config()), got"
                    f" {type(race_cfg).__name__}.")
  screen = race_cfg.chunk_t if screen_draws is None else screen_draws
  validate.check_static_int(screen, "screen_draws")
  node = screen if node_draws is None else node_draws
  validate.check_static_int(node, "node_draws")
  validate.check_static_int(keep, "keep")
  validate.check_static_int(keep_groups, "keep_groups")
  validate.check_antithetic(race_cfg.antithetic, screen, "screen_draws")
  validate.check_antithetic(race_cfg.antithetic, node, "node_draws")
  if prune not in PRUNE:
    raise ValueError(f"prune must be 'top_k' or 'test', got {prune!r}.")
  validate.check_static_int(node_rounds, "node_rounds")
  return HierarchyConfig(race_cfg, int(screen), int(keep), int(node), int(keep_groups),
                         prune, int(node_rounds))


def _mean_errors(key, params, x, proposal, cfg: RaceConfig, classes, draws):
  """Mean importance-weighted error ``[C]`` of ``classes [C]`` on ``draws`` shared draws."""
  t, eps, w = round_draws(key, x, cfg._replace(chunk_t=draws), proposal)
  err = class_errors_at(cfg.denoiser, params, x, t, eps, classes, schedule=cfg.schedule,
                        weighting=cfg.weighting)
  return jnp.mean(err * w[None, :], axis=1)


def hierarchical_race(key: jax.Array, params: Any, x: jax.Array,
                      proposal: TimestepProposal | None, *, cfg: HierarchyConfig,
                      num_classes: int, tree: ClassTree | None = None,
                      axis_name=None) -> ClassifyResult:
  """Tree cut, screen, race (module docstring) for ONE example; jittable.

  ``axis_name``: the class axis of a ``shard_map`` (``None``: one device). Every
  argument is then the same on every device, and each stage splits its classes
  (representatives, screened classes, the race's slots) over the axis, padded with
  classes that never enter; errors are gathered before each cut and the final race is
  [`race`][jgen.diffusion.racing.race]'s own sharded race, so for the same key every device
  returns the single-device label and scores, and ``num_evals`` counts all devices'
  evaluations, padding included.

  Returns:
    [`ClassifyResult`][jgen.diffusion.ClassifyResult]: ``scores [K]`` are the race's
    (``-inf`` for classes that did not enter it), ``num_evals`` all three stages'.
  """
  k, rc = num_classes, cfg.race
  tree_key, screen_key, race_key = jax.random.split(key, 3)
  evals = jnp.asarray(0, jnp.int32)
  if tree is not None and cfg.prune == "test":
    kept, node_evals = _test_cut(tree_key, params, x, proposal, cfg, tree, axis_name)
    classes = tree.members.reshape(-1)                          # -1 = padding
    cand = ((tree.members >= 0) & kept[:, None]).reshape(-1)
    err, screen_evals = _bucketed_screen(screen_key, params, x, proposal, cfg, classes,
                                         cand, axis_name)
    return _final_race(race_key, params, x, proposal, cfg, k, classes, cand, err,
                       node_evals + screen_evals, axis_name)
  if tree is None:
    classes = jnp.arange(k, dtype=jnp.int32)
  else:
    reps = tree.representatives
    err, spent = _split_errors(tree_key, params, x, proposal, rc, reps, cfg.node_draws,
                               axis_name)
    _, top = lax.top_k(-err, min(cfg.keep_groups, reps.shape[0]))
    classes = tree.members[top].reshape(-1)                     # -1 = padding
    evals = evals + spent
  valid = classes >= 0
  err, spent = _split_errors(screen_key, params, x, proposal, rc, classes,
                             cfg.screen_draws, axis_name)
  return _final_race(race_key, params, x, proposal, cfg, k, classes, valid, err,
                     evals + spent, axis_name)


def _local(v: jax.Array, axis_name, fill) -> jax.Array:
  """This device's slice of the class vector ``v [C]`` (the same on every device),
  padded with ``fill`` to a multiple of the axis size; ``v`` itself when ``None``."""
  if axis_name is None:
    return v
  shards = lax.axis_size(axis_name)
  loc = -(-v.shape[0] // shards)
  v = jnp.pad(v, (0, loc * shards - v.shape[0]), constant_values=fill)
  return lax.dynamic_slice_in_dim(v, lax.axis_index(axis_name) * loc, loc)


def _gather(v: jax.Array, axis_name, c: int) -> jax.Array:
  """The first ``c`` entries of the devices' slices ``v`` put back together."""
  if axis_name is None:
    return v
  return lax.all_gather(v, axis_name, tiled=True)[:c]


def _split_errors(key, params, x, proposal, rc: RaceConfig, classes, draws, axis_name):
  """Mean errors ``[C]`` of ``classes [C]`` (``-1`` padding: ``inf``), each device
  evaluating its slice, and their count, padding included."""
  ids = _local(classes, axis_name, -1)
  err = _mean_errors(key, params, x, proposal, rc, jnp.maximum(ids, 0), draws)
  err = jnp.where((ids >= 0) & ~jnp.isnan(err), err, jnp.inf)
  spent = psum_over(jnp.asarray(ids.shape[0] * draws, jnp.int32), axis_name)
  return _gather(err, axis_name, classes.shape[0]), spent


def _final_race(key, params, x, proposal, cfg: HierarchyConfig, k, classes, valid, err,
                evals, axis_name):
  """The race among the ``keep`` lowest screen errors ``err [C]`` of ``classes [C]``."""
  m = min(cfg.keep, classes.shape[0])
  _, top = lax.top_k(-err, m)
  survivors, entered = classes[top], valid[top]
  res = race(key, params, x, proposal, cfg=cfg.race,
             num_classes=_local(entered, axis_name, False).shape[0],
             candidates=_local(entered, axis_name, False),
             classes=_local(jnp.maximum(survivors, 0), axis_name, 0),
             axis_name=axis_name, num_classes_total=m)
  race_scores = _gather(res.scores, axis_name, m)
  scores = jnp.full((k,), -jnp.inf, res.scores.dtype).at[
      jnp.where(entered, survivors, k)].set(race_scores, mode="drop")
  return ClassifyResult(res.label, scores, evals + res.num_evals)


def node_race_config(cfg: HierarchyConfig) -> RaceConfig:
  """The groups' race of ``prune="test"``: the final race's rule, boundary, confidence
  and draws, in rounds of ``node_draws``, stopping at ``keep_groups`` groups or after
  ``node_rounds`` rounds, without a refine stage.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, _ = diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
    >>> cfg = diffusion.hierarchy_config(diffusion.race_config(den, rule="cs"),
    ...                                  prune="test", node_draws=4, node_rounds=6)
    >>> rc = diffusion.hierarchy.node_race_config(cfg)
    >>> rc.chunk_t, rc.max_rounds, rc.keep, rc.rule
    (4, 6, 4, 'cs')
  """
  return cfg.race._replace(chunk_t=cfg.node_draws, max_rounds=cfg.node_rounds,
                           keep=cfg.keep_groups, refine_rounds=0)


def _test_cut(key, params, x, proposal, cfg: HierarchyConfig, tree: ClassTree,
              axis_name):
  """``(kept [G] bool, num_evals)``: the groups no paired test among the
  representatives eliminated (module docstring)."""
  reps = tree.representatives
  ids = _local(reps, axis_name, -1)
  kept, evals = race_survivors(key, params, x, proposal, cfg=node_race_config(cfg),
                               num_classes=ids.shape[0], candidates=ids >= 0,
                               classes=jnp.maximum(ids, 0), axis_name=axis_name,
                               num_classes_total=reps.shape[0])
  return _gather(kept, axis_name, reps.shape[0]), evals


def _bucketed_screen(key, params, x, proposal, cfg: HierarchyConfig, classes, cand,
                     axis_name):
  """Screen errors ``[C]`` (``inf`` off the candidates) and their count. Each device
  puts its ``n`` candidates first and evaluates the smallest power-of-two bucket holding
  them (its padding counted); at most ``keep`` candidates in all go on unscreened
  (zeros)."""
  c_all = classes.shape[0]
  classes, cand = _local(classes, axis_name, -1), _local(cand, axis_name, False)
  c = classes.shape[0]
  sizes = buckets(c)
  n = jnp.sum(cand)
  order = jnp.argsort(~cand, stable=True).astype(jnp.int32)

  def evaluate(b):
    cls = order[:b]
    e = _mean_errors(key, params, x, proposal, cfg.race, jnp.maximum(classes[cls], 0),
                     cfg.screen_draws)
    return jnp.full((c,), jnp.inf, x.dtype).at[cls].set(e)

  skip = psum_over(n, axis_name) <= cfg.keep
  bidx = jnp.searchsorted(jnp.asarray(sizes), n)
  branches = [lambda: jnp.zeros((c,), x.dtype)] + [functools.partial(evaluate, b)
                                                   for b in sizes]
  err = lax.switch(jnp.where(skip, 0, bidx + 1), branches)
  err = jnp.where(cand & ~jnp.isnan(err), err, jnp.inf)
  spent = jnp.where(skip, 0, jnp.asarray(sizes, jnp.int32)[bidx]) * cfg.screen_draws
  return (_gather(err, axis_name, c_all),
          psum_over(spent.astype(jnp.int32), axis_name))


def _rows(keys, params, x, proposal, tree, cfg, num_classes, vectorize, axis_name=None):
  fn = lambda kk, xi: hierarchical_race(kk, params, xi, proposal, cfg=cfg,
                                        num_classes=num_classes, tree=tree,
                                        axis_name=axis_name)
  if vectorize:
    return jax.vmap(fn)(keys, x)
  return lax.map(lambda a: fn(*a), (keys, x))


@functools.partial(compilation.jit, static_argnames=("cfg", "num_classes", "vectorize"))
def _batch(keys, params, x, proposal, tree, *, cfg, num_classes, vectorize):
  return _rows(keys, params, x, proposal, tree, cfg, num_classes, vectorize)


@functools.partial(compilation.jit, static_argnames=("cfg", "num_classes", "vectorize",
                                                     "mesh", "impl"))
def _batch_sharded(key_data, params, x, proposal, tree, *, cfg, num_classes, vectorize,
                   mesh, impl):
  def block(kd, p, xs, q, tr):
    keys = kd if impl is None else jax.random.wrap_key_data(kd, impl=impl)
    return _rows(keys, p, xs, q, tr, cfg, num_classes, vectorize, pmesh.CLASSES)

  n = x.shape[0]
  d = pmesh.axis_size(mesh, pmesh.DATA)
  key_data, x = pmesh.pad_rows(key_data, d), pmesh.pad_rows(x, d)
  rows = P(pmesh.DATA)
  out = jax.shard_map(block, mesh=mesh, in_specs=(rows, P(), rows, P(), P()),
                      out_specs=ClassifyResult(rows, rows, rows),
                      check_vma=False)(key_data, params, x, proposal, tree)
  if all(t == AxisType.Explicit for t in mesh.axis_types):   # no uneven sharded slice
    out = jax.tree.map(lambda v: jax.reshard(v, NamedSharding(mesh, P())), out)
  return jax.tree.map(lambda v: v[:n], out)


def batch_hierarchical_race(key: jax.Array, params: Any, x, num_classes: int, *,
                            cfg: HierarchyConfig, tree: ClassTree | None = None,
                            proposal: TimestepProposal | None = None,
                            vectorize: bool = True, mesh: Mesh | None = None
                            ) -> ClassifyResult:
  """[`hierarchical_race`][jgen.diffusion.hierarchy.hierarchical_race] for ``x [N,
  *data_shape]`` (keys ``split(key, N)``), one compile per architecture and tree shape
  (``params``, ``proposal`` and ``tree`` traced). ``vectorize=True`` vmaps over the
  examples: every stage has a fixed size except the race, which runs on ``keep``
  classes only, so few bucket branches are wasted; ``False`` loops (``lax.map``).

  ``mesh``: a device mesh (``jgen.parallel.make_mesh``) whose ``classes`` axis splits
  every stage's classes, as the sharded race does
  ([`hierarchical_race`][jgen.diffusion.hierarchy.hierarchical_race] with
  ``axis_name``), and whose ``data`` axis splits the examples. For the same key the
  labels and scores are the single-device ones (up to the rounding of differently
  batched sums); ``num_evals`` adds the evaluations of the padding that rounds each
  stage's classes up to the axis size, and of each device's own bucket.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> from jgen.diffusion import hierarchy
    >>> den, p = diffusion.gaussian_oracle(4 * jnp.eye(4), jnp.ones((4, 4)))
    >>> cfg = hierarchy.hierarchy_config(diffusion.race_config(den), keep=2)
    >>> tree = hierarchy.tree_from_groups([0, 0, 1, 1])
    >>> res = hierarchy.batch_hierarchical_race(jax.random.key(0), p, 4 * jnp.eye(4), 4,
    ...                                         cfg=cfg, tree=tree)
    >>> res.label.tolist(), res.scores.shape
    ([0, 1, 2, 3], (4, 4))
  """
  if not isinstance(cfg, HierarchyConfig):
    raise TypeError(f"cfg must be a HierarchyConfig (hierarchy_config()), got"
                    f" {type(cfg).__name__}.")
  num_classes = validate.check_num_classes_fit(cfg.race.denoiser, num_classes)
  x = validate.check_x(cfg.race.denoiser, params, x, batched=True)
  if tree is not None:
    tree = check_tree(tree, num_classes)
  keys = jax.random.split(key, x.shape[0])
  if mesh is not None:
    if not isinstance(mesh, Mesh):
      raise TypeError(f"mesh must be a jax.sharding.Mesh (jgen.parallel.make_mesh), got"
                      f" {type(mesh).__name__}.")
    pmesh.axis_size(mesh, pmesh.CLASSES)     # ValueError naming the missing axis
    pmesh.axis_size(mesh, pmesh.DATA)
    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)   # raw uint32 keys pass
    return _batch_sharded(jax.random.key_data(keys) if typed else keys, params, x,
                          proposal, tree, cfg=cfg, num_classes=num_classes,
                          vectorize=bool(vectorize), mesh=mesh,
                          impl=jax.random.key_impl(keys) if typed else None)
  return _batch(keys, params, x, proposal, tree, cfg=cfg, num_classes=num_classes,
                vectorize=bool(vectorize))
