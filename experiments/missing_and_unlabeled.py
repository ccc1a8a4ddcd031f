"""Missing features and unlabeled data: what a generative classifier does with them.

    python experiments/missing_and_unlabeled.py          # quick: wine + mixture, 2 seeds
                                                          # (2.5 min wall, 45 s CPU on 2
                                                          # cores shared with other jobs)
    python experiments/missing_and_unlabeled.py --full   # digits, wine, MNIST-1D and the
                                                          # mixture, 10 seeds

(a) Features missing completely at random, at a rate of 0-80% in training and test
data alike. jgen fits from the observed entries (naive Bayes per feature; LDA by EM
over the missing entries) and scores the exact marginal of the observed features;
scikit-learn imputes (``SimpleImputer`` with the mean, ``IterativeImputer``) and then
fits ``GaussianNB``, LDA or ``LogisticRegression``, or fits
``HistGradientBoostingClassifier``, which takes NaN natively.

(b) A few labelled examples per class (1-50), the rest of the training set unlabeled.
jgen's EM (``jgen.parallel.semi_supervised_fit``, unlabeled weight 1 and 0.1) against
the labelled-only fit of the same model and scikit-learn's ``SelfTrainingClassifier``
(around ``GaussianNB`` with the same smoothing) and ``LabelSpreading`` (k-NN kernel).

Datasets: digits, wine and MNIST-1D from ``jgen.datasets`` (features standardised on
the training split; MNIST-1D's training split subsampled to 1,000 in (a)), and a
two-class Gaussian mixture in ``D = 16`` with an AR(1) covariance (``rho = 0.6``)
whose complete-data Bayes error is 10%; with missing features the Bayes error of each
test example's observed features is computed exactly and averaged. Error bars are
standard errors over seeds. Writes results/missing_and_unlabeled/{results.json (means and standard errors),
rows_missing.json, rows_unlabeled.json (every cell), missing.png, unlabeled.png};
``--part a`` or ``--part b`` runs one part (the files of the other are kept);
``--resume`` keeps the cells already in ``--out`` and runs the others, seed by seed.

The scikit-learn cells run with BLAS and OpenMP limited to one thread
(``threadpoolctl``): beside JAX's own thread pool, OpenBLAS's threads oversubscribe
the cores and ``IterativeImputer`` + ``LogisticRegression`` on digits ran ~35x slower
with the default thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
from scipy.stats import norm
from threadpoolctl import threadpool_limits

if __package__ in (None, ""):  # allow `python experiments/missing_and_unlabeled.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jgen  # noqa: E402
from experiments import report  # noqa: E402
from jgen import datasets  # noqa: E402

QUICK = dict(datasets=("wine", "mixture"), fractions=(0.0, 0.4, 0.8), seeds=2,
             counts=(1, 5, 20))
FULL = dict(datasets=("wine", "mixture", "digits", "mnist1d"),
            fractions=(0.0, 0.2, 0.4, 0.6, 0.8), seeds=10, counts=(1, 2, 5, 10, 20, 50))
EM_ITER = 10          # EM iterations over missing entries (LDA); most gain comes early
SHRINKAGE = 0.1       # LDA shrinkage, jgen and scikit-learn (lsqr) alike
SEMI_VS = 0.1         # naive Bayes var_smoothing in (b), jgen and scikit-learn alike
SEMI_SHRINKAGE = 0.5  # LDA shrinkage in (b) (needs >= 2 labels per class)
MIX_D, MIX_RHO, MIX_BAYES = 16, 0.6, 0.10


def _mixture_params():
  idx = np.arange(MIX_D)
  cov = MIX_RHO ** np.abs(idx[:, None] - idx[None, :])
  u = np.ones(MIX_D)
  delta = 2 * norm.isf(MIX_BAYES)            # Bayes error Phi(-Delta / 2)
  diff = u * delta / np.sqrt(u @ np.linalg.solve(cov, u))
  return np.stack([-diff / 2, diff / 2]), cov


def _mixture(seed, n_train=1000, n_test=5000):
  means, cov = _mixture_params()
  rng = np.random.default_rng(1000 + seed)
  chol = np.linalg.cholesky(cov)
  def draw(n):
    y = rng.integers(0, 2, n)
    return (means[y] + rng.normal(size=(n, MIX_D)) @ chol.T).astype(np.float32), y
  (x, y), (xt, yt) = draw(n_train), draw(n_test)
  return x, y.astype(np.int32), xt, yt.astype(np.int32)


def mixture_bayes_error(observed: np.ndarray) -> float:
  """Mean over test rows of ``Phi(-Delta_o / 2)``, the Bayes error given the observed
  features ``o`` of each row: ``Delta_o^2 = d_o^T Sigma_oo^{-1} d_o``."""
  means, cov = _mixture_params()
  d = means[1] - means[0]
  out = []
  for o in observed:
    idx = np.flatnonzero(o)
    m2 = d[idx] @ np.linalg.solve(cov[np.ix_(idx, idx)], d[idx]) if idx.size else 0.0
    out.append(norm.cdf(-np.sqrt(m2) / 2))
  return float(np.mean(out))


def _load(name, seed, subsample=None):
  if name == "mixture":
    return _mixture(seed)
  x, y, xt, yt = datasets.load(name)
  if subsample and x.shape[0] > subsample:
    keep = np.random.default_rng(seed).choice(x.shape[0], subsample, replace=False)
    x, y = x[np.sort(keep)], y[np.sort(keep)]
  mu, sd = x.mean(0), x.std(0)
  sd = np.where(sd > 0, sd, 1)
  return ((x - mu) / sd).astype(np.float32), y, ((xt - mu) / sd).astype(np.float32), yt


def _jgen_missing(model, x, y, o, xt, yt, ot, k):
  """Accuracy of a jgen family fitted and scored on the observed entries only."""
  try:
    res = jgen.gaussian.fit_missing(model, jnp.asarray(np.where(o, x, np.nan)),
                                    jnp.asarray(y), jnp.asarray(o), num_classes=k,
                                    max_iter=EM_ITER, tol=1e-6)
  except ValueError:     # e.g. a feature never observed in a class
    return float("nan")
  ll = model.log_likelihood(res.params, jnp.asarray(np.where(ot, xt, 0.0)),
                            observed=jnp.asarray(ot))
  return float(np.mean(np.asarray(jgen.predict(ll, res.params.log_prior)) == yt))


def _cells(names, grid, seeds, rows, x_key):
  """``(name, value, seed)`` of every cell not already in ``rows``, seed by seed (an
  interrupted run has the same number of seeds in every cell, give or take one)."""
  done = {(r["dataset"], r[x_key], r["seed"]) for r in rows}
  for seed in range(seeds):
    for name in names:
      for value in grid:
        if (name, value, seed) not in done:
          yield name, value, seed


def _part_a(names, fractions, seeds, progress, save, rows):
  for name, frac, seed in _cells(names, fractions, seeds, rows, "fraction"):
    x, y, xt, yt = _load(name, seed, subsample=1000)
    k = int(y.max()) + 1
    rng = np.random.default_rng(seed)
    o, ot = rng.random(x.shape) >= frac, rng.random(xt.shape) >= frac
    xn, xtn = np.where(o, x, np.nan), np.where(ot, xt, np.nan)
    rec = {"dataset": name, "fraction": frac, "seed": seed}
    t = time.perf_counter()
    rec["jgen NB (marginal)"] = _jgen_missing(jgen.gaussian_nb(), x, y, o, xt, yt, ot,
                                              k)
    rec["jgen LDA (EM + marginal)"] = _jgen_missing(jgen.lda(SHRINKAGE), x, y, o, xt,
                                                    yt, ot, k)
    rec["time jgen"] = time.perf_counter() - t
    t = time.perf_counter()
    with threadpool_limits(limits=1), warnings.catch_warnings():
      warnings.simplefilter("ignore")
      _sklearn_missing(rec, seed, x, y, xt, yt, xn, xtn, frac)
    rec["time sklearn"] = time.perf_counter() - t
    if name == "mixture":
      rec["Bayes error"] = mixture_bayes_error(ot)
    rows.append(rec)
    save(rows)      # an interrupted run keeps every finished cell
    progress.update(1)
  return rows


def _sklearn_missing(rec, seed, x, y, xt, yt, xn, xtn, frac):
  """The scikit-learn cells of (a): imputation pipelines and HistGradientBoosting."""
  from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
  from sklearn.ensemble import HistGradientBoostingClassifier
  from sklearn.experimental import enable_iterative_imputer  # noqa: F401
  from sklearn.impute import IterativeImputer, SimpleImputer
  from sklearn.linear_model import LogisticRegression
  from sklearn.naive_bayes import GaussianNB

  clfs = {"GaussianNB": GaussianNB,
          "LDA": lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage=SHRINKAGE),
          "LogisticRegression": lambda: LogisticRegression(max_iter=1000)}
  for iname, imp in (("mean", SimpleImputer()),
                           ("iterative", IterativeImputer(max_iter=5, random_state=seed))):
    xi, xti = (imp.fit_transform(xn), imp.transform(xtn)) if frac else (x, xt)
    for cname, make in clfs.items():
      rec[f"{iname} impute + {cname}"] = float(
          np.mean(make().fit(xi, y).predict(xti) == yt))
  hgb = HistGradientBoostingClassifier(random_state=seed).fit(xn, y)
  rec["HistGradientBoosting (NaN)"] = float(np.mean(hgb.predict(xtn) == yt))


def _labelled(y, count, rng):
  ylab = np.full(y.shape, -1, np.int32)
  for c in np.unique(y):
    idx = np.flatnonzero(y == c)
    ylab[rng.choice(idx, min(count, idx.size), replace=False)] = c
  return ylab


def _part_b(names, counts, seeds, progress, save, rows):
  from sklearn.naive_bayes import GaussianNB
  from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

  semi = jgen.parallel.semi_supervised_fit
  fits = {}
  for name, count, seed in _cells(names, counts, seeds, rows, "count"):
    x, y, xt, yt = _load(name, seed)
    k = int(y.max()) + 1
    ylab = _labelled(y, count, np.random.default_rng(seed))
    lab = ylab >= 0
    acc = lambda model, p: float(np.mean(np.asarray(
        jgen.predict(model, p, jnp.asarray(xt))) == yt))
    rec = {"dataset": name, "count": count, "seed": seed}
    for mname, model, ok in (
        ("NB", jgen.gaussian_nb(var_smoothing=SEMI_VS), True),
        ("LDA", jgen.lda(shrinkage=SEMI_SHRINKAGE), count >= 2)):
      if not ok:
        continue
      rec[f"jgen {mname} labelled only"] = acc(
          model, model.fit(jnp.asarray(x[lab]), jnp.asarray(ylab[lab]), num_classes=k))
      for lam in (1.0, 0.1):
        key = (mname, lam, k)
        if key not in fits:
          fits[key] = jax.jit(lambda x, y, model=model, lam=lam, k=k: semi(
              model, x, y, num_classes=k, unlabeled_weight=lam, max_iter=50,
              tol=1e-6))
        res = fits[key](jnp.asarray(x), jnp.asarray(ylab))
        rec[f"jgen {mname} EM (weight {lam:g})"] = acc(model, res.params)
    with threadpool_limits(limits=1), warnings.catch_warnings():
      warnings.simplefilter("ignore")
      st = SelfTrainingClassifier(GaussianNB(var_smoothing=SEMI_VS)).fit(x, ylab)
      rec["SelfTraining(GaussianNB)"] = float(np.mean(st.predict(xt) == yt))
      ls = LabelSpreading(kernel="knn", n_neighbors=7, max_iter=100).fit(x, ylab)
      rec["LabelSpreading (kNN)"] = float(np.mean(ls.predict(xt) == yt))
    rows.append(rec)
    save(rows)      # an interrupted run keeps every finished cell
    progress.update(1)
  return rows


def _summary(rows, x_key):
  """{dataset: {method: [(x, mean, standard error, n)]}}."""
  out = {}
  skip = {"dataset", "seed", x_key, "time jgen", "time sklearn"}
  for r in rows:
    for m, v in r.items():
      if m in skip:
        continue
      out.setdefault(r["dataset"], {}).setdefault(m, {}).setdefault(r[x_key], []).append(v)
  table = {}
  for ds, methods in out.items():
    for m, by_x in methods.items():
      pts = []
      for xv, vals in sorted(by_x.items()):
        v = np.asarray([a for a in vals if np.isfinite(a)])
        se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
        pts.append((xv, float(v.mean()) if v.size else float("nan"), se, int(v.size)))
      table.setdefault(ds, {})[m] = pts
  return table


def _plot(table, x_label, path, title, bayes=False):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = list(table)
  fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.2), squeeze=False)
  for ax, ds in zip(axes[0], names):
    for m, pts in table[ds].items():
      xs, mean, se, _ = (np.asarray(a) for a in zip(*pts))
      if m == "Bayes error":
        if bayes:
          ax.plot(xs, 1 - mean, "k--", label="Bayes accuracy")
        continue
      style = "-o" if m.startswith("jgen") else ":s"
      ax.errorbar(xs, mean, yerr=se, fmt=style, ms=3, capsize=2, label=m)
    ax.set_title(ds)
    ax.set_xlabel(x_label)
    if x_label.startswith("labelled"):
      ax.set_xscale("log")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
  axes[0][-1].legend(fontsize=7, loc="best")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--full", action="store_true")
  parser.add_argument("--part", choices=("a", "b", "both"), default="both",
                      help="run (a), (b) or both; the figures use every part on disk")
  parser.add_argument("--out", default="results/missing_and_unlabeled")
  parser.add_argument("--datasets", nargs="*", help="a subset of the datasets")
  parser.add_argument("--fractions", nargs="*", type=float, help="a subset of (a)'s grid")
  parser.add_argument("--seeds", type=int, help="seeds 0 .. seeds-1 instead")
  parser.add_argument("--resume", action="store_true",
                      help="keep the cells already in --out's rows files, run the rest")
  args = parser.parse_args(argv)
  cfg = dict(FULL if args.full else QUICK)
  if args.datasets:
    cfg["datasets"] = tuple(args.datasets)
  if args.fractions:
    cfg["fractions"] = tuple(args.fractions)
  if args.seeds:
    cfg["seeds"] = args.seeds
  os.makedirs(args.out, exist_ok=True)
  from tqdm import tqdm
  start = time.perf_counter()
  parts = {"a": ("missing", "fraction", _part_a, "fractions", "(a) missing features"),
           "b": ("unlabeled", "count", _part_b, "counts", "(b) unlabeled data")}
  for part in ("a", "b"):
    if args.part not in (part, "both"):
      continue
    key, x_key, run, grid, desc = parts[part]
    path = os.path.join(args.out, f"rows_{key}.json")
    save = lambda rows, path=path: _dump(path, rows)
    rows = []
    if args.resume and os.path.exists(path):
      with open(path) as f:
        rows = json.load(f)
    total = len(list(_cells(cfg["datasets"], cfg[grid], cfg["seeds"], rows, x_key)))
    with tqdm(total=total, desc=desc) as bar:
      run(cfg["datasets"], cfg[grid], cfg["seeds"], bar, save, rows)
  written = _write(args.out, cfg, args.full, time.perf_counter() - start)
  report.print_written(written)


def _dump(path, rows):
  with open(path, "w") as f:
    json.dump(rows, f)


def _write(out, cfg, full, seconds):
  """Tables, the JSON of every part on disk, and its figures."""
  result = {"config": {**cfg, "em_iter": EM_ITER, "shrinkage": SHRINKAGE,
                       "semi_var_smoothing": SEMI_VS, "semi_shrinkage": SEMI_SHRINKAGE,
                       "full": full, "seconds": seconds}}
  written = []
  for key, x_key, label, title in (
      ("missing", "fraction", "fraction of features missing",
       "Missing features: exact marginal (jgen) vs imputation (scikit-learn)"),
      ("unlabeled", "count", "labelled examples per class",
       "Unlabeled data: EM (jgen) vs labelled-only, self-training, label spreading")):
    path = os.path.join(out, f"rows_{key}.json")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      rows = json.load(f)
    table = _summary(rows, x_key)
    for ds, methods in table.items():
      xs = sorted({p[0] for pts in methods.values() for p in pts})
      report.print_table(
          ["method"] + [str(v) for v in xs],
          [[m] + [dict((p[0], p[1]) for p in pts).get(v, float("nan")) for v in xs]
           for m, pts in methods.items()],
          title=f"{ds}: test accuracy against the {label} (mean over seeds)")
    result[key] = table
    png = os.path.join(out, f"{key}.png")
    _plot(table, label, png, title, bayes=key == "missing")
    written += [path, png]
  json_path = os.path.join(out, "results.json")
  with open(json_path, "w") as f:
    json.dump(result, f, indent=1)
  return [json_path] + written


if __name__ == "__main__":
  main()
