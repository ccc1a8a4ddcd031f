"""DiT and VAE-encoder ports against diffusers' PyTorch outputs (stored fixtures).

Reference numbers: tests/data/pretrained/reference.npz, written by
tests/data/pretrained/make_fixtures.py from diffusers' ``DiTTransformer2DModel`` and
``AutoencoderKL`` forward passes (float32, CPU) on the weights stored beside it.
"""

import functools
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.diffusion.pretrained import DiTConfig, dit_denoiser, init_dit, load_dit
from jgen.diffusion.pretrained import scoring, vae
from jgen.diffusion.schedules import ddpm_timestep

DATA = os.path.join(os.path.dirname(__file__), "data", "pretrained")
DIT = os.path.join(DATA, "dit_tiny")
VAE = os.path.join(DATA, "vae_tiny")


@pytest.fixture(scope="module")
def ref():
  return dict(np.load(os.path.join(DATA, "reference.npz")))


@pytest.fixture(scope="module")
def dit():
  return load_dit(DIT)


def test_dit_full_output_matches_diffusers(ref, dit):
  config, params = dit
  den = dit_denoiser(config)
  assert (den.parametrization, den.data_shape, den.num_classes) == ("eps", (8, 8, 4), 10)
  apply = den.apply
  gammas = scoring.reference_gammas(1)  # every DDPM timestep 0..999
  for i in range(3):
    eps = jax.jit(apply)(params, jnp.asarray(ref["dit_z"][i]),
                         gammas[int(ref["dit_t"][i])], int(ref["dit_y"][i]))
    # The ε half is the first in_channels of diffusers' learned-sigma output.
    np.testing.assert_allclose(eps, ref["dit_out"][i][..., :4], atol=1e-4, rtol=0)


def test_dit_network_learned_sigma_half_matches(ref, dit):
  from flax import nnx
  from jgen.diffusion.pretrained import DiT
  config, params = dit
  graphdef = nnx.graphdef(nnx.eval_shape(lambda: DiT(config, rngs=nnx.Rngs(0))))
  out = jax.jit(lambda p, z, t, y: nnx.merge(graphdef, p)(z, t, y))(
      params, jnp.asarray(ref["dit_z"][1]), jnp.float32(ref["dit_t"][1]),
      jnp.int32(ref["dit_y"][1]))  # label 10 = the null class
  np.testing.assert_allclose(out, ref["dit_out"][1], atol=1e-4, rtol=0)


def test_class_errors_equal_reference_loop(ref, dit):
  config, params = dit
  den = dit_denoiser(config)
  gammas = scoring.reference_gammas(int(ref["ce_t_interval"]))
  errors = scoring.class_eps_errors(den, params, ref["ce_x"], ref["ce_eps"],
                                    gammas, jnp.arange(10))
  np.testing.assert_allclose(errors, ref["ce_errors"], atol=1e-4, rtol=0)
  means = scoring.class_mean_errors(den, params, ref["ce_x"], ref["ce_eps"],
                                    gammas, jnp.arange(10))
  np.testing.assert_allclose(means, ref["ce_errors"].mean(0), atol=1e-4, rtol=0)


def test_v2_class_errors_at_equal_reference(ref, dit):
  """The DiT through jgen's generic estimator: ``class_errors_at`` at the reference's
  timesteps with one shared noise and uniform weighting gives diffusers' numbers
  (reference.npz ``ce_errors``, written by make_fixtures.py)."""
  from jgen import diffusion
  config, params = dit
  den = dit_denoiser(config)
  t = scoring.reference_times(int(ref["ce_t_interval"]))
  eps = jnp.broadcast_to(jnp.asarray(ref["ce_eps"]), t.shape + ref["ce_eps"].shape)
  errors = diffusion.class_errors_at(den, params, jnp.asarray(ref["ce_x"]), t, eps,
                                     jnp.arange(10), schedule=scoring.DDPMSchedule(
                                         ).schedule(), weighting="uniform")
  assert errors.shape == (10, t.shape[0])  # [classes, timesteps]
  np.testing.assert_allclose(errors.T, ref["ce_errors"], atol=1e-4, rtol=0)


def test_v2_classify_runs_the_dit(ref, dit):
  """``jgen.diffusion.classify`` with a DiT: ``full`` scores every class on the draws
  of ``class_errors(key, ...)``, so its scores are minus their means and its label
  their argmax."""
  from jgen import diffusion
  config, params = dit
  den = dit_denoiser(config)
  opts = dict(schedule=scoring.DDPMSchedule().schedule(), num_t=4,
              weighting="uniform", timesteps="grid")
  key, x = jax.random.key(3), jnp.asarray(ref["ce_x"])
  res = diffusion.classify(key, den, params, x, 10, strategy="full", **opts)
  errors = diffusion.class_errors(key, den, params, x, 10, **opts)
  np.testing.assert_allclose(res.scores, -errors.mean(axis=1), rtol=1e-6, atol=1e-6)
  assert int(res.label) == int(jnp.argmin(errors.mean(axis=1)))
  assert int(res.num_evals) == 40


def test_reference_grid_is_ddpm_closed_form():
  t = scoring.reference_timesteps(5)
  # eval_prob_dit.py: range(t_interval // 2, 1000, t_interval).
  np.testing.assert_array_equal(t, np.arange(2, 1000, 5))
  gammas = scoring.reference_gammas(5)
  # Closed form (Ho et al., 2020): abar_t = prod_{s<=t} (1 - beta_s), linear betas.
  abar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))[t]
  np.testing.assert_allclose(gammas, np.log((1 - abar) / abar), rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(
      ddpm_timestep(scoring.DDPMSchedule().schedule(), gammas), t)
  with pytest.raises(ValueError, match="t_interval"):
    scoring.reference_timesteps(7)


def test_one_compile_for_many_parameter_sets():
  cfg = DiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=1,
                  sample_size=4, out_channels=8, num_embeds_ada_norm=3)
  z = jnp.ones((4, 4, 4), jnp.float32)
  gammas = scoring.reference_gammas(500)

  @functools.partial(jax.jit, static_argnums=0)
  @chex.assert_max_traces(n=1)
  def errors(den, params):
    return scoring.class_eps_errors(den, params, z, z, gammas, jnp.arange(3))

  outs = []
  for seed in range(3):
    den = dit_denoiser(cfg)  # a fresh but equal denoiser each time
    outs.append(errors(den, init_dit(jax.random.key(seed), cfg)))
  assert errors._cache_size() == 1
  assert not np.allclose(outs[0], outs[1])  # the weights really are data


def test_vae_posterior_matches_diffusers(ref):
  config, params = vae.load_vae_encoder(VAE)
  for i in range(2):
    mean, logvar = vae.encode(config, params, ref["vae_images"][i])
    np.testing.assert_allclose(mean, ref["vae_mean"][i], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logvar, ref["vae_logvar"][i], atol=1e-4, rtol=0)


def test_bfloat16_close_to_float32(ref, dit):
  config, params16 = load_dit(DIT, jnp.bfloat16)
  assert {x.dtype for x in jax.tree_util.tree_leaves(params16)} == {jnp.dtype(jnp.bfloat16)}
  apply = dit_denoiser(config).apply
  g = scoring.reference_gammas(1)[417]
  eps16 = jax.jit(apply)(params16, jnp.asarray(ref["dit_z"][1]), g, 10)
  eps32 = ref["dit_out"][1][..., :4]  # diffusers, float32, t=417, y=10
  assert eps16.dtype == jnp.float32
  # bfloat16 keeps 8 mantissa bits (relative rounding 2^-8 ~ 0.4%); through two
  # blocks the error stays a few percent of the output scale.
  scale = float(jnp.max(jnp.abs(eps32)))
  assert float(jnp.max(jnp.abs(eps16 - eps32))) < 0.05 * scale
  vcfg, vparams16 = vae.load_vae_encoder(VAE, jnp.bfloat16)
  mean16, _ = vae.encode(vcfg, vparams16, ref["vae_images"][0])
  scale = float(np.max(np.abs(ref["vae_mean"][0])))
  assert float(jnp.max(jnp.abs(mean16 - ref["vae_mean"][0]))) < 0.05 * scale
