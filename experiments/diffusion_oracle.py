"""The diffusion ELBO and the Diffusion Classifier checked against exact Gaussian answers.

With Gaussian class-conditionals the optimal denoiser is known (``gaussian_oracle``),
so every quantity has an exact reference:

1. ELBO - exact log-likelihood by quadrature, for two gamma ranges.
2. Discrete-time ELBO gap to the continuous one versus T, with the fitted rate.
3. Variance of the ELBO difference of two classes, shared vs independent (t, eps),
   as the classes separate; linear and cosine schedules; plain and antithetic draws.
4. Accuracy of ``full`` / ``adaptive`` / ``sequential`` against the exact Bayes
   classifier on a 10-class, 16-dimensional mixture, with denoiser evaluations.

Run: ``python -m experiments.diffusion_oracle`` (quick) or ``--full``; writes
``results/diffusion_oracle/{results.json,*.png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jgen import diffusion

if __package__ in (None, ""):  # allow `python experiments/diffusion_oracle.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import report  # noqa: E402

jax.config.update("jax_enable_x64", True)


def _design(d):
  eye = np.sqrt(d) * np.eye(d)
  return np.concatenate([eye, -eye])    # exact for quadratics in eps


def exact_elbo(oracle, x, schedule, t, w, num_classes):
  eps = _design(x.size)
  n = eps.shape[0]
  err = jax.jit(lambda tt, ee: diffusion.class_errors_at(
      *oracle, jnp.asarray(x), tt, ee, jnp.arange(num_classes), schedule=schedule))(
          jnp.asarray(np.repeat(t, n)), jnp.asarray(np.tile(eps, (len(t), 1))))
  return np.asarray(-(diffusion.prior_kl(x, schedule)
                      + diffusion.reconstruction(x, schedule)
                      + err @ jnp.asarray(np.repeat(w, n) / n)))


def gaussian_problem(num_classes, dim, seed=0):
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(num_classes, dim))
  variances = np.exp(0.5 * rng.normal(size=(num_classes, dim)))
  x = means[0] + np.sqrt(variances[0]) * rng.normal(size=dim)
  return means, variances, x


def elbo_gaps(out):
  means, variances, x = gaussian_problem(3, 8)
  den, params = diffusion.gaussian_oracle(means, variances)
  exact = np.asarray(diffusion.gaussian_log_likelihoods(means, variances, x))
  nodes, w = np.polynomial.legendre.leggauss(400)
  t, w = (nodes + 1) / 2, w / 2
  out["elbo_minus_exact"] = {}
  for lo, hi in ((-13.3, 5.0), (-20.0, 10.0)):
    s = diffusion.linear_schedule(lo, hi)
    out["elbo_minus_exact"][f"[{lo}, {hi}]"] = (
        exact_elbo((den, params), x, s, t, w, 3) - exact).tolist()
  s = diffusion.linear_schedule(-20.0, 10.0)
  cont = exact_elbo((den, params), x, s, t, w, 3)
  steps = [25, 50, 100, 200, 400, 800]
  gaps = []
  for num_steps in tqdm(steps, desc="discrete T"):
    disc = diffusion.discretize(s, num_steps)
    tt = np.arange(1, num_steps + 1) / num_steps
    gaps.append((cont - exact_elbo((den, params), x, disc, tt,
                                   np.full(num_steps, 1 / num_steps), 3)).tolist())
  gaps = np.asarray(gaps)
  out["discrete"] = {"T": steps, "gap": gaps.tolist(),
                     "slope_T>=100": [float(np.polyfit(np.log(steps[2:]),
                                                       np.log(gaps[2:, k]), 1)[0])
                                      for k in range(3)]}


def variance_ratios(out, reps):
  d = 4
  x = np.random.default_rng(3).normal(size=d)
  rows = []
  for shift in tqdm((0.125, 0.25, 0.5, 1.0, 2.0), desc="variance"):
    means = np.stack([np.zeros(d), np.full(d, shift)])
    variances = np.stack([np.ones(d), np.full(d, 1.2)])
    den, params = diffusion.gaussian_oracle(means, variances)
    gap = np.diff(np.asarray(diffusion.gaussian_log_likelihoods(means, variances, x)))
    for s in (diffusion.linear_schedule(), diffusion.cosine_schedule()):
      for anti in (False, True):
        keys = jax.random.split(jax.random.key(4), 2 * reps)
        err = np.asarray(jax.jit(jax.vmap(lambda k: diffusion.class_errors(
            k, den, params, x, 2, num_t=64, schedule=s, antithetic=anti)))(keys)).mean(-1)
        shared = np.var(err[:reps, 0] - err[:reps, 1])
        indep = np.var(err[:reps, 0] - err[reps:, 1])
        rows.append({"shift": shift, "loglik_gap": float(-gap[0]),
                     "schedule": s.name, "antithetic": anti,
                     "var_shared": float(shared), "var_independent": float(indep),
                     "ratio": float(indep / shared)})
  out["variance"] = rows


def mixture(out, num_points, num_t):
  k, d = 10, 16
  rng = np.random.default_rng(0)
  means = (0.8 * rng.normal(size=(k, d))).astype(np.float32)
  variances = np.exp(0.3 * rng.normal(size=(k, d))).astype(np.float32)
  y = rng.integers(0, k, num_points)
  x = (means[y] + np.sqrt(variances[y]) * rng.normal(size=(num_points, d))).astype(
      np.float32)
  exact = diffusion.gaussian_log_likelihoods(means.astype(np.float64),
                                             variances.astype(np.float64),
                                             x.astype(np.float64))
  bayes = np.asarray(np.argmax(exact, -1))
  den, params = diffusion.gaussian_oracle(means, variances)
  s = diffusion.cosine_schedule()
  runs = {
      "full": dict(strategy="full", num_t=num_t, antithetic=True),
      "adaptive": dict(strategy="adaptive", n_samples=(num_t // 16, num_t),
                       to_keep=(2, 1)),
      "sequential": dict(strategy="sequential", num_t=num_t, chunk_t=16,
                         antithetic=True, confidence=0.99),
  }
  res = {"num_points": num_points, "bayes_accuracy": float(np.mean(bayes == y))}
  for name, opts in tqdm(runs.items(), desc="mixture"):
    r = diffusion.batch_classify(jax.random.key(1), den, params, x, k, schedule=s, **opts)
    label = np.asarray(r.label)
    res[name] = {"accuracy": float(np.mean(label == y)),
                 "agreement_with_bayes": float(np.mean(label == bayes)),
                 "mean_evals": float(np.mean(r.num_evals)), "opts": str(opts)}
  out["mixture"] = res


def plot(out, folder):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(1, 2, figsize=(10, 4))
  disc = out["discrete"]
  from matplotlib.ticker import NullFormatter
  ax[0].loglog(disc["T"], np.asarray(disc["gap"])[:, 0], "o-")
  ax[0].set_xticks(disc["T"], [str(t) for t in disc["T"]])   # one label per run
  ax[0].set_xlabel("T (steps)")
  ax[0].set_ylabel("continuous - discrete ELBO (nats)")
  ax[0].set_title(f"slope {disc['slope_T>=100'][0]:.3f}")
  for sname in sorted({r["schedule"] for r in out["variance"]}):
    for anti in (False, True):
      rows = [r for r in out["variance"]
              if r["schedule"] == sname and r["antithetic"] == anti]
      ax[1].loglog([2 * r["shift"] for r in rows], [r["ratio"] for r in rows], "o-",
                   label=f"{sname}{' antithetic' if anti else ''}")
  dists = sorted({2 * r["shift"] for r in out["variance"]})
  ax[1].set_xticks(dists, [f"{d:g}" for d in dists])
  for a in ax:   # minor log ticks unlabelled: their labels collided with the majors
    a.xaxis.set_minor_formatter(NullFormatter())
  ax[1].axhline(100, color="k", lw=0.5)
  ax[1].set_xlabel("distance between the two class means (D = 4)")
  ax[1].set_ylabel("var independent / var shared")
  ax[1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(folder, "diffusion_oracle.png"), dpi=120)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--full", action="store_true", help="the documented run")
  parser.add_argument("--smoke", action="store_true", help="tiny run for tests")
  parser.add_argument("--out", default="results/diffusion_oracle",
                      help="folder for results.json and diffusion_oracle.png")
  parser.add_argument("--replot", action="store_true",
                      help="redraw the figure from OUT/results.json without recomputing")
  args = parser.parse_args(argv)
  if args.replot:
    with open(os.path.join(args.out, "results.json")) as f:
      out = json.load(f)
    plot(out, args.out)
    print_summary(out)
    report.print_written([os.path.join(args.out, "diffusion_oracle.png")])
    return out
  out = {}
  if args.smoke:
    mixture(out, 20, 32)
    print_summary(out)
    report.print_written([])
    return out
  elbo_gaps(out)
  variance_ratios(out, 512 if args.full else 128)
  mixture(out, 2000 if args.full else 300, 512)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(out, f, indent=2)
  plot(out, args.out)
  print_summary(out)
  report.print_written([os.path.join(args.out, "results.json"),
                        os.path.join(args.out, "diffusion_oracle.png")])
  return out


def print_summary(out):
  """ELBO checks (when run) and the strategies against the exact Bayes classifier."""
  if "elbo_minus_exact" in out:
    report.print_table(
        ["gamma range", "max abs(ELBO - exact log-likelihood) (nats)"],
        [[k, max(abs(v) for v in gaps)] for k, gaps in out["elbo_minus_exact"].items()],
        title="continuous - discrete ELBO ~ T^slope; slope over T >= 100, per test point: "
              + ", ".join(f"{v:.3f}" for v in out["discrete"]["slope_T>=100"]), digits=2)
  mix = out["mixture"]
  report.print_table(
      ["strategy", "accuracy (%)", "agreement with Bayes (%)", "evaluations / point"],
      [["exact Bayes", f"{100 * mix['bayes_accuracy']:.1f}", "100.0", None]]
      + [[name, f"{100 * mix[name]['accuracy']:.1f}",
          f"{100 * mix[name]['agreement_with_bayes']:.1f}", mix[name]["mean_evals"]]
         for name in ("full", "adaptive", "sequential")],
      title=f"10-class mixture, D = 16, {mix['num_points']} test points, oracle denoiser:")


if __name__ == "__main__":
  main()
