"""Learning curves and the sample size ``m*`` at which a classifier meets a target error.

Re-exported by [`jgen.simulate`][jgen.simulate]; see its docstring for the protocol.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.core import checks as _checks
from jgen.core.contract import Classifier
from jgen.core.progress import check_progress, report
from jgen import gaussian
from jgen import logistic
from jgen.logistic import batched
from jgen.simulate import engine
from jgen.simulate import mixtures as simulate

__all__ = ["MODELS", "CurveResult", "bucket_size", "evaluate_sizes", "find_m_star",
           "size_grid", "pad_mixture"]

MODELS = ("nb", "lr")


class CurveResult(NamedTuple):
  """One learning curve.

  Attributes:
    sizes: evaluated training-set sizes ``[G]`` (ascending).
    errors: test errors ``[G, R]`` (one column per repetition).
    m_star: first size whose mean error is below the target, or ``None`` if no
      evaluated size reached it.
    not_converged: fits that reported ``info.converged = False`` (0 for closed forms).

  Examples:
    >>> import jax
    >>> from jgen import simulate
    >>> mix = simulate.zheng_mixture(2, 4)
    >>> target = simulate.bayes_error(mix) + 0.05
    >>> res = simulate.find_m_star(jax.random.key(0), mix, model="nb", target=target,
    ...                            grid=simulate.size_grid(2, 4, 80), num_reps=2,
    ...                            num_test=2000)
    >>> int(res.sizes[0]), res.errors.shape[1], res.not_converged
    (4, 2, 0)
  """
  sizes: np.ndarray
  errors: np.ndarray
  m_star: int | None
  not_converged: int


def bucket_size(m: int, minimum: int = 64) -> int:
  """Padded size for ``m`` examples: the next power of two, at least ``minimum``.

  Args:
    m: number of examples ``>= 1``.
    minimum: the smallest padded size.

  Returns:
    The padded size (Python int).

  Examples:
    >>> from jgen import simulate
    >>> tuple(simulate.bucket_size(m) for m in (10, 64, 65, 300))
    (64, 64, 128, 512)
  """
  return max(minimum, 1 << (int(m) - 1).bit_length())


def resolve_model(model, *, C=1.0, tol=1e-4, max_iter=1000) -> Classifier:
  """The classifier a learning curve fits, from a short name or as given.

  ``"nb"`` is the paper's pooled naive Bayes, ``"lr"`` L2 logistic regression (the
  branch-free batched solver, one object per setting so it compiles once); a
  [`jgen.Classifier`][jgen.Classifier] is returned as is.

  Args:
    model: ``"nb"``, ``"lr"`` or a [`jgen.Classifier`][jgen.Classifier].
    C, tol, max_iter: logistic-regression settings (``"lr"`` only).

  Returns:
    A [`jgen.Classifier`][jgen.Classifier].

  Examples:
    >>> from jgen import simulate
    >>> simulate.resolve_model("nb").name, simulate.resolve_model("lr").conditional
    ('gaussian_nb', True)
    >>> simulate.resolve_model("lr") is simulate.resolve_model("lr")
    True
  """
  if isinstance(model, Classifier):
    return model
  if model == "nb":
    return _NB
  if model == "lr":
    key = (float(C), float(tol), int(max_iter))
    if key not in _LR:
      _LR[key] = batched.batched_logistic_regression(C, tol=tol, max_iter=max_iter)
    return _LR[key]
  raise ValueError(f"model must be one of {MODELS} or a jgen.Classifier, got {model!r}.")


_NB = gaussian.gaussian_nb(var_smoothing=1e-9, pooled=True)
_LR: dict = {}


def _check_num_reps(num_reps):
  if isinstance(num_reps, bool) or not isinstance(num_reps, (int, np.integer)) or (
      num_reps < 1):
    raise ValueError(f"num_reps must be an int >= 1, got {num_reps!r}.")


def _check_bucket_ratio(r):
  if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 2:
    raise ValueError(f"bucket_ratio must be an integer >= 2, got {r!r}.")


def _check_sizes(sizes, k, name):
  sizes = np.asarray(sizes, np.int64)
  if sizes.ndim != 1 or sizes.size == 0:
    raise ValueError(f"{name} must be a non-empty 1-D list, got shape {sizes.shape}.")
  if sizes.min() < k:
    raise ValueError(f"{name}: every training size m must be >= num_classes={k} so each"
                     f" class appears; got m={int(sizes.min())}.")
  return sizes


def _check_test(test, k, d):
  x_test, y_test = test
  _checks.check_ndim(x_test, 2, "x_test")
  _checks.check_last_dim(x_test, d, "x_test", "the mixture's dimension")
  _checks.check_finite(x_test, "x_test")
  _checks.check_labels(y_test, k, "y_test")
  return x_test, y_test


class _Sweep:
  """Streams, test set and compiled program of one (model, mixture) search."""

  def __init__(self, model, train_key, mixture, test, max_size, num_reps, chunk,
               mesh=None, bucket_ratio=4):
    self.k = mixture.means.shape[0]
    self.model, self.chunk = model, chunk
    self.test = test
    buckets = engine.buckets_for(max_size, ratio=bucket_ratio)
    self.x, self.y = engine.sample_streams(train_key, mixture, num_reps, buckets[-1])
    if mesh is not None:
      self.x, self.y = engine.shard_streams(mesh, self.x, self.y)
    self.prog = engine.curve_program(model, num_classes=self.k, buckets=buckets)
    self.zero = engine.zeros_init(model, self.x, self.y, self.k)

  def __call__(self, sizes, init, update=None):
    sizes = np.asarray(sizes, np.int64)
    errs, params, oks = [], [], []
    for start in range(0, sizes.size, self.chunk):
      part = sizes[start:start + self.chunk]
      e, p, ok = self.prog.run(self.x, self.y, *self.test,
                               jnp.asarray(engine.as_sizes(part, self.chunk)),
                               self.zero if init is None else init)
      errs.append(np.asarray(e)[: part.size])
      oks.append(np.asarray(ok)[: part.size])
      if p is not None:
        p = jax.tree.map(lambda a: a[: part.size], p)
        params.append(p)
        init = jax.tree.map(lambda a: a[-1], p)
      if update is not None:
        update(part.size)
    params = (jax.tree.map(lambda *a: jnp.concatenate(a), *params) if params else None)
    return np.concatenate(errs), params, np.concatenate(oks)


def evaluate_sizes(train_key, mixture, test, sizes, *, model, num_reps=5, C=1.0,
                   tol=1e-4, max_iter=1000, init=None, chunk=8, mesh=None,
                   bucket_ratio=4, progress=False):
  """Test errors of ``model`` trained on the first ``m`` examples of each repetition.

  Sizes run in order and warm-start each fit from the previous one (families whose
  ``fit`` takes ``init``).

  Args:
    train_key: key of the training streams (repetition ``r`` uses its ``r``-th split).
    mixture: [`jgen.simulate.GaussianMixture`][jgen.simulate.GaussianMixture].
    test: ``(x_test [T, D], y_test [T])``.
    sizes: training sizes ``[G]``, each ``>= K``.
    model: ``"nb"``, ``"lr"`` or any [`jgen.Classifier`][jgen.Classifier] taking
      ``sample_weight``.
    num_reps: repetitions ``R`` (vmapped).
    C, tol, max_iter: logistic-regression settings for ``model="lr"``.
    init: warm start for the first size, params with a leading ``[R]`` axis.
    chunk: sizes per compiled call (static).
    mesh: optional [`jgen.parallel.make_mesh`][jgen.parallel.make_mesh] mesh; the
      repetitions are sharded over its ``data`` axis (same numbers as one device).
    bucket_ratio: integer ``>= 2``, growth between padded sizes
      ([`buckets_for`][jgen.simulate.buckets_for]); smaller pads less (a fit costs in
      proportion to its bucket), compiles more branches.
    progress: ``True`` for a tqdm bar over the ``G`` sizes, or a callable called with
      the number of sizes finished per compiled call ([`progress`][jgen.core.progress]).

  Returns:
    ``(errors [G, R], params [G, R, ...] or None, converged [G, R])``.

  Examples:
    >>> import jax
    >>> from jgen import simulate
    >>> mix = simulate.zheng_mixture(2, 4)
    >>> test = simulate.sample(jax.random.key(1), mix, 500)
    >>> err, _, ok = simulate.evaluate_sizes(jax.random.key(0), mix, test, [8, 16],
    ...                                      model="nb", num_reps=2)
    >>> err.shape, bool(ok.all())
    ((2, 2), True)
  """
  _check_num_reps(num_reps)
  check_progress(progress)
  model = resolve_model(model, C=C, tol=tol, max_iter=max_iter)
  k, d = mixture.means.shape
  sizes = _check_sizes(sizes, k, "sizes")
  test = _check_test(test, k, d)
  _check_bucket_ratio(bucket_ratio)
  sweep = _Sweep(model, train_key, mixture, test, int(sizes.max()), num_reps, chunk,
                 mesh, bucket_ratio)
  with report(progress, sizes.size, unit="size", desc="evaluate_sizes") as update:
    return sweep(sizes, init, update)


def pad_mixture(mixture, dim: int):
  """Appends features that are exactly 0 in every class (zero mean and variance).

  They change neither the pooled naive Bayes decision nor the logistic fit (zero
  gradient), but let mixtures of different dimensions share one compiled program.

  Args:
    mixture: a [`GaussianMixture`][jgen.simulate.GaussianMixture] of dimension ``D``.
    dim: the padded dimension ``>= D``.

  Returns:
    [`GaussianMixture`][jgen.simulate.GaussianMixture] with ``means [K, dim]``, ``variances [dim]``.

  Examples:
    >>> from jgen import simulate
    >>> mix = simulate.pad_mixture(simulate.zheng_mixture(2, 3), 5)
    >>> mix.means.shape, tuple(mix.variances.tolist())
    ((2, 5), (3.0, 1.0, 1.0, 0.0, 0.0))
  """
  k, d = mixture.means.shape
  if dim < d:
    raise ValueError(f"pad_dim must be >= the mixture's dimension {d}, got {dim}.")
  pad = ((0, 0), (0, dim - d))
  if (chol := mixture.correlation_cholesky) is not None:
    chol = jax.scipy.linalg.block_diag(chol, jnp.eye(dim - d, dtype=chol.dtype))
  return simulate.GaussianMixture(jnp.pad(mixture.means, pad),
                                  jnp.pad(mixture.variances, pad[1]), chol)


def size_grid(num_classes: int, dim: int, max_size: int) -> np.ndarray:
  """The paper's sizes: from ``2K`` in steps of ``ceil(ln n)`` up to ``max_size``.

  Args:
    num_classes: ``K``.
    dim: feature dimension ``n``.
    max_size: the largest size (included when on the grid).

  Returns:
    ``[G]`` int64 NumPy array of sizes.

  Examples:
    >>> from jgen import simulate
    >>> tuple(simulate.size_grid(2, 8, 20).tolist())  # from 4 in steps of ceil(ln 8)
    (4, 7, 10, 13, 16, 19)
  """
  step = max(1, math.ceil(math.log(dim)))
  return np.arange(2 * num_classes, max_size + 1, step)


def find_m_star(key, mixture, *, model, target, grid, num_reps=5, num_test=10_000,
                strategy="scan", chunk=8, growth=1.5, C=1.0, tol=1e-4, max_iter=1000,
                pad_dim: int | None = None, mesh=None, bucket_ratio: int = 4,
                progress: bool | Callable[[int], None] | None = False) -> CurveResult:
  """Learning curve of ``model`` until its mean test error drops below ``target``.

  Strategies (``m*`` is always a point of ``grid``):

  * ``"scan"`` (the paper's protocol): evaluate ``grid`` in order, ``chunk`` sizes per
    compiled call, and stop at the first size whose mean error is below ``target``.
  * ``"bisect"``: evaluate a geometric subsequence of ``grid`` (ratio ``growth``) until
    one meets the target, then bisect on ``grid`` between the last miss and that hit.
    Equal to ``"scan"`` when the mean error curve is monotone between them.

  One program is compiled per (model, K, D, largest grid size); fits warm-start from
  the fit at the largest smaller evaluated size.

  Args:
    key: PRNG key; split into the test-set key and the training-stream key, so the
      same key gives every model the same data.
    mixture: [`jgen.simulate.GaussianMixture`][jgen.simulate.GaussianMixture].
    model: ``"nb"``, ``"lr"`` or any [`jgen.Classifier`][jgen.Classifier] taking
      ``sample_weight``.
    target: error threshold in ``(0, 1)`` (the paper: Bayes error + 0.01).
    grid: candidate sizes, strictly increasing, all ``>= K`` ([`size_grid`][jgen.simulate.size_grid]).
    num_reps: repetitions ``R >= 1`` (vmapped); num_test: test points.
    pad_dim: append zero-variance features up to this dimension
      ([`pad_mixture`][jgen.simulate.pad_mixture]).
    mesh: optional mesh; repetitions sharded over its ``data`` axis.
    bucket_ratio: growth between padded sizes, as in [`evaluate_sizes`][jgen.simulate.evaluate_sizes].
    progress: ``True`` for a tqdm bar over sizes (its total is ``len(grid)``, an upper
      bound, shrunk to the sizes evaluated when the search stops early), or a
      callable called with the number of sizes evaluated per compiled call.

  Returns:
    [`CurveResult`][jgen.simulate.CurveResult].

  Examples:
    >>> import jax
    >>> from jgen import simulate
    >>> mix = simulate.zheng_mixture(2, 4)
    >>> target = simulate.bayes_error(mix) + 0.05
    >>> res = simulate.find_m_star(jax.random.key(0), mix, model="nb", target=target,
    ...                            grid=simulate.size_grid(2, 4, 80), num_reps=2,
    ...                            num_test=2000)
    >>> res.m_star is not None and res.errors.shape[1] == 2
    True
  """
  if strategy not in ("scan", "bisect"):
    raise ValueError(f"strategy must be 'scan' or 'bisect', got {strategy!r}.")
  if isinstance(target, bool) or not isinstance(target, (int, float, np.floating)) or (
      not 0.0 < float(target) < 1.0):
    raise ValueError(f"target must be an error rate in (0, 1), got {target!r}.")
  _check_num_reps(num_reps)
  _check_bucket_ratio(bucket_ratio)
  check_progress(progress)
  model = resolve_model(model, C=C, tol=tol, max_iter=max_iter)
  k = mixture.means.shape[0]
  grid = _check_sizes(grid, k, "grid")
  if np.any(np.diff(grid) <= 0):
    raise ValueError("grid must be strictly increasing.")
  if pad_dim is not None:
    mixture = pad_mixture(mixture, pad_dim)
  test_key, train_key = jax.random.split(key)
  test = simulate.sample(test_key, mixture, num_test)
  sweep = _Sweep(model, train_key, mixture, test, int(grid[-1]), num_reps, chunk, mesh,
                 bucket_ratio)
  done: dict[int, np.ndarray] = {}
  fits: dict[int, object] = {}
  bad = 0

  def run(idx):
    nonlocal bad
    below = [i for i in fits if i < idx[0]]
    init = fits[max(below)] if below else None
    errors, params, ok = sweep(grid[idx], init, update)
    bad += int(np.sum(~ok))
    for g, i in enumerate(idx):
      done[i] = errors[g]
      if params is not None:
        fits[i] = jax.tree.map(lambda a: a[g], params)

  hit = lambda i: float(np.mean(done[i])) < target  # each index evaluated at most once
  with report(progress, grid.size, unit="size", desc="find_m_star",
              bound=True) as update:
    m_star = _scan(run, hit, grid, chunk) if strategy == "scan" else _bisect(
        run, hit, grid, growth)
  if bad:
    warnings.warn(f"{bad} fit(s) reported converged=False (max_iter={max_iter});"
                  " their errors are kept and counted in not_converged.",
                  logistic.ConvergenceWarning, stacklevel=2)
  order = sorted(done)
  return CurveResult(grid[order], np.stack([done[i] for i in order]), m_star, bad)


def _scan(run, hit, grid, chunk):
  for start in range(0, grid.size, chunk):
    idx = list(range(start, min(start + chunk, grid.size)))
    run(idx)
    first = next((i for i in idx if hit(i)), None)
    if first is not None:
      return int(grid[first])
  return None


def _bisect(run, hit, grid, growth):
  lo, i = -1, 0
  while i < grid.size:
    run([i])
    if hit(i):
      hi = i
      while hi - lo > 1:
        mid = (lo + hi) // 2
        run([mid])
        lo, hi = (lo, mid) if hit(mid) else (mid, hi)
      return int(grid[hi])
    if i == grid.size - 1:
      return None
    nxt = int(np.searchsorted(grid, grid[i] * growth))
    lo, i = i, max(i + 1, min(nxt, grid.size - 1))
  return None
