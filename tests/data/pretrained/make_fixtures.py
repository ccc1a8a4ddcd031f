"""Writes the PyTorch-reference fixtures of tests/test_pretrained_*.py (needs torch).

Tiny random diffusers models (float32) saved with ``save_pretrained``, fixed inputs, and
the outputs of diffusers' own forward passes; plus the Diffusion Classifier's class
errors (diffusion-classifier/diffusion-classifier ``eval_prob_dit.py``: for each class
and each timestep of ``range(t_interval // 2, 1000, t_interval)``,
``x_t = sqrt(abar_t) x + sqrt(1 - abar_t) eps`` with one shared ``eps``, error =
mean squared ε error of the ε half of the DiT output, class score = mean over
timesteps). ``abar`` is facebookresearch/DiT's: ``cumprod(1 - linspace(1e-4, 0.02,
1000))`` in float64, indexed then cast to float32 (``_extract_into_tensor``).

Arrays are stored channels last (jgen's layout); PyTorch runs on the NCHW transpose.

Run from the repository root:  python tests/data/pretrained/make_fixtures.py [OUT_DIR]
(default OUT_DIR: this folder).
"""

import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel

HERE = (sys.argv[1] if len(sys.argv) > 1
        else os.path.dirname(os.path.abspath(__file__)))

DIT_CONFIG = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                  out_channels=8, num_layers=2, sample_size=8, patch_size=2,
                  num_embeds_ada_norm=10, norm_num_groups=1)
VAE_CONFIG = dict(in_channels=3, out_channels=3, latent_channels=4,
                  down_block_types=("DownEncoderBlock2D",) * 3,
                  up_block_types=("UpDecoderBlock2D",) * 3,
                  block_out_channels=(8, 16, 16), layers_per_block=1,
                  norm_num_groups=4, sample_size=16)
T_INTERVAL = 100


def perturb(model, gen, scale):
  """Random weights everywhere (diffusers zero-initialises nothing we rely on, but
  a fresh init has tiny biases; this makes every tensor matter)."""
  with torch.no_grad():
    for p in model.parameters():
      p.add_(scale * torch.randn(p.shape, generator=gen))


def nchw(a):
  return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1).astype(np.float32)


def dit_fixture(gen, rng):
  model = DiTTransformer2DModel(**DIT_CONFIG).eval()
  perturb(model, gen, 0.05)
  model.save_pretrained(os.path.join(HERE, "dit_tiny"))
  z = rng.standard_normal((3, 8, 8, 4)).astype(np.float32)
  t = np.array([0, 417, 999], np.int64)
  y = np.array([3, 10, 7], np.int64)  # 10 = the null class
  with torch.no_grad():
    out = model(nchw(z), timestep=torch.from_numpy(t),
                class_labels=torch.from_numpy(y)).sample
  # The Diffusion Classifier's class errors on one latent.
  x = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
  eps = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
  abar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))
  ts = np.arange(T_INTERVAL // 2, 1000, T_INTERVAL)
  errors = np.zeros((len(ts), 10))
  with torch.no_grad():
    for c in range(10):
      for i, step in enumerate(ts):
        a = torch.tensor(np.sqrt(abar[step])).float()
        s = torch.tensor(np.sqrt(1.0 - abar[step])).float()
        x_t = a * nchw(x) + s * nchw(eps)
        o = model(x_t, timestep=torch.tensor([step]),
                  class_labels=torch.tensor([c])).sample
        errors[i, c] = torch.mean((nchw(eps) - o[:, :4]) ** 2).item()
  return dict(dit_z=z, dit_t=t, dit_y=y, dit_out=nhwc(out), ce_x=x[0], ce_eps=eps[0],
              ce_timesteps=ts, ce_errors=errors.astype(np.float32),
              ce_t_interval=np.array(T_INTERVAL))


def vae_fixture(gen, rng):
  model = AutoencoderKL(**VAE_CONFIG).eval()
  perturb(model, gen, 0.02)
  model.save_pretrained(os.path.join(HERE, "vae_tiny"))
  images = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
  with torch.no_grad():
    post = model.encode(nchw(images)).latent_dist
  return dict(vae_images=images, vae_mean=nhwc(post.mean), vae_logvar=nhwc(post.logvar))


def main():
  torch.manual_seed(0)  # diffusers initialises from the global generator
  gen = torch.Generator().manual_seed(0)
  rng = np.random.default_rng(0)
  arrays = {**dit_fixture(gen, rng), **vae_fixture(gen, rng)}
  np.savez(os.path.join(HERE, "reference.npz"), **arrays)
  print({k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
  main()
