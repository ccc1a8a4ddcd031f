"""Class-sharded Diffusion Classifier == the single-device one for the same key.

Reference: jgen.diffusion.class_errors / classify / batch_classify on one device
(jitted), with the exact Gaussian-oracle denoiser. K = 13 classes over 8 (or 4) class
shards, so the class axis is padded.
"""

import jax
import numpy as np
import pytest

import jgen
from jgen import diffusion

K, DIM = 13, 4
FULL = ("full", dict(num_t=32))
# to_keep[0] = 9 exceeds a shard's 2 classes: the global top-9 spans shards.
ADAPTIVE3 = ("adaptive", dict(n_samples=(4, 8, 32), to_keep=(9, 3, 1)))
SEQUENTIAL = ("sequential", dict(num_t=64, chunk_t=8))
RACE = ("race", dict(num_t=64, chunk_t=8, confidence=0.9, antithetic=True,
                     adapt_t=True))


@pytest.fixture(scope="module")
def problem():
  rng = np.random.default_rng(0)
  means = rng.normal(size=(K, DIM)).astype(np.float32)
  variances = np.exp(0.3 * rng.normal(size=(K, DIM))).astype(np.float32)
  labels = rng.integers(0, K, size=6)
  x = (means[labels] + rng.normal(size=(6, DIM)) * np.sqrt(variances[labels]))
  return means, variances, x.astype(np.float32)


def _oracle(problem, dtype=np.float32):
  means, variances, x = problem
  den, params = diffusion.gaussian_oracle(means.astype(dtype), variances.astype(dtype))
  return den, params, x.astype(dtype)


@pytest.mark.parametrize("classes", [None, [12, 0, 5, 7, 3]])
def test_sharded_class_errors_identical(problem, key, classes):
  den, params, x = _oracle(problem)
  schedule = diffusion.DEFAULT_SCHEDULE
  ref = jax.jit(lambda k, xi: diffusion.class_errors(
      k, den, params, xi, K, num_t=16, schedule=schedule, classes=classes))(key, x[0])
  mesh = jgen.parallel.make_mesh(classes=8)
  got = np.asarray(jgen.diffusion.sharded_class_errors(key, den, params, x[0], K, mesh, num_t=16,
                                                 schedule=schedule, classes=classes))
  c = ref.shape[0]
  assert got.shape == (jgen.parallel.padded_num_classes(c, mesh), 16)
  np.testing.assert_array_equal(got[:c], ref)  # same (t, eps) -> bitwise equal
  assert np.all(got[c:] == np.inf)


# Single-example sequential runs the same code as the batched test below minus the
# data axis; it is left to that test to keep compile time down.
@pytest.mark.parametrize("strategy, opts", [FULL, ADAPTIVE3])
def test_sharded_classify_matches_single_device(problem, key, strategy, opts):
  den, params, x = _oracle(problem)
  ref = diffusion.classify(key, den, params, x[0], K, strategy=strategy, **opts)
  mesh = jgen.parallel.make_mesh(classes=8)
  got = jgen.diffusion.sharded_classify(key, den, params, x[0], K, mesh, strategy=strategy, **opts)
  assert int(got.label) == int(ref.label)
  scores = np.asarray(got.scores)
  assert scores.shape == (16,) and np.all(scores[K:] == -np.inf)
  np.testing.assert_allclose(scores[:K], ref.scores, rtol=1e-6)
  if strategy == "full":   # 3 dummy classes are evaluated too
    assert int(got.num_evals) == 16 * opts["num_t"]
  else:
    padding = (16 - K) * opts["n_samples"][0]
    assert int(got.num_evals) == int(ref.num_evals) + padding


@pytest.mark.parametrize("strategy, opts", [FULL, SEQUENTIAL, RACE])
def test_sharded_batch_classify_matches_single_device(problem, key, strategy, opts):
  # float64: ELBO scores are -(KL + recon + mean error), a cancellation that turns
  # float32 rounding of differently vectorised sums into 2e-6 relative differences.
  den, params, x = _oracle(problem, np.float64)
  mesh = jgen.parallel.make_mesh(data=2, classes=4)
  # N = 5 rows over a data axis of 2: one padded example, dropped again.
  got = jgen.diffusion.sharded_batch_classify(key, den, params, x[:5], K, mesh, strategy=strategy,
                                        **opts)
  ref5 = diffusion.batch_classify(key, den, params, x[:5], K, strategy=strategy, **opts)
  np.testing.assert_array_equal(got.label, ref5.label)
  np.testing.assert_allclose(np.asarray(got.scores)[:, :K], ref5.scores, rtol=1e-12)
  assert got.scores.shape == (5, 16)
  if strategy != "full":  # classes were really eliminated, within each shard
    assert np.all(np.asarray(got.num_evals) < 16 * opts["num_t"])
  if strategy == "race":  # each shard's bucket rounds up to a power of two
    assert np.all(np.asarray(got.num_evals) >= np.asarray(ref5.num_evals))
