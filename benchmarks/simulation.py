"""The NB-vs-LR simulation grid and its repetitions solver: jgen vs scikit-learn/NumPy.

    python benchmarks/simulation.py --results docs/figures/nb_vs_lr/results.json
    python benchmarks/simulation.py --results ... --ratio-cell 7 1000 3000

1. Grid, end to end. jgen's time is the wall time of ``experiments/nb_vs_lr.py --full``
   (compilation included) recorded per search in its results file. The peer fits the
   same training sets (the same streams, sizes and repetitions) with scikit-learn
   ``LogisticRegression(C=1, tol=1e-4, max_iter=1000)`` and a NumPy pooled naive Bayes.
   Naive Bayes is timed on every fit. A full scikit-learn pass over the logistic
   searches would take hours on 2 cores, so its time is *estimated*: per search, the
   fits at the smallest and the largest evaluated size (repetition 0) are timed, and
   the cost of the others is interpolated linearly in m, times the repetitions.
2. The repetitions solver: ``jit(vmap(fit))`` over R repetitions against R sequential
   calls of ``jit(fit)`` (compiled, warm) on one cell; the ratio must be >= 1.

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

from benchmarks.common import fmt_table
from jgen import simulate
from jgen.logistic.batched import batched_logistic_regression


def numpy_pooled_nb(x, y, k, x_test):
  means = np.stack([x[y == c].mean(0) for c in range(k)])
  var = ((x - means[y]) ** 2).mean(0) + 1e-9
  prior = np.log(np.bincount(y, minlength=k) / len(y))
  ll = -0.5 * (((x_test[:, None, :] - means[None]) ** 2) / var).sum(-1)
  return np.argmax(ll + prior, -1)


def sklearn_fit_seconds(x, y):
  from sklearn.linear_model import LogisticRegression
  t0 = time.perf_counter()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    LogisticRegression(C=1.0, tol=1e-4, max_iter=1000).fit(x, y)
  return time.perf_counter() - t0


def peer_search(rec, cfg):
  """Peer seconds (measured or estimated) for one search record of the grid."""
  k, n = rec["K"], rec["n"]
  mixture = simulate.pad_mixture(simulate.zheng_mixture(k, n), cfg["pad_dims"][str(n)])
  key = jax.random.fold_in(jax.random.key(cfg["seed"]), 100_000 * k + n)
  test_key, train_key = jax.random.split(key)
  sizes = rec["curve"]["m"]
  reps = cfg["reps"]
  xs, ys = (np.asarray(a) for a in simulate.engine.sample_streams(
      train_key, mixture, reps, max(sizes)))
  if rec["model"] == "nb":
    x_test = np.asarray(simulate.sample(test_key, mixture, cfg["num_test"])[0])
    t0 = time.perf_counter()
    for m in sizes:
      for r in range(reps):
        numpy_pooled_nb(xs[r, :m], ys[r, :m], k, x_test)
    return time.perf_counter() - t0, "measured"
  lo, hi = min(sizes), max(sizes)
  t_lo = sklearn_fit_seconds(xs[0, :lo], ys[0, :lo])
  t_hi = t_lo if hi == lo else sklearn_fit_seconds(xs[0, :hi], ys[0, :hi])
  per = [t_lo + (t_hi - t_lo) * (m - lo) / max(hi - lo, 1) for m in sizes]
  return reps * float(np.sum(per)), "estimated"


def _config(results):
  """The run's settings; a partial results file holds only the records, so the
  experiment's defaults (and its padding rule: n padded to the largest n within 2x)
  are filled in."""
  cfg = dict(seed=0, reps=5, num_test=10_000, **results["config"])
  if "pad_dims" not in cfg:
    ns = sorted({r["n"] for r in results["records"]}, reverse=True)
    pads, rest = {}, ns
    while rest:
      top = rest[0]
      pads.update({str(n): top for n in rest if 2 * n >= top})
      rest = [n for n in rest if 2 * n < top]
    cfg["pad_dims"] = pads
  return cfg


def grid_table(results, max_n):
  cfg = _config(results)
  rows = []
  for rec in results["records"]:
    if rec["n"] > max_n:
      continue
    peer, how = peer_search(rec, cfg)
    rows.append(dict(K=rec["K"], n=rec["n"], model=rec["model"], strategy=rec["strategy"],
                     fits=len(rec["curve"]["m"]) * cfg["reps"], jgen_s=rec["seconds"],
                     peer_s=peer, peer=how, speedup=peer / rec["seconds"]))
  return rows


def ratio_bench(k, n, m, reps=5, tol=1e-4):
  mixture = simulate.zheng_mixture(k, n)
  xs, ys = simulate.engine.sample_streams(jax.random.key(0), mixture, reps, m)
  lr = batched_logistic_regression(1.0, tol=tol)
  fit = lambda x, y: lr.fit(x, y, num_classes=k).weights
  one, many = jax.jit(fit), jax.jit(jax.vmap(fit))
  one(xs[0], ys[0]).block_until_ready()
  many(xs, ys).block_until_ready()
  t0 = time.perf_counter()
  for r in range(reps):
    one(xs[r], ys[r]).block_until_ready()
  t_loop = time.perf_counter() - t0
  t0 = time.perf_counter()
  many(xs, ys).block_until_ready()
  t_vmap = time.perf_counter() - t0
  return dict(K=k, n=n, m=m, reps=reps, loop_s=t_loop, vmap_s=t_vmap,
              vmap_over_loop_speed=t_loop / t_vmap)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--results", default="docs/figures/nb_vs_lr/results.json")
  p.add_argument("--max-n", type=int, default=10**9, help="only cells with n <= this")
  p.add_argument("--ratio-cell", type=int, nargs=3, default=(7, 1000, 3000))
  p.add_argument("--skip-grid", action="store_true")
  p.add_argument("--out", default="results/benchmarks")
  args = p.parse_args(argv)
  ratio = ratio_bench(*args.ratio_cell)
  print("\nRepetitions solver: jit(vmap(fit)) vs a loop of jit(fit), warm\n")
  print(fmt_table([ratio], list(ratio)))
  grid = []
  if not args.skip_grid:
    results = json.loads(Path(args.results).read_text())
    grid = grid_table(results, args.max_n)
    print("\nGrid: jgen end to end (compilation included) vs the peer on the same fits\n")
    print(fmt_table(grid, ["K", "n", "model", "strategy", "fits", "jgen_s", "peer_s",
                           "peer", "speedup"]))
    tj, tp = sum(r["jgen_s"] for r in grid), sum(r["peer_s"] for r in grid)
    print(f"\ntotal: jgen {tj:.0f} s, peer {tp:.0f} s, speedup {tp / tj:.1f}x")
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "simulation.json").write_text(json.dumps(dict(ratio=ratio, grid=grid), indent=1))


if __name__ == "__main__":
  main()
