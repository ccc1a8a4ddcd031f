"""Hierarchical class pruning: tree cut, screen, race.

References: the exact Bayes labels of Gaussian class-conditionals
(jgen.diffusion.gaussian_log_likelihoods, closed form); evaluation counts from the
stage sizes (G representatives x node draws + kept members x screen draws + the race's
own count); planted groups for the clustering.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
