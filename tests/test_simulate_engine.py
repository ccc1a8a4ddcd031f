"""Tests of the simulation engine: the branch-free logistic solver and the sharded sweep."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import logistic
from jgen import parallel
from jgen import simulate
from jgen.logistic.batched import batched_logistic_regression


def _sklearn_objective_gap(x, y, k, tol):
  from sklearn.linear_model import LogisticRegression
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    sk = LogisticRegression(C=1.0, tol=tol, max_iter=10_000).fit(x, y)
  lr = batched_logistic_regression(1.0, tol=tol, max_iter=10_000)
  ours = lr.fit(jnp.asarray(x), jnp.asarray(y), num_classes=k)
  coef = sk.coef_.T if k > 2 else np.concatenate([np.zeros((x.shape[1], 1)), sk.coef_.T], 1)
  bias = sk.intercept_ if k > 2 else np.array([0.0, sk.intercept_[0]])
  obj = lambda p: float(logistic.objective(lr, p, x, y))
  ref = obj(logistic.LogisticParams(jnp.asarray(coef), jnp.asarray(bias)))
  return obj(ours) / ref - 1, bool(ours.info.converged)


@pytest.mark.parametrize("k,n,m", [(2, 12, 40), (5, 6, 30)])
def test_objective_matches_sklearn_float64(key, k, n, m):
  # Reference: scikit-learn's lbfgs LogisticRegression(C=1) at the same gradient
  # tolerance; both minimise J = C sum CE + ||W||^2 / 2, so at tol 1e-8 the optimal
  # objectives agree to <= 1e-5 relative (the acceptance bound).
  x, y = simulate.sample(key, simulate.zheng_mixture(k, n, dtype=jnp.float64), m)
  gap, ok = _sklearn_objective_gap(np.asarray(x), np.asarray(y), k, 1e-8)
  assert ok and abs(gap) <= 1e-5


def test_vmapped_equals_looped_and_padding_is_exact(key):
  mix = simulate.zheng_mixture(3, 5, dtype=jnp.float64)
  xs, ys = simulate.engine.sample_streams(key, mix, 4, 64)
  w = (jnp.arange(64) < 37).astype(jnp.float64)
  lr = batched_logistic_regression(1.0, tol=1e-8)
  fit = lambda x, y: lr.fit(x, y, num_classes=3, sample_weight=w)
  batched = jax.jit(jax.vmap(fit))(xs, ys)
  for r in range(4):
    one = jax.jit(fit)(xs[r], ys[r])
    # Same iterations per lane; the batched reductions round differently (measured:
    # 8.9e-11 on one lane, equal iteration counts, since the line search sums the
    # true-class term outside its loop), 100 times below the fit's own error at tol 1e-8.
    np.testing.assert_allclose(np.asarray(batched.weights[r]), np.asarray(one.weights),
                               rtol=1e-9, atol=1e-12)
    assert int(batched.info.num_iter[r]) == int(one.info.num_iter)
    direct = lr.fit(xs[r, :37], ys[r, :37], num_classes=3)  # zero weights == dropped rows
    np.testing.assert_allclose(np.asarray(one.weights), np.asarray(direct.weights),
                               atol=1e-6)


def test_sharded_repetitions_equal_one_device(key):
  # 8 virtual CPU devices (conftest): repetitions on the mesh's data axis.
  assert jax.device_count() >= 8
  # float64 and a tight tolerance: the solver's stopping point is not a source of
  # difference, so any layout-dependent arithmetic would show.
  mix = simulate.zheng_mixture(2, 6, dtype=jnp.float64)
  test = simulate.sample(jax.random.fold_in(key, 1), mix, 500)
  mesh = parallel.make_mesh(data=8, classes=1)
  kw = dict(model=batched_logistic_regression(1.0, tol=1e-9), num_reps=8, chunk=4)
  one = simulate.evaluate_sizes(key, mix, test, [8, 20, 40], **kw)
  sharded = simulate.evaluate_sizes(key, mix, test, [8, 20, 40], mesh=mesh, **kw)
  np.testing.assert_array_equal(one[0], sharded[0])
  np.testing.assert_allclose(np.asarray(one[1].weights), np.asarray(sharded[1].weights),
                             rtol=1e-7, atol=1e-8)
  with pytest.raises(ValueError, match="num_reps"):
    simulate.evaluate_sizes(key, mix, test, [8], mesh=mesh, model="lr", num_reps=6)


def test_any_family_runs_through_the_engine(key):
  # The driver only uses the contract: QDA (no warm start) and LR (warm start).
  from jgen import gaussian
  mix = simulate.zheng_mixture(2, 3)
  test = simulate.sample(jax.random.fold_in(key, 1), mix, 400)
  err, params, ok = simulate.evaluate_sizes(key, mix, test, [10, 30],
                                            model=gaussian.qda(reg_param=0.1), num_reps=2)
  assert err.shape == (2, 2) and params is None and ok.all()
  assert np.all((err >= 0) & (err <= 1))
