"""scikit-learn drop-in: LDA, QDA and GaussianNB keywords, solvers and priors.

References: every expected value comes from scikit-learn 1.9's own estimator of the same
model (``sklearn.discriminant_analysis``, ``sklearn.naive_bayes``,
``sklearn.covariance.ledoit_wolf_shrinkage``) fitted on the same data in float64, or
from a closed form stated next to the assertion. The suite runs with JAX's x64 mode on,
so jgen computes in float64; tolerances are float64 ones, relative to the scale of the
compared values.
"""

import contextlib
import inspect
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.discriminant_analysis as skda
import sklearn.naive_bayes as sknb
from sklearn.covariance import ledoit_wolf_shrinkage as sk_lw_shrinkage
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.preprocessing import StandardScaler

import jgen
from jgen.sklearn import GaussianNB
from jgen.sklearn import LinearDiscriminantAnalysis
from jgen.sklearn import QuadraticDiscriminantAnalysis

PAIRS = [(GaussianNB, sknb.GaussianNB),
         (LinearDiscriminantAnalysis, skda.LinearDiscriminantAnalysis),
         (QuadraticDiscriminantAnalysis, skda.QuadraticDiscriminantAnalysis)]


def _blobs(seed=0, n=400, d=6, k=3):
  rng = np.random.RandomState(seed)
  y = rng.randint(0, k, n)
  a = rng.randn(d, d) / np.sqrt(d)
  x = rng.randn(n, d) @ a + 1.5 * np.eye(k, d)[y]
  return x, y


@pytest.fixture(scope="module")
def digits():
  x, y = load_digits(return_X_y=True)   # 1,797 x 64, constant pixels included
  return x.astype(np.float64), y


def _close(a, b, rtol=1e-9):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  np.testing.assert_allclose(a, b, rtol=0, atol=rtol * max(np.abs(b).max(), 1.0))


def _align_signs(ours, ref):
  """Projection columns are defined up to sign (an SVD's or eigensolver's choice)."""
  return ours * np.sign(np.sum(ours * ref, axis=0))[None]


@pytest.mark.parametrize("ours, ref", PAIRS, ids=lambda c: c.__name__)
def test_constructor_signature_matches_sklearn(ours, ref):
  mine, theirs = inspect.signature(ours), inspect.signature(ref)
  # scikit-learn's parameters in its order, then jgen's one addition: the keyword-only
  # ``missing`` (default "error": NaN refused, as scikit-learn does).
  assert list(mine.parameters) == list(theirs.parameters) + ["missing"]
  assert mine.parameters["missing"].default == "error"
  assert mine.parameters["missing"].kind == inspect.Parameter.KEYWORD_ONLY
  for name, p in theirs.parameters.items():
    assert mine.parameters[name].default == p.default, name
    assert mine.parameters[name].kind == p.kind, name
  # Every keyword with its default is accepted; get_params round-trips them.
  kwargs = {name: p.default for name, p in theirs.parameters.items()}
  assert ours(**kwargs).get_params() == dict(kwargs, missing="error")


@pytest.mark.parametrize("make, match", [
    (lambda: LinearDiscriminantAnalysis(solver="cholesky"), "svd"),
    (lambda: QuadraticDiscriminantAnalysis(solver="lsqr"), "eigen"),
    (lambda: LinearDiscriminantAnalysis(shrinkage="oas"), "auto"),
    (lambda: QuadraticDiscriminantAnalysis(reg_param=1.5), "reg_param"),
    (lambda: GaussianNB(var_smoothing=-1.0), "var_smoothing"),
    (lambda: LinearDiscriminantAnalysis(covariance_estimator=object()), "fit"),
])
def test_unsupported_values_raise_value_error_naming_the_choices(make, match):
  x, y = _blobs(n=60)
  with pytest.raises(ValueError, match=match):
    make().fit(x, y)


def test_svd_with_shrinkage_raises_as_sklearn():
  x, y = _blobs(n=60)
  for ours, ref in ((LinearDiscriminantAnalysis, skda.LinearDiscriminantAnalysis),
                    (QuadraticDiscriminantAnalysis, skda.QuadraticDiscriminantAnalysis)):
    with pytest.raises(NotImplementedError, match="svd"):
      ref(shrinkage=0.1).fit(x, y)
    with pytest.raises(NotImplementedError, match="svd"):
      ours(shrinkage=0.1).fit(x, y)


def test_lda_default_cross_validates_digits_as_sklearn(digits):
  x, y = digits
  ours = cross_val_score(LinearDiscriminantAnalysis(), x, y)
  ref = cross_val_score(skda.LinearDiscriminantAnalysis(), x, y)
  np.testing.assert_array_equal(ours, ref)
  assert 0.9 < ref.mean() < 0.93   # scikit-learn's own score on the rank-deficient data


def test_lda_svd_estimator_is_the_family_model(digits):
  # The estimator maps float64 host moments with NumPy; jgen.lda(solver="svd") maps
  # the device statistics with jax.numpy: one model, the same posteriors (float64).
  x, y = digits
  est = LinearDiscriminantAnalysis().fit(x, y)
  model = jgen.lda(solver="svd")
  params = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=10)
  family = np.asarray(jgen.predict_proba(model, params, jnp.asarray(x)))
  _close(est.predict_proba(x), family, rtol=1e-9)
  sub = jgen.gaussian.discriminant_subspace(
      jgen.gaussian.sufficient_stats(jnp.asarray(x), jnp.asarray(y), 10, pooled=True),
      params.log_prior)
  _close(est.explained_variance_ratio_, np.asarray(sub.explained_variance_ratio)[:9])


LDA_OPTIONS = [{}, {"n_components": 2}, {"tol": 1e-2}, {"store_covariance": True},
               {"priors": [0.2, 0.3, 0.5]},
               {"solver": "lsqr"}, {"solver": "lsqr", "shrinkage": 0.3},
               {"solver": "lsqr", "shrinkage": "auto"},
               {"solver": "lsqr", "shrinkage": 0.3, "priors": [0.6, 0.3, 0.1]},
               {"solver": "lsqr", "shrinkage": "auto", "priors": [0.6, 0.3, 0.1]},
               {"solver": "eigen"}, {"solver": "eigen", "shrinkage": "auto"},
               {"solver": "eigen", "shrinkage": 0.2, "n_components": 1}]


@pytest.mark.parametrize("kwargs", LDA_OPTIONS, ids=str)
def test_lda_matches_sklearn_on_random_data(kwargs):
  x, y = _blobs()
  ours = LinearDiscriminantAnalysis(**kwargs).fit(x, y)
  ref = skda.LinearDiscriminantAnalysis(**kwargs).fit(x, y)
  _close(ours.predict_proba(x), ref.predict_proba(x))
  np.testing.assert_array_equal(ours.predict(x), ref.predict(x))
  for name in ("coef_", "intercept_", "means_", "priors_", "covariance_", "xbar_",
               "explained_variance_ratio_"):
    assert hasattr(ours, name) == hasattr(ref, name), name
    if hasattr(ref, name):
      _close(getattr(ours, name), getattr(ref, name))
  if kwargs.get("solver", "svd") != "lsqr":
    t_ours, t_ref = ours.transform(x), ref.transform(x)
    assert t_ours.shape == t_ref.shape
    _close(_align_signs(t_ours, t_ref), t_ref)
    # Directions beyond the between-class rank (eigenvalue 0) are arbitrary.
    r = t_ref.shape[1]
    _close(_align_signs(ours.scalings_[:, :r], ref.scalings_[:, :r]), ref.scalings_[:, :r])


@pytest.mark.parametrize("solver", ["svd", "eigen"])
def test_lda_transform_matches_sklearn_on_digits(digits, solver):
  x, y = digits
  kw = {"shrinkage": 0.1} if solver == "eigen" else {}
  ours = LinearDiscriminantAnalysis(solver=solver, **kw).fit(x, y)
  ref = skda.LinearDiscriminantAnalysis(solver=solver, **kw).fit(x, y)
  _close(ours.predict_proba(x), ref.predict_proba(x), rtol=1e-8)
  _close(ours.explained_variance_ratio_, ref.explained_variance_ratio_)
  t_ours, t_ref = ours.transform(x), ref.transform(x)
  _close(_align_signs(t_ours, t_ref), t_ref, rtol=1e-8)


def test_lda_priors_warn_and_renormalise_as_sklearn():
  x, y = _blobs(n=90, k=2)
  with pytest.warns(UserWarning, match="Renormalizing"):
    ours = LinearDiscriminantAnalysis(priors=[0.5, 0.6]).fit(x, y)
  with pytest.warns(UserWarning, match="Renormalizing"):
    ref = skda.LinearDiscriminantAnalysis(priors=[0.5, 0.6]).fit(x, y)
  _close(ours.priors_, [0.5 / 1.1, 0.6 / 1.1])
  _close(ours.decision_function(x), ref.decision_function(x))
  with pytest.raises(ValueError, match="priors must be non-negative"):
    LinearDiscriminantAnalysis(priors=[-0.5, 1.5]).fit(x, y)
  with pytest.raises(ValueError, match="priors must be non-negative"):
    skda.LinearDiscriminantAnalysis(priors=[-0.5, 1.5]).fit(x, y)


QDA_OPTIONS = [{}, {"reg_param": 0.3}, {"priors": [0.2, 0.3, 0.5]},
               {"solver": "eigen"}, {"solver": "eigen", "shrinkage": 0.2},
               {"solver": "eigen", "shrinkage": "auto"}]


@pytest.mark.parametrize("kwargs", QDA_OPTIONS, ids=str)
def test_qda_matches_sklearn_on_random_data(kwargs):
  x, y = _blobs()
  ours = QuadraticDiscriminantAnalysis(store_covariance=True, **kwargs).fit(x, y)
  ref = skda.QuadraticDiscriminantAnalysis(store_covariance=True, **kwargs).fit(x, y)
  _close(ours.decision_function(x), ref.decision_function(x))
  _close(ours.predict_proba(x), ref.predict_proba(x))
  np.testing.assert_array_equal(ours.predict(x), ref.predict(x))
  for name in ("means_", "priors_", "covariance_", "scalings_"):
    _close(getattr(ours, name), np.asarray(getattr(ref, name)))


def test_qda_rank_check_raises_linalg_error_as_sklearn(digits):
  x, y = digits   # constant pixels: every class covariance is singular
  for kwargs, param in (({}, "reg_param"), ({"solver": "eigen"}, "shrinkage")):
    with pytest.raises(np.linalg.LinAlgError, match=f"not full rank.*`{param}`"):
      QuadraticDiscriminantAnalysis(**kwargs).fit(x, y)
    with pytest.raises(np.linalg.LinAlgError, match=f"not full rank.*`{param}`"):
      skda.QuadraticDiscriminantAnalysis(**kwargs).fit(x, y)


def test_qda_svd_refuses_a_class_with_fewer_examples_than_features_as_sklearn():
  # scikit-learn's svd solver keeps min(n_k, D) directions of class k, so a class with
  # 3 examples and 4 features is refused even with reg_param = 0.3; the eigen solver
  # with shrinkage fits it. Class 1 (6 examples) and the decisions both sides take
  # come from scikit-learn's QuadraticDiscriminantAnalysis on the same data.
  x = np.random.default_rng(0).normal(size=(9, 4))
  y = np.array([1, 1, 1, 1, 1, 1, 2, 2, 2])
  for make in (QuadraticDiscriminantAnalysis, skda.QuadraticDiscriminantAnalysis):
    for reg in (0.0, 0.3):
      with pytest.raises(np.linalg.LinAlgError, match="When using `solver='svd'`"):
        make(reg_param=reg).fit(x, y)
  ours = QuadraticDiscriminantAnalysis(solver="eigen", shrinkage=0.3).fit(x, y)
  ref = skda.QuadraticDiscriminantAnalysis(solver="eigen", shrinkage=0.3).fit(x, y)
  _close(ours.predict_proba(x), ref.predict_proba(x))
  # n_k = D: the centred rows leave one direction at zero, which reg_param lifts.
  x4, y4 = x[:8], np.array([1, 1, 1, 1, 2, 2, 2, 2])
  _close(QuadraticDiscriminantAnalysis(reg_param=0.3).fit(x4, y4).predict_proba(x4),
         skda.QuadraticDiscriminantAnalysis(reg_param=0.3).fit(x4, y4).predict_proba(x4))


def test_gaussian_nb_joint_log_proba_matches_sklearn(digits):
  x, y = digits
  ours = GaussianNB().fit(x, y)
  ref = sknb.GaussianNB().fit(x, y)
  _close(ours.predict_joint_log_proba(x), ref.predict_joint_log_proba(x), rtol=1e-8)


@pytest.mark.parametrize("make", [
    lambda: LinearDiscriminantAnalysis(),
    lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"),
    lambda: LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.2),
    lambda: GaussianNB(),
], ids=["lda-svd", "lda-lsqr-auto", "lda-eigen", "nb"])
def test_integer_and_zero_weights_are_repeated_and_removed_rows(make):
  # The definition of sample_weight: w = 0 removes a row (padding), w = 2 repeats it.
  x, y = _blobs(n=200)
  rng = np.random.RandomState(1)
  w = rng.randint(0, 3, len(y)).astype(float)
  junk = rng.randn(37, x.shape[1]) * 1e3            # padding rows with weight zero
  xw = np.concatenate([x, junk])
  yw = np.concatenate([y, rng.randint(0, 3, 37)])
  ww = np.concatenate([w, np.zeros(37)])
  weighted = make().fit(xw, yw, sample_weight=ww)
  repeated = make().fit(np.repeat(x, w.astype(int), 0), np.repeat(y, w.astype(int)))
  _close(weighted.predict_proba(x), repeated.predict_proba(x))


@pytest.mark.parametrize("model", [jgen.qda(), jgen.qda(reg_param=0.1),
                                   jgen.qda(shrinkage="auto")],
                         ids=["qda", "qda-reg", "qda-auto"])
def test_qda_family_weights_are_repeated_and_removed_rows(model):
  # QDA's estimator takes no sample_weight (scikit-learn's signature); the family's
  # weighted fit does: w = 0 removes a row, w = 2 repeats it.
  x, y = _blobs(n=200)
  rng = np.random.RandomState(1)
  w = rng.randint(0, 3, len(y))
  xw = np.concatenate([x, rng.randn(37, x.shape[1]) * 1e3])
  yw = np.concatenate([y, rng.randint(0, 3, 37)])
  ww = np.concatenate([w, np.zeros(37)])
  weighted = model.fit(jnp.asarray(xw), jnp.asarray(yw), num_classes=3,
                       sample_weight=jnp.asarray(ww, jnp.float64))
  repeated = model.fit(jnp.asarray(np.repeat(x, w, 0)), jnp.asarray(np.repeat(y, w)),
                       num_classes=3)
  _close(model.log_likelihood(weighted, jnp.asarray(x)),
         model.log_likelihood(repeated, jnp.asarray(x)))


def test_qda_fit_signature_is_sklearns():
  # A drop-in: QuadraticDiscriminantAnalysis.fit(X, y), as scikit-learn 1.9 has it.
  ours = inspect.signature(QuadraticDiscriminantAnalysis.fit).parameters
  assert list(ours) == list(inspect.signature(
      skda.QuadraticDiscriminantAnalysis.fit).parameters) == ["self", "X", "y"]


def test_jgen_lda_svd_family_gives_sklearn_posteriors_on_digits(digits):
  x, y = digits
  model = jgen.lda(solver="svd")
  params = model.fit(x, y, num_classes=10)
  log_post = jgen.log_posterior(model.log_likelihood(params, x), params.log_prior)
  ref = skda.LinearDiscriminantAnalysis().fit(x, y).predict_log_proba(x)
  assert int(jnp.sum(~jnp.isfinite(log_post))) == 0
  _close(np.exp(np.asarray(log_post)), np.exp(ref), rtol=1e-8)
  # The same model from additive statistics (fit_stats) as from the data.
  stats = jgen.gaussian.sufficient_stats(x, y, 10, pooled=True)
  again = jgen.gaussian.fit_stats(model, stats)
  lp2 = jgen.log_posterior(model.log_likelihood(again, x), again.log_prior)
  _close(np.exp(np.asarray(lp2)), np.exp(ref), rtol=1e-8)


def test_ledoit_wolf_shrinkage_matches_sklearn_per_class(digits):
  x, y = digits
  ours = np.asarray(jgen.gaussian.ledoit_wolf_shrinkage(x, y, 10))
  ref = [sk_lw_shrinkage(StandardScaler().fit_transform(x[y == k])) for k in range(10)]
  _close(ours, ref, rtol=1e-12)
  # One feature: shrinkage 0 whatever the data (scikit-learn's convention).
  assert float(jgen.gaussian.ledoit_wolf_shrinkage(x[:, 10:11], y, 10)[3]) == 0.0


def test_qda_family_shrinkage_auto_not_from_statistics():
  x, y = _blobs(n=60)
  stats = jgen.gaussian.sufficient_stats(x, y, 3)
  with pytest.raises(ValueError, match="model.fit"):
    jgen.gaussian.fit_stats(jgen.qda(shrinkage="auto"), stats)


def test_lda_covariance_estimator_matches_sklearn():
  from sklearn.covariance import OAS
  x, y = _blobs()
  for solver in ("lsqr", "eigen"):
    ours = LinearDiscriminantAnalysis(solver=solver, covariance_estimator=OAS()).fit(x, y)
    ref = skda.LinearDiscriminantAnalysis(solver=solver,
                                          covariance_estimator=OAS()).fit(x, y)
    _close(ours.predict_proba(x), ref.predict_proba(x))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ours = QuadraticDiscriminantAnalysis(solver="eigen", covariance_estimator=OAS())
    ref = skda.QuadraticDiscriminantAnalysis(solver="eigen", covariance_estimator=OAS())
    _close(ours.fit(x, y).predict_proba(x), ref.fit(x, y).predict_proba(x))


@pytest.mark.parametrize("classes", [10, 2])
def test_lda_lsqr_on_singular_covariance_is_sklearns_least_squares(digits, classes):
  # Constant pixels make the pooled covariance singular; scikit-learn's lsqr solver
  # then returns scipy.linalg.lstsq(covariance_, means_.T) (its _solve_lstsq): the
  # reference is scikit-learn's own estimator, fitted on the same float64 data.
  x, y = digits
  keep = y < classes
  x, y = x[keep], y[keep]
  assert (x.std(axis=0) == 0).any()
  ours = LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
  ref = skda.LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
  _close(ours.coef_, ref.coef_, rtol=1e-8)
  _close(ours.intercept_, ref.intercept_, rtol=1e-8)
  _close(ours.predict_proba(x), ref.predict_proba(x), rtol=1e-8)
  assert (ours.predict(x) == ref.predict(x)).all()
  # A full-rank fit after it is the family's again.
  again = ours.set_params(shrinkage=0.1).fit(x, y)
  _close(again.predict_proba(x), skda.LinearDiscriminantAnalysis(
      solver="lsqr", shrinkage=0.1).fit(x, y).predict_proba(x), rtol=1e-8)


def _small_blocks():
  # A 32 KiB cache budget: 64-row blocks of digits (64 float64 pixels), so fit and
  # predict stream 29 blocks, the last one padded.
  return jgen.core.plan.use_plan(budget_bytes=32 << 10, kind="cache")


def test_gaussian_nb_numpy_path_equals_the_device_blocks(digits):
  # Data that fits one block (the digits, 920 KB) is summed and scored with NumPy;
  # under a 32 KiB plan the same data streams through the compiled blocks.
  x, y = digits
  assert x.nbytes <= jgen.sklearn.host_bytes()
  host = GaussianNB().fit(x[:1500], y[:1500])
  host.partial_fit(x[1500:], y[1500:])
  with _small_blocks():
    assert x.nbytes > jgen.sklearn.host_bytes()
    dev = GaussianNB().fit(x[:1500], y[:1500])
    dev.partial_fit(x[1500:], y[1500:])
    dev_proba, dev_joint = dev.predict_proba(x), dev.predict_joint_log_proba(x)
  _close(host.theta_, dev.theta_, rtol=1e-12)
  _close(host.var_, dev.var_, rtol=1e-12)
  _close(host.predict_proba(x), dev_proba, rtol=1e-12)
  _close(host.predict_joint_log_proba(x), dev_joint, rtol=1e-12)


def test_qda_numpy_scores_equal_the_device_blocks(digits):
  # Predictions on data that fits one block are scored by qda_scores with NumPy;
  # under a 32 KiB plan the same rows go through the compiled block scores.
  x, y = digits
  clf = QuadraticDiscriminantAnalysis(reg_param=0.1).fit(x, y)
  host = clf.predict_proba(x), clf.decision_function(x)
  with _small_blocks():
    dev = clf.predict_proba(x), clf.decision_function(x)
  _close(host[0], dev[0], rtol=1e-12)
  _close(host[1], dev[1], rtol=1e-12)
  _close(host[0], skda.QuadraticDiscriminantAnalysis(reg_param=0.1).fit(x, y)
         .predict_proba(x), rtol=1e-8)


def test_gaussian_nb_in_row_blocks_matches_sklearn(digits):
  x, y = digits
  with _small_blocks():
    assert jgen.sklearn.block_rows(len(x), x.shape[1] * 8) == 64
    ours = GaussianNB().fit(x, y)
    joint = ours.predict_joint_log_proba(x)
    part = GaussianNB().partial_fit(x[:700], y[:700], classes=np.arange(10))
    part.partial_fit(x[700:], y[700:])
  ref = sknb.GaussianNB().fit(x, y)
  _close(ours.theta_, ref.theta_, rtol=1e-10)
  _close(ours.var_, ref.var_, rtol=1e-10)
  _close(joint, ref.predict_joint_log_proba(x), rtol=1e-8)
  _close(part.var_, ref.var_, rtol=1e-10)
  with _small_blocks():
    qda = QuadraticDiscriminantAnalysis(reg_param=0.1).fit(x, y).predict_proba(x)
  _close(qda, skda.QuadraticDiscriminantAnalysis(reg_param=0.1).fit(x, y).predict_proba(x))


@pytest.mark.parametrize("blocks", [True, False], ids=["device-blocks", "host"])
@pytest.mark.parametrize("row", [0, 900, 1796])
def test_gaussian_nb_overflowing_value_in_any_block_raises(digits, row, blocks):
  # |x|^2 summed over a column overflows float64 (max ~1.8e308): a clear error naming
  # x, from fit's streamed sums and predict's scores, or from the NumPy path that
  # data fitting one block takes.
  x, y = digits
  bad = x.copy()
  bad[row, 5] = 1e160
  with _small_blocks() if blocks else contextlib.nullcontext():
    with pytest.raises(ValueError, match="x has values up to 1e.160.*overflow"):
      GaussianNB().fit(bad, y)
    clf = GaussianNB().fit(x, y)
    with pytest.raises(ValueError, match="x has values up to 1e.160.*overflow"):
      clf.predict(bad)


@pytest.mark.parametrize("blocks", [True, False], ids=["device-blocks", "host"])
def test_gaussian_nb_without_smoothing_names_the_class_with_zero_variance(digits, blocks):
  # var_smoothing=0 on a feature constant within one class: a zero variance, no
  # density (scikit-learn divides by it and returns NaN); jgen names the class.
  x, y = digits
  x = x[:, 10:14].copy()                   # pixels that vary in every class
  x[y == 7, 2] = 3.0                       # constant within class 7 only
  with _small_blocks() if blocks else contextlib.nullcontext():
    with pytest.raises(ValueError, match="class 7 has a zero"):
      GaussianNB(var_smoothing=0.0).fit(x, y)
    GaussianNB(var_smoothing=1e-9).fit(x, y)   # any smoothing fits it
