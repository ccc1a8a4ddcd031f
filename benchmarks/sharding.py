"""Per-device memory of class-sharded scoring vs the number of class shards.

    python -m benchmarks.sharding            # K=1000 classes, D=64, N=1024, 1/2/4/8 shards
    python -m benchmarks.sharding --quick    # K=100, D=16, N=128 (smoke run)

The 8 devices are XLA's virtual CPU devices (``--xla_force_host_platform_device_count``,
set below before JAX starts), so memory per device is real and exact, while time only
shows overheads: the virtual devices share this machine's cores.

Workloads (float32), each scored with the class axis split over ``classes`` shards:

* QDA: ``class_sharded_log_likelihood`` with per-class precision factors ``[K, D, D]``
  (the largest per-class parameters); FLOPs ``2 N K D^2``.
* Diffusion: ``sharded_class_errors(key, denoiser, params, x, K, mesh, ...)`` for one
  example, ``num_t`` shared draws, the exact Gaussian-oracle denoiser (its ``[K, D]``
  parameters are traced data, replicated on every device); per class the
  ``[num_t, D]`` noisy inputs and predictions.

Columns, all per device (the maximum over devices; shards are equal up to padding):

* ``params``: bytes of the per-class parameters held (QDA: means, factors, priors).
* ``scores``: bytes of the output shard (``[N, K/S]`` log-likelihoods or
  ``[K/S, num_t]`` errors).
* ``temp``: XLA's compiled scratch buffers (``memory_analysis().temp_size_in_bytes``) of
  the per-device program.
* ``live``: growth of the device's live JAX buffers (``jax.live_arrays()``, summed over
  addressable shards) from before placing the workload's inputs to after the call:
  the sharded parameters, the replicated ``x`` and the output together.
* ``ratio``: ``live`` relative to 1 shard (the single-device peer in this process);
  ``1/S`` would be perfect scaling. Replicated inputs (``x [N, D]``) do not shrink.
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()

import argparse  # noqa: E402
import collections  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from benchmarks import common  # noqa: E402
import jgen  # noqa: E402
from jgen import diffusion  # noqa: E402

SHARDS = (1, 2, 4, 8)
MIB = 2.0**20


def _per_device(arrays) -> dict:
  out = collections.Counter()
  for a in arrays:
    for s in a.addressable_shards:
      out[s.device.id] += s.data.nbytes
  return out


def _live() -> collections.Counter:
  gc.collect()
  return _per_device(jax.live_arrays())


def _growth(before: collections.Counter) -> float:
  """Largest per-device growth of live buffers since ``before`` (MiB)."""
  after = _live()
  return max((after[dev] - before[dev] for dev in after), default=0) / MIB


def _qda_problem(k, d, n):
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(k), 4)  # 4 examples per class: enough for QDA(reg 0.5)
  x = (rng.normal(size=(k, d))[y] + rng.normal(size=(y.size, d))).astype(np.float32)
  model = jgen.qda(reg_param=0.5)
  params = model.fit(x, y, num_classes=k)
  x_test = rng.normal(size=(n, d)).astype(np.float32)
  return model, params, x_test


def _qda_row(model, params, x, shards, rate):
  k = params.log_prior.shape[0]
  n, d = x.shape
  mesh = jgen.parallel.make_mesh(data=1, classes=shards)
  k_pad = jgen.parallel.padded_num_classes(k, mesh)
  per, shared, layout, _ = jgen.parallel.classifier._split(model, params)
  before = _live()
  # Hold the parameters sharded, as a class-sharded deployment would.
  placed = [jax.device_put(jgen.parallel.pad_classes(v, k_pad, axis=0),
                           NamedSharding(mesh, P(jgen.parallel.CLASSES))) for v in per]
  x_rep = jax.device_put(x, NamedSharding(mesh, P()))
  run = lambda: jgen.parallel.class_sharded_log_likelihood(  # noqa: E731
      model, params, x_rep, mesh)
  out = common.block(run())
  live = _growth(before)
  seconds = common.best_time(run, repeats=3)
  scorer = jgen.parallel.classifier._Scorer(model, layout)
  compiled = jgen.parallel.collectives._class_sharded_scores.lower(
      scorer, placed, (shared, None), x_rep, k, mesh, -np.inf).compile()
  row = dict(workload="QDA scores", shards=shards,
             params=max(_per_device(placed).values()) / MIB,
             scores=max(_per_device([out]).values()) / MIB,
             temp=compiled.memory_analysis().temp_size_in_bytes / MIB, live=live,
             ms=1e3 * seconds, roofline=2.0 * n * k * d * d / seconds / rate)
  del out, placed, x_rep
  return row


def _diffusion_row(k, d, num_t, shards):
  rng = np.random.default_rng(1)
  means = rng.normal(size=(k, d)).astype(np.float32)
  variances = np.exp(0.3 * rng.normal(size=(k, d))).astype(np.float32)
  den, params = diffusion.gaussian_oracle(means, variances)
  x = jnp.asarray(means[3] + rng.normal(size=d).astype(np.float32))
  mesh = jgen.parallel.make_mesh(data=1, classes=shards)
  key = jax.random.key(0)
  schedule = diffusion.linear_schedule()
  errors = lambda kk, p, xx: jgen.diffusion.sharded_class_errors(  # noqa: E731
      kk, den, p, xx, k, mesh, num_t=num_t, schedule=schedule)
  run = lambda: errors(key, params, x)  # noqa: E731
  before = _live()
  out = common.block(run())
  live = _growth(before)
  seconds = common.best_time(run, repeats=3)
  # The whole call as one program (the entry point's checks are trace-safe).
  compiled = jax.jit(errors).lower(key, params, x).compile()
  row = dict(workload="diffusion errors", shards=shards,
             params=max(_per_device(jax.tree.leaves(params)).values()) / MIB,
             scores=max(_per_device([out]).values()) / MIB,
             temp=compiled.memory_analysis().temp_size_in_bytes / MIB, live=live,
             ms=1e3 * seconds, roofline=float("nan"))
  del out
  return row


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args()
  k, d, n, num_t = (100, 16, 128, 16) if args.quick else (1000, 64, 1024, 64)
  rate = common.matmul_flops_per_s(1024 if args.quick else 2048)
  model, params, x = _qda_problem(k, d, n)
  rows = [_qda_row(model, params, x, s, rate) for s in SHARDS]
  rows += [_diffusion_row(k, d, num_t, s) for s in SHARDS]
  for r in rows:
    base = next(b for b in rows if b["workload"] == r["workload"] and b["shards"] == 1)
    r["ratio"] = r["live"] / base["live"]
    r["ideal"] = 1.0 / r["shards"]
    r["temp_ratio"] = r["temp"] / base["temp"] if base["temp"] else float("nan")
  cols = ["workload", "shards", "params", "scores", "temp", "live", "ratio", "ideal",
          "temp_ratio", "ms", "roofline"]
  print(f"K={k} classes, D={d}, N={n} test rows (QDA), num_t={num_t} (diffusion);"
        f" MiB per device; matmul rate {rate / 1e9:.1f} GFLOP/s\n")
  print(common.fmt_table(rows, cols))
  os.makedirs("results/benchmarks", exist_ok=True)
  with open("results/benchmarks/sharding.json", "w") as f:
    json.dump(dict(K=k, D=d, N=n, num_t=num_t, matmul_flops_per_s=rate, rows=rows),
              f, indent=1)


if __name__ == "__main__":
  main()
