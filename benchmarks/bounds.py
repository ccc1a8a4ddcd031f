"""Benchmark: numerical calibration function, one loss, K = 10, 64 values of t.

jgen: ``jgen.bounds.calibration_function`` (all t values and restarts in one vmapped,
jitted call). Peer: the same problem (same parametrisation of (p, h), same starts)
solved per (t, restart) with scipy.optimize L-BFGS-B on a NumPy objective with
finite-difference gradients, on a subset of t values and scaled to 64 (scipy has no
batched mode; the per-t cost is constant). Both report the maximal distance to the
closed-form logistic transform, which is tight, so it measures accuracy.

  python benchmarks/bounds.py [--restarts 24] [--steps 400] [--peer-t 4]
Writes results/benchmarks/bounds.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

jax.config.update("jax_enable_x64", True)

from benchmarks.common import best_time, fmt_table, matmul_flops_per_s  # noqa: E402
from jgen import bounds  # noqa: E402
from jgen.bounds import calibration as _cal  # noqa: E402

K, NUM_T = 10, 64


def _np_objective(theta, t, k):
  """Same parametrisation as jgen: h = (max(u) + a^2, u), p = t e1 + (1-t) q."""
  u, a, v = theta[:k - 1], theta[k - 1], theta[k:]
  h = np.concatenate([[u.max() + a * a], u])
  w = v * v + 1e-12
  q = w / w.sum()
  q[0], q[1] = min(q[0], q[1]), max(q[0], q[1])
  p = (1 - t) * q
  p[1] += t
  log_s = h - (h.max() + np.log(np.exp(h - h.max()).sum()))
  entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0))
  return float(-np.sum(p * log_s) - entropy)


def peer(t_values, starts, k):
  u, a, v = (np.asarray(s) for s in starts)
  best = []
  for t in t_values:
    vals = []
    for r in range(u.shape[0]):
      x0 = np.concatenate([u[r], [a[r]], v[r]])
      res = scipy.optimize.minimize(_np_objective, x0, args=(float(t), k),
                                    method="L-BFGS-B")
      vals.append(res.fun)
    best.append(min(vals))
  return np.array(best)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--restarts", type=int, default=24)
  ap.add_argument("--steps", type=int, default=400)
  ap.add_argument("--peer-t", type=int, default=4)
  args = ap.parse_args()
  t = jnp.linspace(0.0, 1.0, NUM_T)
  key = jax.random.key(0)
  run = lambda: bounds.calibration_function("logistic", t, num_classes=K, key=key,
                                            num_restarts=args.restarts,
                                            num_steps=args.steps)
  t0 = time.perf_counter()
  delta = run().block_until_ready()
  first = time.perf_counter() - t0
  seconds = best_time(run, repeats=3)
  closed = np.asarray(bounds.psi("logistic", t, num_classes=K))
  err = float(np.max(np.abs(np.asarray(delta) - closed)))
  # FLOPs of the compiled solver from XLA's cost analysis.
  z = jax.random.normal(key, (args.restarts, 3 * K + 1), t.dtype)
  compiled = _cal._calibrate.lower(
      (bounds.logistic_loss,), (("logistic", None),), None, K, args.steps, 0.05, 5, z,
      t).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  # XLA counts a loop body once: scale by the step count (an estimate that also
  # multiplies the small work outside the loop).
  flops = float(cost.get("flops", float("nan"))) * args.steps
  roof = matmul_flops_per_s()

  sub = np.linspace(0.0, 1.0, args.peer_t)
  starts = _cal._inits(z, K)
  t0 = time.perf_counter()
  peer_delta = peer(sub, starts, K)
  peer_seconds = (time.perf_counter() - t0) * NUM_T / args.peer_t
  peer_err = float(np.max(np.abs(peer_delta - np.asarray(
      bounds.psi("logistic", jnp.asarray(sub), num_classes=K)))))

  rows = [
      dict(method="jgen calibration_function (jit+vmap)", seconds=seconds,
           first_call_s=first, max_err=err,
           roofline=flops / seconds / roof if np.isfinite(flops) else "n/a"),
      dict(method=f"scipy L-BFGS-B loop (x{NUM_T // args.peer_t} from {args.peer_t} t)",
           seconds=peer_seconds, first_call_s="", max_err=peer_err, roofline=""),
  ]
  rows.append(dict(method="ratio scipy / jgen", seconds=peer_seconds / seconds))
  print(f"logistic loss, K={K}, {NUM_T} t values, {args.restarts} restarts,"
        f" {args.steps} Adam steps (float64); ~{flops:.3g} flops (XLA estimate),"
        f" matmul roofline {roof:.3g} FLOP/s")
  print(fmt_table(rows, ["method", "seconds", "first_call_s", "max_err", "roofline"]))
  os.makedirs("results/benchmarks", exist_ok=True)
  with open("results/benchmarks/bounds.json", "w") as f:
    json.dump(dict(rows=rows, flops=flops, roofline_flops_per_s=roof,
                   settings=vars(args)), f, indent=1, default=str)


if __name__ == "__main__":
  main()
