"""Probability-flow likelihood against exact Gaussian marginals.

Reference: for x | y=k ~ N(mu_k, diag s_k^2), the VP latent z_0 = alpha_0 x + sigma_0 eps
is N(alpha_0 mu_k, alpha_0^2 s_k^2 + sigma_0^2) (closed form), and the exact denoiser is
jgen.diffusion.gaussian_oracle. The PF-ODE likelihood (Song et al., ICLR 2021) must match
it up to the solver tolerance and the N(0, I) prior at gamma_1 (error ~ alpha_1 = e^-10
here). Hutchinson's estimator is unbiased for the trace (Hutchinson 1989).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import diffusion
from jgen.diffusion import ode

K, D = 3, 8
SCHED = diffusion.linear_schedule(-13.3, 20.0)


@pytest.fixture(scope="module")
def problem():
  rng = np.random.default_rng(0)
  means = rng.normal(size=(K, D)).astype(np.float32)
  variances = np.exp(0.5 * rng.normal(size=(K, D))).astype(np.float32)
  x = (means[0] + np.sqrt(variances[0]) * rng.normal(size=D)).astype(np.float32)
  den, params = diffusion.gaussian_oracle(means, variances)
  g0 = jnp.asarray(-13.3, jnp.float32)
  a0, s0 = diffusion.alpha_sigma(g0)
  z = a0 * x
  exact_z = diffusion.gaussian_log_likelihoods(a0 * means, a0**2 * variances + s0**2,
                                               z[None])[0]
  return den, params, means, variances, x, z, exact_z


def test_exact_trace_matches_gaussian_marginal_for_every_class(problem):
  den, params, _, _, _, z, exact_z = problem
  res = ode.log_likelihoods_at(None, den, params, z, K, schedule=SCHED)
  assert res.log_likelihood.shape == (K,) and bool(res.success)
  np.testing.assert_allclose(res.log_likelihood, exact_z, atol=0.01)
  one = ode.log_likelihoods_at(None, den, params, z, K, schedule=SCHED, classes=[2])
  np.testing.assert_allclose(one.log_likelihood[0], exact_z[2], atol=0.01)
  assert int(res.num_evals) == (6 * int(res.num_steps) + 1) * D


def test_hutchinson_within_three_standard_errors(problem):
  den, params, _, _, _, z, exact_z = problem
  cfg = diffusion.ode_config(divergence="hutchinson", num_probes=2, probe="gaussian")
  runs = np.stack([np.asarray(ode.log_likelihoods_at(
      jax.random.key(i), den, params, z, K, schedule=SCHED, config=cfg).log_likelihood)
      for i in range(8)])
  se = runs.std(axis=0, ddof=1) / np.sqrt(len(runs))
  assert np.all(se > 0)
  assert np.all(np.abs(runs.mean(axis=0) - exact_z) <= 3 * se + 0.01)
  # Rademacher probes are exact for the oracle's diagonal Jacobian.
  rad = diffusion.ode_config(divergence="hutchinson", num_probes=1)
  r = ode.log_likelihoods_at(jax.random.key(0), den, params, z, K, schedule=SCHED,
                             config=rad)
  np.testing.assert_allclose(r.log_likelihood, exact_z, atol=0.01)


def test_data_likelihood_and_elbo_below_it(problem):
  den, params, means, variances, x, _, _ = problem
  res = diffusion.pf_log_likelihoods(None, den, params, x, K, schedule=SCHED)
  exact_x = diffusion.gaussian_log_likelihoods(means, variances, x[None])[0]
  np.testing.assert_allclose(res.log_likelihood, exact_x, atol=0.01)
  errs = diffusion.class_errors(jax.random.key(1), den, params, x, K, num_t=2048,
                                schedule=SCHED)
  elbo = diffusion.elbo_from_errors(errs, x, SCHED)
  se = jnp.std(errs, axis=1) / np.sqrt(errs.shape[1])
  assert np.all(np.asarray(elbo - 3 * se) < np.asarray(res.log_likelihood))
  bpd = diffusion.dequantized_bits_per_dim(res.log_likelihood, D, num_bins=256,
                                           data_range=2.0)
  np.testing.assert_allclose(bpd, -res.log_likelihood / (D * np.log(2)) + 7, rtol=1e-6)


def test_other_parametrizations_same_likelihood(problem):
  den, params, _, _, _, z, exact_z = problem

  def apply(p, zz, g, y):
    return diffusion.from_eps(den.apply(p, zz, g, y), zz, g, "flow")

  flow = den._replace(apply=apply, parametrization="flow")
  res = ode.log_likelihoods_at(None, flow, params, z, K, schedule=SCHED)
  np.testing.assert_allclose(res.log_likelihood, exact_z, atol=0.01)


def test_classifier_contract(problem):
  den, params, means, variances, x, _, _ = problem
  model = ode.ode_classifier(den, schedule=SCHED)
  p = diffusion.DiffusionParams(params, jnp.arange(K), jnp.zeros(K, jnp.float32))
  xs = jnp.stack([jnp.asarray(x), jnp.asarray(means[1])])
  ll = model.log_likelihood(p, xs)
  np.testing.assert_allclose(ll, diffusion.gaussian_log_likelihoods(means, variances, xs),
                             atol=0.01)
  assert not model.stochastic
  with pytest.raises(TypeError, match="no fit"):
    model.fit(xs, jnp.zeros(2, jnp.int32), num_classes=K)


def test_bad_input_and_step_limit(problem):
  den, params, _, _, _, z, _ = problem
  for kw, match in ((dict(rtol=0.0), "rtol"), (dict(atol=-1.0), "atol"),
                    (dict(num_probes=0), "num_probes"), (dict(divergence="x"), "divergence"),
                    (dict(probe="sobol"), "probe")):
    with pytest.raises(ValueError, match=match):
      diffusion.ode_config(**kw)
  with pytest.raises(ValueError, match="key is required"):
    ode.log_likelihoods_at(None, den, params, z, K, schedule=SCHED,
                           config=diffusion.ode_config(divergence="hutchinson"))
  tight = diffusion.ode_config(max_steps=2)
  with pytest.raises(diffusion.ODESolveError, match="max_steps=2"):
    ode.log_likelihoods_at(None, den, params, z, K, schedule=SCHED, config=tight)
  gammas = SCHED.gamma(jnp.asarray([0.0, 1.0], jnp.float32))
  res = jax.jit(lambda p, zz: ode._solve(jax.random.key(0), p, zz, jnp.arange(K), gammas,
                                         denoiser=den, cfg=tight))(params, z)
  assert not bool(res.success) and bool(jnp.all(jnp.isnan(res.log_likelihood)))
