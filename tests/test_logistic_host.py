"""``jgen.logistic.fit_host`` and ``value_and_grad_host``: the L2 logistic objective in
NumPy and scipy's L-BFGS-B.

References: the objective and gradient are compared with the family's JAX objective
(``jgen.logistic.objective``) and its ``jax.grad``; the fits with
``sklearn.linear_model.LogisticRegression(solver="lbfgs")`` 1.9, which runs scipy's
L-BFGS-B with the same settings (``gtol=tol``, ``ftol=64 eps``, ``maxls=50``) on the
same objective, and with the family's own L-BFGS fit.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.linear_model as sklm
from sklearn.preprocessing import StandardScaler

import jgen
import jgen.datasets
from jgen.logistic import fit_host
from jgen.logistic import value_and_grad_host


@pytest.fixture(scope="module")
def digits():
  data = jgen.datasets.load_digits(dtype=np.float64)
  return StandardScaler().fit_transform(np.asarray(data.x_train)), np.asarray(
      data.y_train)


@pytest.mark.parametrize("num_classes", [2, 4])
@pytest.mark.parametrize("C, fit_intercept", [(0.7, True), (np.inf, True), (3.0, False)])
def test_value_and_grad_equal_the_family_objective(num_classes, C, fit_intercept):
  rng = np.random.default_rng(0)
  n, d = 300, 7
  k = 1 if num_classes == 2 else num_classes
  x = rng.normal(size=(n, d)) * 3.0
  y = rng.integers(0, num_classes, n)
  sw = rng.uniform(0.0, 2.0, n)
  theta = rng.normal(size=d * k + (k if fit_intercept else 0))
  value, grad = value_and_grad_host(theta, x, y, sw, num_classes=num_classes, C=C,
                                    fit_intercept=fit_intercept)
  model = jgen.logistic_regression(C=C, fit_intercept=fit_intercept)

  def scaled(t):   # the family's J / (C sum w) (J itself for C = inf: / sum w)
    w = t[:d * k].reshape(d, k)
    b = t[d * k:] if fit_intercept else jnp.zeros(k)
    if num_classes == 2:
      w = jnp.concatenate([jnp.zeros_like(w), w], axis=1)
      b = jnp.concatenate([jnp.zeros(1), b])
    j = jgen.logistic.objective(model, jgen.LogisticParams(w, b), x, y, sw)
    return j / (sw.sum() if C == np.inf else C * sw.sum())

  ref_value, ref_grad = jax.value_and_grad(scaled)(jnp.asarray(theta))
  assert value == pytest.approx(float(ref_value), rel=1e-13)
  np.testing.assert_allclose(grad, np.asarray(ref_grad), rtol=1e-11, atol=1e-14)


# Standardised digits, where L-BFGS-B converges within max_iter; float64 throughout.
@pytest.mark.parametrize("params", [
    dict(C=0.1), dict(C=1.0, class_weight="balanced"), dict(C=10.0, fit_intercept=False),
    dict(C=np.inf, columns=slice(20, 24)), dict(C=0.5, binary=True, weighted=True)])
def test_fit_retraces_sklearns_lbfgs(digits, params):
  params = dict(params)
  x, y = digits
  x = x[:, params.pop("columns", slice(None))]
  if params.pop("binary", False):
    y = (y >= 5).astype(int)
  sw = (np.random.default_rng(1).uniform(0.0, 2.0, len(y))
        if params.pop("weighted", False) else np.ones(len(y)))
  ref = sklm.LogisticRegression(**params).fit(x, y, sample_weight=sw)
  if params.pop("class_weight", None) == "balanced":
    counts = np.bincount(y)
    sw = sw * (len(y) / (len(counts) * counts))[y]
  model = jgen.logistic_regression(**params, max_iter=100)
  num_classes = len(np.unique(y))
  ours = fit_host(model, x, y, num_classes=num_classes, sample_weight=sw)
  w, b = ours.weights.T, ours.bias
  if num_classes == 2:
    w, b = w[1:] - w[:1], b[1:] - b[:1]
  # The same algorithm on the same objective: the same iterations and iterates, up to
  # the order of floating-point sums (1e-13 measured).
  assert int(ours.info.num_iter) == ref.n_iter_[0]
  assert bool(ours.info.converged) and float(ours.info.grad_norm) <= 1e-4
  np.testing.assert_allclose(w, ref.coef_, atol=1e-9)
  np.testing.assert_allclose(b, ref.intercept_, atol=1e-9)


def test_fit_equals_the_family_lbfgs_fit_and_warm_starts(digits):
  x, y = digits
  x, y = x[:500], y[:500]
  model = jgen.logistic_regression(C=0.3, tol=1e-9, max_iter=2000)
  host = fit_host(model, x, y, num_classes=10)
  device = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=10)   # x64 tests
  # Both stop on scipy's relative-decrease rule (ftol = 64 eps) as well as on tol: the
  # objectives agree to ~1e-13 relative, the parameters to about its square root.
  j_host = float(jgen.logistic.objective(model, host, x, y))
  j_device = float(jgen.logistic.objective(model, device, x, y))
  assert abs(j_host - j_device) <= 1e-11 * j_device
  np.testing.assert_allclose(host.weights, np.asarray(device.weights), atol=1e-5)
  np.testing.assert_allclose(host.bias, np.asarray(device.bias), atol=1e-5)
  assert abs(host.bias.sum()) < 1e-12   # centred, as the family's fit
  again = fit_host(model, x, y, num_classes=10, init=host)
  assert int(again.info.num_iter) < int(host.info.num_iter) // 4   # starts at the end


def test_max_iter_warns_with_scipys_reason(digits):
  x, y = digits
  with pytest.warns(jgen.logistic.ConvergenceWarning, match="ITERATIONS REACHED LIMIT"):
    params = fit_host(jgen.logistic_regression(max_iter=3), x, y, num_classes=10)
  assert not bool(params.info.converged) and int(params.info.num_iter) == 3


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_bad_values_raise_naming_the_argument(digits, where):
  x, y = digits
  x, y = np.tile(x, (2, 1)), np.tile(y, 2)   # 2,874 x 64: 184,000 entries
  row = {"first": 0, "middle": len(x) // 2, "last": len(x) - 1}[where]
  model = jgen.logistic_regression()
  bad = x.copy()
  bad[row, -1] = np.nan
  with pytest.raises(ValueError, match="x contains 1 non-finite"):
    fit_host(model, bad, y, num_classes=10)
  sw = np.ones(len(y))
  sw[row] = -1.0
  with pytest.raises(ValueError, match="sample_weight must be >= 0"):
    fit_host(model, x, y, num_classes=10, sample_weight=sw)
  labels = y.copy()
  labels[row] = 10
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=10\)"):
    fit_host(model, x, labels, num_classes=10)


def test_wrong_model_raises():
  x, y = np.array([[0.0], [1.0]]), np.array([0, 1])
  with pytest.raises(ValueError, match="l1_ratio"):
    fit_host(jgen.logistic_regression(l1_ratio=0.5, solver="proximal-newton"), x, y,
             num_classes=2)
  with pytest.raises(TypeError, match="logistic_regression"):
    fit_host(jgen.gaussian_nb(), x, y, num_classes=2)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    fit_host(jgen.logistic_regression(), x, y, num_classes=2)
