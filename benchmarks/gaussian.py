"""Gaussian classifiers: jgen vs scikit-learn, fit and predict, same data, same process.

    python -m benchmarks.gaussian            # N=20,000 D=64 K=10 and N=200,000 D=256 K=100
    python -m benchmarks.gaussian --quick    # one tiny size (smoke run)

Data: float32, class means N(0, 1), per-class noise scales in [0.5, 1.5]. "predict" is
class probabilities (jgen: ``exp(log_posterior(log_likelihood))`` under one ``jit``;
scikit-learn: ``predict_proba``). jgen timings exclude compilation (one warm-up call);
scikit-learn needs none. Time is the best of ``repeats`` wall-clock runs.

Peak memory: the growth of the process's resident set (VmHWM - VmRSS before the call,
after resetting the high-water mark through /proc/self/clear_refs) during one call.
It measures both libraries the same way (NumPy heap, XLA's CPU buffers); memory the
allocator had cached from earlier calls is reused and not counted, so small numbers are
lower bounds. The input data (N x D float32) is allocated before and not counted.

Roofline: achieved FLOP/s of the scoring matmuls divided by this machine's float32
matmul rate (``benchmarks.common.matmul_flops_per_s``). FLOPs counted: naive Bayes
``4 N D K`` (two ``[N, D] @ [D, K]`` matmuls); QDA ``2 N K D^2`` (one dense
``[N, D] @ [D, D]`` matmul per class; the factor is triangular, so half of that is
useful work); LDA ``2 N D^2 + 2 N D K``. Elementwise work is not counted. The rate
uses the time of ``log_likelihood`` alone, except for QDA at the large size where the
``predict_proba`` time is reused (a slight underestimate of the rate).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import jgen
from benchmarks import common


def _status_mib(field: str) -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) / 1024
  return float("nan")


def _reset_peak() -> bool:
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def timed(fn, *, repeats: int, warmup: int) -> tuple[float, float]:
  """Best wall time (s) and largest resident-set growth (MiB) over ``repeats`` calls."""
  for _ in range(warmup):
    common.block(fn())
  best, peak = float("inf"), 0.0
  for _ in range(repeats):
    ok = _reset_peak()
    before = _status_mib("VmRSS")
    t0 = time.perf_counter()
    out = common.block(fn())
    best = min(best, time.perf_counter() - t0)
    peak = max(peak, _status_mib("VmHWM") - before if ok else float("nan"))
    del out
  return best, peak


def make_data(n: int, d: int, k: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  means = rng.standard_normal((k, d), dtype=np.float32)
  scales = rng.uniform(0.5, 1.5, size=(k, 1)).astype(np.float32)
  y = (np.arange(n) % k).astype(np.int32)
  rng.shuffle(y)
  x = rng.standard_normal((n, d), dtype=np.float32)
  x *= scales[y]
  x += means[y]
  return x, y


def _jgen_case(name):
  return {"GaussianNB": jgen.gaussian_nb(), "LDA": jgen.lda(), "QDA": jgen.qda()}[name]


def _sklearn_case(name):
  from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
  from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
  from sklearn.naive_bayes import GaussianNB
  return {"GaussianNB": GaussianNB(),
          "LDA": LinearDiscriminantAnalysis(solver="lsqr"),
          "QDA": QuadraticDiscriminantAnalysis()}[name]


def _flops(name, n, d, k):
  return {"GaussianNB": 4 * n * d * k, "QDA": 2 * n * k * d * d,
          "LDA": 2 * n * d * d + 2 * n * d * k}[name]


def run_size(n, d, k, *, repeats, roofline):
  cheap = n * d * k < 1e9
  x, y = make_data(n, d, k)
  xj, yj = jnp.asarray(x), jnp.asarray(y)
  rows = []
  for name in ("GaussianNB", "LDA", "QDA"):
    model, ref = _jgen_case(name), _sklearn_case(name)
    fit_j, peak_fit_j = timed(lambda: model.fit(xj, yj, num_classes=k),
                              repeats=repeats, warmup=1)
    fit_s, peak_fit_s = timed(lambda: ref.fit(x, y), repeats=repeats, warmup=0)
    params = model.fit(xj, yj, num_classes=k)
    proba_fn = jax.jit(lambda p, x: jnp.exp(jgen.log_posterior(
        model.log_likelihood(p, x), p.log_prior)))
    # Compile ahead of time, so no warm-up run of the full-size computation is needed.
    proba = proba_fn.lower(params, xj).compile()
    pred_j, peak_pred_j = timed(lambda: proba(params, xj), repeats=repeats, warmup=0)
    if name == "QDA" and not cheap:
      score_j = pred_j  # one full QDA scoring pass is minutes on 2 cores: reuse it
    else:
      score = jax.jit(model.log_likelihood).lower(params, xj).compile()
      score_j, _ = timed(lambda: score(params, xj), repeats=repeats, warmup=0)
    pred_s, peak_pred_s = timed(lambda: ref.predict_proba(x), repeats=repeats, warmup=0)
    # Same model, same answers: the worst probability difference on 2,000 rows.
    diff = float(np.max(np.abs(np.asarray(proba_fn(params, xj[:2000]))
                               - ref.predict_proba(x[:2000]))))
    rate = _flops(name, n, d, k) / score_j
    size = f"{n}x{d}, K={k}"
    rows.append(dict(model=name, size=size, op="fit", jgen_s=fit_j, sklearn_s=fit_s,
                     speedup=fit_s / fit_j, jgen_peak_mib=peak_fit_j,
                     sklearn_peak_mib=peak_fit_s))
    rows.append(dict(model=name, size=size, op="predict_proba", jgen_s=pred_j,
                     sklearn_s=pred_s, speedup=pred_s / pred_j, jgen_peak_mib=peak_pred_j,
                     sklearn_peak_mib=peak_pred_s, score_s=score_j,
                     score_gflops=rate / 1e9, roofline=rate / roofline,
                     max_abs_proba_diff=diff))
    print(common.fmt_table(rows[-2:], COLUMNS).split("\n", 2)[2], flush=True)
  return rows


COLUMNS = ["model", "size", "op", "jgen_s", "sklearn_s", "speedup", "jgen_peak_mib",
           "sklearn_peak_mib", "score_s", "score_gflops", "roofline",
           "max_abs_proba_diff"]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="one tiny size")
  parser.add_argument("--repeats", type=int, default=None)
  parser.add_argument("--out", default="results/benchmarks/gaussian.json")
  args = parser.parse_args(argv)
  sizes = [(5000, 32, 5)] if args.quick else [(20000, 64, 10), (200000, 256, 100)]
  roofline = common.matmul_flops_per_s()
  numpy_roofline = common.numpy_matmul_flops_per_s()
  print(f"float32 matmul rate: jax {roofline / 1e9:.1f} GFLOP/s, "
        f"numpy {numpy_roofline / 1e9:.1f} GFLOP/s; backend {jax.default_backend()},"
        f" {os.cpu_count()} CPUs")
  print(common.fmt_table([], COLUMNS))
  rows = []
  for n, d, k in sizes:
    repeats = args.repeats or (3 if n * d * k < 1e9 else 1)
    rows += run_size(n, d, k, repeats=repeats, roofline=roofline)
  table = common.fmt_table(rows, COLUMNS)
  print("\n" + table)
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(dict(rows=rows, jax_matmul_flops=roofline, numpy_matmul_flops=numpy_roofline,
                   backend=jax.default_backend(), cpus=os.cpu_count(),
                   jax_version=jax.__version__), f, indent=1)
  return rows


if __name__ == "__main__":
  main()
