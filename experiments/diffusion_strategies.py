"""Accuracy against denoiser evaluations per image for every classification strategy.

Datasets: (a) Gaussian class-conditional mixtures with the exact denoiser
(``gaussian_oracle``), 10 and 1,000 classes, with the Bayes accuracy as reference;
(b) sklearn digits (8x8, 10 classes) with a small MLP denoiser trained here, and
MNIST-1D (40-sample signals, 10 classes) with the convolutional U-Net trained here.
Strategies: ``full``, ``adaptive`` (Li et al. 2023 stages), ``sequential`` (paired
successive elimination), ``race`` (sift one shared timestep batch at a time, paired
test with a union bound over rounds), and the race's ingredients alone and together:
``+cs`` (anytime-valid confidence sequence, ``rule="cs"``), ``+is+anti``
(importance-sampled timesteps fitted on pilot training examples, and antithetic noise),
``+qda2`` (a first stage: only the two classes a QDA on ``x`` ranks highest enter the
race; not on the oracles, where a Gaussian classifier on ``x`` would be exact);
with 10 classes ``+c4`` (rounds of 4 draws instead of 8) and ``+adapt`` (the
per-image timestep proposal, ``adapt_t=True``, from the uniform start or from the
pilot proposal).
With 1,000 classes, ``jgen.diffusion.hierarchy`` too: ``screen2/32+race+cs+is+anti``
(every class scored on one antithetic pair of importance-sampled draws, the best 32
race under the confidence sequence), ``tree8+...`` (first a cut to the 8 best of 32
groups clustered from the denoiser's scores on 128 calibration examples) and
``treetest+...`` (the cut by the race's paired tests among the groups'
representatives, ``prune="test"``).
Every point carries its standard error over images (and seeds with ``--seeds``).
``variance`` records the per-draw variance of the paired class difference with and
without control variates; ``agreement`` (``--agreement``) the fraction of anytime-race
labels that differ from the ``full`` protocol's on 1,000+ images at two stated levels.

Run: ``python -m experiments.diffusion_strategies`` (quick: the 10-class oracle and
digits; ``--datasets oracle10,oracle1000,digits`` adds the 1,000-class oracle) or
``--full`` (all three); writes ``results/diffusion_strategies/{results.json,*.png}``
and prints a summary.
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
from flax import nnx
from tqdm import tqdm

import jgen
from jgen import diffusion
from jgen.diffusion import train as dtrain
from jgen.diffusion.losses import draw, noisy

if __package__ in (None, ""):  # allow `python experiments/diffusion_strategies.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import report  # noqa: E402

OUT = os.path.join("results", "diffusion_strategies")
# Stages for 1,000 classes under a 20,000-evaluation budget (the reference's ImageNet
# schedule spends 100,000): 8 draws for every class, then the best 100, 12, 3 classes up
# to 48, 256 and 1,024 draws (17,900 evaluations). Chosen among five schedules of 17,000-
# 22,000 evaluations on the oracle's first 1,000 test points (other noise keys), then
# checked on its held-out 1,000: 54.0% against the Bayes 54.3% (two noise keys).
ADAPTIVE_1000 = ((8, 48, 256, 1024), (100, 12, 3, 1))
QUICK = dict(n_test=200, n_test_1000=100, digits_steps=3000, full_t=256, k1000_full_t=32,
             seeds=1)
FULL = dict(n_test=2000, n_test_1000=1000, digits_steps=20000, full_t=512,
            k1000_full_t=104, seeds=2)  # k1000_full_t: a multiple of the chunk (8)
# The anytime race's stated error level (confidence 0.9) for every +cs strategy.
CS_CONFIDENCE = 0.9


def mixture(num_classes, dim, n, seed=0, scale=1.0):
  """Means ``scale * N(0, I)``, log-normal variances; ``n`` labelled test points."""
  rng = np.random.default_rng(seed)
  means = (scale * rng.normal(size=(num_classes, dim))).astype(np.float32)
  variances = np.exp(0.3 * rng.normal(size=(num_classes, dim))).astype(np.float32)
  y = rng.integers(0, num_classes, size=2 * n)
  x = (means[y] + np.sqrt(variances[y]) * rng.normal(size=(2 * n, dim))).astype(np.float32)
  return means, variances, x[:n], y[:n], x[n:], y[n:]


def run_strategies(key, model, x, y, x_pilot, y_pilot, k, schedule, full_t, chunk=50,
                   seeds=1, candidates=None, first_stage_s=0.0, x_cal=None):
  """Accuracy and mean evaluations per image of every strategy; ``[records]``.

  ``candidates [N, K]``: a first stage's class mask (``+qda2`` strategies), which cost
  ``first_stage_s`` seconds per image. ``x_cal``: unlabelled calibration examples
  for the class tree (more than 10 classes)."""
  den, params = model
  recs = []

  def record(name, labels, evals, sec, extra_s=0.0):
    correct = np.mean([np.asarray(l) == y for l in labels], axis=0)      # [N]
    ev = np.mean([np.asarray(e, np.float64) for e in evals], axis=0)
    recs.append(dict(strategy=name, accuracy=float(correct.mean()),
                     accuracy_se=float(correct.std(ddof=1) / np.sqrt(len(y))),
                     evals=float(ev.mean()),
                     evals_se=float(ev.std(ddof=1) / np.sqrt(len(y))),
                     seconds_per_image=sec / (len(y) * len(labels)),
                     first_stage_seconds_per_image=extra_s,
                     labels=np.asarray(labels[0]).tolist()))
    r = recs[-1]
    print(f"    {name:22s} acc {100 * r['accuracy']:5.1f} +- {100 * r['accuracy_se']:.1f}%"
          f"  evals/img {r['evals']:8.0f}  {1e3 * r['seconds_per_image']:.1f} ms/img",
          flush=True)

  opts = {"full": dict(strategy="full", num_t=full_t),
          "sequential": dict(strategy="sequential", num_t=full_t, chunk_t=8)}
  if k <= 10:
    opts["adaptive"] = dict(strategy="adaptive", n_samples=(50, 500), to_keep=(5, 1))
  else:
    opts["adaptive"] = dict(strategy="adaptive", n_samples=ADAPTIVE_1000[0],
                            to_keep=ADAPTIVE_1000[1])
  for name, o in opts.items():
    t0 = time.perf_counter()
    labels, evals = [], []
    for s in range(seeds):
      out = [diffusion.batch_classify(jax.random.fold_in(jax.random.fold_in(key, s), i),
                                      den, params, x[i:i + chunk], k, schedule=schedule,
                                      **o) for i in range(0, len(x), chunk)]
      labels.append(np.concatenate([r.label for r in out]))
      evals.append(np.concatenate([r.num_evals for r in out]))
    record(name, labels, evals, time.perf_counter() - t0)
  q = diffusion.fit_proposal(jax.random.key(7), den, params, x_pilot, y_pilot, k,
                             schedule=schedule)
  for name, (cfg, prop, cand) in race_settings(den, schedule, k, full_t, q,
                                               candidates).items():
    t0 = time.perf_counter()
    res = [diffusion.batch_race(jax.random.fold_in(key, s), params, x, k, cfg=cfg,
                                proposal=prop, candidates=cand) for s in range(seeds)]
    record(name, [r.label for r in res], [r.num_evals for r in res],
           time.perf_counter() - t0, first_stage_s if cand is not None else 0.0)
  if k > 10:
    for name, (cfg, tree) in hierarchy_settings(model, schedule, k, x_cal).items():
      t0 = time.perf_counter()
      res = [diffusion.batch_hierarchical_race(jax.random.fold_in(key, s), params, x, k,
                                               cfg=cfg, tree=tree, proposal=q)
             for s in range(seeds)]
      record(name, [r.label for r in res], [r.num_evals for r in res],
             time.perf_counter() - t0)
  return recs


def hierarchy_settings(model, schedule, k, x_cal, groups=32):
  """``{name: (HierarchyConfig, ClassTree or None)}`` for many classes: a screen of one
  antithetic pair per class then the anytime race among the best 32, alone and after a
  tree cut (the tree clustered from the ``full`` protocol's scores, 8 draws per
  class, on the calibration examples; calibration not counted per image): the 8 best
  representatives on 8 draws (``tree8``), or every group that the race's tests among
  the representatives, at most 4 rounds of 8 draws, do not eliminate (``treetest``)."""
  den, params = model
  rc = diffusion.race_config(den, schedule=schedule, rule="cs", confidence=CS_CONFIDENCE,
                             chunk_t=8, max_rounds=128, antithetic=True)
  cal = diffusion.batch_classify(jax.random.key(3), den, params, x_cal, k,
                                 schedule=schedule, num_t=8)
  tree = diffusion.hierarchy.build_tree(np.asarray(cal.scores), groups)
  screen = diffusion.hierarchy_config(rc, screen_draws=2, keep=32)
  return {"screen2/32+race+cs+is+anti": (screen, None),
          "tree8/32+screen2/32+race+cs+is+anti": (
              screen._replace(node_draws=8, keep_groups=8), tree),
          "treetest/32+screen2/32+race+cs+is+anti": (
              screen._replace(node_draws=8, keep_groups=8, prune="test",
                              node_rounds=4), tree)}


def race_settings(den, schedule, k, full_t, q, candidates):
  """``{name: (RaceConfig, proposal, candidates)}``: today's race and each ingredient
  alone and together (module docstring)."""
  chunk_t = 4 if k > 10 else 8
  base = diffusion.race_config(den, schedule=schedule, chunk_t=chunk_t,
                               max_rounds=full_t // chunk_t,
                               min_rounds=1 if k > 10 else 2, confidence=0.9)
  cs = base._replace(rule="cs", confidence=CS_CONFIDENCE, min_rounds=2)
  anti = dict(antithetic=True)
  out = {"race": (base, None, None),
         "race+is+anti": (base._replace(**anti), q, None),
         "race+cs": (cs, None, None),
         "race+cs+is+anti": (cs._replace(**anti), q, None)}
  if k <= 10:   # chunks of 4 draws; the per-image proposal without and with a pilot
    out["race+cs+is+anti+c4"] = (cs._replace(chunk_t=4, max_rounds=full_t // 4,
                                             **anti), q, None)
    out["race+cs+anti+adapt"] = (cs._replace(adapt_t=True, **anti), None, None)
    out["race+cs+is+anti+adapt"] = (cs._replace(adapt_t=True, **anti), q, None)
  if candidates is not None:
    out["race+qda2"] = (base, None, candidates)
    out["race+cs+is+anti+qda2"] = (cs._replace(**anti), q, candidates)
  return out


def variance_per_draw(key, model, x, y, k, schedule, num_t=256):
  """Per-draw variance of the paired difference ``d = e_c - e_y`` (``c`` the closest
  competitor on these draws) relative to unpaired draws, and what a control variate
  removes from it: ``w (|eps|^2 - D)`` (known mean 0) and the mean error over all
  classes at the same ``(t, eps)`` (its mean is unknown, so it enters centred; it is
  common to both classes). Medians over images."""
  den, params = model
  ids = jnp.arange(k, dtype=jnp.int32)

  @jax.jit
  def one(kk, xi, yi):
    t, eps = draw(kk, num_t, xi, schedule)
    e = diffusion.class_errors_at(den, params, xi, t, eps, ids, schedule=schedule)
    w = jax.vmap(lambda ti, ei: noisy(xi, ti, ei, schedule)[2])(t, eps)
    g = w * (jnp.sum(eps.reshape(num_t, -1) ** 2, 1) - xi.size)
    m = jnp.where(ids == yi, jnp.inf, jnp.mean(e, 1))
    c = jnp.argmin(m)
    return e[c], e[yi], g, jnp.mean(e, 0)

  def resid(d, g):
    g = g - g.mean()
    beta = np.dot(d - d.mean(), g) / max(np.dot(g, g), 1e-30)
    return np.var(d - beta * g, ddof=1)

  rows = []
  for i in tqdm(range(len(x)), desc="variance", leave=False):
    ec, ey, g, em = (np.asarray(a, np.float64)
                     for a in one(jax.random.fold_in(key, i), x[i], y[i]))
    d = ec - ey
    vd = np.var(d, ddof=1)
    rows.append((vd / (np.var(ec, ddof=1) + np.var(ey, ddof=1)), resid(d, g) / vd,
                 resid(d, em) / vd))
  r = np.median(np.asarray(rows), axis=0)
  return dict(n=len(x), num_t=num_t, paired_over_unpaired=float(r[0]),
              cv_noise_norm=float(r[1]), cv_class_mean=float(r[2]))


def exact_labels(model, x, k, schedule, nodes=200, chunk=50):
  """The limit of ``full`` as its draws grow: the class with the smallest expected
  weighted error, the diffusion term integrated by ``nodes`` Gauss-Legendre points in
  t and, in eps, the 2D points +-sqrt(D) e_j, which integrate an error quadratic in eps
  exactly (the Gaussian oracle's; tests/test_diffusion_elbo.py checks the resulting
  ELBO against the exact log-likelihood). The prior and reconstruction terms do not
  depend on the class."""
  den, params = model
  d = x.shape[1]
  t, w = np.polynomial.legendre.leggauss(nodes)
  t, w = (t + 1) / 2, w / 2
  eps = np.concatenate([np.sqrt(d) * np.eye(d), -np.sqrt(d) * np.eye(d)])
  tt = jnp.asarray(np.repeat(t, len(eps)), jnp.float32)
  ee = jnp.asarray(np.tile(eps, (nodes, 1)), jnp.float32)
  ww = jnp.asarray(np.repeat(w, len(eps)) / len(eps), jnp.float32)
  mean_error = jax.jit(jax.vmap(lambda xi: diffusion.class_errors_at(
      den, params, xi, tt, ee, jnp.arange(k), schedule=schedule) @ ww))
  return np.concatenate([np.asarray(mean_error(jnp.asarray(x[i:i + chunk]))).argmin(1)
                         for i in range(0, len(x), chunk)])


def agreement(key, model, x, k, schedule, full_t, levels=(0.9, 0.99), chunk=100,
              exact=None, uncapped_rounds=None):
  """Fraction of anytime-race labels (``rule="cs"``, all classes) that differ from the
  ``full`` protocol's, per stated confidence, on every example of ``x``; the first
  entry (``confidence=None``) is ``full`` against itself on other draws. With
  ``exact`` (the limit of ``full``, ``exact_labels``), every entry also records the
  fraction that differs from it (``differs_exact``). The races' budget is ``full``'s
  (``max_rounds = full_t / 8`` rounds of 8 draws), where a race still undecided picks
  its best mean; with ``uncapped_rounds`` each level runs again with that many rounds,
  so that the confidence sequence, not the budget, ends (nearly) every race."""
  den, params = model

  def full(offset):
    return np.concatenate([np.asarray(diffusion.batch_classify(
        jax.random.fold_in(key, offset + i), den, params, x[i:i + chunk], k,
        schedule=schedule, num_t=full_t).label) for i in range(0, len(x), chunk)])

  ref = full(10_000)
  # the reference's own noise: full again on other draws
  again = full(20_000)
  out = [dict(confidence=None, n=len(x), full_t=full_t,
              differs=float(np.mean(again != ref)), evals=float(k * full_t))]
  if exact is not None:
    out[0]["differs_exact"] = float(np.mean(np.concatenate([ref, again]) != np.tile(exact, 2)))
  runs = [(conf, full_t // 8) for conf in levels]
  if uncapped_rounds is not None:
    runs += [(conf, uncapped_rounds) for conf in levels]
  for conf, rounds in runs:
    cfg = diffusion.race_config(den, schedule=schedule, rule="cs", confidence=conf,
                                chunk_t=8, max_rounds=rounds)
    res = diffusion.batch_race(key, params, x, k, cfg=cfg)
    out.append(dict(confidence=conf, max_rounds=rounds, n=len(x), full_t=full_t,
                    differs=float(np.mean(np.asarray(res.label) != ref)),
                    evals=float(np.mean(res.num_evals))))
    if exact is not None:
      out[-1]["differs_exact"] = float(np.mean(np.asarray(res.label) != exact))
    print(f"    agreement: confidence {conf}, {rounds} rounds:"
          f" {100 * out[-1]['differs']:.2f}% of"
          f" {len(x)} labels differ from full-{full_t}"
          + ("" if exact is None else
             f" ({100 * out[-1]['differs_exact']:.2f}% from its limit)")
          + f", {out[-1]['evals']:.0f} evals/img", flush=True)
  return out


def oracle_dataset(key, k, n, full_t, seeds=1, extra=False):
  means, variances, x, y, xp, yp = mixture(k, 16, n, seed=k)
  bayes = float(np.mean(np.asarray(diffusion.gaussian_log_likelihoods(
      means, variances, x)).argmax(1) == y))
  print(f"  oracle K={k}: Bayes accuracy {100 * bayes:.1f}% (n={n})", flush=True)
  model, schedule = diffusion.gaussian_oracle(means, variances), diffusion.linear_schedule()
  recs = run_strategies(key, model, x, y, xp[:32], yp[:32], k, schedule, full_t,
                        seeds=seeds, x_cal=xp[32:160])
  out = dict(dataset=f"oracle{k}", reference=bayes, reference_name="Bayes", n=n,
             records=recs)
  if k <= 10:
    out["variance"] = variance_per_draw(key, model, x[:200], y[:200], k, schedule)
    print(f"    variance: {out['variance']}", flush=True)
  if extra:   # a fresh 1,000 points of the same mixture
    rng = np.random.default_rng(k + 1)
    ya = rng.integers(0, k, size=1000)
    xa = (means[ya] + np.sqrt(variances[ya]) * rng.normal(size=(1000, 16))).astype(
        np.float32)
    out["agreement"] = agreement(key, model, xa, k, schedule, 2 * full_t,
                                 exact=exact_labels(model, xa, k, schedule),
                                 uncapped_rounds=1024)
  return out


def trained_dataset(name, module, split, key, steps, n, full_t, seeds=1, extra=False):
  """Trains ``module`` on ``split`` (EMA weights kept), then runs every strategy on the
  first ``n`` test points, with ``full`` as the reference accuracy. The first stage is
  jgen's QDA (``reg_param=0.1``) on the training split: its two best classes enter."""
  schedule = diffusion.linear_schedule()
  cfg = dtrain.TrainConfig(num_steps=steps, batch_size=128, learning_rate=2e-3,
                           warmup_steps=200, ema_decay=0.999, log_every=1000, seed=0)
  t0 = time.perf_counter()
  res = dtrain.train(module, split.x_train, split.y_train, schedule=schedule, config=cfg,
                     progress=False)
  print(f"  {name}: trained {steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
  model = diffusion.nnx_denoiser(res.ema_model)
  n = min(n, len(split.y_test))
  x, y = split.x_test[:n], split.y_test[:n]
  cand, sec = qda_candidates(split, x, 2)
  recs = run_strategies(key, model, x, y, split.x_train[:64], split.y_train[:64], 10,
                        schedule, full_t, seeds=seeds, candidates=cand,
                        first_stage_s=sec)
  full = next(r for r in recs if r["strategy"] == "full")["accuracy"]
  out = dict(dataset=name, reference=full, reference_name="full", n=n, records=recs,
             qda_top2_contains_label=float(np.mean(cand[np.arange(n), y])))
  out["variance"] = variance_per_draw(key, model, x[:200], y[:200], 10, schedule)
  print(f"    variance: {out['variance']}", flush=True)
  if extra:   # every image of the dataset (training images too: agreement, no labels)
    xa = np.concatenate([split.x_test, split.x_train])
    out["agreement"] = agreement(key, model, xa, 10, schedule, 2 * full_t)
  return out


def qda_candidates(split, x, m):
  """``[N, 10]`` mask of QDA's ``m`` most probable classes, and its seconds per image
  (fit excluded: once per training set; compiled call timed)."""
  qda = jgen.qda(reg_param=0.1)
  params = qda.fit(jnp.asarray(split.x_train), jnp.asarray(split.y_train),
                   num_classes=10)
  score = jax.jit(lambda p, v: qda.log_likelihood(p, v) + p.log_prior)
  jax.block_until_ready(score(params, jnp.asarray(x)))
  t0 = time.perf_counter()
  lp = np.asarray(jax.block_until_ready(score(params, jnp.asarray(x))))
  sec = (time.perf_counter() - t0) / len(x)
  order = np.argsort(-lp, axis=1)[:, :m]
  cand = np.zeros(lp.shape, bool)
  np.put_along_axis(cand, order, True, axis=1)
  return cand, sec


def digits_dataset(key, steps, n, full_t, seeds=1, extra=False):
  """sklearn digits (pixels scaled to [-1, 1]) with a small MLP denoiser."""
  s = jgen.datasets.load_digits()
  split = s._replace(x_train=(s.x_train * 2 - 1).astype(np.float32),
                     x_test=(s.x_test * 2 - 1).astype(np.float32))
  module = diffusion.MLPDenoiser((64,), 10, width=256, depth=3, rngs=nnx.Rngs(0))
  return trained_dataset("digits", module, split, key, steps, n, full_t, seeds, extra)


def mnist1d_dataset(key, steps, n, full_t, seeds=1, extra=False):
  """MNIST-1D (40-sample signals, 10 classes) with the convolutional U-Net (the MLP
  denoiser scores 55% on it: no translation structure)."""
  module = diffusion.UNetDenoiser((40,), 10, channels=(32, 64), rngs=nnx.Rngs(0))
  return trained_dataset("mnist1d", module, jgen.datasets.load_mnist1d(), key, steps, n,
                         full_t, seeds, extra)


STYLE = {"full": ("k", "s"), "adaptive": ("tab:gray", "D"),
         "sequential": ("tab:brown", "v"), "race": ("tab:blue", "o"),
         "race+is+anti": ("tab:cyan", "o"), "race+cs": ("tab:orange", "^"),
         "race+cs+is+anti": ("tab:red", "^"), "race+qda2": ("tab:green", "P"),
         "race+cs+is+anti+qda2": ("tab:purple", "*"),
         "race+cs+is+anti+c4": ("darkred", "v"),
         "race+cs+anti+adapt": ("gold", "^"), "race+cs+is+anti+adapt": ("olive", "^"),
         "screen2/32+race+cs+is+anti": ("tab:olive", "X"),
         "tree8/32+screen2/32+race+cs+is+anti": ("tab:pink", "X"),
         "treetest/32+screen2/32+race+cs+is+anti": ("darkmagenta", "X")}


def plot(result, path):
  """Accuracy against evaluations per image, +-1 standard error bars both ways; the
  y-range spans at least 10 points so one image is not magnified."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.ticker import FixedLocator, NullFormatter
  fig, ax = plt.subplots(figsize=(6, 5))
  for r in result["records"]:
    color, marker = STYLE.get(r["strategy"], ("k", "x"))
    ax.errorbar(r["evals"], 100 * r["accuracy"], yerr=100 * r["accuracy_se"],
                xerr=r["evals_se"], fmt=marker, color=color, ms=7, capsize=3,
                label=f"{r['strategy']}: {100 * r['accuracy']:.1f}% at {r['evals']:,.0f}")
  ax.axhline(100 * result["reference"], color="k", ls="--", lw=1,
             label=f"{result['reference_name']}: {100 * result['reference']:.1f}%")
  ax.set_xscale("log")
  lo, hi = ax.get_xlim()
  ticks = [t for t in (10, 30, 100, 300, 1e3, 3e3, 1e4, 3e4, 1e5) if lo <= t <= hi]
  ax.xaxis.set_major_locator(FixedLocator(ticks))
  ax.xaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
  ax.xaxis.set_minor_formatter(NullFormatter())
  accs = [100 * r["accuracy"] for r in result["records"]] + [100 * result["reference"]]
  mid, half = (max(accs) + min(accs)) / 2, max(5.0, (max(accs) - min(accs)) / 2 + 2)
  ax.set_ylim(mid - half, min(100.5, mid + half))
  ax.set_xlabel("denoiser evaluations per image (log scale)")
  ax.set_ylabel("accuracy (%)")
  ax.set_title(f"{result['dataset']} (n={result['n']}, +-1 s.e.)")
  ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2,
            frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--full", action="store_true")
  p.add_argument("--datasets", default=None,
                 help="comma-separated; default oracle10,digits (quick: under 3 min of"
                 " CPU time) or oracle10,oracle1000,digits (--full); also oracle1000"
                 " (its 1,000-class strategies, about 2 min of CPU time more in"
                 " quick) and mnist1d (its U-Net trains for minutes)")
  p.add_argument("--out", default=OUT)
  p.add_argument("--replot", action="store_true", help="redraw OUT's figures from"
                 " OUT/results.json")
  p.add_argument("--seeds", type=int, default=None, help="noise seeds per strategy")
  p.add_argument("--n-test", type=int, default=None, help="test points (10 classes)")
  p.add_argument("--agreement", action="store_true",
                 help="anytime-race labels against full's on 1,000+ images")
  args = p.parse_args(argv)
  c = dict(FULL if args.full else QUICK)
  if args.datasets is None:
    args.datasets = "oracle10,oracle1000,digits" if args.full else "oracle10,digits"
  if args.seeds is not None:
    c["seeds"] = args.seeds
  if args.n_test is not None:
    c["n_test"] = args.n_test
  kw = dict(seeds=c["seeds"], extra=args.agreement)
  os.makedirs(args.out, exist_ok=True)
  if args.replot:
    with open(os.path.join(args.out, "results.json")) as f:
      results = json.load(f)["results"]
    written = [os.path.join(args.out, f"{r['dataset']}.png") for r in results]
    for r, path in zip(results, written):
      plot(r, path)
    report.print_written(written)
    return
  key = jax.random.key(0)
  results, written = [], []
  for name in args.datasets.split(","):
    if name == "oracle10":
      results.append(oracle_dataset(key, 10, c["n_test"], c["full_t"], **kw))
    elif name == "oracle1000":
      results.append(oracle_dataset(key, 1000, c["n_test_1000"], c["k1000_full_t"],
                                    seeds=c["seeds"]))
    elif name == "digits":
      results.append(digits_dataset(key, c["digits_steps"], c["n_test"], c["full_t"],
                                    **kw))
    elif name == "mnist1d":
      results.append(mnist1d_dataset(key, c["digits_steps"], c["n_test"], c["full_t"],
                                     **kw))
    else:
      raise ValueError(f"unknown dataset {name!r}.")
    written.append(os.path.join(args.out, f"{name}.png"))
    plot(results[-1], written[-1])
  out = os.path.join(args.out, "results.json")
  with open(out, "w") as f:
    json.dump(dict(config=c, results=results), f, indent=1)
  report.print_table(
      ["dataset", "strategy", "accuracy (%)", "+- s.e.", "evaluations / image",
       "ms / image"],
      [row for r in results for row in _summary_rows(r)])
  report.print_written([out] + written)


def _summary_rows(result):
  """The reference accuracy, then every strategy's accuracy and cost."""
  rows = [[result["dataset"], f"{result['reference_name']} (reference)",
           f"{100 * result['reference']:.1f}", None, None, None]]
  return rows + [[result["dataset"], x["strategy"], f"{100 * x['accuracy']:.1f}",
                  f"{100 * x['accuracy_se']:.1f}", f"{x['evals']:.0f}",
                  1e3 * x["seconds_per_image"]] for x in result["records"]]


if __name__ == "__main__":
  main()
