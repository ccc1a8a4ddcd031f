"""Tests of jgen.logistic against scikit-learn, closed forms and Python loops."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression

import jgen
from jgen import logistic

# One synthetic problem shape shared by most tests, so the fit compiles once.
N, D, K = 60, 4, 3
SETTINGS = dict(tol=1e-10, max_iter=1000)


def _data(seed, n=N, d=D, k=K, dtype=np.float64):
  rng = np.random.default_rng(seed)
  y = np.arange(n) % k
  x = rng.normal(size=(n, d)) + 1.5 * np.eye(k, d)[y]
  return x.astype(dtype), y.astype(np.int32)


def _sklearn_params(sk, d, k):
  """scikit-learn's coef_/intercept_ in jgen's [D, K] layout (binary: class 0 = 0)."""
  if k == 2:
    return logistic.LogisticParams(
        jnp.asarray(np.concatenate([np.zeros((d, 1)), sk.coef_.T], 1)),
        jnp.asarray(np.array([0.0, sk.intercept_[0]])))
  return logistic.LogisticParams(jnp.asarray(sk.coef_.T), jnp.asarray(sk.intercept_))


_REF = json.loads((Path(__file__).parent / "data" / "logistic_sklearn_ref.json").read_text())


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits"])
def test_matches_sklearn(name):
  # Reference: scikit-learn 1.9.1 LogisticRegression(C=1.0, solver="lbfgs", tol=1e-8,
  # max_iter=10000) on the raw (unscaled) features, float64, stored by
  # tests/data/make_logistic_sklearn_ref.py (the fits take minutes). scikit-learn
  # stops at max_iter on wine and digits, so jgen may reach a lower objective; it must
  # never be worse by more than 1e-5 relative, and predictions must agree on >= 99.5%.
  x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
  k = int(y.max()) + 1
  ref = _REF[name]
  sk = SimpleNamespace(coef_=np.array(ref["coef"]), intercept_=np.array(ref["intercept"]))
  lr = logistic.logistic_regression(1.0, tol=1e-8, max_iter=10000)
  params = lr.fit(jnp.asarray(x), jnp.asarray(y), num_classes=k)
  ours = float(jgen.logistic.objective(lr, params, x, y))
  theirs = float(jgen.logistic.objective(lr, _sklearn_params(sk, x.shape[1], k), x, y))
  assert ours <= theirs * (1 + 1e-5), (ours, theirs)
  agree = np.mean(np.asarray(lr.log_likelihood(params, x).argmax(-1)) == np.array(ref["predictions"]))
  assert agree >= 0.995
  assert bool(params.info.converged)


def test_objective_is_sklearn_convention():
  # C * sum_i CE_i + 0.5 ||W||^2, intercept unpenalised: written out with NumPy.
  x, y = _data(0)
  rng = np.random.default_rng(1)
  w, b = rng.normal(size=(D, K)), rng.normal(size=K)
  z = x @ w + b
  ce = np.log(np.exp(z).sum(1)) - z[np.arange(N), y]
  expected = 2.5 * ce.sum() + 0.5 * (w**2).sum()
  lr = logistic.logistic_regression(2.5)
  got = jgen.logistic.objective(lr, logistic.LogisticParams(jnp.asarray(w), jnp.asarray(b)), x, y)
  np.testing.assert_allclose(float(got), expected, rtol=1e-12)


def test_binary_model_is_sklearn_binary():
  # K = 2: one weight vector (class 0 pinned at zero), penalty 0.5 ||w||^2 as in
  # scikit-learn's binary LogisticRegression; weights compared directly.
  x, y = _data(2, k=2)
  sk = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(x, y)
  params = logistic.logistic_regression(0.5, **SETTINGS).fit(x, y, num_classes=2)
  np.testing.assert_array_equal(np.asarray(params.weights[:, 0]), 0.0)
  np.testing.assert_allclose(np.asarray(params.weights[:, 1]), sk.coef_[0], atol=1e-6)
  np.testing.assert_allclose(float(params.bias[1]), sk.intercept_[0], atol=1e-6)


def test_multinomial_weights_match_sklearn():
  # K >= 3: K weight vectors, identifiable under L2; intercepts centred like sklearn's.
  x, y = _data(3)
  sk = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(x, y)
  params = logistic.logistic_regression(1.0, **SETTINGS).fit(x, y, num_classes=K)
  np.testing.assert_allclose(np.asarray(params.weights), sk.coef_.T, atol=1e-6)
  np.testing.assert_allclose(np.asarray(params.bias), sk.intercept_, atol=1e-6)


def test_vmap_equals_loop_and_jit_equals_eager():
  # Batched while_loop: every dataset iterates until all have converged, but a
  # converged member's carry is frozen (select on its own predicate), so each member
  # performs exactly the iterations of its own loop. Differences are rounding in the
  # batched matmuls only; 1e-9 is far above float64 rounding and far below the
  # 1e-10-gradient-tolerance error of the fit itself (strong convexity ~1/(C N)).
  xs, ys = zip(*(_data(s) for s in range(3)))
  xs, ys = jnp.asarray(np.stack(xs)), jnp.asarray(np.stack(ys))
  lr = logistic.logistic_regression(1.0, **SETTINGS)
  batched = jax.vmap(lambda x, y: lr.fit(x, y, num_classes=K))(xs, ys)
  jitted = jax.jit(chex.assert_max_traces(lambda x, y: lr.fit(x, y, num_classes=K), n=1))
  for i in range(3):  # one trace serves every dataset of this shape
    loop = lr.fit(xs[i], ys[i], num_classes=K)
    jit_i = jitted(xs[i], ys[i])
    for a, b in ((batched.weights[i], loop.weights), (batched.bias[i], loop.bias),
                 (jit_i.weights, loop.weights)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-9)
    assert int(batched.info.num_iter[i]) == int(loop.info.num_iter)


def test_sample_weights_equal_duplicated_rows():
  # Integer weights are the same objective as repeating rows; zero weight = absent row.
  x, y = _data(4)
  w = np.arange(N) % 3  # sums to N, so the duplicated problem has the same shape
  lr = logistic.logistic_regression(1.0, **SETTINGS)
  weighted = lr.fit(x, y, num_classes=K, sample_weight=w.astype(float))
  dup = lr.fit(np.repeat(x, w, 0), np.repeat(y, w, 0), num_classes=K)
  np.testing.assert_allclose(np.asarray(weighted.weights), np.asarray(dup.weights),
                             atol=1e-7)
  np.testing.assert_allclose(
      float(jgen.logistic.objective(lr, weighted, x, y, w.astype(float))),
      float(jgen.logistic.objective(lr, dup, np.repeat(x, w, 0), np.repeat(y, w, 0))), rtol=1e-12)


def test_iteration_limit_is_reported():
  x, y = _data(5)
  lr = logistic.logistic_regression(1.0, tol=1e-12, max_iter=2)
  with pytest.warns(logistic.ConvergenceWarning, match="max_iter=2"):
    params = lr.fit(x, y, num_classes=K)
  assert not bool(params.info.converged) and int(params.info.num_iter) == 2
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # under jit: the flag, no warning
    jitted = jax.jit(lambda x, y: lr.fit(x, y, num_classes=K))(x, y)
  assert not bool(jitted.info.converged)


def test_float32_and_shapes():
  x, y = _data(6, dtype=np.float32)
  lr = logistic.logistic_regression(1.0)
  params = lr.fit(x, y, num_classes=K)
  assert params.weights.dtype == jnp.float32 and params.weights.shape == (D, K)
  assert params.bias.shape == (K,)
  assert lr.log_likelihood(params, x.reshape(2, 30, D)).shape == (2, 30, K)
  ref = logistic.logistic_regression(1.0, **SETTINGS).fit(x.astype(np.float64), y,
                                                            num_classes=K)
  # float32 with tol 1e-4: objective within 1e-4 relative of the float64 optimum.
  np.testing.assert_allclose(float(jgen.logistic.objective(lr, params, x.astype(np.float64), y)),
                             float(jgen.logistic.objective(lr, ref, x.astype(np.float64), y)), rtol=1e-4)


def test_no_intercept_and_warm_start():
  x, y = _data(7)
  lr = logistic.logistic_regression(1.0, fit_intercept=False, **SETTINGS)
  params = lr.fit(x, y, num_classes=K)
  np.testing.assert_array_equal(np.asarray(params.bias), 0.0)
  sk = LogisticRegression(C=1.0, fit_intercept=False, tol=1e-10, max_iter=10000).fit(x, y)
  np.testing.assert_allclose(np.asarray(params.weights), sk.coef_.T, atol=1e-6)
  again = lr.fit(x, y, num_classes=K, init=params)
  assert int(again.info.num_iter) <= 1


def test_minibatch_reaches_lbfgs_objective(key):
  x, y = _data(8)
  lr = logistic.logistic_regression(1.0, **SETTINGS)
  best = float(jgen.logistic.objective(lr, lr.fit(x, y, num_classes=K), x, y))
  adam = optax.adam(0.02)
  fitted = jgen.logistic.fit_minibatch(lr, key, x, y, num_classes=K, batch_size=20, num_steps=1500,
                            optimizer=adam)
  again = jgen.logistic.fit_minibatch(lr, key, x, y, num_classes=K, batch_size=20, num_steps=1500,
                           optimizer=adam)
  np.testing.assert_array_equal(np.asarray(fitted.weights), np.asarray(again.weights))
  # Adam with a constant step hovers near the optimum: within 1% of the objective.
  assert best <= float(jgen.logistic.objective(lr, fitted, x, y)) <= best * 1.01


@pytest.mark.parametrize("kwargs, err", [
    (dict(C=0.0), ValueError), (dict(C=-1.0), ValueError),
    (dict(C=float("nan")), ValueError), (dict(C="1"), TypeError),
    (dict(max_iter=0), ValueError), (dict(tol=0.0), ValueError)])
def test_bad_config(kwargs, err):
  with pytest.raises(err):
    logistic.logistic_regression(**kwargs)


def test_bad_data():
  x, y = _data(9)
  lr = logistic.logistic_regression(1.0)
  with pytest.raises(ValueError, match="rank 2"):
    lr.fit(x[0], y, num_classes=K)
  with pytest.raises(TypeError, match="integer"):
    lr.fit(x, y.astype(float), num_classes=K)
  with pytest.raises(ValueError, match=r"\[0, num_classes=2\)"):
    lr.fit(x, y, num_classes=2)
  with pytest.raises(ValueError, match="same number"):
    lr.fit(x[:-1], y, num_classes=K)
  bad = x.copy()
  bad[3, 1] = np.nan
  with pytest.raises(ValueError, match="non-finite"):
    lr.fit(bad, y, num_classes=K)
  with pytest.raises(ValueError, match="sample_weight"):
    lr.fit(x, y, num_classes=K, sample_weight=-np.ones(N))
  with pytest.raises(ValueError, match="init.weights"):
    lr.fit(x, y, num_classes=K, init=logistic.LogisticParams(jnp.zeros((D + 1, K)),
                                                             jnp.zeros(K)))
  params = lr.fit(x, y, num_classes=K)
  with pytest.raises(ValueError, match="last dimension"):
    lr.log_likelihood(params, x[:, :2])
