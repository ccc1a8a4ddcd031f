"""Hierarchical class pruning: tree cut, screen, race.

References: the exact Bayes labels of Gaussian class-conditionals
(jgen.diffusion.gaussian_log_likelihoods, closed form); evaluation counts from the
stage sizes (G representatives x node draws + kept members x screen draws + the race's
own count; under prune="test", rounds x G x node draws + the power-of-two bucket
holding the kept classes x screen draws); planted groups for the clustering; the
race's stated confidence for the test-based cut (a binomial bound); the single-device
hierarchical race for the class-sharded one (8 virtual devices, tests/conftest.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgen
from jgen import diffusion
from jgen.diffusion import hierarchy, racing

G, S, D = 4, 3, 8          # 4 groups of 3 classes: 12 classes
K = G * S


@pytest.fixture(scope="module")
def nested():
  """Group centres far apart (scale 6), members near their centre (scale 1.5): a real
  two-level hierarchy; class k is in group k // S."""
  rng = np.random.default_rng(0)
  centres = 6.0 * rng.normal(size=(G, D))
  means = (np.repeat(centres, S, axis=0) + 1.5 * rng.normal(size=(K, D))).astype(
      np.float32)
  variances = np.ones((K, D), np.float32)
  y = rng.integers(0, K, size=48)
  x = (means[y] + rng.normal(size=(len(y), D))).astype(np.float32)
  den, params = diffusion.gaussian_oracle(means, variances)
  bayes = np.asarray(diffusion.gaussian_log_likelihoods(means, variances, x)).argmax(1)
  return den, params, x, bayes


def test_tree_from_groups_and_its_checks():
  tree = hierarchy.tree_from_groups([2, 0, 1, 0, 2, 2])
  assert tree.members.tolist() == [[1, 3, -1], [2, -1, -1], [0, 4, 5]]
  assert tree.representatives.tolist() == [1, 2, 0]
  with pytest.raises(ValueError, match="groups must number every group"):
    hierarchy.tree_from_groups([0, 2, 2])
  with pytest.raises(ValueError, match="groups must be a non-empty 1-D int"):
    hierarchy.tree_from_groups([0.0, 1.0])
  with pytest.raises(ValueError, match="representatives must name one member"):
    hierarchy.tree_from_groups([0, 0, 1], [2, 1])
  with pytest.raises(ValueError, match="representatives must be 2 ints"):
    hierarchy.tree_from_groups([0, 0, 1], [0])


def test_build_tree_recovers_the_denoisers_confusions(nested):
  # Calibration scores from the denoiser itself (full protocol, 16 draws per class):
  # the clustering must return the planted groups.
  den, params, x, _ = nested
  cal = diffusion.batch_classify(jax.random.key(1), den, params, x[:24], K, num_t=16)
  tree = hierarchy.build_tree(np.asarray(cal.scores), G)
  got = sorted(sorted(int(c) for c in row if c >= 0) for row in np.asarray(tree.members))
  assert got == [list(range(g * S, (g + 1) * S)) for g in range(G)]
  reps = np.asarray(tree.representatives)
  assert all(int(r) in np.asarray(row) for r, row in zip(reps, tree.members))
  with pytest.raises(ValueError, match="scores must be finite; 1 entries"):
    s = np.asarray(cal.scores).copy()
    s[5, 7] = np.nan
    hierarchy.build_tree(s, G)
  with pytest.raises(ValueError, match="num_groups must be <="):
    hierarchy.build_tree(np.asarray(cal.scores), K + 1)


def test_evaluation_count_is_every_stage_padding_included(nested):
  # keep=1 leaves the race nothing to do (0 evaluations): the count is the stages' sizes.
  den, params, x, _ = nested
  rc = diffusion.race_config(den, chunk_t=4, antithetic=True)
  tree = hierarchy.tree_from_groups(np.r_[np.zeros(5, int), np.arange(K - 5) // 3 + 1])
  groups, width = tree.members.shape                    # 4 groups, padded to 5
  cfg = hierarchy.hierarchy_config(rc, screen_draws=2, node_draws=4, keep=1,
                                   keep_groups=2)
  res = hierarchy.batch_hierarchical_race(jax.random.key(0), params, x, K, cfg=cfg,
                                          tree=tree)
  assert np.all(np.asarray(res.num_evals) == groups * 4 + 2 * width * 2)
  res = hierarchy.batch_hierarchical_race(jax.random.key(0), params, x, K, cfg=cfg)
  assert np.all(np.asarray(res.num_evals) == K * 2)
  # one class enters the race: its score is finite only where it won the screen
  assert np.all(np.sum(np.isfinite(np.asarray(res.scores)), axis=1) <= 1)


def test_hierarchical_race_finds_bayes_labels(nested):
  den, params, x, bayes = nested
  rc = diffusion.race_config(den, rule="cs", confidence=0.9, chunk_t=8, max_rounds=64,
                             antithetic=True)
  cfg = hierarchy.hierarchy_config(rc, screen_draws=2, node_draws=4, keep=4,
                                   keep_groups=2)
  tree = hierarchy.tree_from_groups(np.arange(K) // S)
  res = hierarchy.batch_hierarchical_race(jax.random.key(0), params, x, K, cfg=cfg,
                                          tree=tree)
  label = np.asarray(res.label)
  assert np.mean(label == bayes) >= 46 / 48
  full_cost = K * 8 * 64
  assert np.all(np.asarray(res.num_evals) < full_cost)
  scores = np.asarray(res.scores)
  assert np.all(np.isfinite(scores[np.arange(len(x)), label]))
  assert np.all(np.sum(np.isfinite(scores), axis=1) <= 4)
  looped = hierarchy.batch_hierarchical_race(jax.random.key(0), params, x, K, cfg=cfg,
                                             tree=tree, vectorize=False)
  np.testing.assert_array_equal(looped.label, res.label)
  np.testing.assert_array_equal(looped.num_evals, res.num_evals)


def test_race_over_named_classes_is_the_race_over_those_slots(nested):
  # Slots 0..3 standing for classes 0..3 give the plain 4-class race bit for bit, and a
  # permutation of ids relabels the result.
  den, params, x, _ = nested
  cfg = diffusion.race_config(den, chunk_t=4, max_rounds=8)
  sub = diffusion.gaussian_oracle(params.means[:4], params.variances[:4])[1]
  key = jax.random.key(3)
  plain = racing.race(key, sub, x[0], None, cfg=cfg, num_classes=4)
  named = racing.race(key, params, x[0], None, cfg=cfg, num_classes=4,
                      classes=jnp.arange(4))
  assert int(named.label) == int(plain.label)
  np.testing.assert_array_equal(named.scores, plain.scores)
  assert int(named.num_evals) == int(plain.num_evals)
  perm = jnp.array([7, 2, 11, 5])
  moved = racing.race(key, params, x[0], None, cfg=cfg, num_classes=4, classes=perm)
  ref = racing.race(key, diffusion.gaussian_oracle(params.means[perm],
                                                   params.variances[perm])[1],
                    x[0], None, cfg=cfg, num_classes=4)
  assert int(moved.label) == int(perm[int(ref.label)])


def test_bad_configuration_raises(nested):
  den, params, x, _ = nested
  rc = diffusion.race_config(den, chunk_t=4, antithetic=True)
  with pytest.raises(ValueError, match="even screen_draws"):
    hierarchy.hierarchy_config(rc, screen_draws=3)
  with pytest.raises(TypeError, match="race_cfg must be a RaceConfig"):
    hierarchy.hierarchy_config(object())
  with pytest.raises(ValueError, match="keep must be >= 1"):
    hierarchy.hierarchy_config(rc, keep=0)
  cfg = hierarchy.hierarchy_config(rc)
  with pytest.raises(TypeError, match="cfg must be a HierarchyConfig"):
    hierarchy.batch_hierarchical_race(jax.random.key(0), params, x, K, cfg=rc)
  with pytest.raises(ValueError, match="each of the 12 classes exactly once"):
    hierarchy.batch_hierarchical_race(jax.random.key(0), params, x, K, cfg=cfg,
                                      tree=hierarchy.tree_from_groups([0] * 11))


def _points(n, seed):
  """``n`` fresh points of the ``nested`` model and their Bayes labels' groups."""
  rng = np.random.default_rng(0)
  centres = 6.0 * rng.normal(size=(G, D))
  means = (np.repeat(centres, S, axis=0) + 1.5 * rng.normal(size=(K, D))).astype(
      np.float32)
  rng = np.random.default_rng(seed)
  y = rng.integers(0, K, size=n)
  x = (means[y] + rng.normal(size=(n, D))).astype(np.float32)
  bayes = np.asarray(diffusion.gaussian_log_likelihoods(
      means, np.ones((K, D), np.float32), x)).argmax(1)
  return x, bayes // S


def test_test_cut_keeps_the_true_group_at_the_stated_confidence(nested):
  # The groups' race runs the race's paired tests (rule "cs", confidence 0.9) among the
  # representatives. With groups far apart, the group of the Bayes label is the group
  # of the best representative, so the race's guarantee says it is cut with probability
  # <= 0.1 per point: over 400 points, misses ~ Binomial(400, p <= 0.1), whose mean +
  # 3 standard deviations is 40 + 3 * 6 = 58.
  den, params, _, _ = nested
  x, true_group = _points(400, seed=5)
  rc = diffusion.race_config(den, rule="cs", confidence=0.9, chunk_t=8, antithetic=True)
  cfg = hierarchy.hierarchy_config(rc, node_draws=4, keep_groups=1, node_rounds=16,
                                   prune="test")
  tree = hierarchy.tree_from_groups(np.arange(K) // S)
  cut = jax.jit(jax.vmap(lambda kk, xi: racing.race_survivors(
      kk, params, xi, None, cfg=hierarchy.node_race_config(cfg), num_classes=G,
      classes=tree.representatives)))
  kept, evals = cut(jax.random.split(jax.random.key(11), len(x)), x)
  kept = np.asarray(kept)
  misses = np.count_nonzero(~kept[np.arange(len(x)), true_group])
  assert misses <= 58
  # and the cut does cut: on average at most 1.5 of the 4 groups are kept, at fewer
  # evaluations than the 16-round budget on all 4 groups
  assert kept.sum(axis=1).mean() <= 1.5
  assert np.mean(np.asarray(evals)) < 16 * G * 4
  # end to end: hierarchical_race with this cut finds the Bayes group's label
  res = hierarchy.batch_hierarchical_race(jax.random.key(2), params, x[:48], K,
                                          cfg=cfg._replace(keep=2), tree=tree)
  assert np.mean(np.asarray(res.label) // S == true_group[:48]) >= 46 / 48


def test_test_cut_vmapped_equals_looped(nested):
  den, params, x, _ = nested
  rc = diffusion.race_config(den, rule="cs", confidence=0.9, chunk_t=4, antithetic=True)
  cfg = hierarchy.hierarchy_config(rc, screen_draws=2, node_draws=4, keep=2,
                                   keep_groups=1, node_rounds=6, prune="test")
  tree = hierarchy.tree_from_groups(np.arange(K) // S)
  args = (jax.random.key(4), params, x[:16], K)
  vm = hierarchy.batch_hierarchical_race(*args, cfg=cfg, tree=tree)
  lp = hierarchy.batch_hierarchical_race(*args, cfg=cfg, tree=tree, vectorize=False)
  np.testing.assert_array_equal(vm.label, lp.label)
  np.testing.assert_array_equal(vm.num_evals, lp.num_evals)
  np.testing.assert_allclose(vm.scores, lp.scores, rtol=1e-6)


def test_test_cut_evaluation_count_is_rounds_and_buckets(nested):
  # A tree of groups of 5, 3, 3 and 1 classes (padded to 5: 20 slots); keep=1 leaves
  # the final race nothing to do (0 evaluations).
  den, params, x, _ = nested
  groups = np.r_[np.zeros(5, int), np.ones(3, int), np.full(3, 2), [3]]
  sizes = np.bincount(groups)
  tree = hierarchy.tree_from_groups(groups)
  nd, sd, rounds = 4, 2, 3
  # No test can eliminate (margin 1e9): all 4 groups race the full budget, all 12
  # classes are kept, and the screen evaluates the bucket of 16 slots holding them.
  rc = diffusion.race_config(den, rule="margin", margin=1e9)
  cfg = hierarchy.hierarchy_config(rc, screen_draws=sd, node_draws=nd, keep=1,
                                   keep_groups=1, node_rounds=rounds, prune="test")
  res = hierarchy.batch_hierarchical_race(jax.random.key(0), params, x, K, cfg=cfg,
                                          tree=tree)
  assert np.all(np.asarray(res.num_evals) == rounds * G * nd + 16 * sd)
  # Every difference exceeds margin 1e-6: after min_rounds = 2 rounds of the 4 groups
  # one is left, and the screen evaluates the power-of-two bucket holding its members
  # (none when it has a single member, which goes on unscreened).
  rc = diffusion.race_config(den, rule="margin", margin=1e-6, min_rounds=2)
  res = hierarchy.batch_hierarchical_race(jax.random.key(0), params, x, K,
                                          cfg=cfg._replace(race=rc), tree=tree)
  bucket = {5: 8, 3: 4, 1: 0}
  expect = [2 * G * nd + bucket[sizes[groups[c]]] * sd for c in np.asarray(res.label)]
  np.testing.assert_array_equal(res.num_evals, expect)


def test_bad_pruning_arguments_raise(nested):
  den = nested[0]
  rc = diffusion.race_config(den, chunk_t=4, antithetic=True)
  with pytest.raises(ValueError, match="prune must be 'top_k' or 'test', got 'best'"):
    hierarchy.hierarchy_config(rc, prune="best")
  with pytest.raises(ValueError, match="node_rounds must be >= 1"):
    hierarchy.hierarchy_config(rc, prune="test", node_rounds=0)
  with pytest.raises(ValueError, match="even node_draws"):
    hierarchy.hierarchy_config(rc, prune="test", node_draws=3)


# Groups of 5, 3, 3 and 1 classes: 20 member slots, padded within the groups.
UNEVEN = np.r_[np.zeros(5, int), np.ones(3, int), np.full(3, 2), [3]]


@pytest.mark.parametrize("prune", ["top_k", "test"])
def test_class_sharded_hierarchical_race_is_the_single_device_one(nested, prune):
  # float64: ELBO scores cancel large terms, and differently batched float32 sums
  # differ in the last bits (as in tests/test_sharding_diffusion.py).
  den, params, x, _ = nested
  den, params = diffusion.gaussian_oracle(np.asarray(params.means, np.float64),
                                          np.asarray(params.variances, np.float64))
  x = np.asarray(x[:5], np.float64)     # 5 rows over a data axis of 2: one padded
  rc = diffusion.race_config(den, rule="cs", confidence=0.9, chunk_t=4, max_rounds=16,
                             antithetic=True)
  cfg = hierarchy.hierarchy_config(rc, screen_draws=2, node_draws=4, keep=3,
                                   keep_groups=2, node_rounds=4, prune=prune)
  tree = hierarchy.tree_from_groups(UNEVEN)
  # an importance proposal for the test cut (replicated over the mesh), none for top_k
  probs = np.linspace(1.0, 3.0, 16)
  proposal = (diffusion.importance.TimestepProposal(jnp.asarray(probs / probs.sum()))
              if prune == "test" else None)
  mesh = jgen.parallel.make_mesh(data=2, classes=4)
  ref = hierarchy.batch_hierarchical_race(jax.random.key(0), params, x, K, cfg=cfg,
                                          tree=tree, proposal=proposal)
  got = hierarchy.batch_hierarchical_race(jax.random.key(0), params, x, K, cfg=cfg,
                                          tree=tree, mesh=mesh, proposal=proposal)
  np.testing.assert_array_equal(got.label, ref.label)
  assert got.scores.shape == (5, K)
  fin = np.isfinite(np.asarray(ref.scores))
  np.testing.assert_array_equal(np.isfinite(np.asarray(got.scores)), fin)
  np.testing.assert_allclose(np.asarray(got.scores)[fin], np.asarray(ref.scores)[fin],
                             rtol=1e-12)
  # padding and each device's own bucket only add evaluations
  assert np.all(np.asarray(got.num_evals) >= np.asarray(ref.num_evals))


def test_class_sharded_evaluation_count_includes_the_padding(nested):
  # keep=1 leaves the final race nothing to do; 4 class shards.
  den, params, x, _ = nested
  mesh = jgen.parallel.make_mesh(classes=4)
  tree = hierarchy.tree_from_groups(UNEVEN)
  nd, sd, rounds = 4, 2, 3
  # top_k: the 4 representatives, one per device; the 2 groups kept hold 10 slots
  # (padded within groups), 3 per device: 12 evaluated.
  rc = diffusion.race_config(den, chunk_t=4)
  cfg = hierarchy.hierarchy_config(rc, screen_draws=sd, node_draws=nd, keep=1,
                                   keep_groups=2)
  res = hierarchy.batch_hierarchical_race(jax.random.key(0), params, x[:4], K, cfg=cfg,
                                          tree=tree, mesh=mesh)
  assert np.all(np.asarray(res.num_evals) == G * nd + 12 * sd)
  # test, no elimination possible (margin 1e9): 4 groups for the whole budget; the 20
  # slots split 5 per device holding 5, 3, 3 and 1 kept classes, whose power-of-two
  # buckets (of 1, 2, 4, 5) are 5, 4, 4 and 1.
  rc = diffusion.race_config(den, rule="margin", margin=1e9)
  cfg = cfg._replace(race=rc, prune="test", node_rounds=rounds)
  res = hierarchy.batch_hierarchical_race(jax.random.key(0), params, x[:4], K, cfg=cfg,
                                          tree=tree, mesh=mesh)
  assert np.all(np.asarray(res.num_evals) == rounds * G * nd + (5 + 4 + 4 + 1) * sd)
  with pytest.raises(ValueError, match="mesh must have an axis named 'classes'"):
    hierarchy.batch_hierarchical_race(
        jax.random.key(0), params, x[:4], K, cfg=cfg, tree=tree,
        mesh=jax.make_mesh((1,), ("rows",), devices=jax.devices()[:1]))
