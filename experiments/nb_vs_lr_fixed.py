"""Naive Bayes vs logistic regression at fixed difficulty: resolved m* with intervals.

The paper's mixture (Zheng et al., ICML 2023) with its class means scaled so that the
exact Bayes error is the same for every dimension n (`jgen.simulate.
fixed_difficulty_mixture`). m*(eps) is the first training size whose mean test error
over 100 repetitions is below the model's own asymptotic error + eps, the asymptotic
error being the error of the model's infinite-sample rule on the same test points
(exact values in the JSON). Sizes: every multiple of K up to 32 K, then a 5% geometric
grid; a crossing at the first size is reported as left-censored, none as
right-censored. Intervals: percentile bootstrap over repetitions (1000 replicates); a
scan ends once the mean curve and every replicate have crossed the strictest target
(at most 1.5 times past the first crossing). Each (cell, model) is one task; tasks run
on ``--jobs`` worker processes (default min(2, CPUs)), the costliest first, and give
the same numbers for any ``--jobs``.

    python experiments/nb_vs_lr.py --mode fixed-difficulty           # quick: K = 2, n <= 16
    python experiments/nb_vs_lr.py --mode fixed-difficulty --full    # K 2..7, n 4..64
    python experiments/nb_vs_lr.py --mode fixed-difficulty --full --level 0.05 0.1 0.2

Slopes of m* against n and against ln n are fitted per (level, K, model, eps), and from
four dimensions on the joint fit m* = a + b ln n + c n says which term the data need
(`jgen.simulate.growth_fit`).

Writes ``results/nb_vs_lr_fixed/results.json`` (rewritten after every cell),
``m_star_vs_n.png`` and ``excess_error_vs_m.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jgen import simulate

if __package__ in (None, ""):  # allow `python experiments/nb_vs_lr_fixed.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import report  # noqa: E402

EPS = (0.005, 0.01, 0.02)
QUICK = dict(Ks=(2,), ns=(4, 8, 16), levels=(0.1,), reps=100, corr_Ks=(), rho=0.5)
# n up to 64 for K = 2, 3, so that growth in ln n and in n can be told apart; K = 5, 7
# stop at 16 (their logistic m* at n = 4 is already 10 to 20 times K n).
FULL = dict(Ks=(2, 3, 5, 7), ns=(4, 8, 16, 32, 64), large_K_ns=(4, 8, 16),
            levels=(0.1,), reps=100, corr_Ks=(2,), corr_ns=(4, 8, 16), rho=0.5)
# Largest size tried: MAX_FACTOR * K * n (logistic regression's m*(0.005) was ~47 n at
# K = 2, n = 32 in a pilot run); a cell that does not cross is right-censored.
MAX_FACTOR = 150


def level_of(r):
  """A record's Bayes-error level (files written before levels were stored: its exact
  Bayes error, rounded)."""
  return r["level"] if "level" in r else round(r["bayes_error"], 3)


NUM_BOOT, BOOT_SEED = 1000, 0


def run_cell(k, n, rho, *, level, reps, num_test, seed, max_factor=MAX_FACTOR,
             on_size=None, models=("nb", "lr")):
  """The models on one mixture: curves, m* per eps with intervals.

  A model's record does not depend on the other models run with it (the key, test
  set and streams are functions of the seed and the cell), so the two models of a
  cell can run in separate processes.
  """
  mix = simulate.fixed_difficulty_mixture(k, n, level, correlation=rho)
  key = jax.random.fold_in(jax.random.key(seed), 10_000 * k + 10 * n + int(10 * rho))
  test = simulate.sample(jax.random.split(key)[0], mix, num_test)
  asym = dict(nb=dict(exact=simulate.nb_asymptotic_error(mix),
                      test=simulate.rule_error(simulate.nb_population_mixture(mix), *test)),
              lr=dict(exact=simulate.bayes_error(mix), test=simulate.rule_error(mix, *test)))
  grid = simulate.resolved_grid(k, max_factor * k * n)
  out = []
  for model in models:
    t0, c0 = time.perf_counter(), time.process_time()
    # Stops once the mean curve and every bootstrap replicate have crossed the
    # strictest target (at most 1.5 times past the first crossing): m* and its
    # replicates are those of the longer scan (`scan_until`'s boot_stop).
    sizes, errors, bad = simulate.scan_until(
        key, mix, grid, model=model, stop_target=asym[model]["test"] + min(EPS),
        num_reps=reps, test=test, bucket_ratio=4 if model == "nb" else 2,
        boot_stop=(NUM_BOOT, BOOT_SEED), progress=on_size)
    m_stars = []
    for eps in EPS:
      r = simulate.bootstrap_m_star(sizes, errors, asym[model]["test"] + eps,
                                    num_boot=NUM_BOOT, seed=BOOT_SEED)
      m_stars.append(dict(eps=eps, m_star=r.m_star, low=r.low, high=r.high,
                          censored=r.censored, boot=r.boot.tolist()))
    se = errors.std(1, ddof=1) / np.sqrt(reps)
    out.append(dict(K=k, n=n, rho=rho, model=model, level=level, bayes_error=simulate.bayes_error(mix),
                    asymptotic_error=asym[model]["exact"],
                    asymptotic_error_on_test=asym[model]["test"], reps=reps,
                    not_converged=bad, seconds=time.perf_counter() - t0,
                    cpu_seconds=time.process_time() - c0,
                    m_star=m_stars, curve=dict(m=sizes.tolist(),
                                               mean_error=errors.mean(1).tolist(),
                                               std_error=se.tolist())))
  return out


def task_cost(k, n, model):
  """A rough relative cost of one (K, n, model) scan, to start the longest first:
  logistic regression's m* and fits grow faster in K than naive Bayes's."""
  return (8 if model == "lr" else 1) * k * k * n


def _init_worker(x64, cache_dir, min_compile_secs):
  """A worker process computes as its parent does (``jax_enable_x64``, set with
  ``jax.config`` rather than the environment, is not inherited) and shares its
  persistent compilation cache."""
  jax.config.update("jax_enable_x64", x64)
  if cache_dir:
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_secs)


def _run_task(cell, model, kw):
  level, k, n, rho = cell
  return run_cell(k, n, rho, level=level, models=(model,), **kw)


def fits(records):
  """Slopes of m* vs n and ln n per (level, rho, K, model, eps), censored cells left
  out."""
  out = []
  keys = sorted({(level_of(r), r["rho"], r["K"], r["model"]) for r in records})
  for level, rho, k, model in keys:
    rows = sorted((r for r in records
                   if (level_of(r), r["rho"], r["K"], r["model"]) == (level, rho, k, model)),
                  key=lambda r: r["n"])
    for j, eps in enumerate(EPS):
      ok = [r for r in rows if r["m_star"][j]["censored"] is None]
      fit = dict(level=level, rho=rho, K=k, model=model, eps=eps, ns=[r["n"] for r in ok],
                 censored_ns=[r["n"] for r in rows if r["m_star"][j]["censored"]])
      if len(ok) >= 2:
        fit.update(simulate.growth_fit(fit["ns"], [r["m_star"][j]["boot"] for r in ok]))
      out.append(fit)
  return out


def plot(results, out_dir: Path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib import ticker
  recs = results["records"]
  panels = sorted({(level_of(r), r["rho"], r["K"]) for r in recs})
  fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
  styles = dict(zip(EPS, ("o", "s", "^")))
  for ax, (level, rho, k) in zip(axes[0], panels):
    for model, color in (("nb", "C0"), ("lr", "C3")):
      rows = sorted((r for r in recs if (level_of(r), r["rho"], r["K"], r["model"])
                     == (level, rho, k, model)), key=lambda r: r["n"])
      for j, eps in enumerate(EPS):
        pts = [(r["n"], r["m_star"][j]) for r in rows]
        right = [r for r in rows if r["m_star"][j]["m_star"] is None]
        if right:  # no crossing: an open caret at the largest size tried
          ax.plot([r["n"] for r in right], [r["curve"]["m"][-1] for r in right],
                  marker=6, ls="none", color=color, mfc="white", ms=9,
                  label=f"{model.upper()} eps={eps}: censored, > max m")
        ns = np.array([n for n, m in pts if m["m_star"] is not None], float)
        ms = [m for _, m in pts if m["m_star"] is not None]
        if not ms:
          continue
        y = np.array([m["m_star"] for m in ms], float)
        lo = np.array([m["low"] if m["low"] is not None else m["m_star"] for m in ms])
        hi = np.array([m["high"] if m["high"] is not None else m["m_star"] for m in ms])
        cens = np.array([m["censored"] is not None for m in ms])
        ax.errorbar(ns, y, yerr=[y - lo, hi - y], color=color, marker=styles[eps],
                    ms=4, lw=0.8, capsize=2, mfc=color,
                    label=f"{model.upper()} eps={eps}")
        if cens.any():
          ax.plot(ns[cens], y[cens], styles[eps], mfc="white", mec="k", ms=7,
                  label="censored")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_yscale("log")
    ax.set_xlabel("dimension n")
    ax.set_title(_panel_title(k, level, rho), fontsize=9)
    ax.legend(fontsize=5.5, ncol=2)
  axes[0, 0].set_ylabel("m* (95% bootstrap interval)")
  fig.tight_layout()
  fig.savefig(out_dir / "m_star_vs_n.png", dpi=110)
  plt.close(fig)
  _plot_curves(results, out_dir, plt)


def _panel_title(k, level, rho):
  return f"K={k}, Bayes error {level:g}" + (f", AR(1) rho={rho}" if rho else "")


def _plot_curves(results, out_dir, plt):
  recs = results["records"]
  panels = sorted({(level_of(r), r["rho"], r["K"]) for r in recs})
  fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
  colors = {n: f"C{i}" for i, n in enumerate(sorted({r["n"] for r in recs}))}
  for ax, (level, rho, k) in zip(axes[0], panels):
    for r in (r for r in recs if (level_of(r), r["rho"], r["K"]) == (level, rho, k)):
      m, mean, se = (np.asarray(r["curve"][f]) for f in ("m", "mean_error", "std_error"))
      excess = mean - r["asymptotic_error_on_test"]
      keep = excess > 0
      ax.errorbar(m[keep], excess[keep], yerr=2 * se[keep], lw=0.7, elinewidth=0.4,
                  ls="-" if r["model"] == "nb" else "--", color=colors[r["n"]],
                  label=f"{r['model'].upper()} n={r['n']}")
    for eps in EPS:
      ax.axhline(eps, color="gray", lw=0.5, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training size m")
    ax.set_title(_panel_title(k, level, rho), fontsize=9)
    ax.legend(fontsize=5.5, ncol=2)
  axes[0, 0].set_ylabel("mean error - asymptotic (±2 SE)")
  axes[0, 0].annotate("solid: NB, dashed: LR; dotted: eps", (0.02, 0.02),
                      xycoords="axes fraction", fontsize=6)
  fig.tight_layout()
  fig.savefig(out_dir / "excess_error_vs_m.png", dpi=110)
  plt.close(fig)


def summary(results) -> str:
  def cell(m):
    if m["m_star"] is None:
      return "censored (none)"
    lo = "?" if m["low"] is None else f"{m['low']:.0f}"
    hi = "?" if m["high"] is None else f"{m['high']:.0f}"
    txt = f"{m['m_star']} [{lo}, {hi}]"
    return txt + " censored" if m["censored"] else txt

  table = report.format_table(
      ["level", "K", "n", "rho", "model", "asymptotic error"] + [f"m*({e})" for e in EPS],
      [[level_of(r), r["K"], r["n"], r["rho"], r["model"], f"{r['asymptotic_error']:.4f}"]
       + [cell(m) for m in r["m_star"]] for r in results["records"]])
  ci = lambda v: "-" if v is None else f"[{v[0]:.3g}, {v[1]:.3g}]"
  joint = lambda f, name: ("-" if f.get(name) is None else
                           f"{f[name]:.3g} {ci(f.get(name + '_ci'))}")
  slopes = report.format_table(
      ["level", "rho", "K", "model", "eps", "slope vs n", "95% CI", "R²", "slope vs ln n",
       "95% CI", "R²", "joint: n term [CI]", "joint: ln n term [CI]", "verdict",
       "censored n"],
      [[f["level"], f["rho"], f["K"], f["model"], f["eps"], f.get("slope_vs_n"),
        ci(f.get("slope_vs_n_ci")), f.get("r2_vs_n"), f.get("slope_vs_log_n"),
        ci(f.get("slope_vs_log_n_ci")), f.get("r2_vs_log_n"),
        joint(f, "joint_n"), joint(f, "joint_log_n"), f.get("verdict") or "-",
        f["censored_ns"] or "-"]
       for f in results["fits"]])
  return table + "\n\n" + slopes


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--full", action="store_true",
                 help="K in {2, 3} with n in {4, ..., 64}, K in {5, 7} with n in {4, 8,"
                      " 16}, and K = 2 with rho = 0.5 at n in {4, 8, 16}")
  p.add_argument("--K", type=int, nargs="+")
  p.add_argument("--n", type=int, nargs="+")
  p.add_argument("--reps", type=int)
  p.add_argument("--level", type=float, nargs="+",
                 help="the Bayes error(s) held fixed (default 0.1)")
  p.add_argument("--rho", type=float,
                 help="run only AR(1)-correlated cells with this correlation")
  p.add_argument("--num-test", type=int, default=10_000)
  p.add_argument("--max-factor", type=int, default=MAX_FACTOR,
                 help="largest size tried = max_factor * K * n")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                 help="worker processes, one (cell, model) each at a time (default:"
                      " min(2, CPUs)); the numbers do not depend on it")
  p.add_argument("--out", default="results/nb_vs_lr_fixed")
  p.add_argument("--no-progress", action="store_true")
  p.add_argument("--replot", metavar="RESULTS_JSON", help="redraw from a results file")
  p.add_argument("--merge", metavar="RESULTS_JSON", nargs="+",
                 help="merge the cells of several runs (same settings) into --out")
  args = p.parse_args(argv)
  if args.jobs < 1:
    raise ValueError(f"--jobs must be >= 1, got {args.jobs}.")
  if args.merge:
    return merge([Path(f) for f in args.merge], Path(args.out))
  if args.replot:
    path = Path(args.replot)
    res = json.loads(path.read_text())
    res["fits"] = fits(res["records"])
    plot(res, path.parent)
    print(summary(res))
    return res
  cfg = dict(FULL if args.full else QUICK)
  for name, val in (("Ks", args.K), ("ns", args.n), ("reps", args.reps),
                    ("levels", args.level)):
    if val:
      cfg[name] = tuple(val) if isinstance(val, list) else val
  if args.n:  # an explicit --n applies to every K
    cfg.pop("large_K_ns", None)
    cfg["corr_ns"] = cfg["ns"]
  ns_of = lambda k: cfg.get("large_K_ns", cfg["ns"]) if k >= 5 else cfg["ns"]
  cells = [(lv, k, n, 0.0) for lv in cfg["levels"] for k in cfg["Ks"] for n in ns_of(k)]
  cells += [(lv, k, n, cfg["rho"]) for lv in cfg["levels"] for k in cfg["corr_Ks"]
            for n in cfg.get("corr_ns", cfg["ns"])]
  if args.rho is not None:
    cells = [(lv, k, n, args.rho) for lv in cfg["levels"] for k in cfg["Ks"]
             for n in ns_of(k)]
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  command = "python experiments/nb_vs_lr.py --mode fixed-difficulty " + " ".join(
      sys.argv[1:] if argv is None else argv)
  config = dict(cfg, command=command, eps=list(EPS), num_test=args.num_test,
                seed=args.seed, max_size=f"{args.max_factor} K n", num_boot=1000,
                grid="multiples of K up to 32 K, then ratio 1.05",
                target="asymptotic rule's error on the same test set + eps")
  from tqdm import tqdm
  t0, c0 = time.perf_counter(), time.process_time()
  kw = dict(reps=cfg["reps"], num_test=args.num_test, seed=args.seed,
            max_factor=args.max_factor)
  # One task per (cell, model), the costliest first (logistic regression, large K n),
  # so that the last task to start is a short one.
  tasks = sorted(((c, model) for c in cells for model in ("nb", "lr")),
                 key=lambda t: -task_cost(t[0][1], t[0][2], t[1]))
  done = {}

  def save():
    records = [done[c, m] for c in cells for m in ("nb", "lr") if (c, m) in done]
    cpu = time.process_time() - c0 + (sum(r["cpu_seconds"] for r in records)
                                      if args.jobs > 1 else 0.0)
    res = dict(config=dict(config, seconds=time.perf_counter() - t0, cpu_seconds=cpu,
                           jobs=args.jobs, partial=len(records) < 2 * len(cells)),
               records=records, fits=fits(records))
    (out / "results.json").write_text(json.dumps(res, indent=1))
    return res

  with tqdm(total=len(tasks), desc="fixed-difficulty (cell, model)",
            disable=args.no_progress) as bar:
    if args.jobs == 1:
      sizes_bar = tqdm(desc="sizes fitted", unit="size", position=1,
                       disable=args.no_progress)
      for (level, k, n, rho), model in tasks:
        bar.set_postfix(level=level, K=k, n=n, rho=rho, model=model)
        done[(level, k, n, rho), model], = run_cell(
            k, n, rho, level=level, models=(model,), on_size=sizes_bar.update, **kw)
        results = save()
        bar.update()
      sizes_bar.close()
    else:
      import multiprocessing
      from concurrent import futures
      cache = (jax.config.jax_enable_x64, jax.config.jax_compilation_cache_dir,
               jax.config.jax_persistent_cache_min_compile_time_secs)
      with futures.ProcessPoolExecutor(
          args.jobs, mp_context=multiprocessing.get_context("spawn"),
          initializer=_init_worker, initargs=cache) as pool:
        running = {pool.submit(_run_task, c, m, kw): (c, m) for c, m in tasks}
        for fut in futures.as_completed(running):
          done[running[fut]], = fut.result()
          results = save()
          bar.update()
  results["config"].update(load_average=list(os.getloadavg()), cpu_count=os.cpu_count())
  (out / "results.json").write_text(json.dumps(results, indent=1))
  plot(results, out)
  print(f"wall time {results['config']['seconds']:.0f} s")
  print(summary(results))
  report.print_written([out / "results.json", out / "m_star_vs_n.png",
                        out / "excess_error_vs_m.png"])
  return results


def merge(paths, out: Path):
  """One results file from runs of different cells; a cell run twice must agree."""
  cells, configs = {}, []
  for path in paths:
    res = json.loads(path.read_text())
    configs.append(dict(res["config"], file=str(path)))
    for r in res["records"]:
      key = (level_of(r), r["K"], r["n"], r["rho"], r["model"])
      if key in cells and cells[key]["m_star"] != r["m_star"]:
        raise ValueError(f"cell {key} differs between the merged runs.")
      cells[key] = r
  records = [cells[k] for k in sorted(cells)]
  results = dict(config=dict(merged=configs), records=records, fits=fits(records))
  out.mkdir(parents=True, exist_ok=True)
  (out / "results.json").write_text(json.dumps(results, indent=1))
  plot(results, out)
  print(summary(results))
  report.print_written([out / "results.json", out / "m_star_vs_n.png",
                        out / "excess_error_vs_m.png"])
  return results


if __name__ == "__main__":
  main()
