"""Pretrained DiT: size of DiT-XL/2 as loaded, and DiT-S/2 evaluations/s vs PyTorch.

  python benchmarks/pretrained.py

1. Parameter count and bytes of ``facebook/DiT-XL-2-256`` (transformer) from its
   config via ``jax.eval_shape`` (no weights). diffusers' layout stores a copy of the
   timestep/class embedder in every block (28 copies); the original DiT (Peebles & Xie,
   2023: 675 M) has one, so both counts are printed.
2. Evaluations (one latent, one timestep, one class) per second of a random DiT-S/2
   (6 heads x 64, 12 layers, 32 x 32 x 4 latents) on this machine's CPU: jgen
   (``jit(vmap(apply))`` over a batch of classes) against diffusers' PyTorch forward on
   the same weights and inputs, in the same process.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import fmt_table  # noqa: E402
from jgen.diffusion import pretrained as pt  # noqa: E402

XL2 = dict(num_attention_heads=16, attention_head_dim=72, in_channels=4,
           out_channels=8, num_layers=28, sample_size=32, patch_size=2,
           num_embeds_ada_norm=1000)
S2 = dict(XL2, num_attention_heads=6, attention_head_dim=64, num_layers=12)


def size_rows():
  rows = []
  for dtype in (jnp.float32, jnp.bfloat16):
    shapes = pt.dit_param_shapes(pt.dit_config(XL2), dtype)
    leaves = jax.tree_util.tree_leaves_with_path(shapes)
    count = sum(int(np.prod(l.shape)) for _, l in leaves)
    copies = sum(int(np.prod(l.shape)) for p, l in leaves
                 if "emb" in str(p) and "'transformer_blocks'" in str(p)
                 and "key=0)" not in str(p))
    size = jnp.dtype(dtype).itemsize
    rows.append({"dtype": jnp.dtype(dtype).name, "params (diffusers layout)": count,
                 "GB": count * size / 1e9, "params (one embedder)": count - copies,
                 "GB (one embedder)": (count - copies) * size / 1e9})
  return rows


def timed(fn, repeats):
  fn()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return best


def speed_rows(batch=4, repeats=3):
  import torch
  from diffusers import DiTTransformer2DModel
  torch.manual_seed(0)
  model = DiTTransformer2DModel(**S2).eval()
  with tempfile.TemporaryDirectory() as tmp:
    model.save_pretrained(tmp)
    config, params = pt.load_dit(tmp)
  apply = pt.dit_denoiser(config).apply
  rng = np.random.default_rng(0)
  z = rng.standard_normal((batch, 32, 32, 4)).astype(np.float32)
  y = np.arange(batch)
  gamma = np.asarray(pt.reference_gammas(1))[500]
  fn = jax.jit(jax.vmap(apply, in_axes=(None, 0, None, 0)))
  zj, yj = jnp.asarray(z), jnp.asarray(y)
  jax_s = timed(lambda: fn(params, zj, gamma, yj).block_until_ready(), repeats)
  zt = torch.from_numpy(z.transpose(0, 3, 1, 2).copy())
  t, yt = torch.full((batch,), 500), torch.from_numpy(y)
  with torch.inference_mode():
    torch_s = timed(lambda: model(zt, timestep=t, class_labels=yt).sample, repeats)
    diff = np.abs(np.asarray(fn(params, zj, gamma, yj))
                  - model(zt, timestep=t, class_labels=yt).sample[:, :4].numpy()
                  .transpose(0, 2, 3, 1)).max()
  return [{"model": "DiT-S/2 (random)", "batch": batch,
           "jgen evals/s": batch / jax_s, "PyTorch evals/s": batch / torch_s,
           "jgen / PyTorch": torch_s / jax_s, "max |diff|": float(diff),
           "torch threads": torch.get_num_threads()}]


def main():
  print("DiT-XL/2 (facebook/DiT-XL-2-256 transformer config) as loaded:")
  print(fmt_table(size_rows(), ["dtype", "params (diffusers layout)", "GB",
                                "params (one embedder)", "GB (one embedder)"]))
  print(f"\nDiT-S/2 forward on {jax.devices()[0].platform.upper()}:")
  print(fmt_table(speed_rows(), ["model", "batch", "jgen evals/s", "PyTorch evals/s",
                                 "jgen / PyTorch", "max |diff|", "torch threads"]))


if __name__ == "__main__":
  main()
