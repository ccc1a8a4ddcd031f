"""Gaussian families on a mesh == on one device (fits and scores to 1e-6 relative).

References: ``model.fit`` and ``model.log_likelihood`` on one device (themselves
checked against scikit-learn in tests/test_gaussian.py), float64. K = 21 classes and
N = 203 examples divide no mesh axis, so classes and rows are both padded.
"""

import importlib

import jax
import numpy as np
import pytest

import jgen
import jgen
K, D, N = 21, 5, 203
NB = ("nb", lambda: jgen.gaussian_nb(), dict(full_covariance=False))
NB_POOLED = ("nb_pooled", lambda: jgen.gaussian_nb(pooled=True),
             dict(full_covariance=False, pooled=True))
# The default statistics (full, per class) serve every family, LDA included.
LDA_DEFAULT = ("lda_default_stats", lambda: jgen.lda(shrinkage=0.1), {})
QDA = ("qda", lambda: jgen.qda(reg_param=0.5), {})


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
# LDA with pooled statistics and class-sharded LDA scoring (its shared precision
# factor replicated) run in the experiment smoke test at the end of this file.
@pytest.mark.parametrize("family, mesh_shape", [
    (NB, (8, 1)), (NB_POOLED, (2, 4)), (LDA_DEFAULT, (1, 8)), (QDA, (2, 4))], ids=lambda v: v[0] if isinstance(v[0], str) else str(v))
def test_fit_data_parallel_equals_fit(data, family, mesh_shape):
  _, make, stats_kw = family
  data_size, class_size = mesh_shape
  x, y = data
  model = make()
  mesh = jgen.parallel.make_mesh(data=data_size, classes=class_size)
  got = jgen.gaussian.fit_data_parallel(model, x, y, num_classes=K, mesh=mesh, **stats_kw)
  assert type(got) is type(model.fit(x, y, num_classes=K))
  _assert_rel(got, model.fit(x, y, num_classes=K))


@pytest.mark.parametrize("family, mesh_shape", [
    (NB, (2, 4)), (NB_POOLED, (1, 8)), (QDA, (2, 4))],
    ids=lambda v: v[0] if isinstance(v[0], str) else str(v))
def test_class_sharded_scores_and_bayes_rule(data, family, mesh_shape):
  _, make, _ = family
  data_size, class_size = mesh_shape
  x, y = data
  model = make()
  params = model.fit(x, y, num_classes=K)
  mesh = jgen.parallel.make_mesh(data=data_size, classes=class_size)
  ref = model.log_likelihood(params, x)
  log_lik = jgen.gaussian.class_sharded_log_likelihood(model, params, x, mesh)
  k_pad = jgen.parallel.padded_num_classes(K, mesh)
  assert log_lik.shape == (N, k_pad)
  _assert_rel(np.asarray(log_lik)[:, :K], ref)
  assert np.all(np.asarray(log_lik)[:, K:] == -np.inf)
  out = jgen.gaussian.classify_class_sharded(model, params, x, mesh)
  np.testing.assert_array_equal(out.label, jgen.predict(ref, params.log_prior))
  joint = np.asarray(ref) + np.asarray(params.log_prior)[None, :]
  _assert_rel(out.log_normalizer, np.logaddexp.reduce(joint, axis=-1))


def test_class_sharded_scores_per_device_blocks(data):
  x, y = data
  model = jgen.qda(reg_param=0.5)
  params = model.fit(x, y, num_classes=K)
  mesh = jgen.parallel.make_mesh(data=1, classes=8)
  log_lik = jgen.gaussian.class_sharded_log_likelihood(model, params, x, mesh)
  # Each device holds its 3 of the 24 (padded) class columns, never all 21.
  assert {s.data.shape for s in log_lik.addressable_shards} == {(N, 3)}


def test_sharded_gaussian_bad_input(data):
  x, y = data
  mesh = jgen.parallel.make_mesh(classes=8)
  model = jgen.lda()
  params = model.fit(x, y, num_classes=K)
  with pytest.raises(TypeError, match="GaussianNBParams, LDAParams or QDAParams"):
    jgen.gaussian.class_sharded_log_likelihood(model, params._asdict(), x, mesh)
  with pytest.raises(ValueError, match="last dimension 5"):
    jgen.gaussian.class_sharded_log_likelihood(model, params, x[:, :3], mesh)
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=21\)"):
    jgen.gaussian.fit_data_parallel(model, x, np.where(y == 0, 21, y), num_classes=K,
                               mesh=mesh)
  with pytest.raises(ValueError, match="needs per-class statistics"):
    jgen.gaussian.fit_data_parallel(jgen.qda(), x, y, num_classes=K, mesh=mesh, pooled=True)


def test_sharded_classes_experiment_smoke():
  # The quick path of experiments/sharded_classes.py at toy size keeps it working
  # (its diffusion part is what tests/test_sharding_diffusion.py checks).
  experiment = importlib.import_module("experiments.sharded_classes")
  out = experiment.run(k=16, d=4, per_class=4, n_test=16, n_diffusion=0)
  assert out["labels_equal_single_device"]
  assert out["fit_max_rel_diff"] < 1e-5
