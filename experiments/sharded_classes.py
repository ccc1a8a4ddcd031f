"""A 1000-class problem on 8 devices: data-parallel fit, class-sharded Bayes rule.

    python experiments/sharded_classes.py           # K=1000, D=32, 8 virtual devices
    python experiments/sharded_classes.py --full    # K=4000, D=64

Synthetic data: K Gaussian classes with means N(0, 25 I / D) and unit noise, 20 training
examples per class. On a ``(data=2, classes=4)`` mesh it

1. fits LDA (shrinkage 0.1) with the examples split over ``data``
   (``jgen.parallel.fit_data_parallel``) and compares with ``lda.fit`` on one device;
2. scores a test set with the classes split over ``classes`` and applies Bayes' rule
   by collectives (``jgen.parallel.class_sharded_predict``), comparing labels and ``log p(x)``
   with the single-device ``predict`` / ``logsumexp``;
3. classifies test points with the Diffusion Classifier (exact Gaussian-oracle
   denoiser, ``adaptive`` strategy) with the classes split over all 8 devices
   (``sharded_batch_classify``) and compares with ``batch_classify``.

Writes results/sharded_classes/results.json. No figure: the outputs are agreement
checks and per-device sizes, reported as a table in docs/distributed.md.
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

if __package__ in (None, ""):  # allow `python experiments/sharded_classes.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import scipy.special  # noqa: E402

import jgen  # noqa: E402
from experiments import report  # noqa: E402
from jgen import diffusion  # noqa: E402

# Rows of the printed summary: the key in run()'s dict and its label (with units).
SUMMARY = (
    ("fit_max_rel_diff", "LDA fit vs one device, max rel. diff"),
    ("fit_seconds", "data-parallel fit (s)"),
    ("accuracy", "LDA test accuracy"),
    ("labels_equal_single_device", "labels equal one device"),
    ("log_normalizer_max_rel_diff", "log p(x) vs one device, max rel. diff"),
    ("score_block_per_device", "score block per device (examples, classes)"),
    ("padded_classes", "classes after padding"),
    ("diffusion_labels_equal", "diffusion labels equal one device"),
    ("diffusion_accuracy", "diffusion accuracy"),
    ("diffusion_evals_per_example", "diffusion evaluations / example"),
    ("diffusion_seconds", "diffusion classify (s)"),
)


def _data(k, d, per_class, n_test, seed=0):
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(k, d)) * 5.0 / np.sqrt(d)
  y = np.repeat(np.arange(k), per_class)
  y_test = rng.integers(0, k, size=n_test)
  noise = lambda n: rng.normal(size=(n, d))  # noqa: E731
  f32 = lambda a: a.astype(np.float32)  # noqa: E731
  return f32(means), f32(means[y] + noise(y.size)), y, f32(means[y_test] + noise(
      n_test)), y_test


def run(k=1000, d=32, per_class=20, n_test=2000, n_diffusion=8, seed=0) -> dict:
  means, x, y, x_test, y_test = _data(k, d, per_class, n_test, seed)
  mesh = jgen.parallel.make_mesh(data=2, classes=4)
  model = jgen.lda(shrinkage=0.1)
  t0 = time.perf_counter()
  params = jgen.parallel.fit_data_parallel(model, x, y, mesh, num_classes=k)
  t_fit = time.perf_counter() - t0
  ref = model.fit(x, y, num_classes=k)
  # Per leaf: max |difference| relative to the leaf's largest entry (float32).
  fit_err = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))
                      / np.max(np.abs(np.asarray(b))))
                for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref)))
  out = jgen.parallel.class_sharded_predict(model, params, x_test, mesh)
  ll = np.asarray(model.log_likelihood(params, x_test), np.float64)
  joint = ll + np.asarray(params.log_prior, np.float64)[None, :]
  log_lik = jgen.parallel.class_sharded_log_likelihood(model, params, x_test, mesh)
  block = {s.data.shape for s in log_lik.addressable_shards}

  dc = _diffusion(means, x_test[:n_diffusion], y_test[:n_diffusion], seed) if (
      n_diffusion) else {}
  return dict(
      K=k, D=d, train_examples=int(y.size), test_examples=n_test, mesh="data=2 x classes=4",
      fit_max_rel_diff=fit_err, fit_seconds=t_fit,
      accuracy=float(np.mean(np.asarray(out.label) == y_test)),
      labels_equal_single_device=bool(np.array_equal(out.label, joint.argmax(-1))),
      log_normalizer_max_rel_diff=float(np.max(np.abs(
          np.asarray(out.log_normalizer) - scipy.special.logsumexp(joint, -1))
          / np.abs(scipy.special.logsumexp(joint, -1)))),
      score_block_per_device=sorted(block)[0], padded_classes=int(log_lik.shape[1]),
      **dc)


def _diffusion(means, x, y, seed) -> dict:
  """Diffusion Classifier (oracle denoiser) with the classes over all 8 devices."""
  k = means.shape[0]
  den, params = diffusion.gaussian_oracle(means, np.ones_like(means))
  opts = dict(strategy="adaptive", n_samples=(8, 64), to_keep=(10, 1))
  key = jax.random.key(seed)
  mesh8 = jgen.parallel.make_mesh(data=1, classes=8)
  t0 = time.perf_counter()
  dc = jgen.diffusion.sharded_batch_classify(key, den, params, x, k, mesh8, **opts)
  seconds = time.perf_counter() - t0
  ref = diffusion.batch_classify(key, den, params, x, k, **opts)
  return dict(
      diffusion_examples=int(x.shape[0]), diffusion_mesh="classes=8",
      diffusion_labels_equal=bool(np.array_equal(dc.label, ref.label)),
      diffusion_accuracy=float(np.mean(np.asarray(dc.label) == y)),
      diffusion_evals_per_example=int(dc.num_evals[0]),
      diffusion_evals_single_device=int(ref.num_evals[0]), diffusion_seconds=seconds)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--full", action="store_true")
  parser.add_argument("--out", default="results/sharded_classes")
  args = parser.parse_args(argv)
  from tqdm import tqdm
  settings = [dict(k=1000, d=32)] + ([dict(k=4000, d=64)] if args.full else [])
  results = [run(**s) for s in tqdm(settings, desc="settings")]
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "results.json")
  with open(path, "w") as f:
    json.dump(results, f, indent=1)
  print_summary(results)
  report.print_written([path])
  return results


def print_summary(results):
  """One column per setting (K, D), one row per agreement check or size."""
  report.print_table(
      ["quantity"] + [f"K={r['K']}, D={r['D']}" for r in results],
      [[label] + [_cell(r.get(key)) for r in results] for key, label in SUMMARY],
      title=f"mesh {results[0]['mesh']} (diffusion: {results[0].get('diffusion_mesh')})")


def _cell(value):
  # A shard shape, e.g. (1000, 250), reads as "1000 x 250" (a list once saved as JSON).
  return " x ".join(map(str, value)) if isinstance(value, (list, tuple)) else value


if __name__ == "__main__":
  main()
