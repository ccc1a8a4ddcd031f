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
from jgen.diffusion import importance

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
  with pytest.raises(ValueError, match="margin"):
    diffusion.race_config(den, margin=0.0)
  with pytest.raises(ValueError, match="confidence"):
    diffusion.race_config(den, confidence=1.0)
  with pytest.raises(ValueError, match="chunk_t"):
    diffusion.race_config(den, chunk_t=3, antithetic=True)
  with pytest.raises(ValueError, match="floor"):
    diffusion.fit_proposal(jax.random.key(0), den, problem[1], problem[2], problem[3], K,
                           schedule=diffusion.linear_schedule(), floor=0.0)
  with pytest.raises(TypeError, match="RaceConfig"):
    diffusion.batch_race(jax.random.key(0), problem[1], problem[2], K, cfg={})
