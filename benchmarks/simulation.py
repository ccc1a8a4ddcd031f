"""The NB-vs-LR simulation grid and its repetitions solver: jgen vs scikit-learn/NumPy.

    python benchmarks/simulation.py --results docs/figures/nb_vs_lr/results.json
    python benchmarks/simulation.py --results ... --ratio-cell 7 1000 3000

1. Grid, end to end. jgen's time is the wall time of ``experiments/nb_vs_lr.py --full``
   (compilation included) recorded per search in its results file. The peer fits the
   same training sets (the same streams, sizes and repetitions) with scikit-learn
   ``LogisticRegression(C=1, tol=1e-4, max_iter=1000)`` and a NumPy pooled naive Bayes.
   Naive Bayes is timed on every fit (scored with one matmul, as jgen does). A full
   scikit-learn pass over the logistic searches would take days on 2 cores, so its
   time is *estimated*: per search, the fits at the smallest and the largest evaluated
   size (repetition 0) are timed (once per cell and size, shared by the scan and the
   bisection), and the cost of the others is interpolated linearly in m, times the
   repetitions.
2. The repetitions solver, vmapped over R repetitions against R sequential calls, on a
   few cells: in the engine's regime (a chunk of warm-started grid sizes, the program
   the simulation runs) and cold (one fit from zero weights); see ``ratio_bench``.

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

from benchmarks.common import best_time
from benchmarks.common import fmt_table
from jgen import simulate
from jgen.logistic.batched import batched_logistic_regression


def numpy_pooled_nb(x, y, k, x_test):
  """Pooled naive Bayes fit and test predictions, scored with one matmul (the terms of
  the squared distance that do not depend on the class are dropped)."""
  means = np.stack([x[y == c].mean(0) for c in range(k)])
  var = ((x - means[y]) ** 2).mean(0) + 1e-9
  prior = np.log(np.bincount(y, minlength=k) / len(y))
  scaled = means / var
  ll = x_test @ scaled.T - 0.5 * np.sum(means * scaled, axis=1)
  return np.argmax(ll + prior, -1)


def sklearn_fit_seconds(x, y):
  from sklearn.linear_model import LogisticRegression
  t0 = time.perf_counter()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    LogisticRegression(C=1.0, tol=1e-4, max_iter=1000).fit(x, y)
  return time.perf_counter() - t0


_SK_SECONDS: dict = {}


def _sklearn_seconds_at(key, xs, ys, m):
  """scikit-learn's time for one fit on the first ``m`` examples of repetition 0, timed
  once per (cell, m): a cell's scan and bisection share their timed fits."""
  if (key, m) not in _SK_SECONDS:
    _SK_SECONDS[key, m] = sklearn_fit_seconds(xs[0, :m], ys[0, :m])
  return _SK_SECONDS[key, m]


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
  t_lo = _sklearn_seconds_at((k, n), xs, ys, lo)
  t_hi = t_lo if hi == lo else _sklearn_seconds_at((k, n), xs, ys, hi)
  per = [t_lo + (t_hi - t_lo) * (m - lo) / max(hi - lo, 1) for m in sizes]
  return reps * float(np.sum(per)), "estimated"


def _config(results):
  """The run's settings; a partial results file holds only the records, so the
  experiment's defaults (and its padding rule: n padded to the largest n within 2x)
  are filled in."""
  cfg = {**dict(seed=0, reps=5, num_test=10_000), **results["config"]}
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


def ratio_bench(k, n, m, reps=5, tol=1e-4, chunk=8, repeats=3, cold_limit=200_000):
  """The repetitions solver vmapped against a loop, in two regimes on one cell.

  * ``engine``: what the learning-curve engine runs. One compiled sweep fits ``chunk``
    consecutive grid sizes ending at ``m``, each warm-started from the fit at the
    size before it, the first from the fit at the grid size preceding the chunk.
    Vmapped: the engine's program on all ``reps`` streams at once; loop: the same
    program on one stream at a time (its own compilation), ``reps`` calls.
  * ``cold``: one fit at size ``m`` from zero weights, ``jit(vmap(fit))`` over the
    repetitions against ``reps`` calls of ``jit(fit)``.

  Times are the best of ``repeats`` warm calls (compilation excluded on both sides).
  The cold regime runs only where ``n * m <= cold_limit``: a cold fit at K = 7,
  n = 1000, m = 3000 takes 300-600 iterations per repetition (minutes per regime).
  """
  mixture = simulate.zheng_mixture(k, n)
  grid = simulate.size_grid(k, n, m)
  stop = int(np.searchsorted(grid, m, side="right"))
  sizes = grid[max(stop - chunk, 1):stop]
  before = int(grid[max(stop - chunk, 1) - 1])
  test_key, train_key = jax.random.split(jax.random.key(0))
  x_test, y_test = simulate.sample(test_key, mixture, 10_000)
  lr = batched_logistic_regression(1.0, tol=tol)
  buckets = simulate.buckets_for(int(sizes[-1]))
  xs, ys = simulate.engine.sample_streams(train_key, mixture, reps, buckets[-1])
  prog = simulate.curve_program(lr, num_classes=k, buckets=buckets)
  zero = simulate.engine.zeros_init(lr, xs, ys, k)
  _, p0, _ = prog.run(xs, ys, x_test, y_test,
                      jnp.asarray(simulate.engine.as_sizes([before], chunk)), zero)
  init = jax.tree.map(lambda a: a[0], p0)
  run_sizes = jnp.asarray(simulate.engine.as_sizes(sizes, chunk))
  one = lambda r: jax.tree.map(lambda a: a[r:r + 1], init)
  inits = [one(r) for r in range(reps)]
  sweep = lambda x, y, i: jax.block_until_ready(
      prog.run(x, y, x_test, y_test, run_sizes, i))
  t_vmap = best_time(lambda: sweep(xs, ys, init), repeats=repeats)
  t_loop = best_time(lambda: [sweep(xs[r:r + 1], ys[r:r + 1], inits[r])
                              for r in range(reps)], repeats=repeats)
  errs, _, _ = sweep(xs, ys, init)
  loop_errs = np.concatenate([np.asarray(sweep(xs[r:r + 1], ys[r:r + 1], inits[r])[0])
                              for r in range(reps)], axis=1)

  t_cold_vmap = t_cold_loop = float("nan")
  if n * m <= cold_limit:
    fit = lambda x, y: lr.fit(x, y, num_classes=k).weights
    single, many = jax.jit(fit), jax.jit(jax.vmap(fit))
    xm, ym = xs[:, :m], ys[:, :m]
    t_cold_vmap = best_time(lambda: many(xm, ym), repeats=repeats)
    t_cold_loop = best_time(lambda: [single(xm[r], ym[r]) for r in range(reps)],
                            repeats=repeats)
  return dict(K=k, n=n, m=m, reps=reps, sizes=f"{int(sizes[0])}..{int(sizes[-1])}",
              engine_loop_s=t_loop, engine_vmap_s=t_vmap,
              engine_vmap_over_loop=t_loop / t_vmap,
              same_errors=bool(np.allclose(np.asarray(errs), loop_errs, atol=1e-3)),
              cold_loop_s=t_cold_loop, cold_vmap_s=t_cold_vmap,
              cold_vmap_over_loop=t_cold_loop / t_cold_vmap)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--results", default="docs/figures/nb_vs_lr/results.json")
  p.add_argument("--max-n", type=int, default=10**9, help="only cells with n <= this")
  p.add_argument("--ratio-cell", type=int, nargs=3, action="append",
                 metavar=("K", "n", "m"),
                 help="cells of the solver comparison (repeatable; default: three)")
  p.add_argument("--skip-grid", action="store_true")
  p.add_argument("--skip-ratio", action="store_true")
  p.add_argument("--out", default="results/benchmarks")
  args = p.parse_args(argv)
  cells = args.ratio_cell or [(2, 100, 200), (3, 200, 600), (7, 400, 2500),
                              (7, 1000, 3000)]
  ratio = [] if args.skip_ratio else [ratio_bench(*c) for c in cells]
  if ratio:
    print("\nRepetitions solver: vmapped over the repetitions vs a loop (compiled, warm)\n")
    print(fmt_table(ratio, list(ratio[0])))
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
