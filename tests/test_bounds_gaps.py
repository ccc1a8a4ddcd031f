"""Minimizability-gap estimator and expected excess risks given the true posterior."""

import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bounds


def _linear_softmax_data(n=1500, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, 3))
  w = np.array([[1.0, -1.0, 0.5], [0.3, 0.2, -1.0], [0.0, 1.0, 1.0]])
  logits = x @ w + np.array([0.1, -0.2, 0.0])
  post = np.exp(logits - logits.max(-1, keepdims=True))
  return x, w, post / post.sum(-1, keepdims=True)


def test_logistic_gap_vanishes_for_linear_softmax_posterior():
  # The posterior is itself linear-softmax, so the best linear logistic risk equals
  # the Bayes risk E[entropy]: M_logistic(H_lin) = 0.
  x, _, post = _linear_softmax_data()
  est = bounds.linear_minimizability_gap("logistic", x, post)
  entropy = -np.mean(np.sum(post * np.log(post), -1))
  np.testing.assert_allclose(est.bayes_risk, entropy, rtol=1e-12)
  assert abs(float(est.gap)) < 1e-6
  assert est.weights.shape == (3, 3) and est.bias.shape == (3,)


def test_squared_hinge_gap_is_positive_and_attained():
  # The squared-hinge pointwise minimiser is not linear in x, so its gap is > 0; the
  # reported risk is the risk of the returned (W, b).
  x, _, post = _linear_softmax_data()
  est = bounds.linear_minimizability_gap("squared_hinge", x, post)
  risk = jnp.mean(bounds.conditional_risk("squared_hinge",
                                          x @ est.weights + est.bias[None, :], post))
  np.testing.assert_allclose(est.best_risk, risk, rtol=1e-10)
  assert float(est.gap) > 1e-3


def test_expected_excess_risks_are_means_of_regrets():
  x, w, post = _linear_softmax_data(n=200)
  scores = x @ w * 0.5                      # a miscalibrated, biased linear model
  ex = bounds.expected_excess_risks("logistic", scores, post)
  manual = np.mean(-np.sum(post * (scores - np.log(np.sum(np.exp(scores), -1,
                                                          keepdims=True))), -1)
                   + np.sum(post * np.log(post), -1))
  np.testing.assert_allclose(ex.surrogate, manual, rtol=1e-10)
  zero_one = np.mean(post.max(-1) - post[np.arange(200), scores.argmax(-1)])
  np.testing.assert_allclose(ex.zero_one, zero_one, rtol=1e-12)
  # The bound holds on the sample (Jensen: Gamma is concave).
  assert float(ex.zero_one) <= float(bounds.zero_one_bound("logistic", ex.surrogate,
                                                           num_classes=3))


def test_gap_bad_input():
  x, _, post = _linear_softmax_data(n=10)
  with pytest.raises(ValueError, match="same number of examples"):
    bounds.linear_minimizability_gap("logistic", x[:5], post)
  with pytest.raises(ValueError, match="sum to 1"):
    bounds.linear_minimizability_gap("logistic", x, post * 2)
  with pytest.raises(ValueError, match="same shape"):
    bounds.expected_excess_risks("logistic", x[:, :2], post)
