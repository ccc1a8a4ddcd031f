"""Tests of the Bayes-rule core against closed forms and plain NumPy loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgen


def test_log_posterior_matches_numpy_bayes_rule(key):
  # Reference: Bayes' rule written out in NumPy, p(k|x) = p(x|k) p(k) / sum_j ...
  log_lik = jax.random.normal(key, (4, 3, 5), jnp.float64) * 10.0
  prior = np.array([0.1, 0.2, 0.3, 0.15, 0.25])
  got = jgen.log_posterior(log_lik, jnp.log(prior))
  joint = np.exp(np.asarray(log_lik) - np.asarray(log_lik).max(-1, keepdims=True)) * prior
  want = np.log(joint / joint.sum(-1, keepdims=True))
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
  assert got.shape == (4, 3, 5)


def test_uniform_prior_is_default(key):
  log_lik = jax.random.normal(key, (7, 4), jnp.float32)
  np.testing.assert_allclose(
      jgen.log_posterior(log_lik), jgen.log_posterior(log_lik, jnp.full((4,), -jnp.log(4.0))),
      rtol=1e-6, atol=1e-6)


def test_predict_respects_prior():
  log_lik = jnp.log(jnp.array([[0.5, 0.4]]))
  assert int(jgen.predict(log_lik)[0]) == 0
  # With prior (0.1, 0.9): 0.05 vs 0.36 -> class 1.
  assert int(jgen.predict(log_lik, jnp.log(jnp.array([0.1, 0.9])))[0]) == 1


def test_jit_and_vmap_agree_with_eager(key):
  log_lik = jax.random.normal(key, (6, 3, 4), jnp.float32)
  lp = jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4], jnp.float32))
  eager = jgen.log_posterior(log_lik, lp)
  np.testing.assert_allclose(jax.jit(jgen.log_posterior)(log_lik, lp), eager, rtol=1e-6)
  np.testing.assert_allclose(jax.vmap(jgen.log_posterior, (0, None))(log_lik, lp), eager,
                             rtol=1e-6)


def test_empirical_log_prior_counts():
  y = jnp.array([0, 1, 1, 2, 2, 2])
  np.testing.assert_allclose(jnp.exp(jgen.empirical_log_prior(y, 4)),
                             [1 / 6, 2 / 6, 3 / 6, 0.0], rtol=1e-12)


def test_accuracy_scores_and_predictions():
  scores = jnp.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
  y = jnp.array([1, 1, 1])
  np.testing.assert_allclose(jgen.accuracy(scores, y), 2 / 3)
  np.testing.assert_allclose(jgen.accuracy(jnp.array([1, 0, 1]), y), 2 / 3)


def _ece_loop(probs, y, num_bins):
  # Plain Python reference of top-label ECE with bins (b/B, (b+1)/B].
  conf = probs.max(1)
  pred = probs.argmax(1)
  total = 0.0
  for b in range(num_bins):
    lo, hi = b / num_bins, (b + 1) / num_bins
    idx = [i for i in range(len(conf)) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0)]
    if idx:
      acc = np.mean([pred[i] == y[i] for i in idx])
      total += len(idx) / len(conf) * abs(acc - np.mean(conf[idx]))
  return total


def test_expected_calibration_error_matches_loop(key):
  k1, k2 = jax.random.split(key)
  probs = jax.nn.softmax(3.0 * jax.random.normal(k1, (500, 6), jnp.float64), -1)
  y = jax.random.randint(k2, (500,), 0, 6)
  got = jgen.expected_calibration_error(probs, y, num_bins=15)
  np.testing.assert_allclose(got, _ece_loop(np.asarray(probs), np.asarray(y), 15),
                             rtol=1e-10)


def test_fit_temperature_recovers_generating_temperature(key):
  # Labels drawn from softmax(logits / 3): the NLL minimiser is T ~ 3 (consistent
  # estimator; 20,000 draws give a standard error well under 0.1).
  k1, k2 = jax.random.split(key)
  logits = 4.0 * jax.random.normal(k1, (20000, 5), jnp.float64)
  y = jax.random.categorical(k2, logits / 3.0)
  t = jgen.fit_temperature(logits, y)
  assert abs(float(t) - 3.0) < 0.15
  scaled = jgen.temperature_scale(logits, t)
  assert float(jgen.negative_log_likelihood(scaled, y)) < float(
      jgen.negative_log_likelihood(logits, y))
  t_jit = jax.jit(jgen.fit_temperature)(logits, y)
  np.testing.assert_allclose(t_jit, t, rtol=1e-6)


@pytest.mark.parametrize("bad, match", [
    (dict(log_prior=jnp.zeros(3)), "log_prior must have last dimension 4"),
    (dict(log_prior=jnp.zeros((1, 4))), "log_prior must have rank 1"),
])
def test_bad_prior_shape(bad, match):
  with pytest.raises(ValueError, match=match):
    jgen.log_posterior(jnp.zeros((2, 4)), **bad)


def test_bad_inputs_name_the_argument():
  with pytest.raises(TypeError, match="log_lik must have a floating dtype"):
    jgen.log_posterior(jnp.zeros((2, 3), jnp.int32))
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=3\)"):
    jgen.empirical_log_prior(jnp.array([0, 3]), 3)
  with pytest.raises(TypeError, match="y must have an integer dtype"):
    jgen.empirical_log_prior(jnp.array([0.0, 1.0]), 3)
  with pytest.raises(ValueError, match="num_classes must be >= 2"):
    jgen.empirical_log_prior(jnp.array([0, 0]), 1)
  with pytest.raises(ValueError, match="y must have shape"):
    jgen.accuracy(jnp.zeros((4, 3)), jnp.zeros((5,), jnp.int32))
  with pytest.raises(ValueError, match="log_prior must be normalised"):
    jgen.validate_log_prior(jnp.zeros(3), 3)
