"""Live re-run of the PyTorch comparison (skipped unless torch and diffusers import).

Regenerates the fixtures with tests/data/pretrained/make_fixtures.py into a temporary
folder (fresh diffusers models and forward passes) and checks jgen against them.
"""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from jgen.diffusion import pretrained as pt  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(__file__), "data", "pretrained",
                      "make_fixtures.py")


@pytest.mark.slow
def test_live_diffusers_comparison(tmp_path):
  subprocess.run([sys.executable, SCRIPT, str(tmp_path)], check=True,
                 capture_output=True, timeout=300)
  ref = np.load(tmp_path / "reference.npz")
  config, params = pt.load_dit(str(tmp_path / "dit_tiny"))
  den = pt.dit_denoiser(config)
  errors = pt.class_eps_errors(den, params, ref["ce_x"], ref["ce_eps"],
                               pt.reference_gammas(int(ref["ce_t_interval"])),
                               jnp.arange(10))
  np.testing.assert_allclose(errors, ref["ce_errors"], atol=1e-4, rtol=0)
  vcfg, vparams = pt.load_vae_encoder(str(tmp_path / "vae_tiny"))
  mean, logvar = pt.encode(vcfg, vparams, ref["vae_images"][0])
  np.testing.assert_allclose(mean, ref["vae_mean"][0], atol=1e-4, rtol=0)
  np.testing.assert_allclose(logvar, ref["vae_logvar"][0], atol=1e-4, rtol=0)
