"""Gaussian naive Bayes, LDA and QDA against scikit-learn, SciPy and NumPy references."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import jgen
from jgen import datasets
from jgen import gaussian
from jgen.gaussian.params import covariance_ok
from jgen.gaussian.params import precision_cholesky

skl_nb = pytest.importorskip("sklearn.naive_bayes")
skl_da = pytest.importorskip("sklearn.discriminant_analysis")


@functools.lru_cache(maxsize=None)
def _data(name):
  return datasets.load(name, dtype=np.float64)


def _proba(model, params, x):
  return np.exp(np.asarray(jgen.log_posterior(model.log_likelihood(params, x),
                                              params.log_prior)))


# (jgen family, scikit-learn estimator with the same model, datasets where it is
# defined: scikit-learn's lsqr LDA and QDA need a non-singular covariance, which the
# constant border pixels of digits rule out without shrinkage / regularisation).
_ALL = ("iris", "wine", "breast_cancer", "digits", "penguins")
_NONSINGULAR = ("iris", "wine", "breast_cancer", "penguins")
# scikit-learn's QDA also rejects breast_cancer at reg_param=0: singular values of a
# class fall below its tol=1e-4 (features on very different scales).
_QDA_NOREG = ("iris", "wine", "penguins")
_CASES = [
    ("GaussianNB()", lambda: gaussian.gaussian_nb(),
     lambda: skl_nb.GaussianNB(), _ALL),
    ("GaussianNB(var_smoothing=1e-3)", lambda: gaussian.gaussian_nb(1e-3),
     lambda: skl_nb.GaussianNB(var_smoothing=1e-3), _ALL),
    ('LinearDiscriminantAnalysis(solver="lsqr", shrinkage=None)', lambda: gaussian.lda(),
     lambda: skl_da.LinearDiscriminantAnalysis(solver="lsqr"), _NONSINGULAR),
    ('LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.1)', lambda: gaussian.lda(0.1),
     lambda: skl_da.LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.1), _ALL),
    ('LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.7)', lambda: gaussian.lda(0.7),
     lambda: skl_da.LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.7), _ALL),
    ("QuadraticDiscriminantAnalysis(reg_param=0.0)", lambda: gaussian.qda(),
     lambda: skl_da.QuadraticDiscriminantAnalysis(), _QDA_NOREG),
    ("QuadraticDiscriminantAnalysis(reg_param=0.1)", lambda: gaussian.qda(0.1),
     lambda: skl_da.QuadraticDiscriminantAnalysis(reg_param=0.1), _ALL),
]
_PARAMS = [pytest.param(mk, sk, ds, id=f"{name}-{ds}")
           for name, mk, sk, dss in _CASES for ds in dss]


@pytest.mark.parametrize("make_model, make_sklearn, name", _PARAMS)
def test_matches_sklearn_float64(make_model, make_sklearn, name):
  # Reference: the scikit-learn estimator named in the test id, fitted on the same
  # float64 training split; predictions identical, predict_proba within 1e-6.
  xtr, ytr, xte, _ = _data(name)
  model = make_model()
  params = model.fit(xtr, ytr, num_classes=int(ytr.max()) + 1)
  ref = make_sklearn().fit(xtr, ytr)
  x = np.concatenate([xte, xtr])               # test and training examples
  got = _proba(model, params, x)
  np.testing.assert_allclose(got, ref.predict_proba(x), rtol=0, atol=1e-6)
  np.testing.assert_array_equal(got.argmax(-1), ref.predict(x))


def test_digits_accuracies_match_reference_baselines():
  # scikit-learn 1.9.1 on digits (docs/references.md) (pixels/16, 80/20
  # stratified, seed 0): GaussianNB 82.2%, QDA(reg 0.1) 97.2% (360 test examples).
  xtr, ytr, xte, yte = _data("digits")
  for model, want in ((gaussian.gaussian_nb(), 296), (gaussian.qda(0.1), 350)):
    params = model.fit(xtr, ytr, num_classes=10)
    pred = jgen.predict(model.log_likelihood(params, xte), params.log_prior)
    assert int(np.sum(np.asarray(pred) == yte)) == want


def _blobs(key, n=60, d=3, k=3, dtype=jnp.float64):
  kx, ky = jax.random.split(key)
  y = jnp.arange(n) % k
  scale = 1.0 + jnp.arange(d, dtype=dtype)[None, :] * 0.5
  x = jax.random.normal(kx, (n, d), dtype) * scale + 2.0 * y[:, None].astype(dtype)
  mix = jnp.eye(d, dtype=dtype) + 0.3 * jax.random.normal(ky, (d, d), dtype)
  return x @ mix + 5.0, y


def test_log_likelihood_is_exact_density(key):
  # Reference: scipy.stats.multivariate_normal.logpdf with the covariances written out
  # in NumPy from their definitions (QDA: per-class MLE; LDA: pooled MLE).
  x, y = _blobs(key)
  xn, yn = np.asarray(x), np.asarray(y)
  xq = xn[:7] + 0.5
  means = np.stack([xn[yn == k].mean(0) for k in range(3)])
  covs = [np.cov(xn[yn == k].T, ddof=0) for k in range(3)]
  pooled = sum(np.mean(yn == k) * covs[k] for k in range(3))
  qda_ll = gaussian.qda().log_likelihood(gaussian.qda().fit(x, y, num_classes=3), xq)
  lda_ll = gaussian.lda().log_likelihood(gaussian.lda().fit(x, y, num_classes=3), xq)
  nb_ll = gaussian.gaussian_nb(0.0).log_likelihood(
      gaussian.gaussian_nb(0.0).fit(x, y, num_classes=3), xq)
  for k in range(3):
    np.testing.assert_allclose(qda_ll[:, k], sps.multivariate_normal(means[k], covs[k])
                               .logpdf(xq), rtol=1e-10)
    np.testing.assert_allclose(lda_ll[:, k], sps.multivariate_normal(means[k], pooled)
                               .logpdf(xq), rtol=1e-10)
    np.testing.assert_allclose(nb_ll[:, k], sps.norm(means[k], np.sqrt(np.diag(covs[k])))
                               .logpdf(xq).sum(-1), rtol=1e-10)


def test_pooled_nb_matches_numpy_closed_form(key):
  # Reference: Zheng et al. (2023) naive Bayes in NumPy: shared variance
  # sum_k pi_k var_k (ddof 0) + 1e-9 absolute, class-frequency priors.
  x, y = _blobs(key, n=61)
  xn, yn = np.asarray(x), np.asarray(y)
  pi = np.bincount(yn) / len(yn)
  means = np.stack([xn[yn == k].mean(0) for k in range(3)])
  var = sum(pi[k] * xn[yn == k].var(0) for k in range(3)) + 1e-9
  model = gaussian.gaussian_nb(pooled=True)
  params = model.fit(x, y, num_classes=3)
  np.testing.assert_allclose(params.variances, np.broadcast_to(var, (3, 3)), rtol=1e-12)
  np.testing.assert_allclose(params.log_prior, np.log(pi), rtol=1e-12)
  want = np.stack([sps.norm(means[k], np.sqrt(var)).logpdf(xn).sum(-1)
                   for k in range(3)], -1)
  np.testing.assert_allclose(model.log_likelihood(params, x), want, rtol=1e-10)


def test_user_priors_match_sklearn_gaussian_nb():
  # Reference: scikit-learn GaussianNB(priors=p) on iris.
  xtr, ytr, xte, _ = _data("iris")
  p = np.array([0.5, 0.3, 0.2])
  model = gaussian.gaussian_nb()
  params = model.fit(xtr, ytr, num_classes=3, priors=p)
  np.testing.assert_allclose(params.log_prior, np.log(p), rtol=1e-12)
  ref = skl_nb.GaussianNB(priors=p).fit(xtr, ytr)
  np.testing.assert_allclose(_proba(model, params, xte), ref.predict_proba(xte), atol=1e-6)


_FAMILIES = [
    pytest.param(lambda: gaussian.gaussian_nb(), False, False, id="nb"),
    pytest.param(lambda: gaussian.gaussian_nb(pooled=True), False, True, id="nb_pooled"),
    pytest.param(lambda: gaussian.lda(0.2), True, True, id="lda"),
    pytest.param(lambda: gaussian.qda(0.05), True, False, id="qda"),
]


@pytest.mark.parametrize("make_model, full, pooled", _FAMILIES)
def test_chunked_stats_equal_fit_at_once(key, make_model, full, pooled):
  # Reference: fit on all data at once (float64); statistics of 3 chunks about a
  # common shift, merged with merge_stats / tree add, must give the same params.
  x, y = _blobs(key, n=90, d=4)
  model = make_model()
  at_once = model.fit(x, y, num_classes=3)
  # A common [D] shift, or (pooled cases) one arbitrary shift per class [K, D].
  shift = x[:3] if pooled else x[:10].mean(0)
  chunks = [gaussian.sufficient_stats(x[i:i + 30], y[i:i + 30], 3, shift=shift,
                                      full_covariance=full, pooled=pooled)
            for i in range(0, 90, 30)]
  merged = functools.reduce(gaussian.merge_stats, chunks)
  tree_added = jax.tree.map(lambda *a: sum(a), *chunks)
  for stats in (merged, tree_added):
    params = jgen.gaussian.fit_stats(model, stats)
    chex.assert_trees_all_close(params, at_once, rtol=1e-10, atol=1e-10)


def test_stats_psum_over_a_device_axis(key):
  # Reference: statistics of the whole data; per-shard statistics reduced by lax.psum.
  x, y = _blobs(key, n=80, d=3)
  whole = gaussian.sufficient_stats(x, y, 3)
  per_shard = jax.vmap(
      lambda xs, ys: jax.lax.psum(gaussian.sufficient_stats(xs, ys, 3), "shards"),
      axis_name="shards")(x.reshape(4, 20, 3), y.reshape(4, 20))
  chex.assert_trees_all_close(jax.tree.map(lambda a: a[0], per_shard), whole, rtol=1e-12)
  # And the statistics are what they claim to be (NumPy, shift 0).
  xn, yn = np.asarray(x), np.asarray(y)
  np.testing.assert_allclose(whole.count, np.bincount(yn))
  np.testing.assert_allclose(whole.centered_sq[1], xn[yn == 1].T @ xn[yn == 1],
                             rtol=1e-12)


def test_blocked_class_grams_match_numpy(key):
  # The sorted, blocked per-class second moments used for large N * K * D (small
  # problems take a one-einsum path): uneven class sizes, an empty class, blocks that
  # do not divide the class sizes, and vmap over two labelings. Reference: NumPy.
  from jgen.gaussian import stats as _gaussian_stats
  kx, ky = jax.random.split(key)
  x = jax.random.normal(kx, (203, 5), jnp.float64)
  ys = jnp.stack([jax.random.randint(ky, (203,), 0, 3),           # class 3 empty
                  jnp.minimum(jnp.arange(203) // 20, 3)])         # 20/20/20/143
  counts = jax.vmap(lambda y: jnp.zeros(4, jnp.int32).at[y].add(1))(ys)
  grams = jax.vmap(lambda y, c: _gaussian_stats._class_grams(x, y, c, 4))(ys, counts)
  xn = np.asarray(x)
  for b in range(2):
    yn = np.asarray(ys[b])
    for k in range(4):
      np.testing.assert_allclose(grams[b, k], xn[yn == k].T @ xn[yn == k], atol=1e-12)


@pytest.mark.parametrize("make_model, full, pooled", _FAMILIES)
def test_jit_one_trace_per_shape_and_equals_eager(key, make_model, full, pooled):
  del full, pooled
  x, y = _blobs(key, n=60, d=3)
  model = make_model()
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=2)
  def fit_and_score(x, y, xq):
    params = model.fit(x, y, num_classes=3)
    return model.log_likelihood(params, xq)

  eager = model.log_likelihood(model.fit(x, y, num_classes=3), x[:5])
  np.testing.assert_allclose(fit_and_score(x, y, x[:5]), eager, rtol=1e-12)
  fit_and_score(x + 1.0, y, x[5:10])          # same shapes: no retrace
  fit_and_score(x[:45], y[:45], x[:7])        # new shapes: one more trace
  with pytest.raises(AssertionError):
    fit_and_score(x[:30], y[:30], x[:7])      # a third shape exceeds n=2


@pytest.mark.parametrize("make_model, full, pooled", _FAMILIES)
def test_vmap_fit_over_bootstrap_equals_loop(key, make_model, full, pooled):
  del full, pooled
  kd, kb = jax.random.split(key)
  x, y = _blobs(kd, n=60, d=3)
  idx = jax.random.randint(kb, (4, 60), 0, 60)
  model = make_model()
  fit = lambda i: model.fit(x[i], y[i], num_classes=3)
  batched = jax.vmap(fit)(idx)
  for b in range(4):
    looped = fit(idx[b])
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[b], batched), looped,
                                rtol=1e-10, atol=1e-10)


def test_float32_path_matches_float64_predictions():
  # Reference: the same models in float64 on digits (test split).
  xtr, ytr, xte, _ = _data("digits")
  for model in (gaussian.gaussian_nb(), gaussian.gaussian_nb(pooled=True),
                gaussian.lda(0.1), gaussian.qda(0.1)):
    p64 = model.fit(xtr, ytr, num_classes=10)
    p32 = model.fit(xtr.astype(np.float32), ytr, num_classes=10)
    ll32 = model.log_likelihood(p32, xte.astype(np.float32))
    assert ll32.dtype == jnp.float32 and p32.log_prior.dtype == jnp.float32
    ll32 = np.asarray(ll32, np.float64)
    ll64 = np.asarray(model.log_likelihood(p64, xte))
    # Scores span 1 to 1e9 nats (NB: constant pixels get variances ~1e-10); float32
    # fitting perturbs those variances by ~5e-6 relative, so compare relatively.
    rel = np.abs(ll32 - ll64) / np.maximum(1.0, np.abs(ll64))
    assert rel.max() < 1e-3
    pred32 = np.argmax(ll32 + np.asarray(p32.log_prior)[None], -1)
    pred64 = np.argmax(ll64 + np.asarray(p64.log_prior)[None], -1)
    assert np.mean(pred32 == pred64) >= 359 / 360


def test_leading_shape_and_integer_features(key):
  x, y = _blobs(key)
  model = gaussian.qda()
  params = model.fit(x, y, num_classes=3)
  xq = x[:6].reshape(2, 3, 3)
  np.testing.assert_allclose(model.log_likelihood(params, xq).reshape(6, 3),
                             model.log_likelihood(params, x[:6]), rtol=1e-12)
  xi = jnp.round(x * 10).astype(jnp.int32)
  pi = model.fit(xi, y, num_classes=3)
  assert jnp.issubdtype(pi.means.dtype, jnp.floating)


# ---------------------------------------------------------------------- bad input

_ALL_MODELS = [pytest.param(gaussian.gaussian_nb, id="nb"),
               pytest.param(gaussian.lda, id="lda"),
               pytest.param(gaussian.qda, id="qda")]


@pytest.mark.parametrize("make", _ALL_MODELS)
def test_bad_inputs_raise_naming_the_argument(key, make):
  x, y = _blobs(key, n=30)
  model = make()
  fit = lambda x, y, k=3: model.fit(x, y, num_classes=k)
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=3\)"):
    fit(x, y.at[0].set(3))
  with pytest.raises(ValueError, match=r"y must lie in"):
    fit(x, y.at[0].set(-1))
  with pytest.raises(TypeError, match="y must have an integer dtype"):
    fit(x, y.astype(jnp.float64))
  with pytest.raises(ValueError, match="same number of examples"):
    fit(x[:-1], y)
  with pytest.raises(ValueError, match="x must have rank 2"):
    fit(x[:, 0], y)
  with pytest.raises(ValueError, match="y must have rank 1"):
    fit(x, y[:, None])
  with pytest.raises(ValueError, match="x contains 1 non-finite"):
    fit(x.at[3, 1].set(jnp.nan), y)
  with pytest.raises(ValueError, match="x contains 1 non-finite"):
    fit(x.at[3, 1].set(jnp.inf), y)
  with pytest.raises(ValueError, match="class 2 has no samples"):
    fit(x, jnp.where(y == 2, 0, y))
  with pytest.raises(ValueError, match="num_classes must be >= 2"):
    fit(x, y * 0, 1)
  with pytest.raises(TypeError, match="num_classes must be a static Python int"):
    fit(x, y, 3.0)
  params = fit(x, y)
  with pytest.raises(ValueError, match="x must have last dimension 3"):
    model.log_likelihood(params, x[:, :2])
  with pytest.raises(ValueError, match="x contains"):
    model.log_likelihood(params, x.at[0, 0].set(jnp.nan))
  with pytest.raises(ValueError, match="priors must be non-negative"):
    model.fit(x, y, num_classes=3, priors=jnp.array([1.2, -0.1, -0.1]))
  with pytest.raises(ValueError, match="log_prior must be normalised"):
    model.fit(x, y, num_classes=3, priors=jnp.array([0.5, 0.5, 0.5]))


def test_bad_configuration_and_params():
  with pytest.raises(ValueError, match="var_smoothing must be >= 0"):
    gaussian.gaussian_nb(-1.0)
  with pytest.raises(ValueError, match="shrinkage must lie in"):
    gaussian.lda(1.5)
  with pytest.raises(ValueError, match="reg_param must lie in"):
    gaussian.qda(-0.1)
  x = jnp.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
  y = jnp.array([0, 0, 1, 1])
  nb = gaussian.gaussian_nb().fit(x, y, num_classes=2)
  with pytest.raises(TypeError, match="params must be QDAParams"):
    gaussian.qda().log_likelihood(nb, x)
  diag = gaussian.sufficient_stats(x, y, 2, full_covariance=False)
  with pytest.raises(ValueError, match="needs full-covariance statistics"):
    jgen.gaussian.fit_stats(gaussian.lda(), diag)
  pooled = gaussian.sufficient_stats(x, y, 2, pooled=True)
  with pytest.raises(ValueError, match="needs per-class statistics"):
    jgen.gaussian.fit_stats(gaussian.qda(), pooled)
  with pytest.raises(ValueError, match="shift must have shape"):
    gaussian.sufficient_stats(x, y, 2, shift=jnp.zeros(3))


def test_degenerate_fits_raise_eagerly(key):
  x, y = _blobs(key, n=30)
  with pytest.raises(ValueError, match="class 1 has 1 sample"):
    gaussian.qda(0.5).fit(x, jnp.where(y == 1, 0, y).at[4].set(1), num_classes=3)
  const = x.at[:, 2].set(1.0)
  with pytest.raises(ValueError, match="pooled within-class covariance is not positive"):
    gaussian.lda().fit(const, y, num_classes=3)
  with pytest.raises(ValueError, match="covariance of class 0 is not positive"):
    gaussian.qda().fit(const, y, num_classes=3)
  with pytest.raises(ValueError, match="class 0 has a zero"):
    gaussian.gaussian_nb(0.0).fit(const, y, num_classes=3)
  # The remedies work: shrinkage / reg_param / smoothing make them proper densities.
  for model in (gaussian.lda(0.1), gaussian.qda(0.1), gaussian.gaussian_nb()):
    params = model.fit(const, y, num_classes=3)
    assert np.all(np.isfinite(model.log_likelihood(params, const)))


@pytest.mark.parametrize("make", _ALL_MODELS)
def test_under_jit_invalid_classes_score_minus_inf_never_nan(key, make):
  # Documented sentinel: an invalid class (empty, or fitted from non-finite data)
  # gets log-likelihood -inf; out-of-range labels invalidate every class.
  x, y = _blobs(key, n=30)
  model = make()
  fit = jax.jit(lambda x, y: model.fit(x, y, num_classes=3))
  score = lambda p: np.asarray(model.log_likelihood(p, x))

  empty = fit(x, jnp.where(y == 2, 0, y))
  ll = score(empty)
  assert np.all(ll[:, 2] == -np.inf) and np.all(np.isfinite(ll[:, :2]))
  assert float(empty.log_prior[2]) == -np.inf
  assert list(np.asarray(gaussian.valid_classes(empty))) == [True, True, False]
  post = np.asarray(jgen.log_posterior(ll, empty.log_prior))
  assert not np.any(np.isnan(post))

  ll = score(fit(x, y.at[0].set(7)))
  assert np.all(ll == -np.inf)

  ll = score(fit(x.at[1, 0].set(jnp.nan), y))     # example 1 has label 1
  assert not np.any(np.isnan(ll)) and np.all(ll[:, 1] == -np.inf)
  if make is not gaussian.lda:                     # LDA's covariance is shared
    assert np.all(np.isfinite(ll[:, [0, 2]]))


def test_qda_one_sample_class_under_jit_scores_minus_inf(key):
  x, y = _blobs(key, n=30)
  y1 = jnp.where(y == 1, 0, y).at[4].set(1)
  params = jax.jit(lambda x, y: gaussian.qda(0.5).fit(x, y, num_classes=3))(x, y1)
  ll = np.asarray(gaussian.qda(0.5).log_likelihood(params, x))
  assert np.all(ll[:, 1] == -np.inf) and np.all(np.isfinite(ll[:, [0, 2]]))


def test_digits_experiment_quick_path(tmp_path, capsys):
  # Smoke test of experiments/gaussian_digits.py (digits only, no figure): jgen and
  # scikit-learn agree on every model both define.
  import importlib.util
  import pathlib
  path = pathlib.Path(__file__).parents[1] / "experiments" / "gaussian_digits.py"
  spec = importlib.util.spec_from_file_location("gaussian_digits", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  rows = module.main(["--out", str(tmp_path), "--no-plot"])
  assert (tmp_path / "results.json").exists()
  assert capsys.readouterr().out.splitlines()[-2:] == ["wrote:", f"  {tmp_path / 'results.json'}"]
  assert len(rows) == 5
  for r in rows:
    if "sklearn_acc" in r:
      # Same predictions on all 360 test images (accuracies equal up to rounding).
      assert abs(r["jgen_acc"] - r["sklearn_acc"]) < 1e-12
      assert r["max_abs_proba_diff"] < 1e-6


_CONST_VALUES = (0.0, 1.0, 0.3, -7.1, 1234.567, 3e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("column", [0, 2, 3])
def test_constant_feature_decided_the_same_in_every_dtype(dtype, column):
  # A feature constant in training has a covariance of pure rounding error. Whether
  # that is caught must not depend on how one CPU rounds a Cholesky pivot: the
  # relative criterion (jgen.gaussian.covariance_ok) rejects it at every value and
  # column, in float32 and float64 alike; regularisation turns it into a density.
  rng = np.random.default_rng(column)
  n = 90
  x = rng.normal(size=(n, 4)).astype(dtype)
  y = np.repeat(np.arange(3), n // 3).astype(np.int32)
  for value in _CONST_VALUES:
    xc = x.copy()
    xc[:, column] = dtype(value)
    with pytest.raises(ValueError, match="pooled within-class covariance is not pos"):
      gaussian.lda().fit(xc, y, num_classes=3)
    with pytest.raises(ValueError, match="covariance of class 0 is not positive"):
      gaussian.qda().fit(xc, y, num_classes=3)
    with pytest.raises(ValueError, match="class 0 has a zero"):
      gaussian.gaussian_nb(0.0).fit(xc, y, num_classes=3)
    for model in (gaussian.lda(0.1), gaussian.qda(0.1)):
      params = model.fit(xc, y, num_classes=3)
      assert np.all(np.isfinite(model.log_likelihood(params, xc)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_collinear_features_rejected_at_any_scale(dtype):
  # Feature 3 = 2 * feature 0 - feature 1 exactly (up to the rounding of the
  # product): the pooled covariance is singular, whatever the units of x.
  rng = np.random.default_rng(1)
  x = rng.normal(size=(90, 4))
  x[:, 3] = 2 * x[:, 0] - x[:, 1]
  y = np.repeat(np.arange(3), 30).astype(np.int32)
  for scale in (1e-3, 1.0, 1e4):
    with pytest.raises(ValueError, match="not positive definite"):
      gaussian.lda().fit((x * scale).astype(dtype), y, num_classes=3)
  # A feature on a very different scale that is not collinear is accepted.
  x[:, 3] = rng.normal(size=90) * 1e4 + 5e4
  params = gaussian.lda().fit(x.astype(dtype), y, num_classes=3)
  assert bool(np.all(np.asarray(gaussian.valid_classes(params))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_covariance_decisions_on_the_host_equal_the_traced_ones(dtype):
  # The scikit-learn estimators decide and factor with xp=numpy (no program to
  # compile); the families with jax.numpy. Same decisions, and U U^T = C^{-1} (closed
  # form) for the positive definite ones: a well-conditioned covariance, one with a
  # constant feature, one with a collinear feature, a scaled one and an identity.
  rng = np.random.default_rng(0)
  a = rng.standard_normal((50, 6))
  good = a.T @ a / 50
  const = good.copy()
  const[2, :] = const[:, 2] = 0.0
  coll = a.copy()
  coll[:, 4] = a[:, 1] - 2 * a[:, 3]
  coll = coll.T @ coll / 50
  cov = np.stack([good, const, coll, 1e6 * good, np.eye(6)]).astype(dtype)
  mean_sq = np.ones((5, 6), dtype)
  ok_dev = np.asarray(jax.jit(jax.vmap(covariance_ok))(jnp.asarray(cov), jnp.asarray(mean_sq)))
  u_dev = np.asarray(jax.jit(jax.vmap(precision_cholesky))(jnp.asarray(cov),
                                                          jnp.asarray(mean_sq)))
  ok_host = covariance_ok(cov, mean_sq, xp=np)
  u_host = precision_cholesky(cov, mean_sq, xp=np)
  np.testing.assert_array_equal(ok_host, [True, False, False, True, True])
  np.testing.assert_array_equal(ok_dev, ok_host)
  assert u_host.dtype == dtype
  assert np.isnan(u_host[~ok_host]).all()
  rtol = 1e-4 if dtype == np.float32 else 1e-10
  for c, u, ud in zip(cov[ok_host], u_host[ok_host], u_dev[ok_host]):
    np.testing.assert_allclose(u, ud, rtol=rtol, atol=rtol * np.abs(ud).max())
    inv = np.linalg.inv(c.astype(np.float64))
    np.testing.assert_allclose(u.astype(np.float64) @ u.T, inv, rtol=0,
                               atol=10 * rtol * np.abs(inv).max())
