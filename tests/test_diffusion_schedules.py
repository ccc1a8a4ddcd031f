"""Noise schedules: closed forms, DDPM cumulative products, the timestep adapter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import diffusion


def test_linear_schedule_endpoints_and_derivative():
  s = diffusion.linear_schedule(-13.3, 5.0)  # VDM defaults (REFERENCES section 4)
  t = jnp.linspace(0.0, 1.0, 11)
  np.testing.assert_allclose(s.gamma(t), -13.3 + 18.3 * np.asarray(t), rtol=1e-12)
  np.testing.assert_allclose(diffusion.gamma_prime(s, t), np.full(11, 18.3), rtol=1e-12)
  assert s.num_steps is None


def test_cosine_schedule_matches_closed_form_and_is_increasing():
  s = diffusion.cosine_schedule(-10.0, 8.0)
  t = jnp.linspace(0.0, 1.0, 101)
  g = np.asarray(s.gamma(t))
  np.testing.assert_allclose([g[0], g[-1]], [-10.0, 8.0], atol=1e-10)
  assert np.all(np.diff(g) > 0)
  # d/dt 2 log tan(a + (b - a) t) = 2 (b - a) / (sin cos), a closed form.
  a, b = np.arctan(np.exp(-5.0)), np.arctan(np.exp(4.0))
  ang = a + (b - a) * np.asarray(t)
  np.testing.assert_allclose(diffusion.gamma_prime(s, t),
                             2 * (b - a) / (np.sin(ang) * np.cos(ang)), rtol=1e-10)


def test_alpha_sigma_variance_preserving():
  g = jnp.linspace(-30.0, 30.0, 61)
  a, s = diffusion.alpha_sigma(g)
  np.testing.assert_allclose(a**2 + s**2, 1.0, rtol=1e-12)
  np.testing.assert_allclose(np.log(s**2 / a**2), g, atol=1e-9)  # gamma = -log SNR


@pytest.mark.parametrize("kind,b0,b1", [("linear", 1e-4, 0.02),
                                        ("scaled_linear", 0.00085, 0.012)])
def test_ddpm_schedule_matches_cumulative_alphas(kind, b0, b1):
  s = diffusion.ddpm_schedule(1000, b0, b1, kind=kind)
  # DDPM (Ho et al. 2020) and Stable Diffusion's beta definitions, via NumPy.
  betas = (np.linspace(b0, b1, 1000) if kind == "linear"
           else np.linspace(b0**0.5, b1**0.5, 1000) ** 2)
  abar = np.cumprod(1.0 - betas)
  g = diffusion.grid(s, jnp.float64)
  assert s.num_steps == 999 and g.shape == (1000,)
  a, _ = diffusion.alpha_sigma(g)
  np.testing.assert_allclose(a**2, abar, rtol=1e-10)
  np.testing.assert_array_equal(diffusion.ddpm_timestep(s, g), np.arange(1000))


def test_ddpm_eps_fn_passes_the_integer_timestep():
  s = diffusion.ddpm_schedule()
  seen = []

  def model(x_t, timestep, y):
    seen.append(timestep.dtype)
    return x_t * timestep.astype(x_t.dtype) + y

  eps_fn = diffusion.ddpm_eps_fn(model, s)
  g = diffusion.grid(s)
  out = jax.jit(eps_fn)(jnp.ones(3), g[417], 2)
  np.testing.assert_allclose(out, np.full(3, 419.0))
  assert jnp.issubdtype(seen[0], jnp.integer)


def test_discretize_and_grid():
  s = diffusion.discretize(diffusion.linear_schedule(-10.0, 10.0), 4)
  np.testing.assert_allclose(diffusion.grid(s, jnp.float64), [-10, -5, 0, 5, 10])
  with pytest.raises(ValueError, match="continuous"):
    diffusion.grid(diffusion.linear_schedule())


def test_bad_schedule_arguments():
  with pytest.raises(ValueError, match="gamma_min must be < gamma_max"):
    diffusion.linear_schedule(5.0, -5.0)
  with pytest.raises(ValueError, match="finite"):
    diffusion.cosine_schedule(-np.inf, 5.0)
  with pytest.raises(ValueError, match="kind"):
    diffusion.ddpm_schedule(kind="quadratic")
  with pytest.raises(ValueError, match="beta_start"):
    diffusion.ddpm_schedule(beta_start=0.1, beta_end=0.01)
  with pytest.raises(ValueError, match="num_steps"):
    diffusion.discretize(diffusion.linear_schedule(), 0)
