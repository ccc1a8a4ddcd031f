"""Diffusion Classifier throughput: jgen's vmapped classes x timesteps vs a class loop.

The peer is the reference implementation's structure (Li et al., ICCV 2023): for each
class, a Python loop over timesteps in batches of 32, each batch one jitted denoiser
call. jgen evaluates every (class, timestep) pair of one example in one vmapped,
jitted call (``strategy="full"``), or the same computation as ``lax.map`` over chunks of
``--chunk-size`` pairs inside one compiled call (``chunk_size=``, cache-friendly on
CPU). All use the same (t, eps) draws and the same denoiser; the benchmark checks
that their errors agree. A second table times the public ``batch_classify`` (``full``)
on a batch of images against the loop run image by image on the same draws (same
labels checked).

Denoisers: (a) the exact Gaussian oracle (elementwise, memory-bound) and (b) the
project's flax NNX residual MLP (``jgen.diffusion.nets.MLPDenoiser``, width 512,
depth 4; a local 4-layer MLP if that module is absent). FLOP/s are counted for the MLP's matmuls only
and compared with this machine's measured float32 matmul rate.

Run: ``python -m benchmarks.diffusion`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.common import best_time, fmt_table, matmul_flops_per_s
from jgen import diffusion

try:  # the project's denoiser module, when present
  from jgen.diffusion import nets as _nets  # noqa: F401
except ImportError:
  _nets = None


class MLPDenoiser(nnx.Module):
  """Minimal class-conditional MLP: ``[z, gamma features] -> width -> ... -> D``.

  4 linear layers (D+16 -> W -> W -> W -> D), SiLU, class embedding added to the
  first hidden layer.
  """

  def __init__(self, dim: int, num_classes: int, width: int = 512, *, rngs):
    self.inp = nnx.Linear(dim + 16, width, rngs=rngs)
    self.embed = nnx.Embed(num_classes, width, rngs=rngs)
    self.h1 = nnx.Linear(width, width, rngs=rngs)
    self.h2 = nnx.Linear(width, width, rngs=rngs)
    self.out = nnx.Linear(width, dim, rngs=rngs)

  def __call__(self, z, gamma, y):
    freqs = jnp.arange(8, dtype=z.dtype)
    ang = (gamma / 20.0) * jnp.exp(freqs)
    h = jnp.concatenate([z, jnp.sin(ang), jnp.cos(ang)])
    h = jax.nn.silu(self.inp(h) + self.embed(y))
    h = jax.nn.silu(self.h1(h))
    h = jax.nn.silu(self.h2(h))
    return self.out(h)


def _matmul_flops(model) -> int:
  """Matmul FLOPs per example: every nnx.Linear is applied once per example."""
  return sum(2 * m.in_features * m.out_features
             for _, m in nnx.iter_graph(model) if isinstance(m, nnx.Linear))


def mlp_eps_fn(dim, num_classes, width=512):
  """The project's residual MLP denoiser (width 512, 4 layers), else the local one."""
  if _nets is not None:
    model = _nets.MLPDenoiser((dim,), num_classes, width=width, depth=4,
                              rngs=nnx.Rngs(0))
    return diffusion.nnx_denoiser(model), _matmul_flops(model)
  model = MLPDenoiser(dim, num_classes, width, rngs=nnx.Rngs(0))
  return diffusion.nnx_denoiser(model), _matmul_flops(model)


def oracle_eps_fn(dim, num_classes):
  rng = np.random.default_rng(0)
  means = rng.normal(size=(num_classes, dim)).astype(np.float32)
  variances = np.exp(0.3 * rng.normal(size=(num_classes, dim))).astype(np.float32)
  return diffusion.gaussian_oracle(means, variances), None  # (denoiser, params)


def loop_classifier(model, schedule, batch=32):
  """The peer: per class, jitted batch-of-32 calls over the timesteps."""
  den, params = model

  @jax.jit
  def batch_errors(params, x, t, eps, y):
    return jax.vmap(lambda ti, ei: diffusion.diffusion_term(
        den, params, x, y, ti, ei, schedule=schedule))(t, eps)

  def run(x, t, eps, num_classes):
    rows = []
    for c in range(num_classes):
      y = jnp.asarray(c, jnp.int32)
      rows.append(jnp.concatenate([batch_errors(params, x, t[i:i + batch], eps[i:i + batch], y)
                                   for i in range(0, t.shape[0], batch)]))
    return jnp.stack(rows)

  return run


def bench_one(name, model, flops, dim, num_classes, num_t, roofline, repeats,
              chunk_size, n_images=2):
  schedule = diffusion.DEFAULT_SCHEDULE
  key = jax.random.key(1)
  x = jax.random.normal(jax.random.key(2), (dim,), jnp.float32)
  t, eps = diffusion.draw(key, num_t, x, schedule)
  classes = jnp.arange(num_classes, dtype=jnp.int32)
  den, params = model
  # jgen: the automatic vectorisation (chunk_size=None: sized from the shapes and the
  # cache budget); "chunked": a fixed --chunk-size.
  # params are traced arguments (never closed over: DESIGN.md), bound below.
  vmapped = functools.partial(jax.jit(lambda p, x, t, eps: diffusion.class_errors_at(
      den, p, x, t, eps, classes, schedule=schedule)), params)
  chunked = functools.partial(jax.jit(lambda p, x, t, eps: diffusion.class_errors_at(
      den, p, x, t, eps, classes, schedule=schedule, chunk_size=chunk_size)), params)
  loop = loop_classifier(model, schedule)
  a = np.asarray(vmapped(x, t, eps))
  b = np.asarray(loop(x, t, eps, num_classes))
  np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-3)   # same computation
  np.testing.assert_allclose(np.asarray(chunked(x, t, eps)), a, rtol=2e-3, atol=1e-3)
  t_vmap = best_time(lambda: vmapped(x, t, eps), repeats=repeats)
  t_chunk = best_time(lambda: chunked(x, t, eps), repeats=repeats)
  t_loop = best_time(lambda: loop(x, t, eps, num_classes), repeats=repeats)
  evals = num_classes * num_t
  # The public entry point on a batch of images against the loop run image by image
  # on the same draws (batch_classify's row n uses jax.random.split(key, N)[n]).
  xs = jax.random.normal(jax.random.key(3), (n_images, dim), jnp.float32)
  keys = jax.random.split(key, n_images)
  draws = [diffusion.draw(keys[i], num_t, xs[i], schedule) for i in range(n_images)]
  classify = lambda: diffusion.batch_classify(  # noqa: E731
      key, den, params, xs, num_classes, strategy="full", num_t=num_t,
      schedule=schedule).label
  loop_labels = lambda: [jnp.argmin(loop(xs[i], *draws[i], num_classes).mean(axis=1))  # noqa: E731
                         for i in range(n_images)]
  np.testing.assert_array_equal(np.asarray(classify()),
                                np.asarray(jnp.stack(loop_labels())))
  t_bc = best_time(classify, repeats=repeats)
  t_bloop = best_time(loop_labels, repeats=repeats)
  row = {
      "denoiser": name, "classes": num_classes, "num_t": num_t, "evals": evals,
      "jgen evals/s": evals / t_vmap, "jgen chunked evals/s": evals / t_chunk,
      "loop evals/s": evals / t_loop,
      "speed-up": t_loop / t_vmap, "speed-up chunked": t_loop / t_chunk,
      "jgen s": t_vmap, "jgen chunked s": t_chunk, "loop s": t_loop,
      "batch_classify img/s": n_images / t_bc, "loop img/s": n_images / t_bloop,
      "batch_classify speed-up": t_bloop / t_bc,
  }
  if flops is not None:
    row["MFLOP/eval"] = flops / 1e6
    row["jgen roofline"] = evals * flops / t_vmap / roofline
    row["chunked roofline"] = evals * flops / t_chunk / roofline
    row["loop roofline"] = evals * flops / t_loop / roofline
  return row


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--quick", action="store_true", help="tiny smoke run")
  parser.add_argument("--dim", type=int, default=256)
  parser.add_argument("--num-t", type=int, default=256)
  parser.add_argument("--chunk-size", type=int, default=64,
                      help="(class, t) pairs per vectorised call, chunked path")
  parser.add_argument("--out", default="results/benchmarks/diffusion.json")
  args = parser.parse_args(argv)
  dim, num_t = (16, 32) if args.quick else (args.dim, args.num_t)
  class_counts = (10,) if args.quick else (10, 100)
  repeats = 1 if args.quick else 5
  n_mm = 512 if args.quick else 2048
  # On a shared machine the matmul rate drifts: measure it before every row and keep
  # the best (the machine's capability), then express every row against it.
  roofline = matmul_flops_per_s(n_mm)
  rows = []
  for num_classes in class_counts:
    for name, make in (("oracle", oracle_eps_fn), ("mlp-512x4", mlp_eps_fn)):
      model, flops = make(dim, num_classes)
      t0 = time.perf_counter()
      roofline = max(roofline, matmul_flops_per_s(n_mm))
      rows.append(bench_one(name, model, flops, dim, num_classes, num_t, 1.0,
                            repeats, args.chunk_size))
      print(f"  {name} K={num_classes}: {time.perf_counter() - t0:.1f}s", flush=True)
  for row in rows:
    for k in ("jgen roofline", "chunked roofline", "loop roofline"):
      if k in row:
        row[k] /= roofline
  columns = ["denoiser", "classes", "evals", "jgen evals/s", "jgen chunked evals/s",
             "loop evals/s", "speed-up", "speed-up chunked", "MFLOP/eval",
             "jgen roofline", "chunked roofline", "loop roofline"]
  columns2 = ["denoiser", "classes", "evals", "batch_classify img/s", "loop img/s",
              "batch_classify speed-up"]
  print(f"\nmatmul roofline: {roofline / 1e9:.1f} GFLOP/s (float32, {jax.devices()[0]})")
  print(f"D = {dim}; num_t = {num_t}; chunk_size = {args.chunk_size}; denoiser: "
        f"{'jgen.diffusion.nets' if _nets is not None else 'benchmark-local MLPDenoiser'}\n")
  print(fmt_table(rows, columns))
  print("\nbatch_classify (strategy full) on 2 images vs the loop image by image\n")
  print(fmt_table(rows, columns2))
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"roofline_flops_per_s": roofline, "dim": dim, "rows": rows,
               "device": str(jax.devices()[0])}, f, indent=2)
  return rows


if __name__ == "__main__":
  main()
