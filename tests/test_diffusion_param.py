"""Parametrizations (eps, x, v, flow) and the rectified-flow schedule.

References: the definitions z = alpha x + sigma eps (VDM, Kingma et al. 2021),
v = alpha eps - sigma x (Salimans & Ho 2022), the rectified-flow path
x_s = (1 - s) x + s eps with velocity u = eps - x (Liu et al. 2023; Esser et al. 2024),
and the closed-form Gaussian posterior mean (jgen.diffusion.oracle).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import diffusion

PARAMS = ("eps", "x", "v", "flow")


def _truth(x, eps, gamma):
  alpha, sigma = diffusion.alpha_sigma(gamma)
  z = alpha * x + sigma * eps
  return z, {"eps": eps, "x": x, "v": alpha * eps - sigma * x, "flow": eps - x}


@pytest.mark.parametrize("gamma", [-6.0, 0.0, 4.0])
def test_definitions_convert_to_eps_and_back(gamma):
  key1, key2 = jax.random.split(jax.random.key(0))
  x = jax.random.normal(key1, (5,), jnp.float64)
  eps = jax.random.normal(key2, (5,), jnp.float64)
  g = jnp.asarray(gamma, jnp.float64)
  z, preds = _truth(x, eps, g)
  for name in PARAMS:
    np.testing.assert_allclose(diffusion.to_eps(preds[name], z, g, name), eps,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(diffusion.from_eps(eps, z, g, name), preds[name],
                               rtol=1e-10, atol=1e-10)
    for other in PARAMS:
      np.testing.assert_allclose(diffusion.convert(preds[name], z, g, name, other),
                                 preds[other], rtol=1e-9, atol=1e-9)


def test_flow_state_is_rescaled_vp_state():
  # A flow model that knows x: u = eps - x with eps recovered from x_s = (1-s)x + s eps.
  x = jnp.asarray([0.5, -1.0, 2.0], jnp.float64)
  eps = jnp.asarray([1.0, 0.3, -0.7], jnp.float64)
  den = diffusion.from_flow_fn(lambda p, xs, s, y: (xs - (1 - s) * x) / s - x)
  for gamma in (-3.0, 0.5, 3.0):
    g = jnp.asarray(gamma, jnp.float64)
    z, _ = _truth(x, eps, g)
    np.testing.assert_allclose(diffusion.eps_prediction(den, (), z, g, 0), eps,
                               rtol=1e-9, atol=1e-9)
    s = diffusion.flow_time(g)
    alpha, sigma = diffusion.alpha_sigma(g)
    np.testing.assert_allclose(alpha / sigma, (1 - s) / s, rtol=1e-12)


def test_rectified_flow_schedule_matches_the_path():
  sched = diffusion.rectified_flow_schedule(0.01, 0.99)
  t = jnp.linspace(0.0, 1.0, 7, dtype=jnp.float64)
  s = 0.01 + 0.98 * t
  alpha, sigma = diffusion.alpha_sigma(sched.gamma(t))
  norm = jnp.sqrt((1 - s) ** 2 + s ** 2)     # VP = flow state / norm
  np.testing.assert_allclose(alpha, (1 - s) / norm, rtol=1e-12)
  np.testing.assert_allclose(sigma, s / norm, rtol=1e-12)
  shifted = diffusion.rectified_flow_schedule(0.01, 0.99, shift=3.0)
  s3 = 3 * s / (1 + 2 * s)                   # SD 3 timestep shift
  np.testing.assert_allclose(shifted.gamma(t), 2 * np.log(s3 / (1 - s3)), rtol=1e-10)


def _oracle_as(parametrization, means, variances):
  den, p = diffusion.gaussian_oracle(means, variances)

  def apply(params, z, gamma, y):
    return diffusion.from_eps(den.apply(params, z, gamma, y), z, gamma, parametrization)

  return den._replace(apply=apply, parametrization=parametrization), p


@pytest.mark.parametrize("name", PARAMS[1:])
def test_optimal_predictor_gives_eps_path_elbo_and_exact_ranking(name):
  rng = np.random.default_rng(0)
  k, d = 4, 8
  means = rng.normal(size=(k, d))
  variances = np.exp(0.5 * rng.normal(size=(k, d)))
  x = jnp.asarray(means[1] + np.sqrt(variances[1]) * rng.normal(size=d), jnp.float64)
  sched = diffusion.linear_schedule(-10.0, 10.0)
  key = jax.random.key(3)
  ref = diffusion.class_log_likelihoods(key, *diffusion.gaussian_oracle(means, variances),
                                        x, k, schedule=sched, num_t=64)
  got = diffusion.class_log_likelihoods(key, *_oracle_as(name, means, variances), x, k,
                                        schedule=sched, num_t=64)
  np.testing.assert_allclose(got, ref, atol=1e-3)
  exact = diffusion.gaussian_log_likelihoods(means, variances, x)
  assert np.argsort(np.asarray(got)).tolist() == np.argsort(np.asarray(exact)).tolist()
  res = diffusion.classify(key, *_oracle_as(name, means, variances), x, k,
                           schedule=sched, num_t=64)
  assert int(res.label) == int(np.argmax(exact))


def test_bad_parametrizations_raise():
  with pytest.raises(ValueError, match="parametrization must be one of"):
    diffusion.to_eps(jnp.zeros(2), jnp.zeros(2), 0.0, "score")
  with pytest.raises(ValueError, match="parametrization must be one of"):
    diffusion.from_eps_fn(lambda z, g, y: z, parametrization="velocity")
  with pytest.raises(ValueError, match="must return a prediction"):
    diffusion.to_eps(jnp.zeros(3), jnp.zeros(2), 0.0, "flow")
  den = diffusion.from_flow_fn(lambda p, xs, s, y: xs[:1], data_shape=(2,),
                               num_classes=2)
  with pytest.raises(ValueError, match="'flow' denoiser must return a prediction"):
    diffusion.classify(jax.random.key(0), den, (), jnp.zeros(2, jnp.float32), 2,
                       num_t=4)
  with pytest.raises(ValueError, match="s_min"):
    diffusion.rectified_flow_schedule(0.5, 0.2)
  with pytest.raises(ValueError, match="shift"):
    diffusion.rectified_flow_schedule(shift=0.0)
