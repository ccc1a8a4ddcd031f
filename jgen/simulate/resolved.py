"""Resolved ``m*``: many repetitions, a fine size grid, bootstrap intervals, censoring.

``m*(eps)`` is the first training size whose mean test error over ``R`` repetitions is
below the model's own asymptotic error plus ``eps``. The asymptotic error is measured
on the *same* test points as the fits (the error of the model's infinite-sample rule,
a control variate: the test set's sampling noise, shared by every fit, cancels to first
order), and its exact value is reported beside it. Intervals resample the repetitions
(the test set is held fixed); a crossing at the first size tried is *left-censored*
(the grid starts too late to resolve it) and no crossing is *right-censored*.
The percentile interval treats ``m*`` as a smooth function of the mean curve, which
holds when each repetition's curve is smooth in ``m`` (nested training sets, as here);
with independent noise at every size the first crossing is biased early.

References:
  Zheng, Xu, Zhang, Sun, Lu. Revisiting Discriminative vs. Generative Classifiers:
  Theory and Implications. ICML 2023. arXiv:2302.02334.
  Efron, Tibshirani. An Introduction to the Bootstrap. Chapman & Hall, 1993.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.simulate import engine
from jgen.simulate import learning_curve
from jgen.simulate import mixtures

__all__ = ["MStar", "resolved_grid", "rule_error", "bootstrap_m_star", "boot_indices",
           "growth_fit", "scan_until"]


class MStar(NamedTuple):
  """``m*`` with a bootstrap interval.

  Attributes:
    m_star: first size whose mean error is below the target (``None`` if none).
    low, high: percentile-bootstrap interval (``None`` where the bootstrap replicates
      do not cross within the grid).
    censored: ``None``, ``"left"`` (the first size tried already meets the target) or
      ``"right"`` (no size does).
    boot: ``[B]`` bootstrap replicates of ``m*`` (``inf`` where a replicate never
      crosses).

  Examples:
    >>> import numpy as np
    >>> from jgen import simulate
    >>> res = simulate.bootstrap_m_star([2, 4], np.array([[0.5, 0.4], [0.1, 0.2]]), 0.3)
    >>> type(res).__name__, res.m_star
    ('MStar', 4)
  """
  m_star: int | None
  low: float | None
  high: float | None
  censored: str | None
  boot: np.ndarray


def resolved_grid(num_classes: int, max_size: int, *, dense: int = 32,
                  ratio: float = 1.05) -> np.ndarray:
  """Every multiple of ``K`` up to ``dense * K``, then a geometric grid of multiples of ``K``.

  Args:
    num_classes: ``K``.
    max_size: the largest size (the grid ends at the first size ``>= max_size``).
    dense: how many multiples of ``K`` the grid starts with.
    ratio: spacing of the geometric part (its relative resolution).

  Returns:
    ``[G]`` strictly increasing int64 NumPy array, starting at ``K``.

  Examples:
    >>> from jgen import simulate
    >>> simulate.resolved_grid(2, 60, dense=4, ratio=1.5).tolist()
    [2, 4, 6, 8, 12, 18, 28, 42, 64]
  """
  out = list(range(num_classes, dense * num_classes + 1, num_classes))
  while out[-1] < max_size:
    nxt = int(np.ceil(out[-1] * ratio / num_classes)) * num_classes
    out.append(max(nxt, out[-1] + num_classes))
  return np.asarray(out, np.int64)


def rule_error(mixture: mixtures.GaussianMixture, x: jax.Array, y: jax.Array) -> float:
  """Error rate on ``(x, y)`` of the rule ``argmax_k class_log_likelihood(mixture, x)``.

  With the true mixture this is the Bayes rule; with
  [`nb_population_mixture`][jgen.simulate.nb_population_mixture] naive Bayes's
  infinite-sample rule.

  Args:
    mixture: the [`GaussianMixture`][jgen.simulate.GaussianMixture] defining the rule.
    x: ``[T, D]`` inputs; y: ``[T]`` labels.

  Returns:
    The error rate (Python float).

  Examples:
    >>> import jax
    >>> from jgen import simulate
    >>> mix = simulate.fixed_difficulty_mixture(2, 8, 0.2)
    >>> x, y = simulate.sample(jax.random.key(0), mix, 4000)
    >>> abs(simulate.rule_error(mix, x, y) - 0.2) < 4 * (0.2 * 0.8 / 4000) ** 0.5
    True
  """
  scores = mixtures.class_log_likelihood(mixture, x)
  return float(jnp.mean(jnp.argmax(scores, -1) != y))


def bootstrap_m_star(sizes, errors, target: float, *, num_boot: int = 1000,
                     level: float = 0.95, seed: int = 0) -> MStar:
  """``m*`` of a learning curve and its percentile-bootstrap interval over repetitions.

  Args:
    sizes: ``[G]`` increasing sizes.
    errors: ``[G, R]`` test errors (one column per repetition).
    target: the error to get below.
    num_boot: bootstrap replicates ``B``.
    level: interval coverage.
    seed: NumPy seed of the resampling.

  Returns:
    [`MStar`][jgen.simulate.MStar].

  Examples:
    >>> import numpy as np
    >>> from jgen import simulate
    >>> errors = np.array([[0.5, 0.5], [0.3, 0.2], [0.1, 0.1]])
    >>> res = simulate.bootstrap_m_star([2, 4, 6], errors, 0.26)
    >>> res.m_star, res.censored, (res.low, res.high)
    (4, None, (4.0, 6.0))
    >>> simulate.bootstrap_m_star([2, 4, 6], errors, 0.6).censored
    'left'
  """
  sizes = np.asarray(sizes, np.float64)
  errors = np.asarray(errors, np.float64)
  if errors.ndim != 2 or errors.shape[0] != sizes.size:
    raise ValueError(f"errors must be [G, R] with G = len(sizes) = {sizes.size}, got"
                     f" shape {errors.shape}.")
  below = errors.mean(1) < target
  m_star = int(sizes[np.argmax(below)]) if below.any() else None
  censored = None if m_star is None or not below[0] else "left"
  if m_star is None:
    censored = "right"
  idx = boot_indices(errors.shape[1], num_boot, seed)
  means = errors[:, idx].mean(-1)                                  # [G, B]
  hit = means < target
  boot = np.where(hit.any(0), sizes[np.argmax(hit, 0)], np.inf)
  with np.errstate(invalid="ignore"):  # inf - inf where replicates never cross
    q = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
  low, high = (float(v) if np.isfinite(v) else None for v in q)
  return MStar(m_star, low, high, censored, boot)


def boot_indices(num_reps: int, num_boot: int = 1000, seed: int = 0) -> np.ndarray:
  """The repetitions each bootstrap replicate draws, ``[B, R]``.

  [`bootstrap_m_star`][jgen.simulate.bootstrap_m_star] and the stopping rule of
  [`scan_until`][jgen.simulate.scan_until] resample with these indices, so a scan that
  stops once every replicate has crossed gives the replicates a longer scan gives.

  Args:
    num_reps: ``R``; num_boot: ``B``; seed: NumPy seed.

  Returns:
    ``[B, R]`` int64 NumPy array of indices in ``[0, R)``.

  Examples:
    >>> from jgen import simulate
    >>> simulate.boot_indices(5, num_boot=3).shape
    (3, 5)
  """
  return np.random.default_rng(seed).integers(0, num_reps, (num_boot, num_reps))


def growth_fit(ns, boots, *, level: float = 0.95) -> dict:
  """Least-squares slopes of ``m*`` against ``n`` and ``ln n``, intervals and ``R^2``.

  The point fit uses the medians of the replicates; the interval is the percentile
  interval of the slopes fitted to each joint replicate (cells are independent, so
  replicate ``b`` of every cell forms one joint replicate); replicates with an
  infinite ``m*`` are dropped. ``R^2`` is ``None`` below three dimensions.

  Args:
    ns: ``[C]`` dimensions (at least 2 distinct).
    boots: ``[C, B]`` bootstrap replicates of ``m*`` per dimension.
    level: interval coverage.

  Returns:
    ``{"slope_vs_n", "slope_vs_n_ci", "r2_vs_n", "slope_vs_log_n", ...}`` and, from
    four dimensions on, the joint fit ``m* = a + b ln n + c n``: ``joint_log_n`` (b),
    ``joint_n`` (c), their intervals and a ``verdict`` (``"n"``, ``"ln n"``,
    ``"both"`` or ``"cannot decide"``: which terms' intervals lie above 0).

  Examples:
    >>> import numpy as np
    >>> from jgen import simulate
    >>> fit = simulate.growth_fit([10, 20, 40], np.array([[20.0] * 5, [40] * 5, [80] * 5]))
    >>> round(fit["slope_vs_n"], 6), round(fit["r2_vs_n"], 6)
    (2.0, 1.0)
    >>> [round(v, 6) for v in fit["slope_vs_n_ci"]]  # every replicate is exact
    [2.0, 2.0]
    >>> ns = np.array([4, 8, 16, 32, 64.0])
    >>> rng = np.random.default_rng(0)
    >>> boots = 50 * np.log(ns)[:, None] + rng.normal(0, 2, (5, 200))
    >>> simulate.growth_fit(ns, boots)["verdict"]
    'ln n'
    >>> simulate.growth_fit(ns, 3 * ns[:, None] + rng.normal(0, 2, (5, 200)))["verdict"]
    'n'
  """
  ns = np.asarray(ns, np.float64)
  boots = np.asarray(boots, np.float64)
  finite = np.all(np.isfinite(boots), axis=0)
  point = np.median(boots, axis=1)
  res = {}
  for name, x in (("n", ns), ("log_n", np.log(ns))):
    slope, intercept = np.polyfit(x, point, 1)
    ss = float(np.sum((point - point.mean()) ** 2))
    # Two points lie on a line whatever the growth: R^2 only from three dimensions on.
    r2 = (1 - float(np.sum((point - slope * x - intercept) ** 2)) / ss
          if ss > 0 and ns.size > 2 else None)
    slopes = (np.polyfit(x, boots[:, finite], 1)[0] if finite.any() else np.array([]))
    ci = (np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2]).tolist()
          if slopes.size else None)
    res.update({f"slope_vs_{name}": float(slope), f"intercept_vs_{name}": float(intercept),
                f"r2_vs_{name}": r2, f"slope_vs_{name}_ci": ci})
  res.update(_two_term(ns, point, boots[:, finite], level))
  return res


def _two_term(ns, point, boots, level):
  """``m* = a + b ln n + c n`` by least squares, with percentile intervals of ``b, c``.

  The verdict: ``"n"`` when ``c``'s interval lies above 0 and ``b``'s does not (``b``
  may be negative: growth at least linear), ``"ln n"`` the other way round, ``"both"``
  when both lie above 0, otherwise ``"cannot decide"``; ``None`` below four dimensions
  (three points fit any ``a, b, c`` exactly).
  """
  out = dict(joint_log_n=None, joint_log_n_ci=None, joint_n=None, joint_n_ci=None,
             verdict=None)
  if ns.size < 4:
    return out
  design = np.stack([np.ones_like(ns), np.log(ns), ns], 1)
  coef = np.linalg.lstsq(design, point, rcond=None)[0]
  out.update(joint_log_n=float(coef[1]), joint_n=float(coef[2]))
  if boots.shape[1] == 0:
    out["verdict"] = "cannot decide"
    return out
  reps = np.linalg.lstsq(design, boots, rcond=None)[0]               # [3, B]
  q = [(1 - level) / 2, (1 + level) / 2]
  b_ci, c_ci = (np.quantile(reps[i], q).tolist() for i in (1, 2))
  out.update(joint_log_n_ci=b_ci, joint_n_ci=c_ci)
  b_up, c_up = b_ci[0] > 0, c_ci[0] > 0
  out["verdict"] = ("both" if b_up and c_up else "n" if c_up else "ln n" if b_up else
                    "cannot decide")
  return out


def _chunks(grid, buckets, chunk):
  """Consecutive runs of ``grid`` of at most ``chunk`` sizes, each within one bucket."""
  which = np.searchsorted(np.asarray(buckets), grid)
  start = 0
  while start < grid.size:
    stop = start + 1
    while stop < grid.size and stop - start < chunk and which[stop] == which[start]:
      stop += 1
    yield grid[start:stop]
    start = stop


def scan_until(key, mixture, grid, *, model, stop_target: float, num_reps: int = 100,
               test=None, num_test: int = 10_000, overshoot: float = 1.5, chunk: int = 8,
               bucket_ratio: int = 4, boot_stop: tuple[int, int] | None = None,
               progress=None):
  """Evaluates ``grid`` in order until ``overshoot`` times past the first crossing.

  Sizes run up to ``chunk`` per compiled call, all of one call in one padding bucket
  (warm-started logistic fits, as in [`evaluate_sizes`][jgen.simulate.evaluate_sizes]);
  each bucket's program is compiled when the scan first reaches it. The scan stops at
  the end of the chunk in which the size reaches ``overshoot * m`` for the first ``m`` whose mean error
  is below ``stop_target``, so bootstrap replicates crossing later stay on the grid.
  With ``boot_stop = (B, seed)`` it also stops at the end of the first chunk after
  which the mean curve and every replicate of
  [`bootstrap_m_star`][jgen.simulate.bootstrap_m_star]``(..., num_boot=B, seed=seed)``
  have gone below ``stop_target``: every replicate's first crossing of ``stop_target``
  (and of any larger target) is then on the grid, so ``m*`` and its replicates equal
  those of the scan without the rule, which evaluates more, larger sizes.

  Args:
    key: PRNG key, split into test and training keys as in
      [`find_m_star`][jgen.simulate.find_m_star].
    mixture: the [`GaussianMixture`][jgen.simulate.GaussianMixture].
    grid: ``[G]`` increasing sizes ``>= K`` (e.g.
      [`resolved_grid`][jgen.simulate.resolved_grid]).
    model: ``"nb"``, ``"lr"`` or a [`jgen.Classifier`][jgen.Classifier].
    stop_target: error whose crossing ends the scan (the strictest target).
    num_reps: repetitions ``R``; num_test: test points when ``test`` is ``None``.
    test: optional ``(x_test, y_test)``.
    overshoot: how far past the crossing to keep going.
    chunk: sizes per compiled call; bucket_ratio: padding growth (powers of it).
    boot_stop: ``None`` or ``(num_boot, seed)`` of the bootstrap to stop on.
    progress: ``None`` or a callable called with the sizes done per call.

  Returns:
    ``(sizes [G'], errors [G', R], not_converged)``.

  Examples:
    >>> import jax
    >>> from jgen import simulate
    >>> mix = simulate.fixed_difficulty_mixture(2, 4, 0.2)
    >>> sizes, errors, bad = simulate.scan_until(
    ...     jax.random.key(0), mix, simulate.resolved_grid(2, 400), model="nb",
    ...     stop_target=0.3, num_reps=4, num_test=1000)
    >>> errors.shape[1], bool(errors.mean(1)[-1] < 0.3), bad
    (4, True, 0)
  """
  model = learning_curve.resolve_model(model)
  grid = np.asarray(grid, np.int64)
  k = mixture.means.shape[0]
  test_key, train_key = jax.random.split(key)
  if test is None:
    test = mixtures.sample(test_key, mixture, num_test)
  buckets = engine.buckets_for(int(grid[-1]), ratio=bucket_ratio)
  x, y = engine.sample_streams(train_key, mixture, num_reps, buckets[-1])
  init = engine.zeros_init(model, x, y, k)
  errs, bad, stop_at = [], 0, None
  if boot_stop is not None:
    idx = boot_indices(num_reps, *boot_stop)
    crossed = np.zeros(idx.shape[0], bool)
  for part in _chunks(grid, buckets, chunk):
    # One program per bucket, compiled when the scan first reaches it: a scan that
    # stops early never compiles the larger buckets (a program holding every bucket
    # compiled one solver per bucket, most of a cell's time at n <= 16).
    bucket = buckets[int(np.searchsorted(buckets, part[-1]))]
    prog = engine.curve_program(model, num_classes=k, buckets=(bucket,))
    e, p, ok = prog.run(x, y, *test, jnp.asarray(engine.as_sizes(part, chunk)), init)
    errs.append(np.asarray(e)[: part.size])
    bad += int(np.sum(~np.asarray(ok)[: part.size]))
    if p is not None:
      init = jax.tree.map(lambda a: a[part.size - 1], p)
    if progress is not None:
      progress(part.size)
    hits = part[errs[-1].mean(1) < stop_target]
    if stop_at is None and hits.size:
      stop_at = overshoot * hits[0]
    if stop_at is not None and part[-1] >= stop_at:
      break
    if boot_stop is not None:
      crossed |= (errs[-1][:, idx].mean(-1) < stop_target).any(0)
      if stop_at is not None and crossed.all():
        break
  errors = np.concatenate(errs)
  return grid[: errors.shape[0]], errors, bad
