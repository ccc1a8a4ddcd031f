"""The hierarchical race's two tree cuts on class trees with a real hierarchy.

Gaussian class-conditionals with the exact denoiser (``gaussian_oracle``): ``G`` group
centres drawn with scale ``spread``, each group's ``S`` class means drawn around its
centre with scale 1.5, unit variances; test points drawn from uniformly chosen classes.
The tree is the true one (``tree_from_groups``, the lowest member of each group its
representative). Strategies (``jgen.diffusion.hierarchy``, the anytime race at
confidence 0.9 under every one): no tree (a screen of 2 draws per class, the best 32
race); ``top_k`` (the 2 best representatives on 8 draws, then the same); ``test``
(``prune="test"``: the representatives race in rounds of 8 draws, at most 8 rounds,
until one group is left; every group no test eliminated goes on). For the test cut,
its recall is read from the same keys: the fraction of points whose Bayes label's
group it kept, and the mean number of groups kept.

Run: ``python -m experiments.diffusion_tree_cut``; writes
``results/diffusion_tree_cut/tree_cut.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from jgen import diffusion
from jgen.diffusion import hierarchy, racing

OUT = os.path.join("results", "diffusion_tree_cut")


def nested_mixture(groups, size, dim, n, spread, seed=0):
  """``(means [K, D], x [n, D], y [n])`` of the two-level model (module docstring)."""
  rng = np.random.default_rng(seed)
  centres = spread * rng.normal(size=(groups, dim))
  means = np.repeat(centres, size, axis=0) + 1.5 * rng.normal(size=(groups * size, dim))
  y = rng.integers(0, groups * size, size=n)
  x = means[y] + rng.normal(size=(n, dim))
  return means.astype(np.float32), x.astype(np.float32), y


def settings(den):
  rc = diffusion.race_config(den, rule="cs", confidence=0.9, chunk_t=8, max_rounds=128,
                             antithetic=True)
  base = hierarchy.hierarchy_config(rc, screen_draws=2, keep=32)
  return {"screen2/32+race": (base, False),
          "top_k 2 groups+screen+race": (base._replace(node_draws=8, keep_groups=2), True),
          "test cut+screen+race": (base._replace(node_draws=8, keep_groups=1,
                                                 prune="test", node_rounds=8), True)}


def run(groups, size, dim, n, spread, key):
  means, x, y = nested_mixture(groups, size, dim, n, spread)
  k = groups * size
  den, params = diffusion.gaussian_oracle(means, np.ones_like(means))
  bayes = np.asarray(diffusion.gaussian_log_likelihoods(means, np.ones_like(means),
                                                        x)).argmax(1)
  tree = hierarchy.tree_from_groups(np.arange(k) // size)
  out = dict(groups=groups, size=size, dim=dim, n=n, spread=spread,
             bayes_accuracy=float(np.mean(bayes == y)), strategies=[])
  for name, (cfg, use_tree) in settings(den).items():
    t0 = time.perf_counter()
    res = hierarchy.batch_hierarchical_race(key, params, x, k, cfg=cfg,
                                            tree=tree if use_tree else None)
    label, ev = np.asarray(res.label), np.asarray(res.num_evals, np.float64)
    rec = dict(strategy=name, accuracy=float(np.mean(label == y)),
               accuracy_se=float(np.std(label == y, ddof=1) / np.sqrt(n)),
               bayes_agreement=float(np.mean(label == bayes)),
               evals=float(ev.mean()), evals_se=float(ev.std(ddof=1) / np.sqrt(n)),
               seconds=time.perf_counter() - t0)
    if cfg.prune == "test":   # the cut's own survivors, from the keys it used
      tree_keys = jax.vmap(lambda kk: jax.random.split(kk, 3)[0])(
          jax.random.split(key, n))
      kept, _ = jax.jit(jax.vmap(lambda kk, xi: racing.race_survivors(
          kk, params, xi, None, cfg=hierarchy.node_race_config(cfg), num_classes=groups,
          classes=tree.representatives)))(tree_keys, x)
      kept = np.asarray(kept)
      rec["group_recall"] = float(np.mean(kept[np.arange(n), bayes // size]))
      rec["groups_kept"] = float(kept.sum(axis=1).mean())
    out["strategies"].append(rec)
    print(f"  spread {spread}: {name:28s} acc {100 * rec['accuracy']:5.1f} +-"
          f" {100 * rec['accuracy_se']:.1f}%  = Bayes {100 * rec['bayes_agreement']:5.1f}%"
          f"  evals {rec['evals']:7.0f} +- {rec['evals_se']:.0f}"
          + (f"  recall {100 * rec['group_recall']:.1f}%, {rec['groups_kept']:.2f}"
             " groups kept" if "group_recall" in rec else ""), flush=True)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--groups", type=int, default=16)
  p.add_argument("--size", type=int, default=8)
  p.add_argument("--dim", type=int, default=16)
  p.add_argument("--n", type=int, default=300)
  p.add_argument("--spreads", default="6,2.5", help="group-centre scales, one run each")
  p.add_argument("--out", default=OUT)
  args = p.parse_args()
  key = jax.random.key(0)
  t0 = time.perf_counter()
  runs = [run(args.groups, args.size, args.dim, args.n, float(s), key)
          for s in args.spreads.split(",")]
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "tree_cut.json"), "w") as f:
    json.dump(dict(runs=runs, wall_seconds=time.perf_counter() - t0), f, indent=1)
  print(f"wall {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
  main()
