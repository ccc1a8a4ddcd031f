"""Generative data augmentation on a two-class Gaussian mixture: generalisation gaps.

Reproduces the simulation of Zheng et al. (NeurIPS 2023, "Toward Understanding
Generative Data Augmentation"; ML-GSAI/Understanding-GDA, main_simulation_bGMM.py):
a pooled Gaussian naive Bayes fitted on m real examples generates gamma * m synthetic
ones; the mean learner theta = mean(s x) is trained on both; the gap between its train
(augmented set) and test (10,000 points) 0-1 loss and NLL is averaged over repetitions.

    python experiments/gda.py           # quick: 200 repetitions, fewer sizes
    python experiments/gda.py --full    # the paper's sweeps, 1,000 repetitions

Sweeps: d = 1 with m in {20, 50, 100, 200, 500}; m = 10 with d in {2, 10, 20, 50, 100};
gamma in {0, 1, 2, 5, 10, 20, 50, 100} at (d = 1, m = 40) and (d = 50, m = 10); every
sweep runs every gamma. Fitted rates: slope of log(mean gap) against log m (d = 1) and
against log d (m = 10), per gamma. Writes results/gda/results.json and three figures.
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

from jgen.simulate import gda

if __package__ in (None, ""):  # allow `python experiments/gda.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import report  # noqa: E402

GAMMAS = (0, 1, 2, 5, 10, 20, 50, 100)
FULL = dict(reps=1000, ms=(20, 50, 100, 200, 500), ds=(2, 10, 20, 50, 100),
            gamma_cells=((1, 40), (50, 10)))
QUICK = dict(reps=200, ms=(20, 50, 100, 200), ds=(2, 10, 20), gamma_cells=((1, 40),))


def _summ(res: gda.GDAResult) -> dict:
  n = res.gap_01.shape[0]
  out = {}
  for name in ("gap_01", "gap_nll", "train_01", "test_01", "train_nll", "test_nll"):
    a = getattr(res, name)
    out[name] = a.mean(0).tolist()
    out[name + "_se"] = (a.std(0, ddof=1) / np.sqrt(n)).tolist() if n > 1 else None
  return out


def run(reps, ms, ds, gamma_cells, seed=0):
  key = jax.random.key(seed)
  cells = [("m", 1, m) for m in ms] + [("d", d, 10) for d in ds] + [
      ("gamma", d, m) for d, m in gamma_cells]
  records = []
  for sweep, d, m in cells:
    t0 = time.perf_counter()
    res = gda.augmentation_gaps(jax.random.fold_in(key, 1000 * d + m), dim=d,
                                num_real=m, gammas=GAMMAS, num_reps=reps)
    records.append(dict(sweep=sweep, d=d, m=m, gammas=list(GAMMAS),
                        seconds=time.perf_counter() - t0, **_summ(res)))
    print(f"{sweep}: d={d} m={m} gap_nll(gamma=0)={records[-1]['gap_nll'][0]:.4g}"
          f" ({records[-1]['seconds']:.1f} s)", flush=True)
  rates = []
  for sweep, var in (("m", "m"), ("d", "d")):
    rows = [r for r in records if r["sweep"] == sweep]
    if len(rows) < 2:
      continue
    for j, g in enumerate(GAMMAS):
      for loss in ("gap_01", "gap_nll"):
        rates.append(dict(sweep=sweep, gamma=g, loss=loss, **gda.fit_rate(
            [r[var] for r in rows], [r[loss][j] for r in rows])))
  return dict(config=dict(reps=reps, ms=list(ms), ds=list(ds), gammas=list(GAMMAS),
                          gamma_cells=[list(c) for c in gamma_cells], sigma=0.6,
                          num_test=10_000, seed=seed, generator="gaussian_nb(pooled=True)",
                          synthetic_pool="one nested pool per repetition"),
              records=records, rates=rates)


def _ticks(ax, log_y=True):
  from matplotlib import ticker
  axes = (ax.xaxis, ax.yaxis) if log_y else (ax.xaxis,)
  for axis in axes:
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def plot(results, out: Path) -> list[Path]:
  """Draws gap_vs_m.png, gap_vs_d.png and gap_vs_gamma.png (those with records) in
  ``out``; returns the paths written."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  recs, gammas = results["records"], results["config"]["gammas"]
  shown = [0, 1, 5, 20, 100]
  written = []
  for sweep, var in (("m", "m"), ("d", "d")):
    rows = [r for r in recs if r["sweep"] == sweep]
    if not rows:
      continue
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, loss in zip(axes, ("gap_01", "gap_nll")):
      for g in shown:
        j = gammas.index(g)
        xs = [r[var] for r in rows]
        ys = np.array([r[loss][j] for r in rows])
        se = np.array([r[loss + "_se"][j] for r in rows])
        ax.errorbar(xs, ys, yerr=se, marker="o", ms=3, lw=1, capsize=2, label=f"γ={g}")
      ax.set_xscale("log")
      ax.set_yscale("log")
      _ticks(ax)
      ax.set_xlabel(var)
      ax.set_ylabel(f"mean {loss.replace('_', ' ')}")
      ax.legend(fontsize=7)
    fig.suptitle(f"{'d = 1' if sweep == 'm' else 'm = 10'}; mean ± s.e.", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / f"gap_vs_{var}.png", dpi=110)
    plt.close(fig)
    written.append(out / f"gap_vs_{var}.png")
  rows = [r for r in recs if r["sweep"] == "gamma"]
  if rows:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, loss in zip(axes, ("gap_01", "gap_nll")):
      for r in rows:
        x = np.array(gammas, float) + 1
        ax.errorbar(x, r[loss], yerr=r[loss + "_se"], marker="o", ms=3, lw=1, capsize=2,
                    label=f"d={r['d']}, m={r['m']}")
      ax.set_xscale("log")
      _ticks(ax, log_y=False)
      ax.set_xlabel("1 + γ")
      ax.set_ylabel(f"mean {loss.replace('_', ' ')}")
      ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "gap_vs_gamma.png", dpi=110)
    plt.close(fig)
    written.append(out / "gap_vs_gamma.png")
  return written


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--full", action="store_true")
  p.add_argument("--reps", type=int)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="results/gda")
  p.add_argument("--replot", metavar="RESULTS_JSON", help="redraw the figures of a run")
  args = p.parse_args(argv)
  if args.replot:
    results = json.loads(Path(args.replot).read_text())
    figures = plot(results, Path(args.replot).parent)
    print_rates(results)
    report.print_written(figures)
    return None
  cfg = dict(FULL if args.full else QUICK)
  if args.reps is not None:
    cfg["reps"] = args.reps
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  t0 = time.perf_counter()
  results = run(cfg["reps"], cfg["ms"], cfg["ds"], cfg["gamma_cells"], seed=args.seed)
  results["config"].update(
      command="python experiments/gda.py " + " ".join(sys.argv[1:] if argv is None
                                                     else argv),
      seconds=time.perf_counter() - t0, load_average=list(os.getloadavg()))
  (out / "results.json").write_text(json.dumps(results, indent=1))
  figures = plot(results, out)
  print(f"wall time {results['config']['seconds']:.0f} s")
  print_rates(results)
  report.print_written([out / "results.json"] + figures)
  return results


def print_rates(results):
  """The fitted rates (slope of log mean gap against log m or log d) at gamma 0, 5, 100."""
  report.print_table(
      ["loss", "sweep", "gamma", "slope of log mean gap vs log sweep", "R²"],
      [[r["loss"], r["sweep"], r["gamma"], f"{r['slope']:.3f}", f"{r['r2']:.3f}"]
       for r in results["rates"] if r["gamma"] in (0, 5, 100)])


if __name__ == "__main__":
  main()
