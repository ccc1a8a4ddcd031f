"""Data-parallel logistic regression == the single-device fit.

Reference: ``jgen.logistic_regression(...).fit`` on one device (checked against
scikit-learn in tests/test_logistic.py), float64, both run to a gradient tolerance of
1e-10 so the two optima agree far below the asserted 1e-6.
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgen
import jgen
logistic_mod = importlib.import_module("jgen.logistic.model")
K, D, N = 5, 6, 203  # 203 rows: padded with zero-weight rows on every mesh below


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  y = rng.integers(0, K, size=N)
  x = rng.normal(size=(K, D))[y] + rng.normal(size=(N, D))
  w = rng.uniform(0.5, 2.0, size=N)
  return x, y, w


@pytest.mark.parametrize("mesh_shape", [(2, 4)])
def test_fit_logistic_data_parallel_equals_fit(data, mesh_shape):
  x, y, w = data
  model = logistic_mod.logistic_regression(C=0.5, tol=1e-10)
  mesh = jgen.parallel.make_mesh(data=mesh_shape[0], classes=mesh_shape[1])
  got = jgen.logistic.fit_logistic_data_parallel(model, x, y, num_classes=K, mesh=mesh,
                                            sample_weight=w)
  ref = model.fit(x, y, num_classes=K, sample_weight=w)
  assert bool(got.info.converged)
  scale = np.abs(np.asarray(ref.weights)).max()
  np.testing.assert_allclose(got.weights, ref.weights, rtol=1e-6, atol=1e-6 * scale)
  np.testing.assert_allclose(got.bias, ref.bias, rtol=1e-6, atol=1e-6 * scale)
  np.testing.assert_array_equal(jgen.predict(model.logits(got, x)),
                                jgen.predict(model.logits(ref, x)))


def test_logistic_fit_partitions_rows_without_gathering(data):
  # The compiled L-BFGS program reduces gradients (all-reduce) and never gathers x.
  x, y, _ = data
  mesh = jgen.parallel.make_mesh(data=8, classes=1)
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  xs = jax.device_put(jnp.asarray(x[:200]), rows)
  ys = jax.device_put(jnp.asarray(y[:200], jnp.int32), rows)
  sw = jax.device_put(jnp.ones(200), rows)
  hlo = logistic_mod._lbfgs_fit.lower(
      xs, ys, sw, jnp.zeros((D, K)), jnp.zeros(K), num_classes=K, C=1.0, tol=1e-8,
      ftol=1e-14, max_iter=50, fit_intercept=True, memory_size=10).compile().as_text()
  assert "all-reduce" in hlo
  assert "all-gather" not in hlo
  assert {s.data.shape for s in xs.addressable_shards} == {(25, D)}


def test_fit_logistic_data_parallel_bad_input(data):
  x, y, _ = data
  mesh = jgen.parallel.make_mesh(data=8, classes=1)
  model = logistic_mod.logistic_regression()
  with pytest.raises(ValueError, match="same number of examples"):
    jgen.logistic.fit_logistic_data_parallel(model, x, y[:-1], num_classes=K, mesh=mesh)
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=5\)"):
    jgen.logistic.fit_logistic_data_parallel(model, x, y + 1, num_classes=K, mesh=mesh)
