"""Learning curves and the sample size ``m*`` at which a classifier meets a target error.

Re-exported by :mod:`jgen.simulate`; see its docstring for the protocol.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.core import checks as _checks
from jgen import gaussian
from jgen import logistic
from jgen.simulate import mixtures as simulate

__all__ = [
    "MODELS",
    "CurveResult",
    "bucket_size",
    "evaluate_sizes",
    "find_m_star",
    "size_grid",
    "pad_mixture",
]

MODELS = ("nb", "lr")
_NB = gaussian.gaussian_nb(var_smoothing=1e-9, pooled=True)


class CurveResult(NamedTuple):
  """One learning curve.

  Attributes:
    sizes: evaluated training-set sizes ``[G]`` (ascending).
    errors: test errors ``[G, R]`` (one column per repetition).
    m_star: first size whose mean error is below the target, or ``None`` if no
      evaluated size reached it.
    not_converged: logistic fits that stopped at ``max_iter`` (0 for naive Bayes).
  """
  sizes: np.ndarray
  errors: np.ndarray
  m_star: int | None
  not_converged: int


def bucket_size(m: int, minimum: int = 64) -> int:
  """Padded size for ``m`` examples: the next power of two, at least ``minimum``.

  Each bucket is one compilation; powers of two bound the padding work by 2x.
  """
  return max(minimum, 1 << (int(m) - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("model", "bucket", "num_reps", "C", "tol",
                                              "max_iter"))
def _errors(train_key, mixture, x_test, y_test, sizes, init, *, model, bucket,
            num_reps, C, tol, max_iter):
  k = mixture.means.shape[0]
  lr = logistic.logistic_regression(C, tol=tol, max_iter=max_iter)

  def rep(rep_key, init_r):
    x, y = simulate.sample(rep_key, mixture, bucket)

    def size(m):
      w = (jnp.arange(bucket) < m).astype(x.dtype)
      if model == "nb":
        params = _NB.fit(x, y, num_classes=k, sample_weight=w)
        scores = _NB.log_likelihood(params, x_test) + params.log_prior[None, :]
        fitted, ok = None, jnp.asarray(True)
      else:
        params = lr.fit(x, y, num_classes=k, sample_weight=w, init=init_r)
        scores = lr.log_likelihood(params, x_test)
        fitted, ok = logistic.LogisticParams(params.weights, params.bias), params.info.converged
      return jnp.mean(jnp.argmax(scores, -1) != y_test), fitted, ok

    return jax.vmap(size)(sizes)

  return jax.vmap(rep)(jax.random.split(train_key, num_reps), init)


def evaluate_sizes(train_key, mixture, test, sizes, *, model, num_reps=5, C=1.0,
                   tol=1e-4, max_iter=1000, init=None):
  """Test errors of ``model`` trained on the first ``m`` examples of each repetition.

  Args:
    train_key: key of the training streams (repetition ``r`` uses its ``r``-th split).
    mixture: :class:`jgen.simulate.GaussianMixture`.
    test: ``(x_test [T, D], y_test [T])``.
    sizes: training sizes ``[G]``, each ``>= K``.
    model: ``"nb"`` (pooled naive Bayes) or ``"lr"`` (logistic regression).
    num_reps: repetitions ``R`` (vmapped).
    C, tol, max_iter: logistic-regression settings.
    init: warm start, ``LogisticParams`` with ``[R, D, K]`` weights, or ``None``.

  Returns:
    ``(errors [G, R], params [R, G, ...] or None, converged [G, R])`` as NumPy/JAX.
  """
  if model not in MODELS:
    raise ValueError(f"model must be one of {MODELS}, got {model!r}.")
  sizes = np.asarray(sizes, np.int64)
  k, d = mixture.means.shape
  if sizes.ndim != 1 or sizes.size == 0:
    raise ValueError(f"sizes must be a non-empty 1-D list, got shape {sizes.shape}.")
  if sizes.min() < k:
    raise ValueError(f"every training size m must be >= num_classes={k} so each class"
                     f" appears; got m={int(sizes.min())}.")
  x_test, y_test = test
  _checks.check_ndim(x_test, 2, "x_test")
  _checks.check_last_dim(x_test, d, "x_test", "the mixture's dimension")
  _checks.check_finite(x_test, "x_test")
  _checks.check_labels(y_test, k, "y_test")
  bucket = bucket_size(int(sizes.max()))
  if model == "lr" and init is None:
    init = logistic.LogisticParams(jnp.zeros((num_reps, d, k), x_test.dtype),
                                   jnp.zeros((num_reps, k), x_test.dtype))
  errors, params, ok = _errors(train_key, mixture, x_test, y_test,
                               jnp.asarray(sizes, jnp.int32), init, model=model,
                               bucket=bucket, num_reps=num_reps, C=float(C),
                               tol=float(tol), max_iter=int(max_iter))
  return np.asarray(errors).T, params, np.asarray(ok).T


def pad_mixture(mixture, dim: int):
  """Appends features that are exactly 0 in every class (zero mean and variance).

  Such features change neither the pooled naive Bayes decision (equal terms for every
  class) nor the logistic fit (zero gradient keeps their weights at 0), but they let
  mixtures of different dimensions share one compiled program.
  """
  k, d = mixture.means.shape
  if dim < d:
    raise ValueError(f"pad_dim must be >= the mixture's dimension {d}, got {dim}.")
  pad = ((0, 0), (0, dim - d))
  return simulate.GaussianMixture(jnp.pad(mixture.means, pad),
                                  jnp.pad(mixture.variances, pad[1]))


def size_grid(num_classes: int, dim: int, max_size: int) -> np.ndarray:
  """The paper's sizes: from ``2K`` in steps of ``ceil(ln n)`` up to ``max_size``."""
  step = max(1, math.ceil(math.log(dim)))
  return np.arange(2 * num_classes, max_size + 1, step)


def _take(params, g):
  return jax.tree.map(lambda a: a[:, g], params)


def find_m_star(key, mixture, *, model, target, grid, num_reps=5, num_test=10_000,
                strategy="scan", chunk=4, growth=1.5, C=1.0, tol=1e-4, max_iter=1000,
                pad_dim: int | None = None,
                progress: Callable[[int], None] | None = None) -> CurveResult:
  """Learning curve of ``model`` until its mean test error drops below ``target``.

  Strategies (``m*`` is always a point of ``grid``):

  * ``"scan"`` (the paper's protocol): evaluate ``grid`` in order, ``chunk`` sizes per
    call, and stop at the first size whose mean error is below ``target``.
  * ``"bisect"``: evaluate a geometric subsequence of ``grid`` (ratio ``growth``) until
    one meets the target, then bisect on ``grid`` between the last miss and that hit.
    Equal to ``"scan"`` when the mean error curve is monotone between them; much
    cheaper when ``m*`` is large.

  Logistic fits warm-start from the fit at the largest smaller evaluated size.

  Args:
    key: PRNG key; split into the test-set key and the training-stream key, so the
      same key gives both models the same data.
    mixture: :class:`jgen.simulate.GaussianMixture`.
    model: ``"nb"`` or ``"lr"``.
    target: error threshold (the paper: Bayes error + 0.01).
    grid: candidate sizes, ascending, all ``>= K`` (e.g. :func:`size_grid`).
    pad_dim: append zero-variance features up to this dimension (see
      :func:`pad_mixture`), so mixtures of several dimensions share compilations.
    progress: optional callback, called with the number of sizes evaluated per call.

  Returns:
    :class:`CurveResult`.
  """
  if strategy not in ("scan", "bisect"):
    raise ValueError(f"strategy must be 'scan' or 'bisect', got {strategy!r}.")
  grid = np.asarray(grid, np.int64)
  if grid.ndim != 1 or grid.size == 0 or np.any(np.diff(grid) <= 0):
    raise ValueError("grid must be a non-empty strictly increasing 1-D list of sizes.")
  if pad_dim is not None:
    mixture = pad_mixture(mixture, pad_dim)
  test_key, train_key = jax.random.split(key)
  test = simulate.sample(test_key, mixture, num_test)
  done: dict[int, np.ndarray] = {}
  fits: dict[int, object] = {}
  bad = 0

  def run(idx):
    nonlocal bad
    below = [i for i in fits if i < idx[0]]
    init = fits[max(below)] if below else None
    errors, params, ok = evaluate_sizes(
        train_key, mixture, test, grid[idx], model=model, num_reps=num_reps, C=C,
        tol=tol, max_iter=max_iter, init=init)
    bad += int(np.sum(~ok))
    for g, i in enumerate(idx):
      done[i] = errors[g]
      if params is not None:
        fits[i] = _take(params, g)
    if progress is not None:
      progress(len(idx))

  hit = lambda i: float(np.mean(done[i])) < target
  m_star = None
  if strategy == "scan":
    for start in range(0, grid.size, chunk):
      idx = list(range(start, min(start + chunk, grid.size)))
      run(idx)
      first = next((i for i in idx if hit(i)), None)
      if first is not None:
        m_star = int(grid[first])
        break
  else:
    lo, i = -1, 0
    while i < grid.size:
      run([i])
      if hit(i):
        hi = i
        while hi - lo > 1:
          mid = (lo + hi) // 2
          run([mid])
          lo, hi = (lo, mid) if hit(mid) else (mid, hi)
        m_star = int(grid[hi])
        break
      if i == grid.size - 1:
        break
      nxt = int(np.searchsorted(grid, grid[i] * growth))
      lo, i = i, max(i + 1, min(nxt, grid.size - 1))
  if bad:
    warnings.warn(f"{bad} logistic fit(s) hit max_iter={max_iter} before tol={tol};"
                  " their errors are kept and counted in not_converged.",
                  logistic.ConvergenceWarning, stacklevel=2)
  order = sorted(done)
  return CurveResult(grid[order], np.stack([done[i] for i in order]), m_star, bad)
