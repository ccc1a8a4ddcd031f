"""The generic mesh tools on every family == the single-device contract.

``jgen.parallel.fit_data_parallel``, ``class_sharded_log_likelihood`` and
``class_sharded_predict`` read only the classifier contract. References:
``model.fit`` / ``model.log_likelihood`` on one device (themselves checked against
scikit-learn in tests/test_gaussian.py and tests/test_logistic.py), float64, to 1e-6
relative. K = 21 classes and N = 203 examples divide no mesh axis, so classes and rows
are both padded. (The diffusion classifier's sharded path is in
tests/test_sharding_diffusion.py.)
"""

import importlib

import jax
import numpy as np
import pytest

import jax.numpy as jnp

import jgen

K, D, N = 21, 5, 203
NB = ("nb", lambda: jgen.gaussian_nb())
NB_POOLED = ("nb_pooled", lambda: jgen.gaussian_nb(pooled=True))
LDA = ("lda", lambda: jgen.lda(shrinkage=0.1))
QDA = ("qda", lambda: jgen.qda(reg_param=0.5))
LR = ("logistic", lambda: jgen.logistic_regression(C=0.5, tol=1e-10))


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  means = 2.0 * rng.normal(size=(K, D))
  y = rng.integers(0, K, size=N)
  y[:2 * K] = np.repeat(np.arange(K), 2)  # every class has >= 2 examples (QDA)
  x = means[y] + rng.normal(size=(N, D)) * rng.uniform(0.5, 2.0, size=D)
  return x, y


def _assert_rel(actual, desired, rtol=1e-6):
  for a, b in zip(jax.tree.leaves(actual), jax.tree.leaves(desired)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=0)


# One mesh per family keeps compile time down; together they cover every layout.
@pytest.mark.parametrize("family, mesh_shape", [
    (NB, (8, 1)), (NB_POOLED, (2, 4)), (LDA, (1, 8)), (QDA, (2, 4)), (LR, (2, 4))],
    ids=lambda v: v[0] if isinstance(v[0], str) else str(v))
def test_fit_data_parallel_equals_fit(data, family, mesh_shape):
  _, make = family
  data_size, class_size = mesh_shape
  x, y = data
  w = np.random.default_rng(1).uniform(0.5, 2.0, size=N)
  model = make()
  mesh = jgen.parallel.make_mesh(data=data_size, classes=class_size)
  got = jgen.parallel.fit_data_parallel(model, x, y, mesh, num_classes=K,
                                        sample_weight=w)
  ref = model.fit(x, y, num_classes=K, sample_weight=w)
  assert type(got) is type(ref)
  if model.name == "logistic_regression":
    assert bool(got.info.converged)
    scale = np.abs(np.asarray(ref.weights)).max()
    np.testing.assert_allclose(got.weights, ref.weights, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(got.bias, ref.bias, rtol=1e-6, atol=1e-6 * scale)
  else:
    _assert_rel(got, ref)


@pytest.mark.parametrize("family, mesh_shape", [
    (NB, (2, 4)), (NB_POOLED, (1, 8)), (LDA, (2, 4)), (QDA, (2, 4)), (LR, (1, 8))],
    ids=lambda v: v[0] if isinstance(v[0], str) else str(v))
def test_class_sharded_scores_and_bayes_rule(data, family, mesh_shape):
  _, make = family
  data_size, class_size = mesh_shape
  x, y = data
  model = make()
  params = model.fit(x, y, num_classes=K)
  mesh = jgen.parallel.make_mesh(data=data_size, classes=class_size)
  ref = model.log_likelihood(params, x)
  log_lik = jgen.parallel.class_sharded_log_likelihood(model, params, x, mesh)
  k_pad = jgen.parallel.padded_num_classes(K, mesh)
  assert log_lik.shape == (N, k_pad)
  _assert_rel(np.asarray(log_lik)[:, :K], ref)
  assert np.all(np.asarray(log_lik)[:, K:] == -np.inf)
  out = jgen.parallel.class_sharded_predict(model, params, x, mesh)
  np.testing.assert_array_equal(out.label, jgen.predict(model, params, x))
  prior = model.log_prior(params)
  joint = np.asarray(ref) + (0.0 if prior is None else np.asarray(prior)[None, :])
  _assert_rel(out.log_normalizer, np.logaddexp.reduce(joint, axis=-1))


def test_sharded_scoring_compiles_once_per_family(data):
  # Two models built separately with equal hyperparameters and two params pytrees
  # share one compiled program (the scorer is identified by family and settings).
  x, y = data
  mesh = jgen.parallel.make_mesh(data=2, classes=4)
  p1 = jgen.qda(reg_param=0.5).fit(x, y, num_classes=K)
  p2 = jgen.qda(reg_param=0.5).fit(x[::-1], y[::-1], num_classes=K)
  jgen.parallel.class_sharded_log_likelihood(jgen.qda(reg_param=0.5), p1, x, mesh)
  before = jgen.parallel.collectives._class_sharded_scores._cache_size()
  jgen.parallel.class_sharded_log_likelihood(jgen.qda(reg_param=0.5), p2, x, mesh)
  assert jgen.parallel.collectives._class_sharded_scores._cache_size() == before


def test_data_parallel_fit_partitions_rows_without_gathering(data):
  # The compiled L-BFGS program reduces gradients (all-reduce) and never gathers x.
  x, y = data
  mesh = jgen.parallel.make_mesh(data=8, classes=1)
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  xs = jax.device_put(jnp.asarray(x[:200]), rows)
  ys = jax.device_put(jnp.asarray(y[:200], jnp.int32), rows)
  sw = jax.device_put(jnp.ones(200), rows)
  hlo = jgen.logistic.solvers.lbfgs_fit.lower(
      xs, ys, sw, jnp.zeros((D, K)), jnp.zeros(K), num_classes=K, C=1.0, tol=1e-8,
      ftol=1e-14, max_iter=50, fit_intercept=True, memory_size=10).compile().as_text()
  assert "all-reduce" in hlo
  assert "all-gather" not in hlo
  assert {s.data.shape for s in xs.addressable_shards} == {(25, D)}


def test_class_sharded_scores_per_device_blocks(data):
  x, y = data
  model = jgen.qda(reg_param=0.5)
  params = model.fit(x, y, num_classes=K)
  mesh = jgen.parallel.make_mesh(data=1, classes=8)
  log_lik = jgen.parallel.class_sharded_log_likelihood(model, params, x, mesh)
  # Each device holds its 3 of the 24 (padded) class columns, never all 21.
  assert {s.data.shape for s in log_lik.addressable_shards} == {(N, 3)}


def test_sharded_tools_bad_input(data):
  x, y = data
  mesh = jgen.parallel.make_mesh(classes=8)
  model = jgen.lda()
  params = model.fit(x, y, num_classes=K)
  with pytest.raises(TypeError, match="params must be LDAParams"):
    jgen.parallel.class_sharded_log_likelihood(model, params._asdict(), x, mesh)
  with pytest.raises(TypeError, match="params must be LDAParams"):
    jgen.parallel.class_sharded_log_likelihood(model, jgen.qda(0.5).fit(x, y, num_classes=K),
                                               x, mesh)
  with pytest.raises(ValueError, match="last dimension 5"):
    jgen.parallel.class_sharded_log_likelihood(model, params, x[:, :3], mesh)
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=21\)"):
    jgen.parallel.fit_data_parallel(model, x, np.where(y == 0, 21, y), mesh, num_classes=K)
  with pytest.raises(ValueError, match="same number of examples"):
    jgen.parallel.fit_data_parallel(model, x, y[:-1], mesh, num_classes=K)
  with pytest.raises(TypeError, match="jgen.Classifier"):
    jgen.parallel.fit_data_parallel(params, x, y, mesh, num_classes=K)


def test_sharded_classes_experiment_smoke():
  # The quick path of experiments/sharded_classes.py at toy size keeps it working
  # (its diffusion part is what tests/test_sharding_diffusion.py checks).
  experiment = importlib.import_module("experiments.sharded_classes")
  out = experiment.run(k=16, d=4, per_class=4, n_test=16, n_diffusion=0)
  assert out["labels_equal_single_device"]
  assert out["fit_max_rel_diff"] < 1e-5
