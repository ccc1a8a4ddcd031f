"""Scores and fits with missing features against the complete-data path, same process.

    python -m benchmarks.missing            # M = 2048 rows, D = 64, K = 10, 30% missing
    python -m benchmarks.missing --quick    # M = 256, D = 16

The peer of each masked operation is the same family's complete-data operation on the
same rows (``log_likelihood(params, x)`` and ``fit``); the masked scores are exact
marginals, so naive Bayes costs the same matmuls plus one, while LDA and QDA factor
one ``D x D`` block per example (per example and class for QDA). "roofline" is the
fraction of this machine's float32 matmul rate reached by the masked operation's
nominal FLOPs (Cholesky ``D^3 / 3``, triangular solves ``D^2`` per right-hand side).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jgen
from benchmarks.common import best_time
from benchmarks.common import fmt_table
from benchmarks.common import matmul_flops_per_s


def _flops(name: str, m: int, d: int, k: int) -> float:
  if name == "gaussian_nb":
    return 6.0 * m * d * k
  if name == "lda":
    return m * (d**3 / 3 + k * d * d)
  return m * k * (d**3 / 3 + d * d)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--em-iter", type=int, default=10)
  args = parser.parse_args(argv)
  m, d, k = (256, 16, 4) if args.quick else (2048, 64, 10)
  rng = np.random.default_rng(0)
  y = rng.integers(0, k, m).astype(np.int32)
  x = (rng.normal(size=(m, d)) + np.eye(k, d)[y] * 2).astype(np.float32)
  o = rng.random((m, d)) >= 0.3
  xj, yj, oj = jnp.asarray(x), jnp.asarray(y), jnp.asarray(o)
  x0 = jnp.asarray(np.where(o, x, 0.0))
  rate = matmul_flops_per_s()
  rows = []
  for model in (jgen.gaussian_nb(), jgen.lda(0.1), jgen.qda(0.1)):
    params = model.fit(xj, yj, num_classes=k)
    full = best_time(lambda: model.log_likelihood(params, xj), repeats=args.repeats)
    masked = best_time(lambda: model.log_likelihood(params, x0, observed=oj),
                       repeats=args.repeats)
    rows.append({"model": model.name, "op": "log_likelihood", "size": f"{m}x{d}, K={k}",
                 "complete s": full, "missing s": masked, "ratio": masked / full,
                 "roofline": _flops(model.name, m, d, k) / masked / rate})
    fit_full = best_time(lambda: model.fit(xj, yj, num_classes=k), repeats=args.repeats)
    fit_miss = best_time(lambda: jgen.gaussian.fit_missing(
        model, x0, yj, oj, num_classes=k, max_iter=args.em_iter, tol=0.0).params,
                         repeats=max(1, args.repeats // 2))
    op = "fit" if model.name == "gaussian_nb" else f"fit ({args.em_iter} EM iter.)"
    # One EM iteration = one E-step (per-row Cholesky + D right-hand sides) + M-step.
    flops = (_flops(model.name, m, d, k) if model.name == "gaussian_nb"
             else (args.em_iter + 1) * m * (d**3 / 3 + 3 * d**3))
    rows.append({"model": model.name, "op": op, "size": f"{m}x{d}, K={k}",
                 "complete s": fit_full, "missing s": fit_miss, "ratio": fit_miss / fit_full,
                 "roofline": flops / fit_miss / rate})
  print(f"backend: {jax.default_backend()}, float32 matmul rate {rate / 1e9:.1f} GFLOP/s,"
        " 30% of entries missing at random")
  print(fmt_table(rows, ["model", "op", "size", "complete s", "missing s", "ratio",
                         "roofline"]))


if __name__ == "__main__":
  main()
