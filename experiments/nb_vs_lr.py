"""Naive Bayes vs logistic regression: samples needed to reach the Bayes error + 0.01.

Reproduces the simulation of Zheng et al. (ICML 2023, "Revisiting Discriminative vs.
Generative Classifiers"): on their Gaussian mixture, pooled naive Bayes reaches the
target with O(log n) samples, L2 logistic regression (C = 1) needs O(n).

    python experiments/nb_vs_lr.py            # quick: K = 2, n in {50, 100, 200}
    python experiments/nb_vs_lr.py --full     # the paper's grid (K 2..7, n 100..1000)

Writes ``results/nb_vs_lr/results.json`` (one record per (K, n, model) with ``m_star``
and the curve, plus fitted slopes of m* against n and log n) and two figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jgen import simulate

QUICK = dict(Ks=(2,), ns=(50, 100, 200), reps=5, max_factor=20)
FULL = dict(Ks=(2, 3, 5, 7), ns=(100, 200, 400, 1000), reps=5, max_factor=20)


def _pad_groups(ns):
  """Pads each n up to the largest n of its group (n >= largest / 4): fewer compiles."""
  out, rest = {}, sorted(ns, reverse=True)
  while rest:
    top = rest[0]
    for n in [n for n in rest if n * 4 >= top]:
      out[n] = top
    rest = [n for n in rest if n * 4 < top]
  return out


def fit_growth(ns, m_stars):
  """Least-squares slopes of m* against n and against ln n (with R^2)."""
  ns, ms = np.asarray(ns, float), np.asarray(m_stars, float)
  res = {}
  for name, x in (("n", ns), ("log_n", np.log(ns))):
    if len(ns) < 2:
      res[f"slope_vs_{name}"] = res[f"intercept_vs_{name}"] = res[f"r2_vs_{name}"] = None
      continue
    slope, intercept = np.polyfit(x, ms, 1)
    pred = slope * x + intercept
    ss = float(np.sum((ms - ms.mean()) ** 2))
    res[f"slope_vs_{name}"] = float(slope)
    res[f"intercept_vs_{name}"] = float(intercept)
    res[f"r2_vs_{name}"] = float(1 - np.sum((ms - pred) ** 2) / ss) if ss > 0 else None
  return res


def run(Ks, ns, *, reps=5, max_factor=20, num_test=10_000, seed=0, lr_strategy="bisect",
        tol=1e-4, max_iter=1000, show_progress=True):
  """Runs the grid; returns the results dictionary written to results.json."""
  from tqdm import tqdm
  pads = _pad_groups(ns)
  records = []
  bar = tqdm(total=2 * len(Ks) * len(ns), desc="nb_vs_lr", disable=not show_progress)
  for k in Ks:
    for n in ns:
      mixture = simulate.zheng_mixture(k, n)
      bayes = simulate.bayes_error(mixture)
      grid = simulate.size_grid(k, n, max_factor * n)
      key = jax.random.fold_in(jax.random.key(seed), 100_000 * k + n)
      for model in ("nb", "lr"):
        bar.set_postfix(K=k, n=n, model=model)
        t0 = time.perf_counter()
        res = simulate.find_m_star(
            key, mixture, model=model, target=bayes + 0.01, grid=grid, num_reps=reps,
            num_test=num_test, strategy="scan" if model == "nb" else lr_strategy,
            tol=tol, max_iter=max_iter, pad_dim=pads[n])
        errs = res.errors
        records.append(dict(
            K=k, n=n, model=model, m_star=res.m_star, bayes_error=bayes,
            target=bayes + 0.01, max_m=int(grid[-1]), step=int(grid[1] - grid[0]),
            not_converged=res.not_converged, seconds=time.perf_counter() - t0,
            curve=dict(m=res.sizes.tolist(), mean_error=errs.mean(1).tolist(),
                       std_error=(errs.std(1, ddof=1) if reps > 1 else 0 * errs[:, 0]
                                  ).tolist())))
        bar.update(1)
  bar.close()
  fits = []
  for model in ("nb", "lr"):
    for k in Ks:
      rows = [r for r in records if r["model"] == model and r["K"] == k
              and r["m_star"] is not None]
      fits.append(dict(model=model, K=k, ns=[r["n"] for r in rows],
                       m_star=[r["m_star"] for r in rows],
                       **fit_growth([r["n"] for r in rows], [r["m_star"] for r in rows])))
  config = dict(Ks=list(Ks), ns=list(ns), reps=reps, max_factor=max_factor,
                num_test=num_test, seed=seed, lr_strategy=lr_strategy, nb_strategy="scan",
                C=1.0, tol=tol, max_iter=max_iter, dtype="float32",
                design="nested prefixes of one balanced iid stream per repetition")
  return dict(config=config, records=records, fits=fits)


def plot(results, out_dir: Path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  cfg = results["config"]
  Ks, ns = cfg["Ks"], cfg["ns"]
  fig, axes = plt.subplots(len(Ks), len(ns), figsize=(3.2 * len(ns), 2.6 * len(Ks)),
                           squeeze=False)
  for i, k in enumerate(Ks):
    for j, n in enumerate(ns):
      ax = axes[i, j]
      for r in results["records"]:
        if r["K"] == k and r["n"] == n:
          c = r["curve"]
          ax.errorbar(c["m"], c["mean_error"], yerr=c["std_error"], marker=".",
                      ms=3, lw=1, capsize=2, label=f"{r['model']} (m*={r['m_star']})")
          target = r["target"]
      ax.axhline(target, color="gray", ls="--", lw=0.8)
      ax.set_xscale("log")
      ax.set_title(f"K={k}, n={n}", fontsize=9)
      ax.legend(fontsize=7)
      if i == len(Ks) - 1:
        ax.set_xlabel("training size m")
      if j == 0:
        ax.set_ylabel("test error")
  fig.tight_layout()
  fig.savefig(out_dir / "error_vs_m.png", dpi=120)
  plt.close(fig)

  fig, axes = plt.subplots(1, len(Ks), figsize=(3.4 * len(Ks), 3), squeeze=False)
  for i, k in enumerate(Ks):
    ax = axes[0, i]
    for f in results["fits"]:
      if f["K"] != k or not f["ns"]:
        continue
      line, = ax.plot(f["ns"], f["m_star"], "o", label=f"{f['model']}")
      if f["slope_vs_n"] is not None:
        grid = np.linspace(min(f["ns"]), max(f["ns"]), 50)
        best = "n" if (f["r2_vs_n"] or 0) >= (f["r2_vs_log_n"] or 0) else "log_n"
        xs = grid if best == "n" else np.log(grid)
        ax.plot(grid, f[f"slope_vs_{best}"] * xs + f[f"intercept_vs_{best}"], "-",
                color=line.get_color(), lw=1,
                label=f"{f['model']}: {f[f'slope_vs_{best}']:.3g}·{'n' if best == 'n' else 'ln n'}")
    ax.set_xscale("log")
    ax.set_xlabel("dimension n")
    ax.set_ylabel("m* (samples to Bayes + 0.01)")
    ax.set_title(f"K={k}", fontsize=9)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out_dir / "m_star_vs_n.png", dpi=120)
  plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--full", action="store_true", help="the paper's grid")
  p.add_argument("--K", type=int, nargs="+", help="override the class counts")
  p.add_argument("--n", type=int, nargs="+", help="override the dimensions")
  p.add_argument("--reps", type=int, help="repetitions (default 5)")
  p.add_argument("--num-test", type=int, default=10_000)
  p.add_argument("--max-factor", type=int, help="largest m tried = max_factor * n")
  p.add_argument("--lr-strategy", choices=("bisect", "scan"), default="bisect")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="results/nb_vs_lr")
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)
  cfg = dict(FULL if args.full else QUICK)
  if args.K:
    cfg["Ks"] = tuple(args.K)
  if args.n:
    cfg["ns"] = tuple(args.n)
  if args.reps:
    cfg["reps"] = args.reps
  if args.max_factor:
    cfg["max_factor"] = args.max_factor
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  t0 = time.perf_counter()
  results = run(cfg["Ks"], cfg["ns"], reps=cfg["reps"], max_factor=cfg["max_factor"],
                num_test=args.num_test, seed=args.seed, lr_strategy=args.lr_strategy,
                show_progress=not args.no_progress)
  results["config"]["command"] = "python experiments/nb_vs_lr.py " + " ".join(
      sys.argv[1:] if argv is None else argv)
  results["config"]["seconds"] = time.perf_counter() - t0
  (out / "results.json").write_text(json.dumps(results, indent=1))
  plot(results, out)
  for f in results["fits"]:
    print(f"{f['model']} K={f['K']}: n={f['ns']} m*={f['m_star']} "
          f"slope/n={f['slope_vs_n']} slope/ln n={f['slope_vs_log_n']}")
  print(f"wrote {out / 'results.json'} in {results['config']['seconds']:.0f} s")
  return results


if __name__ == "__main__":
  # Compiled fits are cached on disk, so a rerun skips most compilation.
  jax.config.update("jax_compilation_cache_dir", "results/nb_vs_lr/.jax_cache")
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  main()
