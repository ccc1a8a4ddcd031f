"""scikit-learn estimators: jgen.sklearn against scikit-learn's own, same data, same process.

    python -m benchmarks.sklearn_cv            # digits grid searches; NB and QDA at 200,000 x 256
    python -m benchmarks.sklearn_cv --quick    # digits grid searches; NB and QDA at 20,000 x 64
    python -m benchmarks.sklearn_cv --cache-dir DIR   # twice: first searches from a disk cache

Part 1, ``GridSearchCV(cv=5)`` on the 1,437 training digits (64 pixels scaled to
[0, 1], 10 classes) for each of the four estimators, the same grid for both libraries:
``jgen first`` is a fresh search in a fresh process state for that class (it includes
the compilations; ``first compile s`` is the part JAX spent tracing, lowering and
compiling, ``programs`` the number of programs it compiled), ``jgen`` the best of ``repeats`` further searches (what every later
search in a session costs), ``sklearn first s`` scikit-learn's first search with its
estimator and ``sklearn`` the best of ``repeats`` more; ``first ratio`` is ``jgen first
s / sklearn s``. A ``DummyClassifier`` search runs before all of them, so scikit-learn's
process-wide first-call costs fall on neither library. LDA is compared with scikit-learn's ``solver="lsqr"`` (the
solver that takes ``shrinkage``), and as ``LinearDiscriminantAnalysis svd`` with the
default solver over ``tol``.

Part 2, ``fit`` then ``predict_proba`` on ``N x D`` float32 data with ``K = 10`` classes
(class means N(0, 1), noise scales in [0.5, 1.5]) for naive Bayes and QDA
(``reg_param=0.01``), best of ``repeats`` after one warm-up call each.

Both parts run under JAX's defaults (float32, as a user gets). "roofline": the FLOPs of
the scoring matmuls (naive Bayes ``4 N D K``, QDA ``2 N K D^2``, fit and predict together
counted as predict only) divided by the time and by this machine's float32 matmul rate
(``benchmarks.common.matmul_flops_per_s``; NumPy's rate for scikit-learn).
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
import warnings

import jax
import jax.monitoring
import numpy as np
import sklearn.discriminant_analysis as skda
import sklearn.linear_model as sklm
import sklearn.naive_bayes as sknb
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import GridSearchCV

import jgen.datasets
import jgen.sklearn
from benchmarks import common

GRIDS = {
    "GaussianNB": {"var_smoothing": [1e-9, 1e-7, 1e-5, 1e-3]},
    "LinearDiscriminantAnalysis": {"shrinkage": [0.01, 0.1, 0.3, 0.6]},
    "LinearDiscriminantAnalysis svd": {"tol": [1e-6, 1e-4, 1e-2]},
    "QuadraticDiscriminantAnalysis": {"reg_param": [0.001, 0.01, 0.05, 0.2, 0.6]},
    "LogisticRegression": {"C": [0.01, 0.1, 1.0, 10.0]},
}
PEERS = {"GaussianNB": sknb.GaussianNB,
         "LinearDiscriminantAnalysis": skda.LinearDiscriminantAnalysis,
         "QuadraticDiscriminantAnalysis": skda.QuadraticDiscriminantAnalysis,
         "LogisticRegression": sklm.LogisticRegression}


def _pair(task: str):
  name = task.split()[0]   # "LinearDiscriminantAnalysis svd": the default solver
  ours = getattr(jgen.sklearn, name)
  kwargs = {}
  if task == "LinearDiscriminantAnalysis":
    kwargs = {"solver": "lsqr"}
  ours_kwargs = {k: v for k, v in kwargs.items()
                 if k in inspect.signature(ours).parameters}
  return (lambda: ours(**ours_kwargs)), (lambda: PEERS[name](**kwargs))


class _CompileClock:
  """Seconds JAX spends tracing, lowering and compiling, and programs compiled
  (``jax.monitoring``'s ``/jax/core/compile/*`` duration events)."""

  def __init__(self):
    self.seconds, self.programs = 0.0, 0
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, event: str, seconds: float, **kwargs) -> None:
    if event.startswith("/jax/core/compile/"):
      self.seconds += seconds
      self.programs += event.endswith("backend_compile_duration")

  def read(self) -> tuple[float, int]:
    out = (self.seconds, self.programs)
    self.seconds, self.programs = 0.0, 0
    return out


_CLOCK = _CompileClock()


def _search(make, grid, x, y) -> tuple[float, float]:
  t0 = time.perf_counter()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    search = GridSearchCV(make(), grid, cv=5).fit(x, y)
  return time.perf_counter() - t0, float(search.best_score_)


def grid_searches(repeats: int) -> list[dict]:
  data = jgen.datasets.load_digits(dtype=np.float32)
  x, y = np.asarray(data.x_train) / 16.0, np.asarray(data.y_train)
  # scikit-learn's process-wide first-call costs (GridSearchCV, scorers, validation)
  # fall on whichever search runs first: a DummyClassifier search pays them, so the
  # first searches below carry only their own library's.
  _search(DummyClassifier, {"strategy": ["prior", "uniform"]}, x, y)
  rows = []
  for name, grid in GRIDS.items():
    ours, peer = _pair(name)
    _CLOCK.read()
    first, score = _search(ours, grid, x, y)
    compile_s, programs = _CLOCK.read()
    warm = min(_search(ours, grid, x, y)[0] for _ in range(repeats))
    ref_first = _search(peer, grid, x, y)[0]
    ref, ref_score = min(_search(peer, grid, x, y) for _ in range(repeats))
    rows.append({"task": f"GridSearchCV {name}", "jgen first s": first,
                 "jgen s": warm, "sklearn s": ref, "ratio": warm / ref,
                 "sklearn first s": ref_first, "first ratio": first / ref,
                 "first compile s": compile_s,
                 "programs": programs, "best score": score,
                 "sklearn best score": ref_score, "roofline jgen": "",
                 "roofline sklearn": ""})
  return rows


def _data(n, d, k, seed=0):
  rng = np.random.default_rng(seed)
  means = rng.standard_normal((k, d)).astype(np.float32)
  scales = rng.uniform(0.5, 1.5, (k, 1)).astype(np.float32)
  y = rng.integers(0, k, n)
  x = means[y] + scales[y] * rng.standard_normal((n, d), dtype=np.float32)
  return x, y


def large(n: int, d: int, k: int, repeats: int) -> list[dict]:
  x, y = _data(n, d, k)
  rate_jax, rate_np = common.matmul_flops_per_s(), common.numpy_matmul_flops_per_s()
  rows = []
  for name, flops, kwargs in (("GaussianNB", 4.0 * n * d * k, {}),
                              ("QuadraticDiscriminantAnalysis", 2.0 * n * k * d * d,
                               {"reg_param": 0.01})):
    ours, peer = getattr(jgen.sklearn, name), PEERS[name]
    run = lambda make: make(**kwargs).fit(x, y).predict_proba(x)  # noqa: E731
    t_ours = common.best_time(lambda: run(ours), repeats=repeats)
    t_ref = common.best_time(lambda: run(peer), repeats=repeats)
    rows.append({"task": f"{name} fit+predict_proba {n}x{d} K={k}", "jgen s": t_ours,
                 "sklearn s": t_ref, "ratio": t_ours / t_ref,
                 "roofline jgen": flops / t_ours / rate_jax,
                 "roofline sklearn": flops / t_ref / rate_np})
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--json", default=None, help="also write the rows here")
  parser.add_argument("--cache-dir", default=None,
                      help="JAX's persistent compilation cache here (every program):"
                           " a second run's first searches load the programs the first"
                           " run compiled")
  args = parser.parse_args()
  if args.cache_dir:
    jax.config.update("jax_compilation_cache_dir", args.cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  n, d = (20_000, 64) if args.quick else (200_000, 256)
  rows = grid_searches(args.repeats) + large(n, d, 10, args.repeats)
  print(common.fmt_table(rows, [
      "task", "jgen first s", "sklearn first s", "first ratio", "first compile s",
      "programs", "jgen s", "sklearn s", "ratio", "best score", "sklearn best score",
      "roofline jgen", "roofline sklearn"]))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
  main()
