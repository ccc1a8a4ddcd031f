"""Offline dataset loaders: shapes, determinism, documented splits, no network."""

import random
import socket
import sys

import numpy as np
import pytest

from jgen import datasets

# (name, D, K, train size, test size): scikit-learn's bundled copies have 1797 / 150 /
# 178 / 569 rows, penguins 344 rows of which 2 miss a measurement, MNIST-1D 5000;
# 80/20 splits as documented in jgen.datasets.
_SHAPES = [
    ("digits", 64, 10, 1437, 360),
    ("iris", 4, 3, 120, 30),
    ("wine", 13, 3, 142, 36),
    ("breast_cancer", 30, 2, 455, 114),
    ("penguins", 4, 3, 273, 69),
]


@pytest.mark.parametrize("name, d, k, n_train, n_test", _SHAPES)
def test_shapes_dtypes_stratified_and_deterministic(name, d, k, n_train, n_test):
  split = datasets.load(name)
  x_tr, y_tr, x_te, y_te = split
  assert x_tr.shape == (n_train, d) and x_te.shape == (n_test, d)
  assert y_tr.shape == (n_train,) and y_te.shape == (n_test,)
  assert x_tr.dtype == np.float32 and y_tr.dtype == np.int32
  assert set(np.unique(y_tr)) == set(range(k)) == set(np.unique(y_te))
  assert np.all(np.isfinite(x_tr)) and np.all(np.isfinite(x_te))
  # Stratified: each class's share of the test set is within one example of 20%.
  counts_tr, counts_te = np.bincount(y_tr, minlength=k), np.bincount(y_te, minlength=k)
  assert np.all(np.abs(counts_te - 0.2 * (counts_tr + counts_te)) <= 1)
  again = datasets.load(name, dtype=np.float64)
  assert again.x_train.dtype == np.float64
  np.testing.assert_array_equal(again.x_train.astype(np.float32), x_tr)
  np.testing.assert_array_equal(again.y_test, y_te)


def test_digits_split_reproduces_reference_baselines():
  # scikit-learn 1.9.1 baselines (docs/references.md; scikit-learn 1.9.1, digits, 80/20
  # stratified, seed 0, pixels/16): GaussianNB 82.2%, LDA 95.6%, QDA(reg 0.1) 97.2%.
  da = pytest.importorskip("sklearn.discriminant_analysis")
  nb = pytest.importorskip("sklearn.naive_bayes")
  x_tr, y_tr, x_te, y_te = datasets.load_digits(dtype=np.float64)
  assert x_tr.min() == 0.0 and x_tr.max() == 1.0
  for est, want in ((nb.GaussianNB(), 0.822), (da.LinearDiscriminantAnalysis(), 0.956),
                    (da.QuadraticDiscriminantAnalysis(reg_param=0.1), 0.972)):
    assert est.fit(x_tr, y_tr).score(x_te, y_te) == pytest.approx(want, abs=5e-4)


def test_penguins_labels_and_columns():
  x_tr, y_tr, x_te, y_te = datasets.load_penguins()
  # Species counts in the bundled CSV (palmerpenguins docs: Adelie 152, Chinstrap 68,
  # Gentoo 124) minus one Adelie and one Gentoo row with missing measurements.
  np.testing.assert_array_equal(np.bincount(np.concatenate([y_tr, y_te])), [151, 68, 123])
  # Gentoo (label 2) have the longest flippers of the three species.
  means = [x_tr[y_tr == k, 2].mean() for k in range(3)]
  assert int(np.argmax(means)) == 2


def test_mnist1d_is_generated_offline_without_touching_global_rngs(monkeypatch):
  def no_network(*args, **kwargs):
    raise AssertionError("the MNIST-1D loader must not use the network")
  monkeypatch.setattr(socket, "socket", no_network)
  monkeypatch.setattr(socket, "create_connection", no_network)
  datasets._mnist1d_arrays.cache_clear()
  np.random.seed(123)
  random.seed(123)
  want_np, want_py = np.random.random(), random.random()
  np.random.seed(123)
  random.seed(123)
  x_tr, y_tr, x_te, y_te = datasets.load("mnist1d")
  assert (np.random.random(), random.random()) == (want_np, want_py)
  assert x_tr.shape == (4000, 40) and x_te.shape == (1000, 40)
  assert x_tr.dtype == np.float32 and y_tr.dtype == np.int32
  assert set(np.unique(y_tr)) == set(range(10))
  # make_dataset standardises all 5,000 examples to mean 0 and std 1.
  x_all = np.concatenate([x_tr, x_te]).astype(np.float64)
  assert abs(x_all.mean()) < 1e-6 and abs(x_all.std() - 1.0) < 1e-6
  again = datasets.load_mnist1d()   # cached, and a copy the caller may modify
  np.testing.assert_array_equal(again.x_test, x_te)
  again.x_test[0, 0] = 99.0
  assert datasets.load_mnist1d().x_test[0, 0] != 99.0


def test_bad_names_dtypes_and_missing_optional_dependency(monkeypatch):
  with pytest.raises(ValueError, match="name must be one of"):
    datasets.load("cifar10")
  with pytest.raises(TypeError, match="dtype must be a floating dtype"):
    datasets.load("iris", dtype=np.int32)
  monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
  with pytest.raises(ImportError, match="pip install scikit-learn"):
    datasets.load_iris()
