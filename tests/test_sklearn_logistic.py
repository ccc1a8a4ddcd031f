"""jgen.sklearn.LogisticRegression as a drop-in for scikit-learn's, and cross-validation
that reuses compiled programs.

References: the expected values come from ``sklearn.linear_model.LogisticRegression``
1.9 (``solver="lbfgs"``) fitted on the same data in the same test, and the expected
parameters from ``inspect.signature`` of that class.
"""

import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.linear_model as sklm
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

import jgen.datasets
import jgen.sklearn.linear_model
from jgen.sklearn import GaussianNB
from jgen.sklearn import LinearDiscriminantAnalysis
from jgen.sklearn import LogisticRegression
from jgen.sklearn import QuadraticDiscriminantAnalysis
from jgen.sklearn import bucket_size
from jgen.sklearn import host_bytes

# Gradient tolerance of the parity fits: both solvers then sit at the unique optimum of
# the same strictly convex objective, closer than the asserted tolerances.
TIGHT = dict(tol=1e-10, max_iter=5000)


@pytest.fixture(scope="module")
def digits():
  """The 1,437 training digits (64 pixels, 10 classes), standardised."""
  data = jgen.datasets.load_digits(dtype=np.float64)
  x = StandardScaler().fit_transform(np.asarray(data.x_train))
  return x, np.asarray(data.y_train)


@pytest.fixture(params=["host", "device"])
def path(request, monkeypatch):
  """Both fits of ``solver="lbfgs"``: scipy's L-BFGS-B on the host (data up to
  ``host_bytes``, as the digits here) and the family's compiled L-BFGS (larger data,
  forced here by a zero host budget)."""
  if request.param == "device":
    monkeypatch.setattr(jgen.sklearn.linear_model, "host_bytes", lambda: 0)
  return request.param


def _pair(x, y, sample_weight=None, **params):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    ours = LogisticRegression(**params).fit(x, y, sample_weight=sample_weight)
    ref = sklm.LogisticRegression(**params).fit(x, y, sample_weight=sample_weight)
  return ours, ref


def test_constructor_is_sklearns():
  ours = inspect.signature(LogisticRegression).parameters
  ref = inspect.signature(sklm.LogisticRegression).parameters
  assert list(ours) == list(ref)
  for name, p in ref.items():
    assert (ours[name].default, ours[name].kind) == (p.default, p.kind), name


@pytest.mark.parametrize("params", [
    dict(solver="lbfgs", l1_ratio=1.0), dict(solver="newton-cg", l1_ratio=0.5),
    dict(solver="sag", dual=True), dict(solver="liblinear", l1_ratio=0.5),
    dict(solver="liblinear", C=np.inf), dict(solver="liblinear", penalty="l1", dual=True),
    dict(solver="liblinear"), dict(penalty="elasticnet", solver="saga", l1_ratio=None)])
def test_unsupported_combinations_raise_sklearns_value_error(params):
  # Reference: scikit-learn 1.9 raises a ValueError for these solver / penalty / dual /
  # class-count combinations; jgen raises the same error with the same message.
  x, y = np.eye(6), np.array([0, 0, 1, 1, 2, 2])
  messages = []
  for cls in (LogisticRegression, sklm.LogisticRegression):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", FutureWarning)
      with pytest.raises(ValueError) as err:
        cls(**params).fit(x, y)
    messages.append(str(err.value))
  assert messages[0] == messages[1]


def test_invalid_values_raise_sklearns_errors():
  x, y = np.eye(4), np.array([0, 0, 1, 1])
  for params in (dict(C=-1.0), dict(max_iter=-1), dict(solver="foo"),
                 dict(class_weight="auto")):
    with pytest.raises(ValueError, match="parameter of LogisticRegression must be"):
      LogisticRegression(**params).fit(x, y)


def _objective(est, x, y, sample_weight, C, class_weight=None):
  """``C sum_i w_i CE_i + ||coef||^2 / 2`` (scikit-learn's lbfgs objective; ``w_i``
  the sample weight times the class weight), from the estimator's own probabilities."""
  w = np.ones(len(y)) if sample_weight is None else sample_weight
  if class_weight is not None:
    w = w * compute_class_weight(class_weight, classes=est.classes_, y=y)[
        np.searchsorted(est.classes_, y)]
  ce = -est.predict_log_proba(x)[np.arange(len(y)), np.searchsorted(est.classes_, y)]
  data = np.sum(w * ce)
  return data if C == np.inf else C * data + 0.5 * np.sum(np.asarray(est.coef_) ** 2)


# Both solvers stop when one step lowers the objective by less than 64 eps (relative;
# scipy's ftol in scikit-learn, the same rule in jgen) or the gradient is below tol: the
# objective values then agree to ~1e-13 relative, the parameters only to about the
# square root of that (a flat optimum), so probabilities are compared at 1e-5.
@pytest.mark.parametrize("params", [
    dict(C=0.05), dict(fit_intercept=False, class_weight="balanced"),
    dict(class_weight={0: 3.0, 1: 0.5, 7: 2.0}), dict(C=np.inf),
    dict(penalty="l2", random_state=0, n_jobs=-1, verbose=0, intercept_scaling=2.0)])
def test_matches_sklearn_on_digits(digits, params, path):
  x, y = digits
  x, y = x[:600], y[:600]
  if params.get("C") == np.inf:   # unpenalised: a non-separable problem has an optimum
    x = x[:, 20:24]
  keep = (y != 3) | (np.arange(len(y)) % 3 == 0)   # uneven classes: "balanced" != 1
  x, y = x[keep], y[keep]
  ours, ref = _pair(x, y, **params, **TIGHT)
  C, cw = params.get("C", 1.0), params.get("class_weight")
  j_ours, j_ref = _objective(ours, x, y, None, C, cw), _objective(ref, x, y, None, C, cw)
  assert abs(j_ours - j_ref) <= 1e-10 * abs(j_ref)
  np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), atol=1e-5)
  assert (ours.predict(x) == ref.predict(x)).mean() > 0.99


def test_binary_and_sample_weight_match_sklearn(digits, path):
  x, y = digits
  x, y = x[:600], y[:600]
  yb = np.where(y < 5, "low", "high")
  w = np.random.RandomState(0).uniform(0.0, 2.0, len(y))
  ours, ref = _pair(x, yb, sample_weight=w, C=0.3, **TIGHT)
  assert ours.coef_.shape == ref.coef_.shape == (1, 64)
  j_ours, j_ref = _objective(ours, x, yb, w, 0.3), _objective(ref, x, yb, w, 0.3)
  assert abs(j_ours - j_ref) <= 1e-10 * abs(j_ref)
  np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), atol=1e-5)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_equals_dense(fmt):
  # A TF-IDF-like design: 2,000 documents x 500 terms, 2% non-zero.
  rng = np.random.RandomState(0)
  x = sp.random(2000, 500, density=0.02, format=fmt, random_state=rng)
  y = (x @ rng.normal(size=500) > 0).astype(int) + (rng.uniform(size=2000) > 0.7)
  dense = LogisticRegression(C=2.0).fit(x.toarray(), y)
  sparse = LogisticRegression(C=2.0).fit(x, y)
  np.testing.assert_array_equal(sparse.coef_, dense.coef_)
  np.testing.assert_allclose(sparse.predict_proba(x), dense.predict_proba(x.toarray()),
                             rtol=1e-12, atol=1e-15)
  ours, ref = _pair(x, y, C=2.0, **TIGHT)
  assert abs(_objective(ours, x, y, None, 2.0) - _objective(ref, x, y, None, 2.0)) <= (
      1e-10 * _objective(ref, x, y, None, 2.0))


def test_coef_and_intercept_are_the_model(digits):
  x, y = digits
  for labels in (y, y % 2):
    clf = LogisticRegression().fit(x, labels)
    ref = sklm.LogisticRegression().fit(x[:50], labels[:50])   # any other model
    clf.coef_, clf.intercept_ = ref.coef_, ref.intercept_
    np.testing.assert_allclose(clf.decision_function(x), ref.decision_function(x),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(x), ref.predict_proba(x), rtol=1e-10,
                               atol=1e-14)
    np.testing.assert_allclose(clf.predict_log_proba(x), ref.predict_log_proba(x),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(x), ref.predict(x))
    assert clf.score(x, labels) == ref.score(x, labels)


def test_warm_start_and_max_iter_zero(digits, path):
  x, y = digits
  cold = LogisticRegression(**TIGHT).fit(x, y)
  warm = LogisticRegression(warm_start=True, **TIGHT).fit(x, y)
  first = int(warm.n_iter_[0])
  warm.fit(x, y)   # starts at the optimum: converges at once
  assert warm.n_iter_[0] < first // 4
  np.testing.assert_allclose(warm.coef_, cold.coef_, atol=1e-6 * np.abs(cold.coef_).max())
  # max_iter=0 returns the starting point, the previous fit or zeros, and warns with
  # scikit-learn's ConvergenceWarning as scikit-learn does.
  stay = LogisticRegression(warm_start=True, max_iter=0)
  stay.coef_, stay.intercept_, stay.classes_ = cold.coef_, cold.intercept_, cold.classes_
  with pytest.warns(SklearnConvergenceWarning):
    stay.fit(x, y)
  assert stay.n_iter_.tolist() == [0]
  np.testing.assert_array_equal(stay.coef_, cold.coef_)
  np.testing.assert_array_equal(stay.intercept_, cold.intercept_)
  with pytest.warns(SklearnConvergenceWarning):
    zero = LogisticRegression(max_iter=0).fit(x, y)
  assert zero.n_iter_.tolist() == [0] and not np.any(zero.coef_)


def test_deprecations_warn_as_sklearn():
  x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 1, 0, 1])
  with pytest.warns(FutureWarning, match="'n_jobs' has no effect"):
    LogisticRegression(n_jobs=2).fit(x, y)
  with pytest.warns(FutureWarning, match="'penalty' was deprecated"):
    a = LogisticRegression(penalty=None).fit(x, y)
  b = LogisticRegression(C=np.inf).fit(x, y)
  np.testing.assert_array_equal(a.coef_, b.coef_)


class _CompileCounter:
  """Counts XLA compilations (JAX's backend-compile monitoring event)."""

  def __enter__(self):
    self.count = 0
    jax.monitoring.register_event_duration_secs_listener(self._on_event)
    return self

  def _on_event(self, event, duration, **kwargs):
    del duration, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
      self.count += 1

  def __exit__(self, *exc):
    jax.monitoring.unregister_event_duration_listener(self._on_event)


@pytest.mark.parametrize("make, grid", [
    (GaussianNB, {"var_smoothing": [1e-9, 1e-3]}),
    (LinearDiscriminantAnalysis, {"shrinkage": [0.1, 0.5]}),
    (QuadraticDiscriminantAnalysis, {"reg_param": [0.1, 0.5]}),
    (LogisticRegression, {"C": [0.1, 1.0]})])
def test_cross_validation_compiles_once_per_bucket(digits, make, grid):
  x, y = digits
  # scikit-learn's lsqr solver is the one that takes shrinkage (where it is accepted).
  kwargs = ({"solver": "lsqr"} if "solver" in inspect.signature(make).parameters
            and make is LinearDiscriminantAnalysis else {})
  # 5-fold training sets of 1,436 rows hold 1,148 or 1,149 rows and test sets 287 or 288:
  # one bucket each. A first search compiles what the buckets need.
  assert {bucket_size(n) for n in (1148, 1149)} == {2048}
  assert {bucket_size(n) for n in (287, 288)} == {512}
  GridSearchCV(make(**kwargs), grid, cv=5).fit(x[:1436], y[:1436])
  # Folds of other sizes in the same buckets (1,100 to 1,160 and 275 to 290 rows),
  # other hyperparameter values: nothing compiles again.
  with _CompileCounter() as same:
    for n in (1375, 1450):
      search = GridSearchCV(make(**kwargs), {k: v[::-1] for k, v in grid.items()}, cv=5)
      search.fit(x[:n], y[:n])
  assert same.count == 0
  # A new bucket (rows 4,096): naive Bayes's and logistic regression's fits compile
  # for it; LDA and QDA build their parameters from host moments, whose programs do
  # not depend on the number of rows, so nothing compiles.
  with _CompileCounter() as new:
    est = make(**kwargs).set_params(**{k: v[0] for k, v in grid.items()})
    est.fit(np.tile(x, (3, 1))[:3000], np.tile(y, 3)[:3000])
  if make in (LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis):
    assert new.count == 0
    with _CompileCounter() as new:   # the counter does see a program never compiled
      jax.jit(lambda v: 3.0 * v + 1.0)(jnp.arange(11.0))
    assert new.count > 0
  else:   # 3,000 x 64 fits one row block: naive Bayes computes with NumPy, logistic
    # regression fits with scipy's L-BFGS-B on the host
    assert 3000 * 64 * x.dtype.itemsize <= host_bytes()
    assert new.count == 0
  assert search.best_score_ > 0.85


# The programs a fresh process compiles for fit + predict on the digits, by name. The
# digits have constant pixels: LDA's lsqr solver and QDA need the regularisation users
# give them.
FIRST_PROGRAMS = [
    (GaussianNB, {}, 0),                                          # host: one block
    (LinearDiscriminantAnalysis, {}, 0),                          # svd: host moments
    (LinearDiscriminantAnalysis, {"solver": "lsqr", "shrinkage": 0.1}, 0),  # host
    (QuadraticDiscriminantAnalysis, {"reg_param": 0.1}, 0),       # host: one block
    (LogisticRegression, {}, 0)]                                  # host L-BFGS-B


@pytest.mark.parametrize("make, kwargs, programs", FIRST_PROGRAMS)
def test_first_fit_and_predict_compile_few_programs(digits, make, kwargs, programs):
  # Each compiled program costs 0.05 to 1.1 s on 2 cores, against fits of milliseconds:
  # no eager operation or per-shape value screen may add to them.
  x, y = digits
  jax.clear_caches()
  with _CompileCounter() as first:
    make(**kwargs).fit(x[:1149], y[:1149]).predict(x[1149:])
  assert first.count == programs


def test_device_fit_compiles_once_per_bucket(digits, monkeypatch):
  # Data above host_bytes (forced here with a zero budget) runs the family's compiled
  # L-BFGS: a fresh process compiles it and the intercept centring once, a new row
  # bucket the L-BFGS program again, and nothing else.
  monkeypatch.setattr(jgen.sklearn.linear_model, "host_bytes", lambda: 0)
  x, y = digits
  jax.clear_caches()
  with _CompileCounter() as first:
    LogisticRegression().fit(x[:1149], y[:1149]).predict(x[1149:])
  assert first.count == 2
  with _CompileCounter() as same:
    LogisticRegression(C=0.3).fit(x[:1100], y[:1100])
  assert same.count == 0
  with _CompileCounter() as new:
    LogisticRegression().fit(np.tile(x, (3, 1))[:3000], np.tile(y, 3)[:3000])
  assert new.count == 1
