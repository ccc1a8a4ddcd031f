"""H-consistency bounds: closed-form transforms vs the numerical calibration function,
and the 0-1 excess-risk bound for logistic regression on the paper's Gaussian mixtures.

Part (a): for every loss and K in {2, 3, 5, 10}, the closed-form transform T(t)
(``jgen.bounds.psi``) against the numerical calibration function delta(t)
(``jgen.bounds.calibration_function``), an upper estimate of the exact transform.
Reported per loss and K: ``max(T - delta)`` (validity: must be <= 0 up to rounding) and
``max |delta - T|`` (tightness gap).

Part (b): multiclass logistic regression trained on Gaussian mixtures with known
posteriors (``jgen.simulate``) for increasing sample sizes and iteration budgets; for
each model the logistic excess risk u and the 0-1 excess risk e, both computed with
the true posterior on a test sample, against the bound Gamma(u)
(``jgen.bounds.zero_one_bound``). The mixtures' posteriors are linear-softmax, so the
minimizability gaps of linear models vanish (estimated with
``jgen.bounds.linear_minimizability_gap`` and reported).

Usage:
  python experiments/hconsistency.py            # quick (minutes on 2 CPU cores)
  python experiments/hconsistency.py --full     # the run the docs cite
  python experiments/hconsistency.py --replot docs/figures/hconsistency/results.json \
      --out docs/figures/hconsistency           # redraw the figures, no computation
Writes results/hconsistency/{results.json, transforms.png, lr_bound.png}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

jax.config.update("jax_enable_x64", True)

from jgen import bounds  # noqa: E402

if __package__ in (None, ""):  # allow `python experiments/hconsistency.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import report  # noqa: E402

CASES = [("logistic", None), ("comp_sum", 0.0), ("comp_sum", 0.5), ("comp_sum", 1.5),
         ("comp_sum", 2.0), ("constrained_exponential", None), ("squared_hinge", None),
         ("hinge", None), ("crammer_singer", None)]
KS = (2, 3, 5, 10)


def _label(name, tau):
  return name if tau is None else f"{name} tau={tau:g}"


def transforms_vs_calibration(*, num_t, num_restarts, num_steps, ks=KS, cases=CASES,
                              seed=0):
  """Part (a): closed-form T against the numerical delta for every loss and K."""
  t = jnp.linspace(0.0, 1.0, num_t)
  fns = [bounds.get_loss(n, tau=tau) for n, tau in cases]
  rows, curves = [], {}
  for k in tqdm(ks, desc="(a) calibration, K"):
    t0 = time.perf_counter()
    delta = np.asarray(bounds.calibration_function(
        fns, t, num_classes=k, key=jax.random.key(seed + k),
        num_restarts=num_restarts, num_steps=num_steps))
    seconds = time.perf_counter() - t0
    for (name, tau), d in zip(cases, delta):
      closed = np.asarray(bounds.psi(name, t, num_classes=k, tau=tau))
      rows.append(dict(loss=_label(name, tau), K=k,
                       max_T_minus_delta=float(np.max(closed - d)),
                       max_abs_gap=float(np.max(np.abs(d - closed))),
                       seconds_all_losses=seconds))
      curves[f"{_label(name, tau)}|{k}"] = dict(T=closed.tolist(), delta=d.tolist())
  return dict(t=np.asarray(t).tolist(), rows=rows, curves=curves)


def bounded_scores(*, num_t, num_restarts, num_steps, seed=0):
  """Bounded scores |h| <= Lambda, logistic: n = 2 closed form vs delta, and the
  n = 3 box-bounded delta at small t (where the recalled formula would give T_1)."""
  t = jnp.linspace(0.0, 1.0, num_t)
  out = {}
  for lam in (0.5, 1.0, 2.0):
    d = np.asarray(bounds.calibration_function(
        "logistic", t, num_classes=2, key=jax.random.key(seed), score_bound=lam,
        num_restarts=num_restarts, num_steps=num_steps))
    closed = np.asarray(bounds.psi("logistic", t, num_classes=2, score_bound=lam))
    out[f"n2_lambda{lam:g}"] = dict(max_T_minus_delta=float(np.max(closed - d)),
                                    max_abs_gap=float(np.max(np.abs(d - closed))))
  small = jnp.array([0.02, 0.05, 0.1])
  d3 = np.asarray(bounds.calibration_function(
      "logistic", small, num_classes=3, key=jax.random.key(seed), score_bound=1.0,
      num_restarts=num_restarts, num_steps=num_steps))
  out["n3_lambda1"] = dict(t=np.asarray(small).tolist(), delta=d3.tolist(),
                           T_logistic=np.asarray(bounds.psi("logistic", small,
                                                            num_classes=3)).tolist())
  return out


def plot_transforms(res, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.lines import Line2D
  t = np.asarray(res["t"])
  fig, axes = plt.subplots(3, 3, figsize=(13, 11), sharex=True)
  # One colour and one line style per K, so curves that coincide (K = 2 under K = 10)
  # stay visible; dots are the numerical calibration function.
  colors = dict(zip(KS, ["C0", "C1", "C2", "C3"]))
  styles = dict(zip(KS, ["-", "--", "-.", ":"]))
  for ax, (name, tau) in zip(axes.ravel(), CASES):
    for k in KS:
      c = res["curves"].get(f"{_label(name, tau)}|{k}")
      if c is None:
        continue
      ax.plot(t, c["T"], color=colors[k], ls=styles[k], lw=1.8)
      ax.plot(t, c["delta"], color=colors[k], ls="none", marker="o", ms=3, alpha=0.8)
    ax.set_title(_label(name, tau), fontsize=11)
    ax.grid(alpha=0.3)
  for ax in axes[-1]:
    ax.set_xlabel("t: conditional 0-1 regret")
  for ax in axes[:, 0]:
    ax.set_ylabel("conditional surrogate regret")
  handles = [Line2D([], [], color=colors[k], ls=styles[k], lw=1.8, label=f"T(t), K={k}")
             for k in KS]
  handles.append(Line2D([], [], color="0.3", ls="none", marker="o", ms=4,
                        label="numerical delta(t), same colour per K"))
  fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=10, frameon=False)
  fig.suptitle("Closed-form H-consistency transforms T(t) (lines) against the numerical "
               "calibration function delta(t) (dots)", fontsize=12)
  fig.tight_layout(rect=(0, 0.04, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)


def markdown_table(rows):
  lines = ["| loss | " + " | ".join(f"K={k}" for k in KS) + " |",
           "|---|" + "---|" * len(KS)]
  by = {}
  for r in rows:
    by.setdefault(r["loss"], {})[r["K"]] = r
  for loss, per_k in by.items():
    cells = []
    for k in KS:
      r = per_k.get(k)
      cells.append("" if r is None else
                   f"{r['max_T_minus_delta']:.1e} / {r['max_abs_gap']:.1e}")
    lines.append(f"| {loss} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def lr_bound(*, problems, sizes, iters, reps, num_test, gap_samples=5000, seed=0):
  """Part (b): logistic regression on the mixtures; excess risks with the true posterior.

  Training sets are nested prefixes of one balanced draw, padded to the largest size
  with zero sample weights, so one vmapped fit per (K, n, max_iter) covers every
  size and repetition.
  """
  from jgen import logistic, simulate
  out = dict(points=[], gaps=[])
  for k, dim in tqdm(problems, desc="(b) LR on mixtures"):
    mix = simulate.zheng_mixture(k, dim, dtype=jnp.float64)
    test_key, *train_keys = jax.random.split(jax.random.key(seed + 100 * k + dim), reps + 1)
    x_test, _ = simulate.sample(test_key, mix, num_test)
    post = jnp.exp(simulate.true_log_posterior(mix, x_test))
    post = post / jnp.sum(post, -1, keepdims=True)
    if gap_samples:
      gap = bounds.linear_minimizability_gap("logistic", x_test[:gap_samples],
                                             post[:gap_samples])
      out["gaps"].append(dict(K=k, dim=dim, gap=float(gap.gap),
                              bayes_risk=float(gap.bayes_risk)))
    n_max = max(sizes)
    data = [simulate.sample(kk, mix, n_max) for kk in train_keys]
    x_all = jnp.stack([jnp.stack([d[0]] * len(sizes)) for d in data])    # [R, S, N, D]
    y_all = jnp.stack([jnp.stack([d[1]] * len(sizes)) for d in data])
    w_all = jnp.broadcast_to(
        (jnp.arange(n_max)[None, :] < jnp.asarray(sizes)[:, None]).astype(jnp.float64),
        (reps, len(sizes), n_max))
    for it in iters:
      lr = logistic.logistic_regression(C=1.0, max_iter=it)
      fit = lambda x, y, w: lr.fit(x, y, num_classes=k, sample_weight=w)
      params = jax.jit(jax.vmap(jax.vmap(fit)))(x_all, y_all, w_all)
      # All models at once: logits [R, S, N_test, K], regrets averaged over the sample.
      logits = jax.vmap(jax.vmap(lambda q: lr.log_likelihood(q, x_test)))(params)
      shape = logits.shape
      post_b = jnp.broadcast_to(post[None, None], shape)
      u = jnp.mean(bounds.conditional_regret("logistic", logits, post_b), axis=-1)
      e = jnp.mean(bounds.zero_one_regret(logits, post_b), axis=-1)
      bound = bounds.zero_one_bound("logistic", jnp.maximum(u, 0.0), num_classes=k)
      for r in range(reps):
        for si, m in enumerate(sizes):
          out["points"].append(dict(
              K=k, dim=dim, m=m, max_iter=it, rep=r, surrogate_excess=float(u[r, si]),
              zero_one_excess=float(e[r, si]), bound=float(bound[r, si]),
              converged=bool(params.info.converged[r, si])))
  pts = out["points"]
  out["violations"] = int(sum(p["zero_one_excess"] > p["bound"] + 1e-12 for p in pts))
  out["num_points"] = len(pts)
  ratios = [p["zero_one_excess"] / p["bound"] for p in pts if p["bound"] > 0]
  out["ratio_excess_over_bound"] = dict(median=float(np.median(ratios)),
                                        max=float(np.max(ratios)))
  return out


def plot_lr(res, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 5.5))
  pts = res["points"]
  keys = sorted({(p["K"], p["dim"]) for p in pts})
  for i, (k, dim) in enumerate(keys):
    sel = [p for p in pts if (p["K"], p["dim"]) == (k, dim)]
    ax.scatter([p["bound"] for p in sel], [p["zero_one_excess"] for p in sel], s=12,
               color=f"C{i}", alpha=0.7, label=f"K={k}, n={dim}")
  lo = max(1e-5, min(min(p["zero_one_excess"] for p in pts if p["zero_one_excess"] > 0),
                     min(p["bound"] for p in pts)) / 2)
  ax.plot([lo, 1], [lo, 1], "k--", lw=1, label="bound = excess")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("bound Gamma(logistic excess risk)")
  ax.set_ylabel("0-1 excess risk (true posterior)")
  zeros = sum(p["zero_one_excess"] <= 0 for p in pts)
  ax.set_title(f"Logistic regression on Gaussian mixtures\n{res['violations']} of "
               f"{res['num_points']} models above the bound ({zeros} with zero 0-1 "
               "excess not shown)", fontsize=10)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--full", action="store_true", help="the settings the docs cite")
  ap.add_argument("--tiny", action="store_true", help="smoke-test settings")
  ap.add_argument("--out", default="results/hconsistency")
  ap.add_argument("--parts", default="ab", help="which parts to run: a, b or ab")
  ap.add_argument("--replot", metavar="RESULTS_JSON",
                  help="redraw the figures from a results.json (no computation)")
  args = ap.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  if args.replot:
    return replot(args.replot, args.out)
  if args.tiny:
    cal = dict(num_t=5, num_restarts=3, num_steps=30)
    ks = (2, 3)
    lr = dict(problems=[(2, 4)], sizes=[8, 32], iters=[3], reps=1, num_test=500)
  elif args.full:
    cal = dict(num_t=41, num_restarts=48, num_steps=1000)
    ks = KS
    lr = dict(problems=[(2, 20), (3, 20), (5, 20), (2, 100)],
              sizes=[10, 20, 50, 100, 200, 500, 1000, 2000],
              iters=[1, 3, 10, 1000], reps=3, num_test=20_000)
  else:
    cal = dict(num_t=21, num_restarts=24, num_steps=400)
    ks = KS
    lr = dict(problems=[(2, 20), (3, 20)], sizes=[10, 30, 100, 300, 1000],
              iters=[2, 10, 1000], reps=2, num_test=20_000)
  results = dict(settings=dict(full=args.full, tiny=args.tiny, calibration=cal,
                               lr=lr))
  written = []
  if "a" in args.parts:
    res = transforms_vs_calibration(ks=ks, **cal)
    res["bounded"] = bounded_scores(**cal)
    results["transforms"] = res
    written.append(os.path.join(args.out, "transforms.png"))
    plot_transforms(res, written[-1])
  if "b" in args.parts:
    res = lr_bound(**lr)
    results["lr_bound"] = res
    written.append(os.path.join(args.out, "lr_bound.png"))
    plot_lr(res, written[-1])
  # Parts can be run separately (--parts a, then --parts b): merge into one file.
  path = os.path.join(args.out, "results.json")
  if os.path.exists(path) and args.parts != "ab":
    with open(path) as f:
      previous = json.load(f)
    previous.update({k: v for k, v in results.items() if k != "settings"})
    previous.setdefault("settings_by_part", {})[args.parts] = results["settings"]
    results = previous
  with open(path, "w") as f:
    json.dump(results, f, indent=1)
  print_summary(results, args.parts)
  report.print_written([path] + written)
  return results


def replot(results_json, out):
  """Redraws transforms.png and lr_bound.png from a results.json into ``out``."""
  with open(results_json) as f:
    results = json.load(f)
  written = []
  if "transforms" in results:
    written.append(os.path.join(out, "transforms.png"))
    plot_transforms(results["transforms"], written[-1])
  if "lr_bound" in results:
    written.append(os.path.join(out, "lr_bound.png"))
    plot_lr(results["lr_bound"], written[-1])
  report.print_written(written)
  return results


def print_summary(results, parts):
  """The tables of the parts run now (``results`` may also hold earlier parts)."""
  if "a" in parts:
    res = results["transforms"]
    print("(a) max(T - delta) / max abs(delta - T) per loss and K:")
    print(markdown_table(res["rows"]))
    bounded = res["bounded"]
    report.print_table(
        ["logistic, scores in [-Lambda, Lambda]", "max(T - delta)", "max abs(delta - T)"],
        [[f"K=2, Lambda={name.removeprefix('n2_lambda')}", v["max_T_minus_delta"],
          v["max_abs_gap"]] for name, v in bounded.items() if name.startswith("n2_")],
        title="(a) bounded scores, closed form vs calibration function:", digits=2)
    n3 = bounded["n3_lambda1"]
    report.print_table(
        ["t", "delta (K=3, Lambda=1)", "unbounded T (K=3)"],
        zip(n3["t"], n3["delta"], n3["T_logistic"]),
        title="(a) bounded scores at small t:")
  if "b" in parts:
    res = results["lr_bound"]
    ratio = res["ratio_excess_over_bound"]
    report.print_table(
        ["models", "above the bound", "excess / bound, median", "excess / bound, max"],
        [[res["num_points"], res["violations"], ratio["median"], ratio["max"]]],
        title="(b) logistic regression: 0-1 excess risk against Gamma(logistic excess):")
    if res["gaps"]:
      report.print_table(
          ["K", "n", "minimizability gap (nats)", "Bayes risk (nats)"],
          [[g["K"], g["dim"], g["gap"], g["bayes_risk"]] for g in res["gaps"]],
          title="(b) linear minimizability gaps:", digits=2)


if __name__ == "__main__":
  main()
