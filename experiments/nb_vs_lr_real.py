"""Naive Bayes vs logistic regression learning curves on real data available offline.

Protocol of Zheng et al. (ICML 2023), applied to raw features instead of frozen-backbone
features: random training subsets of size m, MinMax scaling fit on each subset (and
applied to the test split), pooled naive Bayes and L2 logistic regression (C = 1),
test error on the dataset's fixed test split, 20 random subsets per m (the paper used
5). Checks the paper's two observations with paired differences (both models see the
same subsets): "few-shot" (NB better at the smallest m) and "two regimes" (NB better at
small m, LR better at large m), each difference called only when it exceeds 2
standard errors of the mean paired difference.

    python experiments/nb_vs_lr_real.py           # quick: 6 sizes per dataset
    python experiments/nb_vs_lr_real.py --full    # 12 sizes per dataset

Subsets: each repetition draws one example per class, then a random order of the
rest; the subset of size m is the first m of that order (nested, every class present).
All sizes and repetitions of a dataset run in one vmapped, jitted call: the subset is
a 0/1 weight mask over the whole training split, so nothing re-traces per m.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jgen import datasets
from jgen import gaussian
from jgen.logistic import batched

if __package__ in (None, ""):  # allow `python experiments/nb_vs_lr_real.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import report  # noqa: E402

NAMES = ("digits", "mnist1d", "wine", "breast_cancer", "penguins")
_NB = gaussian.gaussian_nb(var_smoothing=1e-9, pooled=True)


def _orders(key, y, num_classes, num_reps):
  """``[R, N]`` permutations whose first ``K`` entries hold one example per class."""
  y = np.asarray(y)
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel()[-1])
  out = []
  for _ in range(num_reps):
    first = [rng.choice(np.flatnonzero(y == k)) for k in range(num_classes)]
    rest = rng.permutation(np.setdiff1d(np.arange(len(y)), first))
    out.append(np.concatenate([first, rest]))
  return np.stack(out)


@functools.partial(jax.jit, static_argnames=("num_classes", "model"))
def _errors(x, y, x_test, y_test, orders, sizes, *, num_classes, model):
  # The branch-free solver: same objective and stopping rule, no wasted vmap lanes.
  lr = batched.batched_logistic_regression(1.0, tol=1e-4, max_iter=1000)

  def one(order, m):
    xs, ys = x[order], y[order]
    w = (jnp.arange(x.shape[0]) < m).astype(x.dtype)
    keep = w[:, None] > 0
    lo = jnp.min(jnp.where(keep, xs, jnp.inf), axis=0)
    hi = jnp.max(jnp.where(keep, xs, -jnp.inf), axis=0)
    scale = jnp.where(hi > lo, hi - lo, 1.0)       # MinMaxScaler: constant -> 1
    xs = (xs - lo[None, :]) / scale[None, :]
    xt = (x_test - lo[None, :]) / scale[None, :]
    if model == "nb":
      params = _NB.fit(xs, ys, num_classes=num_classes, sample_weight=w)
      scores = _NB.log_likelihood(params, xt) + params.log_prior[None, :]
      ok = jnp.asarray(True)
    else:
      params = lr.fit(xs, ys, num_classes=num_classes, sample_weight=w)
      scores, ok = lr.log_likelihood(params, xt), params.info.converged
    return jnp.mean(jnp.argmax(scores, -1) != y_test), ok

  return jax.vmap(lambda o: jax.vmap(lambda m: one(o, m))(sizes))(orders)


def run(names, *, num_sizes=6, reps=20, seed=0, show_progress=True):
  from tqdm import tqdm
  records = []
  for name in tqdm(names, desc="nb_vs_lr_real", disable=not show_progress):
    split = getattr(datasets, f"load_{name}")()
    k = int(split.y_train.max()) + 1
    n_train = len(split.y_train)
    sizes = np.unique(np.geomspace(k, n_train, num_sizes).round().astype(int))
    orders = _orders(jax.random.fold_in(jax.random.key(seed), len(records)),
                     split.y_train, k, reps)
    rec = dict(dataset=name, num_classes=k, dim=int(split.x_train.shape[1]),
               n_train=n_train, n_test=len(split.y_test), m=sizes.tolist())
    errs = {}
    for model in ("nb", "lr"):
      err, ok = _errors(jnp.asarray(split.x_train), jnp.asarray(split.y_train),
                        jnp.asarray(split.x_test), jnp.asarray(split.y_test),
                        jnp.asarray(orders), jnp.asarray(sizes, jnp.int32),
                        num_classes=k, model=model)
      err = np.asarray(err)                                       # [R, G]
      errs[model] = err
      rec[model] = dict(mean_error=err.mean(0).tolist(),
                        std_error=(err.std(0, ddof=1) / np.sqrt(reps)).tolist(),
                        not_converged=int(np.sum(~np.asarray(ok))))
    diff = errs["nb"] - errs["lr"]                                  # [R, G], paired
    rec["nb_minus_lr"] = dict(mean=diff.mean(0).tolist(),
                              std_error=(diff.std(0, ddof=1) / np.sqrt(reps)).tolist())
    rec["crossover"] = crossover(sizes, rec["nb"]["mean_error"], rec["lr"]["mean_error"])
    rec["verdicts"] = verdicts(sizes, rec["nb_minus_lr"]["mean"],
                               rec["nb_minus_lr"]["std_error"])
    records.append(rec)
  return dict(config=dict(datasets=list(names), num_sizes=num_sizes, reps=reps,
                          seed=seed, C=1.0, scaling="MinMax fit on each subset"),
              records=records)


def verdicts(sizes, diff, se, k=2.0):
  """The paper's observations, called only beyond ``k`` standard errors.

  ``better`` per size: ``"NB"`` (NB - LR < -k SE), ``"LR"`` (> k SE) or ``"tie"``.
  few-shot: NB is the better model at the smallest m where the two differ. Two
  regimes: NB better at some m, LR better at a larger one, and NB never better again
  after LR first is.
  """
  diff, se = np.asarray(diff), np.asarray(se)
  better = np.where(diff < -k * se, "NB", np.where(diff > k * se, "LR", "tie"))
  differ = [b for b in better if b != "tie"]
  first_lr = next((i for i, b in enumerate(better) if b == "LR"), None)
  two = (first_lr is not None and "NB" in better[:first_lr]
         and "NB" not in better[first_lr:])
  return dict(better=better.tolist(), few_shot=bool(differ and differ[0] == "NB"),
              two_regimes=bool(two))


def crossover(sizes, nb, lr):
  """Describes the regimes: the first m from which LR's mean error is below NB's."""
  nb, lr = np.asarray(nb), np.asarray(lr)
  lr_better = lr < nb
  if not lr_better.any():
    return dict(m=None, regimes="NB better or equal at every m")
  i = int(np.argmax(lr_better))
  if lr_better[i:].all() and i > 0:
    return dict(m=int(sizes[i]), regimes=f"NB better below m={int(sizes[i])},"
                " LR better from there on")
  if lr_better.all():
    return dict(m=int(sizes[0]), regimes="LR better at every m")
  return dict(m=int(sizes[i]), regimes="curves cross more than once; LR first better"
              f" at m={int(sizes[i])}")


def plot(results, out_dir):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  recs = results["records"]
  fig, axes = plt.subplots(1, len(recs), figsize=(3.3 * len(recs), 3), squeeze=False)
  for ax, r in zip(axes[0], recs):
    for model in ("nb", "lr"):  # 95% intervals of the mean (1.96 standard errors)
      ax.errorbar(r["m"], r[model]["mean_error"],
                  yerr=1.96 * np.asarray(r[model]["std_error"]), marker=".",
                  capsize=2, lw=1, label=model)
    if r["crossover"]["m"] is not None:
      ax.axvline(r["crossover"]["m"], color="gray", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_title(f"{r['dataset']} (K={r['num_classes']}, d={r['dim']})", fontsize=9)
    ax.set_xlabel("training size m")
    ax.legend(fontsize=7)
  axes[0, 0].set_ylabel("test error")
  fig.tight_layout()
  fig.savefig(Path(out_dir) / "real_error_vs_m.png", dpi=120)
  plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--full", action="store_true", help="12 sizes per dataset")
  p.add_argument("--datasets", nargs="+", default=list(NAMES), choices=NAMES)
  p.add_argument("--reps", type=int, default=20)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="results/nb_vs_lr_real")
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  t0 = time.perf_counter()
  res = run(args.datasets, num_sizes=12 if args.full else 6, reps=args.reps,
            seed=args.seed, show_progress=not args.no_progress)
  res["config"]["command"] = "python experiments/nb_vs_lr_real.py " + " ".join(
      sys.argv[1:] if argv is None else argv)
  res["config"]["seconds"] = time.perf_counter() - t0
  (out / "results.json").write_text(json.dumps(res, indent=1))
  plot(res, out)
  print(f"wall time {res['config']['seconds']:.0f} s")
  print_summary(res)
  report.print_written([out / "results.json", out / "real_error_vs_m.png"])
  return res


def print_summary(res):
  """Per dataset: mean test error of NB and LR at the smallest and largest m, and the
  crossover (the full curves are in results.json and the figure)."""
  def pair(r, i):
    return f"{r['nb']['mean_error'][i]:.3f} / {r['lr']['mean_error'][i]:.3f}"

  report.print_table(
      ["dataset", "K", "d", "m (training examples)", "NB / LR test error, smallest m",
       "NB / LR test error, largest m", "LR first better at m", "better (2 SE) per m",
       "few-shot", "two regimes"],
      [[r["dataset"], r["num_classes"], r["dim"], f"{r['m'][0]}..{r['m'][-1]}",
        pair(r, 0), pair(r, -1), r["crossover"]["m"]] + (
            [" ".join(r["verdicts"]["better"]), r["verdicts"]["few_shot"],
             r["verdicts"]["two_regimes"]] if "verdicts" in r else ["-"] * 3)
       for r in res["records"]])


if __name__ == "__main__":
  main()
