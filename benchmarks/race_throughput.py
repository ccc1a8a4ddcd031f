"""Denoiser evaluations per second of ``batch_race`` and ``batch_classify(full)`` on CPU.

Fixed work: the race runs with ``rule="margin", margin=1e9`` (nothing is eliminated,
32 rounds of 8 draws for each of 10 classes), so evaluations per second compare code
versions, not stopping decisions. Denoisers: the exact Gaussian oracle and the flax
``MLPDenoiser`` (width 256, depth 3), D = 64, 32 examples; best of 3 timed calls after
one compile. Run it alternately at two commits (``PYTHONPATH`` at each checkout) to
compare them; it prints one JSON line tagged with the first argument.

Run: ``python -m benchmarks.race_throughput new``.
"""

from __future__ import annotations

import json
import sys
import time

import jax
import numpy as np
from flax import nnx

from jgen import diffusion


def best_of(fn, repeats=3):
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return min(times)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  tag = argv[0] if argv else "this"
  rng = np.random.default_rng(0)
  k, d, n = 10, 64, 32
  means = rng.normal(size=(k, d)).astype(np.float32)
  y = rng.integers(0, k, n)
  x = (means[y] + rng.normal(size=(n, d))).astype(np.float32)
  models = {"oracle": diffusion.gaussian_oracle(means, np.ones((k, d), np.float32)),
            "mlp": diffusion.nnx_denoiser(diffusion.MLPDenoiser(
                (d,), k, width=256, depth=3, rngs=nnx.Rngs(0)))}
  out = {}
  for name, (den, p) in models.items():
    cfg = diffusion.race_config(den, chunk_t=8, max_rounds=32, rule="margin", margin=1e9)
    race = lambda p=p, cfg=cfg: diffusion.batch_race(jax.random.key(0), p, x, k, cfg=cfg)
    evals = float(np.sum(np.asarray(race().num_evals)))
    out[f"race {name}"] = evals / best_of(race)
    full = lambda den=den, p=p: diffusion.batch_classify(
        jax.random.key(0), den, p, x, k, num_t=256).label
    out[f"full {name}"] = n * k * 256 / best_of(full)
  print(json.dumps({tag: out}))


if __name__ == "__main__":
  main()
