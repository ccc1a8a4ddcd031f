"""NB vs LR simulation grid and the logistic fit alone: jgen vs scikit-learn/NumPy.

    python benchmarks/simulation.py            # grid K=2, n in {50, 100}; LR fit N=50k
    python benchmarks/simulation.py --small    # a smaller LR problem (N=5k, D=128)

1. Grid: jgen's search (``jgen.simulate.find_m_star``, naive Bayes then logistic
   regression, 5 repetitions, 10^4 test points) end to end, compilation included. The
   peer evaluates exactly the same (m, repetition) training sets and test set with
   scikit-learn ``LogisticRegression(C=1, tol=1e-4, max_iter=1000)`` and a NumPy pooled
   naive Bayes, in the same process.
2. LR fit alone on N x D data with K classes: jgen ``fit`` (L-BFGS, float32 and float64)
   vs scikit-learn lbfgs (float64), both at tol 1e-4; objective reported for each.

Writes results/benchmarks/simulation.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)  # for the float64 rows; data stay float32

from benchmarks.common import best_time, fmt_table, matmul_flops_per_s
import jgen
from jgen import logistic
from jgen import simulate


def numpy_pooled_nb(x, y, k, x_test):
  means = np.stack([x[y == c].mean(0) for c in range(k)])
  var = ((x - means[y]) ** 2).mean(0) + 1e-9
  prior = np.log(np.bincount(y, minlength=k) / len(y))
  ll = -0.5 * (((x_test[:, None, :] - means[None]) ** 2) / var).sum(-1)
  return np.argmax(ll + prior, -1)


def peer_grid(key, mixture, sizes_by_model, num_reps, num_test):
  """The same training sets and test set, fitted by scikit-learn / NumPy."""
  from sklearn.linear_model import LogisticRegression
  test_key, train_key = jax.random.split(key)
  x_test, y_test = map(np.asarray, simulate.sample(test_key, mixture, num_test))
  k = mixture.means.shape[0]
  rep_keys = jax.random.split(train_key, num_reps)
  m_max = max(max(s) for s in sizes_by_model.values())
  streams = [tuple(map(np.asarray, simulate.sample(r, mixture, m_max))) for r in rep_keys]
  out = {}
  for model, sizes in sizes_by_model.items():
    errs = []
    for m in sizes:
      row = []
      for x, y in streams:
        xm, ym = x[:m], y[:m]
        if model == "nb":
          pred = numpy_pooled_nb(xm, ym, k, x_test)
        else:
          with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = LogisticRegression(C=1.0, tol=1e-4, max_iter=1000).fit(xm, ym).predict(
                x_test)
        row.append(np.mean(pred != y_test))
      errs.append(row)
    out[model] = np.array(errs)
  return out


def grid_bench(ns, k=2, reps=5, num_test=10_000):
  rows = []
  for n in ns:
    mixture = simulate.zheng_mixture(k, n)
    target = simulate.bayes_error(mixture) + 0.01
    grid = simulate.size_grid(k, n, 20 * n)
    key = jax.random.key(n)
    t0 = time.perf_counter()
    res = {m: simulate.find_m_star(key, mixture, model=m, target=target, grid=grid,
                                   num_reps=reps, num_test=num_test,
                                   strategy="scan" if m == "nb" else "bisect")
           for m in ("nb", "lr")}
    t_jgen = time.perf_counter() - t0
    t0 = time.perf_counter()  # again, compiled: the steady-state cost of more cells
    for m in ("nb", "lr"):
      simulate.find_m_star(key, mixture, model=m, target=target, grid=grid,
                           num_reps=reps, num_test=num_test,
                           strategy="scan" if m == "nb" else "bisect")
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    peer = peer_grid(key, mixture, {m: r.sizes.tolist() for m, r in res.items()}, reps,
                     num_test)
    t_peer = time.perf_counter() - t0
    diff = max(float(np.abs(peer[m].mean(1) - res[m].errors.mean(1)).max())
               for m in res)
    rows.append(dict(K=k, n=n, fits=sum(r.errors.size for r in res.values()),
                     jgen_s=t_jgen, jgen_warm_s=t_warm, peer_s=t_peer,
                     speedup=t_peer / t_jgen, speedup_warm=t_peer / t_warm,
                     max_mean_error_diff=diff,
                     m_star_nb=res["nb"].m_star, m_star_lr=res["lr"].m_star))
  return rows


def lr_bench(n, d, k, flops, tol=1e-4):
  rng = np.random.default_rng(0)
  y = rng.integers(0, k, n).astype(np.int32)
  centers = rng.normal(size=(k, d)) * 0.3
  x = (centers[y] + rng.normal(size=(n, d))).astype(np.float64)
  from sklearn.linear_model import LogisticRegression
  rows = []
  lr = logistic.logistic_regression(1.0, tol=tol, max_iter=1000)
  sk_holder = {}

  def sk_fit():
    sk_holder["m"] = LogisticRegression(C=1.0, tol=tol, max_iter=1000).fit(x, y)
  t_sk = best_time(sk_fit, repeats=1, warmup=0)
  sk = sk_holder["m"]
  sk_params = logistic.LogisticParams(jnp.asarray(sk.coef_.T), jnp.asarray(sk.intercept_))
  obj_sk = float(jgen.logistic.objective(lr, sk_params, x, y))
  for dtype in (np.float32, np.float64):
    xj, yj = jnp.asarray(x.astype(dtype)), jnp.asarray(y)
    holder = {}

    def fit():
      holder["p"] = lr.fit(xj, yj, num_classes=k)
      return holder["p"].weights
    t = best_time(fit, repeats=2, warmup=1)
    p = holder["p"]
    obj = float(jgen.logistic.objective(lr, logistic.LogisticParams(p.weights.astype(jnp.float64),
                                                       p.bias.astype(jnp.float64)), x, y))
    iters = int(p.info.num_iter)
    # Each L-BFGS iteration costs >= 2 passes of [N, D] @ [D, K] (value and gradient).
    frac = 4.0 * n * d * k * iters / t / flops
    rows.append(dict(solver=f"jgen lbfgs {np.dtype(dtype).name}", seconds=t,
                     iterations=iters, objective=obj, rel_obj_vs_sklearn=obj / obj_sk - 1,
                     speedup_vs_sklearn=t_sk / t, roofline=frac))
  rows.append(dict(solver="sklearn lbfgs float64", seconds=t_sk,
                   iterations=int(sk.n_iter_[0]), objective=obj_sk, rel_obj_vs_sklearn=0.0,
                   speedup_vs_sklearn=1.0, roofline=float("nan")))
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--small", action="store_true")
  p.add_argument("--ns", type=int, nargs="+", default=[50, 100])
  p.add_argument("--tol", type=float, default=1e-4, help="LR-alone tolerance (both)")
  p.add_argument("--skip-grid", action="store_true")
  p.add_argument("--out", default="results/benchmarks")
  args = p.parse_args(argv)
  flops = matmul_flops_per_s()
  grid = [] if args.skip_grid else grid_bench(args.ns)
  print("\nGrid (K=2, 5 reps, 10^4 test points; jgen time includes compilation)\n")
  print(fmt_table(grid, ["K", "n", "fits", "jgen_s", "jgen_warm_s", "peer_s", "speedup",
                         "speedup_warm",
                         "max_mean_error_diff", "m_star_nb", "m_star_lr"]))
  shape = (5_000, 128, 10) if args.small else (50_000, 512, 10)
  lr = lr_bench(*shape, flops, tol=args.tol)
  print(f"\nLR fit alone, N={shape[0]}, D={shape[1]}, K={shape[2]}, C=1, tol={args.tol}"
        f" (matmul roofline {flops / 1e9:.1f} GFLOP/s)\n")
  print(fmt_table(lr, ["solver", "seconds", "iterations", "objective",
                       "rel_obj_vs_sklearn", "speedup_vs_sklearn", "roofline"]))
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "simulation.json").write_text(json.dumps(dict(
      grid=grid, lr=lr, lr_shape=shape, matmul_flops_per_s=flops), indent=1))


if __name__ == "__main__":
  main()
