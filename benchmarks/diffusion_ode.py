"""Probability-flow likelihood cost: against the MC ELBO at equal accuracy, and the
class-joint solve against a per-class loop; racing vmapped against looped.

Gaussian class-conditionals with the exact denoiser (D = 8, K = 10), so every score
has an exact reference: the error of each method is measured against
``gaussian_log_likelihoods`` and the ELBO's ``num_t`` is raised until its class
ranking accuracy (top-1 agreement with Bayes) matches the ODE's.

Run: ``python -m benchmarks.diffusion_ode [--n 50]``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jgen import diffusion
from jgen.diffusion import ode


def _time(fn, reps=1):
  fn()  # compile
  t0 = time.perf_counter()
  for _ in range(reps):
    jax.block_until_ready(fn())
  return (time.perf_counter() - t0) / reps


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--n", type=int, default=50)
  p.add_argument("--classes", type=int, default=10)
  args = p.parse_args(argv)
  k, d, n = args.classes, 8, args.n
  rng = np.random.default_rng(0)
  means = rng.normal(size=(k, d)).astype(np.float32)
  var = np.exp(0.3 * rng.normal(size=(k, d))).astype(np.float32)
  y = rng.integers(0, k, n)
  x = (means[y] + np.sqrt(var[y]) * rng.normal(size=(n, d))).astype(np.float32)
  den, params = diffusion.gaussian_oracle(means, var)
  bayes = np.asarray(diffusion.gaussian_log_likelihoods(means, var, x)).argmax(1)
  sched = diffusion.linear_schedule(-13.3, 20.0)
  pr = diffusion.DiffusionParams(params, jnp.arange(k), jnp.zeros(k, jnp.float32))

  print(f"| method (K={k}, D={d}, n={n}) | ms / example | agreement with Bayes |")
  print("|---|---|---|")
  rows = {}
  for name, cfg in (("ODE exact trace", diffusion.ode_config()),
                    ("ODE Hutchinson 1 probe", diffusion.ode_config(
                        divergence="hutchinson", num_probes=1, probe="gaussian"))):
    model = ode.ode_classifier(den, schedule=sched, config=cfg)
    fn = lambda: model.log_likelihood(pr, x, key=jax.random.key(0))  # noqa: E731
    sec = _time(fn)
    agree = float(np.mean(np.asarray(fn()).argmax(1) == bayes))
    rows[name] = sec / n
    print(f"| {name} | {1e3 * sec / n:.2f} | {100 * agree:.1f}% |")
  for num_t in (16, 64, 256, 1024):
    fn = lambda nt=num_t: diffusion.batch_class_log_likelihoods(  # noqa: E731
        jax.random.key(0), den, params, x, k, schedule=sched, num_t=nt)
    sec = _time(fn)
    agree = float(np.mean(np.asarray(fn()).argmax(1) == bayes))
    print(f"| MC ELBO num_t={num_t} | {1e3 * sec / n:.2f} | {100 * agree:.1f}% |")

  print()
  print("| class handling (exact trace) | ms / example | ratio |")
  print("|---|---|---|")
  joint = _time(lambda: jnp.stack([ode.log_likelihoods_at(
      None, den, params, xi, k, schedule=sched).log_likelihood for xi in x[:10]]))
  loop = _time(lambda: jnp.stack([jnp.concatenate([ode.log_likelihoods_at(
      None, den, params, xi, k, schedule=sched, classes=[c]).log_likelihood
      for c in range(k)]) for xi in x[:10]]))
  print(f"| one solve, classes vmapped | {1e2 * joint:.2f} | 1.00 |")
  print(f"| per-class loop | {1e2 * loop:.2f} | {loop / joint:.2f} |")

  print()
  print("| race over a batch | ms / example | evals / example |")
  print("|---|---|---|")
  cfg = diffusion.race_config(den, schedule=sched, chunk_t=8, max_rounds=32)
  for vec in (False, True):
    fn = lambda v=vec: diffusion.batch_race(jax.random.key(0), params, x, k,  # noqa: E731
                                            cfg=cfg, vectorize=v)
    sec = _time(fn)
    ev = float(np.mean(np.asarray(fn().num_evals)))
    print(f"| {'vmap' if vec else 'lax.map loop'} | {1e3 * sec / n:.2f} | {ev:.0f} |")


if __name__ == "__main__":
  main()
