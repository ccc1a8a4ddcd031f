"""Naive Bayes vs logistic regression: samples needed to reach the Bayes error + 0.01.

Reproduces the simulation of Zheng et al. (ICML 2023, "Revisiting Discriminative vs.
Generative Classifiers"): on their Gaussian mixture, pooled naive Bayes reaches the
target with O(log n) samples, L2 logistic regression (C = 1) needs O(n).

    python experiments/nb_vs_lr.py            # quick: K = 2, n in {50, 100, 200}
    python experiments/nb_vs_lr.py --full     # the paper's grid (K 2..7, n 100..1000)
    python experiments/nb_vs_lr.py --mode fixed-difficulty [--full]   # nb_vs_lr_fixed.py

Each (K, n, model) is searched twice: the paper's scan (m = 2K, 2K + ceil(ln n), ...,
stop at the first mean error below Bayes + 0.01) and a bisection on the same grid.
Phase 1 runs every cell's naive Bayes (both searches) and the logistic bisection;
phase 2 the logistic scans, which are the expensive part. The results file is
rewritten after every cell, so an interrupted run keeps what it finished.

Writes ``results/nb_vs_lr/results.json`` (one record per (K, n, model, strategy) with
``m_star`` and the curve, plus fitted slopes of m* against n and ln n with R^2) and
two figures. Compiled programs are cached in ``$JGEN_CACHE_DIR`` (default
``~/.cache/jgen/xla``), outside the results folder.
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

if __package__ in (None, ""):  # allow `python experiments/nb_vs_lr.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import report  # noqa: E402

QUICK = dict(Ks=(2,), ns=(50, 100, 200), reps=5, max_factor=10, min_max_m=0)
# Largest m tried: max(max_factor * n, min_max_m). Logistic regression at K = 7,
# n = 100 needs more than 10 n = 1000 samples (m* = 1970 already at n = 200).
FULL = dict(Ks=(2, 3, 5, 7), ns=(100, 200, 400, 1000), reps=5, max_factor=10,
            min_max_m=3000)


# Padded sizes grow 2x for the logistic fits (each costs in proportion to its padded
# size; a K = 7, n = 400 scan took 169 s instead of 242 s, compilation included) and 4x
# for naive Bayes, whose closed-form fits are cheap next to compiling more branches.
LR_BUCKET_RATIO = 2


def _pad_groups(ns):
  """Pads each n up to the largest n of its group (n >= largest / 2): fewer compiles."""
  out, rest = {}, sorted(ns, reverse=True)
  while rest:
    top = rest[0]
    for n in [n for n in rest if n * 2 >= top]:
      out[n] = top
    rest = [n for n in rest if n * 2 < top]
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


def _record(k, n, model, strategy, res, bayes, grid, seconds):
  errs = res.errors
  reps = errs.shape[1]
  se = errs.std(1, ddof=1) / math.sqrt(reps) if reps > 1 else 0 * errs[:, 0]
  return dict(K=k, n=n, model=model, strategy=strategy, m_star=res.m_star,
              bayes_error=bayes, target=bayes + 0.01, max_m=int(grid[-1]),
              step=int(grid[1] - grid[0]), not_converged=res.not_converged,
              seconds=seconds, num_sizes=int(res.sizes.size),
              curve=dict(m=res.sizes.tolist(), mean_error=errs.mean(1).tolist(),
                         std_error=se.tolist()))


def _fits(records, Ks):
  fits = []
  for strategy in ("scan", "bisect"):
    for model in ("nb", "lr"):
      for k in Ks:
        rows = [r for r in records if r["model"] == model and r["K"] == k
                and r["strategy"] == strategy and r["m_star"] is not None]
        xs, ms = [r["n"] for r in rows], [r["m_star"] for r in rows]
        fits.append(dict(model=model, K=k, strategy=strategy, ns=xs, m_star=ms,
                         **fit_growth(xs, ms)))
  return fits


def run(Ks, ns, *, reps=5, max_factor=10, min_max_m=0, num_test=10_000, seed=0,
        tol=1e-4, max_iter=1000, lr_scan=True, show_progress=True, on_cell=None):
  """Runs the grid; returns the results dictionary written to results.json."""
  from tqdm import tqdm
  pads = _pad_groups(ns)
  cells = [(k, n) for k in Ks for n in ns]
  jobs = [(k, n, m, s) for k, n in cells for m, s in (("nb", "scan"), ("nb", "bisect"),
                                                       ("lr", "bisect"))]
  if lr_scan:
    jobs += [(k, n, "lr", "scan") for k, n in cells]
  records = []
  bar = tqdm(total=len(jobs), desc="nb_vs_lr", disable=not show_progress)
  for k, n, model, strategy in jobs:
    mixture = simulate.zheng_mixture(k, n)
    bayes = simulate.bayes_error(mixture)
    grid = simulate.size_grid(k, n, max(max_factor * n, min_max_m))
    key = jax.random.fold_in(jax.random.key(seed), 100_000 * k + n)
    bar.set_postfix(K=k, n=n, model=model, strategy=strategy)
    t0 = time.perf_counter()
    res = simulate.find_m_star(
        key, mixture, model=model, target=bayes + 0.01, grid=grid, num_reps=reps,
        num_test=num_test, strategy=strategy, tol=tol, max_iter=max_iter,
        pad_dim=pads[n], bucket_ratio=LR_BUCKET_RATIO if model == "lr" else 4)
    records.append(_record(k, n, model, strategy, res, bayes, grid,
                           time.perf_counter() - t0))
    bar.update(1)
    if on_cell is not None:
      on_cell(records)
  bar.close()
  config = dict(Ks=list(Ks), ns=list(ns), reps=reps, max_factor=max_factor,
                min_max_m=min_max_m,
                num_test=num_test, seed=seed, C=1.0, tol=tol, max_iter=max_iter,
                dtype="float32", pad_dims={str(n): pads[n] for n in ns},
                lr_solver="L-BFGS with exact line search (jgen.logistic.batched)",
                bucket_ratio=dict(nb=4, lr=LR_BUCKET_RATIO),
                design="nested prefixes of one balanced iid stream per repetition")
  return dict(config=config, records=records, fits=_fits(records, Ks))


def _log_ticks(ax):
  from matplotlib import ticker
  ax.set_xscale("log")
  ax.xaxis.set_major_locator(ticker.LogLocator(base=10, numticks=6))
  ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
  ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def plot(results, out_dir: Path, strategy="scan"):
  """``error_vs_m.png`` (mean +- one standard error, the band drawn inside [0, 1]) and
  ``m_star_vs_n.png`` (log axes, least-squares lines in n and in ln n)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  cfg = results["config"]
  Ks, ns = cfg["Ks"], cfg["ns"]
  # Per (K, n, model) the scan curve when it ran, else the bisection's points.
  best = {}
  for r in results["records"]:
    key = (r["K"], r["n"], r["model"])
    if key not in best or r["strategy"] == strategy:
      best[key] = r
  recs = list(best.values())
  fig, axes = plt.subplots(len(Ks), len(ns), figsize=(3.3 * len(ns), 2.7 * len(Ks)),
                           squeeze=False)
  for i, k in enumerate(Ks):
    for j, n in enumerate(ns):
      ax = axes[i, j]
      for r in (r for r in recs if r["K"] == k and r["n"] == n):
        c = r["curve"]
        m, mean, se = (np.asarray(c[f]) for f in ("m", "mean_error", "std_error"))
        line, = ax.plot(m, mean, ".-", ms=2, lw=0.8,
                        label=f"{r['model'].upper()} {r['strategy']} m*={r['m_star']}")
        ax.fill_between(m, np.maximum(mean - se, 0.0), np.minimum(mean + se, 1.0),
                        color=line.get_color(), alpha=0.25, lw=0)
        ax.axhline(r["target"], color="gray", ls="--", lw=0.7)
      _log_ticks(ax)
      ax.set_ylim(0, None)
      ax.set_title(f"K={k}, n={n}", fontsize=9)
      ax.legend(fontsize=7)
      if i == len(Ks) - 1:
        ax.set_xlabel("training size m")
      if j == 0:
        ax.set_ylabel("test error")
  fig.tight_layout()
  fig.savefig(out_dir / "error_vs_m.png", dpi=110)
  plt.close(fig)
  _plot_m_star(results, out_dir, plt)


def _plot_m_star(results, out_dir, plt):
  Ks = results["config"]["Ks"]
  fig, axes = plt.subplots(1, len(Ks), figsize=(3.6 * len(Ks), 3.2), squeeze=False)
  for i, k in enumerate(Ks):
    ax = axes[0, i]
    for f in results["fits"]:
      if f["K"] != k or not f["ns"] or f["strategy"] != (
          "scan" if f["model"] == "nb" else "bisect"):
        continue
      line, = ax.plot(f["ns"], f["m_star"], "o", ms=4,
                      label=f"{f['model'].upper()} ({f['strategy']})")
      if f["slope_vs_n"] is None:
        continue
      grid = np.linspace(min(f["ns"]), max(f["ns"]), 50)
      for name, xs, ls in (("n", grid, "-"), ("log_n", np.log(grid), ":")):
        ax.plot(grid, f[f"slope_vs_{name}"] * xs + f[f"intercept_vs_{name}"], ls,
                color=line.get_color(), lw=1,
                label=f"{f[f'slope_vs_{name}']:.3g}·{'n' if name == 'n' else 'ln n'}"
                      f" (R²={f[f'r2_vs_{name}'] or 0:.2f})")
    # Log axes: naive Bayes's m* (4-20) and logistic regression's (100-5,000) differ by
    # decades; on a linear axis naive Bayes sits on zero.
    ax.set_yscale("log")
    _log_ticks(ax)
    ax.set_xlabel("dimension n")
    ax.set_ylabel("m* (samples to Bayes + 0.01)")
    ax.set_title(f"K={k}", fontsize=9)
    ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(out_dir / "m_star_vs_n.png", dpi=110)
  plt.close(fig)


def summary(results) -> str:
  """Markdown tables of m* (training examples) per (K, n) and of the fitted slopes."""
  by = {(r["K"], r["n"], r["model"], r["strategy"]): r["m_star"] for r in results["records"]}
  cells = (("nb", "scan"), ("nb", "bisect"), ("lr", "scan"), ("lr", "bisect"))
  m_star = report.format_table(
      ["K", "n", "NB scan m*", "NB bisect m*", "LR scan m*", "LR bisect m*"],
      [[k, n] + [by.get((k, n, m, s)) for m, s in cells]
       for k in results["config"]["Ks"] for n in results["config"]["ns"]])
  slopes = report.format_table(
      ["model", "strategy", "K", "slope vs n", "R²", "slope vs ln n", "R²"],
      [[f["model"], f["strategy"], f["K"], f["slope_vs_n"], f["r2_vs_n"],
        f["slope_vs_log_n"], f["r2_vs_log_n"]] for f in results["fits"] if f["ns"]])
  return m_star + "\n\n" + slopes


def main(argv=None):
  pre = argparse.ArgumentParser(add_help=False)
  pre.add_argument("--mode", choices=("paper", "fixed-difficulty"), default="paper")
  mode, rest = pre.parse_known_args(argv)
  if mode.mode == "fixed-difficulty":
    from experiments import nb_vs_lr_fixed
    return nb_vs_lr_fixed.main(rest)
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--mode", choices=("paper", "fixed-difficulty"), default="paper",
                 help="the paper's mixture, or the fixed-Bayes-error family"
                      " (experiments/nb_vs_lr_fixed.py)")
  p.add_argument("--full", action="store_true", help="the paper's grid")
  p.add_argument("--K", type=int, nargs="+", help="override the class counts")
  p.add_argument("--n", type=int, nargs="+", help="override the dimensions")
  p.add_argument("--reps", type=int, help="repetitions (default 5)")
  p.add_argument("--num-test", type=int, default=10_000)
  p.add_argument("--max-factor", type=int,
                 help="largest m tried = max(max_factor * n, min_max_m)")
  p.add_argument("--min-max-m", type=int, help="floor of the largest m tried")
  p.add_argument("--no-lr-scan", action="store_true",
                 help="skip the logistic scans (bisection only)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="results/nb_vs_lr")
  p.add_argument("--no-progress", action="store_true")
  p.add_argument("--replot", metavar="RESULTS_JSON",
                 help="recompute slopes, figures and the table from a (partial) results"
                      " file and write them next to it; runs nothing")
  args = p.parse_args(argv)
  if args.replot:
    return replot(Path(args.replot))
  cfg = dict(FULL if args.full else QUICK)
  for name, val in (("Ks", args.K), ("ns", args.n)):
    if val:
      cfg[name] = tuple(val)
  if args.reps is not None:
    cfg["reps"] = args.reps
  if args.max_factor is not None:
    cfg["max_factor"] = args.max_factor
  if args.min_max_m is not None:
    cfg["min_max_m"] = args.min_max_m
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  command = "python experiments/nb_vs_lr.py " + " ".join(
      sys.argv[1:] if argv is None else rest)
  t0 = time.perf_counter()

  def save(records):
    partial = dict(config=dict(command=command, partial=True), records=records)
    (out / "results.json").write_text(json.dumps(partial, indent=1))

  results = run(cfg["Ks"], cfg["ns"], reps=cfg["reps"], max_factor=cfg["max_factor"],
                min_max_m=cfg["min_max_m"], num_test=args.num_test, seed=args.seed,
                lr_scan=not args.no_lr_scan,
                show_progress=not args.no_progress, on_cell=save)
  results["config"].update(command=command, seconds=time.perf_counter() - t0,
                           load_average=list(os.getloadavg()), cpu_count=os.cpu_count())
  (out / "results.json").write_text(json.dumps(results, indent=1))
  plot(results, out)
  print(f"wall time {results['config']['seconds']:.0f} s")
  print(summary(results))
  report.print_written([out / "results.json", out / "error_vs_m.png",
                        out / "m_star_vs_n.png"])
  return results


def replot(path: Path):
  """Slopes, figures and summary of an existing (possibly partial) results file."""
  results = json.loads(path.read_text())
  recs = results["records"]
  Ks = sorted({r["K"] for r in recs})
  ns = sorted({r["n"] for r in recs})
  results["config"].update(Ks=Ks, ns=ns)
  results["fits"] = _fits(recs, Ks)
  path.write_text(json.dumps(results, indent=1))
  plot(results, path.parent)
  print(summary(results))
  report.print_written([path, path.parent / "error_vs_m.png", path.parent / "m_star_vs_n.png"])
  return results


def enable_cache():
  """Persistent compilation cache outside the results folder."""
  path = os.environ.get("JGEN_CACHE_DIR", os.path.expanduser("~/.cache/jgen/xla"))
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


if __name__ == "__main__":
  enable_cache()
  main()
