"""``jgen.logistic.fit_trust_region`` (LIBLINEAR's trust-region Newton method) and
``jgen.sklearn.LogisticRegression(solver="liblinear")``'s primal L2 fit.

References: ``sklearn.linear_model.LogisticRegression(solver="liblinear")`` 1.9, whose
primal L2 solver is LIBLINEAR's trust-region Newton method (Lin, Weng and Keerthi 2008)
on the same objective with the same stopping rule; the family's Newton-CG fit at a
tight tolerance for the minimiser.
"""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.linear_model as sklm
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

import jgen
from jgen.logistic import fit_trust_region
from jgen.sklearn import LogisticRegression


def _upstream_data():
  """The data of scikit-learn's ``test_logistic_cv`` (seed 42): 50 x 5, labels +-1."""
  rng = np.random.RandomState(42)
  x = rng.randn(50, 5)
  y = np.sign(x.dot(5 * rng.randn(5)))
  x -= x.mean()
  x /= x.std()
  return x, y


@pytest.fixture(scope="module")
def cancer():
  x, y = load_breast_cancer(return_X_y=True)
  return StandardScaler().fit_transform(x), y


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_estimator_retraces_liblinear(cancer, C, fit_intercept):
  x, y = cancer
  sw = np.random.default_rng(0).uniform(0.2, 2.0, len(y))
  params = dict(C=C, solver="liblinear", fit_intercept=fit_intercept,
                intercept_scaling=2.0, class_weight={0: 1.5, 1: 1.0})
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")   # liblinear's own messages at C = 100
    ref = sklm.LogisticRegression(**params).fit(x, y, sample_weight=sw)
    ours = LogisticRegression(**params).fit(x, y, sample_weight=sw)
  # The same algorithm, steps and stopping rule: the same iterations, and the same
  # coefficients up to the order of floating-point sums. At C <= 1 that is 1e-15
  # relative. At C = 100 the conjugate gradients meet a worse-conditioned Hessian that
  # amplifies rounding: permuting the rows of x moves jgen's own result by 6e-5 of the
  # largest coefficient, as much as it differs from scikit-learn's.
  assert ours.n_iter_.tolist() == ref.n_iter_.tolist()
  scale = np.abs(ref.coef_).max()
  rel = 1e-12 if C <= 1 else 5e-4
  np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=0, atol=rel * scale)
  np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=0, atol=rel * scale)


def test_stops_where_liblinear_stops():
  # scikit-learn's test_logistic_cv compares two liblinear fits at tol=1e-4 to 6
  # decimals: LIBLINEAR stops at -1.3722911 where the minimiser (the family's Newton-CG
  # at tol=1e-12) has -1.3722966; the trust-region fit stops where LIBLINEAR does.
  x, y = _upstream_data()
  ref = sklm.LogisticRegression(C=1.0, fit_intercept=False, solver="liblinear").fit(x, y)
  model = jgen.logistic_regression(C=1.0, tol=1e-4, max_iter=100, fit_intercept=False)
  ours = fit_trust_region(model, x, (y > 0).astype(int))
  np.testing.assert_allclose(ours.weights[:, 1], ref.coef_[0], rtol=0, atol=1e-12)
  assert int(ours.info.num_iter) == ref.n_iter_[0] and bool(ours.info.converged)
  tight = jgen.logistic_regression(C=1.0, tol=1e-12, max_iter=1000, fit_intercept=False,
                                   solver="newton-cg")
  minimiser = tight.fit(jnp.asarray(x), jnp.asarray((y > 0).astype(int)), num_classes=2)
  gap = np.abs(ours.weights[:, 1] - np.asarray(minimiser.weights[:, 1])).max()
  assert 1e-6 < gap < 1e-4   # tol=1e-4 stops short of the minimiser, as LIBLINEAR does


def test_tight_tolerance_reaches_the_minimiser(cancer):
  x, y = cancer
  x = x[:200]
  y = y[:200]
  model = jgen.logistic_regression(C=0.5, tol=1e-12, max_iter=1000, fit_intercept=False,
                                   solver="newton-cg")
  ours = fit_trust_region(model, x, y)
  ref = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=2)
  np.testing.assert_allclose(ours.weights, np.asarray(ref.weights), atol=1e-8)
  assert not np.any(ours.bias)


def test_max_iter_warns():
  x, y = load_breast_cancer(return_X_y=True)   # raw features: many steps
  model = jgen.logistic_regression(C=100.0, max_iter=2, fit_intercept=False)
  with pytest.warns(jgen.logistic.ConvergenceWarning, match="max_iter=2"):
    params = fit_trust_region(model, x, y)
  assert int(params.info.num_iter) == 2 and not bool(params.info.converged)


def test_refuses_what_it_does_not_fit():
  x, y = np.array([[0.0], [1.0], [2.0]]), np.array([0, 1, 1])
  for model in (jgen.logistic_regression(fit_intercept=True),
                jgen.logistic_regression(C=np.inf, fit_intercept=False),
                jgen.logistic_regression(l1_ratio=1.0, solver="proximal-newton",
                                         fit_intercept=False)):
    with pytest.raises(ValueError, match="fit_trust_region fits the L2 objective"):
      fit_trust_region(model, x, y)
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=2\)"):
    fit_trust_region(jgen.logistic_regression(fit_intercept=False), x, np.array([0, 1, 2]))
