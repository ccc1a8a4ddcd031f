"""The second-order logistic solvers (Newton-Cholesky, Newton-CG, proximal Newton) and
the scikit-learn solver names they compute, on small float64 problems.

References: scikit-learn 1.9's ``LogisticRegression`` (``saga`` for L1 / elastic-net,
``liblinear`` for its penalised-intercept objective, ``lbfgs``), each run to a tight
tolerance, and the optimality (KKT) conditions of the penalised objective.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import sklearn.linear_model as sklm
from sklearn.datasets import make_classification

import jgen
from jgen.sklearn import LogisticRegression


def _data(num_classes, n=80, d=6, seed=0):
  x, y = make_classification(n_samples=n, n_features=d, n_informative=4,
                             n_redundant=0, n_classes=num_classes, random_state=seed)
  w = np.random.default_rng(seed).uniform(0.5, 2.0, n)
  return x, y, w


def _free(params, num_classes):
  """``coef [K', D]``, ``intercept [K']`` in scikit-learn's layout."""
  w, b = np.asarray(params.weights).T, np.asarray(params.bias)
  if num_classes == 2:
    return w[1:] - w[:1], b[1:] - b[:1]
  return w, b


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_proximal_newton_matches_sklearn_saga(num_classes, l1_ratio):
  # Reference: scikit-learn's saga with tol=1e-10 (its relative weight change per
  # epoch); jgen stops at a minimum-norm subgradient <= 1e-10. Both are within ~1e-8
  # of the minimiser on this well-conditioned problem, so 1e-6 leaves margin.
  x, y, sw = _data(num_classes)
  C = 0.2
  ref = sklm.LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-10,
                                max_iter=100_000).fit(x, y, sample_weight=sw)
  model = jgen.logistic_regression(C=C, l1_ratio=l1_ratio, solver="proximal-newton",
                                   tol=1e-10, max_iter=100)
  params = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=num_classes,
                     sample_weight=jnp.asarray(sw))
  coef, intercept = _free(params, num_classes)
  assert bool(params.info.converged)
  np.testing.assert_allclose(coef, ref.coef_, atol=1e-6)
  np.testing.assert_allclose(intercept, ref.intercept_, atol=1e-6)
  # The same sparsity pattern, with some coefficients exactly zero.
  np.testing.assert_array_equal(coef == 0, ref.coef_ == 0)
  assert (coef == 0).any()


@pytest.mark.parametrize("num_classes", [2, 3])
def test_proximal_newton_meets_the_optimality_conditions(num_classes):
  # Closed form (KKT): at the minimiser of F = mean CE + lam1 ||W||_1 + lam2/2 ||W||^2,
  # |dF_smooth/dW| <= lam1 where W = 0, dF_smooth/dW = -lam1 sign(W) elsewhere, and
  # the intercept gradient vanishes. The gradient comes from jax.grad, independently
  # of the solver's closed-form derivatives.
  x, y, sw = _data(num_classes, seed=1)
  C, rho, tol = 0.05, 0.7, 1e-10
  params = jgen.logistic_regression(
      C=C, l1_ratio=rho, solver="proximal-newton", tol=tol).fit(
          jnp.asarray(x), jnp.asarray(y), num_classes=num_classes,
          sample_weight=jnp.asarray(sw))
  lam = 1.0 / (C * sw.sum())
  k = 1 if num_classes == 2 else num_classes
  w0, b0 = _free(params, num_classes)

  def smooth(w, b):
    z = x @ w.T + b[None, :]
    if num_classes == 2:
      ce = jnp.logaddexp(0.0, z[:, 0]) - (y == 1) * z[:, 0]
    else:
      ce = jax.nn.logsumexp(z, -1) - jnp.take_along_axis(z, y[:, None], -1)[:, 0]
    return jnp.sum(sw * ce) / sw.sum() + 0.5 * (1 - rho) * lam * jnp.sum(w * w)

  gw, gb = jax.grad(smooth, argnums=(0, 1))(jnp.asarray(w0), jnp.asarray(b0))
  gw, gb = np.asarray(gw), np.asarray(gb)
  assert w0.shape == (k, x.shape[1])
  zero = w0 == 0
  assert zero.any() and (~zero).any()
  assert np.all(np.abs(gw[zero]) <= rho * lam + tol)
  np.testing.assert_allclose(gw[~zero], -rho * lam * np.sign(w0[~zero]), atol=tol)
  np.testing.assert_allclose(gb, 0.0, atol=tol)


@pytest.mark.parametrize("solver, num_classes, C", [
    ("newton-cholesky", 2, np.inf), ("newton-cholesky", 3, 0.3),
    ("newton-cg", 2, 0.3), ("newton-cg", 3, np.inf)])
def test_newton_solvers_reach_sklearns_lbfgs_minimiser(solver, num_classes, C):
  # Reference: scikit-learn's lbfgs at tol=1e-12 (the data are not separable, so the
  # unpenalised minimiser exists). Newton converges quadratically: at tol=1e-10 the
  # coefficients agree to about 1e-8.
  x, y, sw = _data(num_classes, n=120, d=4, seed=2)
  x = x + np.random.default_rng(3).normal(0, 2.0, x.shape)   # overlap the classes
  ref = sklm.LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(
      x, y, sample_weight=sw)
  model = jgen.logistic_regression(C=C, solver=solver, tol=1e-10, max_iter=100)
  params = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=num_classes,
                     sample_weight=jnp.asarray(sw))
  coef, intercept = _free(params, num_classes)
  assert bool(params.info.converged) and int(params.info.num_iter) < 30
  np.testing.assert_allclose(coef, ref.coef_, atol=1e-6)
  np.testing.assert_allclose(intercept, ref.intercept_, atol=1e-6)
  if num_classes > 2:   # the symmetric (centred) multinomial parametrisation
    np.testing.assert_allclose(coef.sum(0), 0.0, atol=1e-10)


def test_newton_cholesky_falls_back_to_lbfgs_on_a_singular_hessian():
  # 10 examples, 20 features, no penalty: the Hessian has rank <= 10. scikit-learn's
  # newton-cholesky warns (LinAlgWarning) and continues with lbfgs from the same point;
  # jgen's too, so both give the L-BFGS fit (same iterates: identical coefficients).
  x, y = make_classification(n_samples=10, n_features=20, random_state=42)
  xj, yj = jnp.asarray(x), jnp.asarray(y)
  lbfgs = jgen.logistic_regression(C=1e30).fit(xj, yj, num_classes=2)
  with pytest.warns(scipy.linalg.LinAlgWarning, match="singular"):
    newton = jgen.logistic_regression(C=1e30, solver="newton-cholesky").fit(
        xj, yj, num_classes=2)
  np.testing.assert_array_equal(np.asarray(newton.weights), np.asarray(lbfgs.weights))
  assert int(newton.info.num_iter) == int(lbfgs.info.num_iter)


def test_newton_cholesky_fallback_under_jit():
  # Under jit the fall-back is a lax.cond on the traced flag: the same result as the
  # eager L-BFGS fit (reference) of the test above.
  x, y = make_classification(n_samples=10, n_features=20, random_state=42)
  xj, yj = jnp.asarray(x), jnp.asarray(y)
  lbfgs = jgen.logistic_regression(C=1e30).fit(xj, yj, num_classes=2)
  fit = jax.jit(lambda x, y: jgen.logistic_regression(
      C=1e30, solver="newton-cholesky").fit(x, y, num_classes=2))
  np.testing.assert_allclose(np.asarray(fit(xj, yj).weights), np.asarray(lbfgs.weights),
                             rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("l1_ratio", [0.0, 1.0])
def test_liblinear_objective_with_penalised_intercept(l1_ratio):
  # Reference: scikit-learn's liblinear at tol=1e-12, whose objective appends the
  # constant feature intercept_scaling to X and penalises its weight like the others.
  x, y, sw = _data(2, n=60, d=4, seed=4)
  params = dict(solver="liblinear", C=0.3, l1_ratio=l1_ratio, intercept_scaling=2.5,
                tol=1e-12, max_iter=10_000)
  ref = sklm.LogisticRegression(**params).fit(x, y, sample_weight=sw)
  ours = LogisticRegression(**params).fit(x, y, sample_weight=sw)
  np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
  np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-6)
  assert ours.coef_.dtype == np.float64 and ours.n_iter_.shape == (1,)
  # An intercept penalised through intercept_scaling differs from the free one.
  free = sklm.LogisticRegression(C=0.3, l1_ratio=l1_ratio, solver="saga", tol=1e-10,
                                 max_iter=100_000).fit(x, y, sample_weight=sw)
  assert np.abs(free.intercept_ - ours.intercept_).max() > 1e-3


@pytest.mark.parametrize("solver", ["saga", "newton-cholesky"])
def test_sklearn_solver_names_reach_the_lbfgs_minimiser(solver):
  # Reference: scikit-learn's lbfgs at tol=1e-12 on the same data (3 classes).
  x, y, sw = _data(3, n=90, d=5, seed=5)
  ref = sklm.LogisticRegression(C=0.7, tol=1e-12, max_iter=10_000).fit(
      x, y, sample_weight=sw)
  ours = LogisticRegression(C=0.7, solver=solver, tol=1e-10).fit(x, y, sample_weight=sw)
  np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
  np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-6)


def test_family_rejects_an_l1_part_without_proximal_newton():
  with pytest.raises(ValueError, match="proximal-newton"):
    jgen.logistic_regression(l1_ratio=0.5)
  with pytest.raises(ValueError, match="l1_ratio"):
    jgen.logistic_regression(l1_ratio=1.5, solver="proximal-newton")
  with pytest.raises(ValueError, match="solver"):
    jgen.logistic_regression(solver="saga")
  model = jgen.logistic_regression(l1_ratio=0.5, solver="proximal-newton")
  x, y = jnp.eye(4), jnp.array([0, 0, 1, 1])
  with pytest.raises(ValueError, match="L2 objective"):
    jgen.logistic.fit_minibatch(model, jax.random.key(0), x, y, num_classes=2,
                                batch_size=2, num_steps=2)


def test_objective_includes_the_l1_part():
  # Closed form: C * sum CE + (1 - rho)/2 ||W||^2 + rho ||W||_1 at hand-made params.
  x, y = jnp.array([[1.0, -2.0], [0.5, 1.0]]), jnp.array([0, 1])
  params = jgen.LogisticParams(jnp.array([[0.0, 0.3], [0.0, -0.4]]), jnp.zeros(2))
  model = jgen.logistic_regression(C=2.0, l1_ratio=0.25, solver="proximal-newton")
  z = np.array([1.0 * 0.3 + 2.0 * 0.4, 0.5 * 0.3 - 0.4])   # class-1 logits
  ce = np.log1p(np.exp(z[0])) + np.log1p(np.exp(-z[1]))
  expected = 2.0 * ce + 0.75 * 0.5 * (0.3**2 + 0.4**2) + 0.25 * (0.3 + 0.4)
  got = float(jgen.logistic.objective(model, params, x, y))
  np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_max_iter_warns_and_counts_steps():
  x, y, _ = _data(2, seed=6)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    params = jgen.logistic_regression(C=1.0, l1_ratio=1.0, solver="proximal-newton",
                                      tol=1e-15, max_iter=2).fit(
        jnp.asarray(x), jnp.asarray(y), num_classes=2)
  assert int(params.info.num_iter) == 2 and not bool(params.info.converged)
  assert any(issubclass(w.category, jgen.logistic.ConvergenceWarning) for w in caught)
