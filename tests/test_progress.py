"""The ``progress`` option of the long library calls: a bar is drawn, results unchanged.

For each call, ``progress=True`` runs the same per-item computations as
``progress=False`` (only how many items share one compiled call changes), so the
reference for every result below is the same call without progress.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bounds, diffusion, simulate
from jgen.diffusion import classifier

K, D, N = 4, 3, 11


def _oracle(seed=0):
  """Float64 oracle denoiser of a K-class Gaussian mixture and N points from it."""
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(K, D))
  variances = np.exp(0.3 * rng.normal(size=(K, D)))
  x = means[rng.integers(0, K, N)] + rng.normal(size=(N, D))
  den, params = diffusion.gaussian_oracle(means, variances)
  return den, params, x


STRATEGIES = [dict(strategy="full", num_t=16),
              dict(strategy="adaptive", n_samples=(4, 8), to_keep=(2, 1)),
              dict(strategy="sequential", num_t=16, chunk_t=4)]


def _assert_same(a, b):
  # Each row keeps its key, so only the vectorisation chunk (sized for the batch)
  # differs: float64 sums of <= 16 draws reordered, |error| <~ 16 * 2.2e-16 * |s|.
  np.testing.assert_array_equal(a.label, b.label)
  np.testing.assert_array_equal(a.num_evals, b.num_evals)
  np.testing.assert_allclose(a.scores, b.scores, rtol=1e-12)


@pytest.mark.parametrize("opts", STRATEGIES, ids=lambda o: o["strategy"])
def test_batch_classify_in_batches_equals_one_call(opts, capsys):
  den, params, x = _oracle()
  key = jax.random.key(1)
  whole = diffusion.batch_classify(key, den, params, x, K, **opts)
  before = classifier._run._cache_size()
  # 4 does not divide N = 11: batches of 4, 4 and 3 + 1 padding row.
  parts = diffusion.batch_classify(key, den, params, x, K, batch_size=4,
                                   progress=True, **opts)
  assert classifier._run._cache_size() == before + 1   # one program for 3 batches
  _assert_same(whole, parts)
  assert parts.label.shape == (N,)
  err = capsys.readouterr().err
  assert "batch_classify" in err and f"{N}/{N}" in err


def test_batch_classify_progress_without_batch_size(capsys):
  den, params, x = _oracle(seed=1)
  key = jax.random.key(2)
  whole = diffusion.batch_classify(key, den, params, x, K, num_t=8)
  assert capsys.readouterr().err == ""          # off: nothing drawn
  seen = []
  _assert_same(whole, diffusion.batch_classify(key, den, params, x, K, num_t=8,
                                               progress=seen.append))
  assert seen == [1] * N                        # ceil(11 / 20) = 1 example a batch
  _assert_same(whole, diffusion.batch_classify(key, den, params, x, K, num_t=8,
                                               batch_size=5))
  assert capsys.readouterr().err == ""          # batches alone draw nothing


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError),
                                        (2.5, TypeError), (True, TypeError)])
def test_batch_classify_rejects_bad_batch_size(bad, error):
  den, params, x = _oracle()
  with pytest.raises(error, match="batch_size"):
    diffusion.batch_classify(jax.random.key(0), den, params, x, K, num_t=8,
                             batch_size=bad)


def test_progress_must_be_bool_or_callable():
  den, params, x = _oracle()
  with pytest.raises(TypeError, match="progress"):
    diffusion.batch_classify(jax.random.key(0), den, params, x, K, progress="yes")
  with pytest.raises(TypeError, match="progress"):
    bounds.calibration_function("logistic", 0.5, num_classes=2,
                                key=jax.random.key(0), progress=1)
  mix = simulate.zheng_mixture(2, 3)
  with pytest.raises(TypeError, match="progress"):
    simulate.find_m_star(jax.random.key(0), mix, model="nb", target=0.3, grid=[4, 8],
                         progress="bar")


@pytest.mark.parametrize("strategy", ["scan", "bisect"])
def test_find_m_star_bar_and_same_result(strategy, capsys):
  mix = simulate.zheng_mixture(2, 4)
  kw = dict(model="nb", target=simulate.bayes_error(mix) + 0.05, num_reps=2,
            num_test=1000, grid=simulate.size_grid(2, 4, 80), chunk=4,
            strategy=strategy)
  key = jax.random.key(0)
  plain = simulate.find_m_star(key, mix, **kw)
  shown = simulate.find_m_star(key, mix, progress=True, **kw)
  # Same programs, keys and chunks: bitwise the same numbers.
  np.testing.assert_array_equal(plain.sizes, shown.sizes)
  np.testing.assert_array_equal(plain.errors, shown.errors)
  assert plain.m_star == shown.m_star is not None
  n = plain.sizes.size
  assert n < kw["grid"].size      # stopped early: the bar's bound shrinks to n
  err = capsys.readouterr().err
  assert "find_m_star" in err and f"{n}/{n}" in err
  seen = []
  simulate.find_m_star(key, mix, progress=seen.append, **kw)
  assert sum(seen) == n


def test_evaluate_sizes_bar_and_same_result(capsys):
  mix = simulate.zheng_mixture(2, 4)
  test = simulate.sample(jax.random.key(1), mix, 500)
  kw = dict(model="nb", num_reps=2, chunk=2)
  sizes = [8, 16, 24]
  plain = simulate.evaluate_sizes(jax.random.key(0), mix, test, sizes, **kw)
  shown = simulate.evaluate_sizes(jax.random.key(0), mix, test, sizes, progress=True,
                                  **kw)
  np.testing.assert_array_equal(plain[0], shown[0])
  np.testing.assert_array_equal(plain[2], shown[2])
  err = capsys.readouterr().err
  assert "evaluate_sizes" in err and "3/3" in err
  seen = []
  simulate.evaluate_sizes(jax.random.key(0), mix, test, sizes, progress=seen.append,
                          **kw)
  assert seen == [2, 1]                          # chunks of 2 sizes


def test_calibration_function_chunks_equal_one_call(capsys):
  loss = [bounds.get_loss(name) for name in ("hinge", "logistic")]
  t = jnp.linspace(0.05, 0.95, 23, dtype=jnp.float64)
  kw = dict(num_classes=3, key=jax.random.key(0), num_restarts=3, num_steps=20,
            return_argmin=True)
  whole = bounds.calibration_function(loss, t, **kw)
  seen = []
  chunked = bounds.calibration_function(loss, t, progress=seen.append, **kw)
  assert seen == [2] * 11 + [1]                  # ceil(23 / 20) = 2 t values a call
  # Every t uses the same starts z in both, and each (t, restart) problem is
  # independent of the others in its vmap: only XLA's vectorisation of the batch
  # (23 * 3 problems vs 2 * 3) differs, observed to change values by <= 1 ulp.
  for a, b in zip(whole, chunked):
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
  delta = bounds.calibration_function(loss, t, progress=True,
                                      **{**kw, "return_argmin": False})
  np.testing.assert_allclose(delta, whole.delta, rtol=1e-12, atol=1e-12)
  err = capsys.readouterr().err
  assert "calibration_function" in err and "23/23" in err


def test_off_never_imports_tqdm(monkeypatch):
  # None in sys.modules makes any import of tqdm raise ImportError.
  monkeypatch.setitem(sys.modules, "tqdm", None)
  monkeypatch.setitem(sys.modules, "tqdm.auto", None)
  den, params, x = _oracle()
  # The shapes and options of the tests above: no new compile.
  diffusion.batch_classify(jax.random.key(0), den, params, x, K, num_t=8, batch_size=5)
  mix = simulate.zheng_mixture(2, 4)
  test = simulate.sample(jax.random.key(1), mix, 500)
  simulate.evaluate_sizes(jax.random.key(0), mix, test, [8, 16, 24], model="nb",
                          num_reps=2, chunk=2)
  with pytest.raises(ImportError):
    diffusion.batch_classify(jax.random.key(0), den, params, x, K, num_t=8,
                             progress=True)
