"""Racing strategy and importance-sampled timesteps.

References: the exact Bayes labels of Gaussian class-conditionals
(jgen.diffusion.gaussian_log_likelihoods, closed form); the importance-sampling identity
E_q[f(t) / q(t)] = int_0^1 f(t) dt (Owen 2013, section 9.1) with int t^2 = 1/3.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import diffusion
from jgen.core import plan
from jgen.diffusion import importance, racing

K, D = 4, 8


@pytest.fixture(scope="module")
def problem():
  rng = np.random.default_rng(1)
  means = (2.0 * rng.normal(size=(K, D))).astype(np.float32)
  variances = np.ones((K, D), np.float32)
  y = np.arange(K).repeat(3)
  x = (means[y] + rng.normal(size=(len(y), D))).astype(np.float32)
  den, params = diffusion.gaussian_oracle(means, variances)
  bayes = np.asarray(diffusion.gaussian_log_likelihoods(means, variances, x)).argmax(1)
  return den, params, x, y, bayes


def test_race_finds_bayes_labels_with_fewer_evaluations(problem):
  den, params, x, _, bayes = problem
  cfg = diffusion.race_config(den, chunk_t=4, max_rounds=16)
  res = diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg)
  assert np.asarray(res.label).tolist() == bayes.tolist()
  assert np.all(np.asarray(res.num_evals) < K * 4 * 16)
  looped = diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg,
                                vectorize=True)
  assert np.asarray(looped.label).tolist() == np.asarray(res.label).tolist()
  np.testing.assert_array_equal(looped.num_evals, res.num_evals)


def test_memory_plan_chunks_the_vmapped_race_with_the_same_results(problem):
  # A GPU/TPU-style memory budget that holds 4 of the 12 examples' rounds: the vmapped
  # race runs in chunks of 4 and gives every example the result of one call.
  den, params, x, _, _ = problem
  cfg = diffusion.race_config(den, chunk_t=4, max_rounds=16)
  one = diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg, vectorize=True)
  per = K * 4 * diffusion.chunking.activation_bytes(den, params, x.shape[1:], x.dtype)
  budget = 4 * per * plan.LIVE_FACTOR
  with plan.use_plan(budget_bytes=budget, kind="memory") as p:
    assert p.per_call(per, x.shape[0]) == 4
    chunked = diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg,
                                   vectorize=True)
  np.testing.assert_array_equal(chunked.label, one.label)
  np.testing.assert_array_equal(chunked.num_evals, one.num_evals)
  np.testing.assert_allclose(chunked.scores, one.scores, rtol=1e-5)
  with plan.use_plan(budget_bytes=per, kind="memory"):   # too small for one example
    with pytest.raises(ValueError, match="budget_bytes"):
      diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg, vectorize=True)


def test_no_elimination_counts_every_evaluation(problem):
  den, params, x, _, _ = problem
  cfg = diffusion.race_config(den, chunk_t=2, max_rounds=3, rule="margin", margin=1e9)
  res = diffusion.batch_race(jax.random.key(0), params, x[:2], K, cfg=cfg)
  np.testing.assert_array_equal(res.num_evals, [K * 2 * 3] * 2)


def test_importance_weights_are_unbiased_and_proposal_fits(problem):
  q = importance.TimestepProposal(jnp.asarray([0.1, 0.2, 0.3, 0.4], jnp.float32))
  t, w = importance.draw_importance(jax.random.key(0), 4000, q)
  assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
  vals = np.asarray(w * t**2)
  se = vals.std() / np.sqrt(len(vals))
  assert abs(vals.mean() - 1.0 / 3.0) < 3 * se + 1e-3
  den, params, x, y, _ = problem
  fitted = diffusion.fit_proposal(jax.random.key(1), den, params, x[:4], y[:4], K,
                                  schedule=diffusion.linear_schedule(), num_bins=8,
                                  floor=0.25)
  np.testing.assert_allclose(float(fitted.probs.sum()), 1.0, rtol=1e-5)
  assert float(fitted.probs.min()) >= 0.25 / 8 - 1e-6
  cfg = diffusion.race_config(den, chunk_t=4, max_rounds=16, antithetic=True)
  res = diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg, proposal=fitted)
  assert np.mean(np.asarray(res.label) == y) >= 0.9


def test_bad_options_raise(problem):
  den = problem[0]
  with pytest.raises(ValueError, match="rule"):
    diffusion.race_config(den, rule="bandit")
  with pytest.raises(ValueError, match="cs_draws"):
    diffusion.race_config(den, rule="cs", cs_draws=0)
  with pytest.raises(ValueError, match="margin"):
    diffusion.race_config(den, margin=0.0)
  with pytest.raises(ValueError, match="confidence"):
    diffusion.race_config(den, confidence=1.0)
  with pytest.raises(ValueError, match="chunk_t"):
    diffusion.race_config(den, chunk_t=3, antithetic=True)
  with pytest.raises(TypeError, match="adapt_t must be a bool"):
    diffusion.race_config(den, adapt_t=1)
  with pytest.raises(ValueError, match="adapt_t needs a continuous schedule"):
    diffusion.race_config(den, adapt_t=True,
                          schedule=diffusion.ddpm_schedule(num_steps=100))
  with pytest.raises(ValueError, match="floor"):
    diffusion.fit_proposal(jax.random.key(0), den, problem[1], problem[2], problem[3], K,
                           schedule=diffusion.linear_schedule(), floor=0.0)
  with pytest.raises(TypeError, match="RaceConfig"):
    diffusion.batch_race(jax.random.key(0), problem[1], problem[2], K, cfg={})


def test_confidence_sequence_is_time_uniform():
  # Waudby-Smith et al. 2024 (Theorem 2.2): for i.i.d. observations the boundary
  # mean > s * cs_multipliers(n) is crossed at ANY n <= 4096 with probability <= alpha.
  # A fixed-n z quantile looked at every n crosses far more often (the law of the
  # iterated logarithm), which is what the union bound over rounds had to pay for.
  rng = np.random.default_rng(0)
  reps, n_max, alpha = 2000, 4096, 0.1
  z = rng.standard_normal((reps, n_max)).astype(np.float64)
  n = np.arange(1, n_max + 1)
  mean = np.cumsum(z, axis=1) / n
  var = (np.cumsum(z * z, axis=1) - n * mean**2) / np.maximum(n - 1, 1)
  sd = np.sqrt(var)
  look = n >= 8
  m = racing.cs_multipliers(n, 1.0 - alpha, 2)
  crossed = np.any((mean > sd * m) & look, axis=1)
  se = np.sqrt(alpha * (1 - alpha) / reps)
  assert crossed.mean() <= alpha + 3 * se
  fixed = np.any((mean > sd * 1.2816 / np.sqrt(n)) & look, axis=1)  # z_{0.9}
  assert fixed.mean() > alpha + 10 * se
  # The union over competitors: a = (1 - confidence) / (K - 1) widens the boundary.
  assert np.all(racing.cs_multipliers(n, 0.9, 10) > m)


def test_anytime_race_does_not_depend_on_the_round_cap(problem):
  # rule="cs": the boundary at a number of draws does not depend on max_rounds, so the
  # first 8 rounds decide the same under caps of 8 and 64 rounds: a longer cap only adds
  # rounds to the examples still undecided, and an example that stopped early stops at
  # the same evaluation count with the same label (up to float rounding of sums over a
  # longer history buffer, which could move a boundary tie). The union-bound test's
  # critical values grow with max_rounds, so it spends more on every example.
  den, params, x, _, bayes = problem
  x = np.concatenate([x] * 4)
  same = {}
  for rule in ("cs", "test"):
    cfg = diffusion.race_config(den, rule=rule, chunk_t=4, max_rounds=8, confidence=0.9)
    short = diffusion.batch_race(jax.random.key(3), params, x, K, cfg=cfg)
    long = diffusion.batch_race(jax.random.key(3), params, x, K,
                                cfg=cfg._replace(max_rounds=64))
    s, l = np.asarray(short.num_evals), np.asarray(long.num_evals)
    assert np.mean(l >= s) >= 0.95
    same[rule] = s == l
    if rule == "cs":
      np.testing.assert_array_equal(np.asarray(short.label)[same[rule]],
                                    np.asarray(long.label)[same[rule]])
      assert np.asarray(long.label).tolist() == bayes.tolist() * 4
  assert same["cs"].mean() >= 0.4 and same["test"].mean() <= 0.1
  anti = diffusion.race_config(den, rule="cs", chunk_t=4, max_rounds=64, confidence=0.9,
                               antithetic=True)
  res = diffusion.batch_race(jax.random.key(3), params, x, K, cfg=anti, vectorize=True)
  assert np.asarray(res.label).tolist() == bayes.tolist() * 4


def test_anytime_race_error_level_on_a_thousand_oracle_points():
  # 10 Gaussian classes with the exact denoiser: the race stops as soon as the stated
  # level is met; the labels that differ from the exact Bayes labels (closed form) must
  # stay at or below 1 - confidence (k = 3 standard errors of a binomial fraction).
  rng = np.random.default_rng(10)
  k, d, n, level = 10, 16, 1000, 0.1
  means = rng.normal(size=(k, d)).astype(np.float32)
  variances = np.exp(0.3 * rng.normal(size=(k, d))).astype(np.float32)
  y = rng.integers(0, k, size=n)
  x = (means[y] + np.sqrt(variances[y]) * rng.normal(size=(n, d))).astype(np.float32)
  den, params = diffusion.gaussian_oracle(means, variances)
  bayes = np.asarray(diffusion.gaussian_log_likelihoods(means, variances, x)).argmax(1)
  cfg = diffusion.race_config(den, rule="cs", chunk_t=8, max_rounds=64,
                              confidence=1.0 - level)
  res = diffusion.batch_race(jax.random.key(0), params, x, k, cfg=cfg)
  wrong = np.mean(np.asarray(res.label) != bayes)
  assert wrong <= level + 3 * np.sqrt(level * (1 - level) / n)
  # stopped early: a fifth of the cap of 64 rounds for every class
  assert float(np.mean(res.num_evals)) < 0.2 * k * 8 * 64


def test_candidates_restrict_the_race(problem):
  # A first stage's candidate set: only those classes are evaluated (the bucket of the
  # set's size), the others score -inf; a single candidate wins with no evaluation.
  den, params, x, _, bayes = problem
  n = len(x)
  cand = np.zeros((n, K), bool)
  cand[np.arange(n), bayes] = True
  cand[np.arange(n), (bayes + 1) % K] = True
  cfg = diffusion.race_config(den, rule="cs", chunk_t=4, max_rounds=16)
  res = diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg, candidates=cand)
  assert np.asarray(res.label).tolist() == bayes.tolist()
  assert np.all(np.asarray(res.num_evals) <= 2 * 4 * 16)
  assert np.all(np.isneginf(np.asarray(res.scores)[~cand]))
  assert np.isfinite(np.asarray(res.scores)[cand]).all()
  one = np.eye(K, dtype=bool)[(bayes + 2) % K]
  res1 = diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg, candidates=one)
  assert np.asarray(res1.label).tolist() == ((bayes + 2) % K).tolist()
  np.testing.assert_array_equal(res1.num_evals, np.zeros(n))
  with pytest.raises(ValueError, match="candidates"):
    diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg, candidates=cand[:1])
  with pytest.raises(ValueError, match="candidates"):
    diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg, candidates=cand & False)
  with pytest.raises(TypeError, match="candidates"):
    diffusion.batch_race(jax.random.key(0), params, x, K, cfg=cfg,
                         candidates=cand.astype(int))


def _exact_elbos(den, params, x, schedule):
  """Per-class ELBO of one example with the diffusion term integrated exactly: 400
  Gauss-Legendre nodes in t, and in eps the 2D points +-sqrt(D) e_j, which integrate the
  oracle's error (quadratic in eps) exactly (as in test_diffusion_elbo.py)."""
  nodes, w = np.polynomial.legendre.leggauss(400)
  t, w = (nodes + 1) / 2, w / 2
  eps = np.concatenate([np.sqrt(D) * np.eye(D), -np.sqrt(D) * np.eye(D)])
  n = len(eps)
  err = diffusion.class_errors_at(den, params, jnp.asarray(x),
                                  jnp.asarray(np.repeat(t, n), jnp.float32),
                                  jnp.asarray(np.tile(eps, (len(t), 1)), jnp.float32),
                                  jnp.arange(K), schedule=schedule)
  return -(float(diffusion.prior_kl(jnp.asarray(x), schedule))
           + float(diffusion.reconstruction(jnp.asarray(x), schedule))
           + np.asarray(err, np.float64) @ (np.repeat(w, n) / n))


def test_adapted_timesteps_keep_class_means_unbiased_and_cut_variance(problem):
  # No elimination (margin 1e9), so each class gets all 8 rounds of 4 draws while the
  # proposal adapts after every round. Over 1,000 independent races on one example,
  # every class's mean score must match the exact ELBO (closed form above) within 5
  # standard errors: a false failure has probability about 4 x 5.7e-7 (normal tails,
  # 4 classes) and the keys are fixed. The adapted proposal must also shrink the
  # variance of the closest pair's score difference against the fixed (uniform) one;
  # measured 5.7 against 7.4 (2,000 races), so 0.9 x leaves about 8 of its standard
  # errors (the variance estimates' relative error is about 3% here).
  den, params, x, _, _ = problem
  schedule = diffusion.linear_schedule()
  exact = _exact_elbos(den, params, x[0], schedule)
  top2 = np.argsort(-exact)[:2]
  n = 1000
  var = {}
  for adapt in (False, True):
    cfg = diffusion.race_config(den, chunk_t=4, max_rounds=8, rule="margin",
                                margin=1e9, antithetic=True, adapt_t=adapt)
    res = diffusion.batch_race(jax.random.key(0), params, np.repeat(x[:1], n, 0), K,
                               cfg=cfg, vectorize=True)
    sc = np.asarray(res.scores, np.float64)
    z = (sc.mean(0) - exact) / (sc.std(0, ddof=1) / np.sqrt(n))
    assert np.all(np.abs(z) < 5.0), (adapt, z)
    var[adapt] = np.var(sc[:, top2[0]] - sc[:, top2[1]], ddof=1)
  assert var[True] < 0.9 * var[False], var


def test_race_strategy_of_batch_classify_is_batch_race(problem):
  # strategy="race" runs the same race, jitted, with max_rounds = num_t // chunk_t:
  # the same key gives the same labels, scores and counts as batch_race.
  den, params, x, _, bayes = problem
  res = diffusion.batch_classify(jax.random.key(2), den, params, x, K, strategy="race",
                                 num_t=64, chunk_t=8, rule="cs", confidence=0.9,
                                 antithetic=True, adapt_t=True)
  cfg = diffusion.race_config(den, chunk_t=8, max_rounds=8, rule="cs",
                              confidence=0.9, antithetic=True, adapt_t=True)
  ref = diffusion.batch_race(jax.random.key(2), params, x, K, cfg=cfg)
  np.testing.assert_array_equal(res.label, ref.label)
  np.testing.assert_array_equal(res.num_evals, ref.num_evals)
  np.testing.assert_allclose(res.scores, ref.scores, rtol=1e-6)
  assert np.mean(np.asarray(res.label) == bayes) >= 11 / 12
  one = diffusion.classify(jax.random.split(jax.random.key(2), len(x))[3], den, params,
                           x[3], K, strategy="race", num_t=64, chunk_t=8, rule="cs",
                           confidence=0.9, antithetic=True, adapt_t=True)
  assert int(one.label) == int(res.label[3])
  with pytest.raises(ValueError, match="strategy='race' supports loss='l2'"):
    diffusion.classify(jax.random.key(0), den, params, x[0], K, strategy="race",
                       loss="l1")
  with pytest.raises(ValueError, match="rule must be"):
    diffusion.classify(jax.random.key(0), den, params, x[0], K, strategy="race",
                       rule="bandit")
