"""Missing features: exact marginal scores and fits from observed entries.

References: the marginal of a Gaussian over the observed features is the Gaussian with
the observed sub-vector of the mean and the observed block of the covariance, computed
here example by example in float64 with SciPy after dropping the missing columns; EM
cannot lower the observed-data log-likelihood (Dempster, Laird and Rubin, 1977).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import jgen
from jgen import datasets

_MODELS = {
    "nb": lambda: jgen.gaussian_nb(),
    "nb_pooled": lambda: jgen.gaussian_nb(pooled=True),
    "lda": lambda: jgen.lda(shrinkage=0.1),
    "qda": lambda: jgen.qda(reg_param=0.1),
}


@functools.lru_cache(maxsize=None)
def _data(name):
  return datasets.load(name, dtype=np.float64)


def _mask(shape, frac, seed):
  rng = np.random.default_rng(seed)
  o = rng.random(shape) >= frac
  o[0] = False            # a row with every feature missing
  o[1] = True             # a complete row
  return o


def _reference(params, x, o):
  """``log p(x_o | y=k)`` by dropping the missing columns, row by row, in float64."""
  means = np.asarray(params.means, np.float64)
  k_num = means.shape[0]
  out = np.zeros((x.shape[0], k_num))
  if isinstance(params, jgen.gaussian.GaussianNBParams):
    sd = np.sqrt(np.asarray(params.variances, np.float64))
    for i in range(x.shape[0]):
      idx = np.flatnonzero(o[i])
      for k in range(k_num):
        out[i, k] = sps.norm.logpdf(x[i, idx], means[k, idx], sd[k, idx]).sum()
    return out
  u = np.asarray(params.prec_chol, np.float64)
  u = np.broadcast_to(u, (k_num,) + u.shape[-2:])
  covs = [np.linalg.inv(u[k] @ u[k].T) for k in range(k_num)]
  for i in range(x.shape[0]):
    idx = np.flatnonzero(o[i])
    if idx.size == 0:
      continue            # the empty marginal: density 1
    for k in range(k_num):
      out[i, k] = sps.multivariate_normal.logpdf(
          x[i, idx], means[k, idx], covs[k][np.ix_(idx, idx)])
  return out


@pytest.mark.parametrize("name", sorted(_MODELS))
def test_marginal_equals_dropping_columns_float64(name):
  x, y, xt, _ = _data("wine")
  x, xt = (x - x.mean(0)) / x.std(0), (xt - x.mean(0)) / x.std(0)
  model = _MODELS[name]()
  params = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=3)
  o = _mask(xt.shape, 0.4, 0)
  xn = np.where(o, xt, np.nan)
  got = np.asarray(model.log_likelihood(params, jnp.asarray(xn), observed=jnp.asarray(o)))
  ref = _reference(params, xt, o)
  scale = np.abs(ref).max()
  np.testing.assert_allclose(got, ref, rtol=0, atol=1e-11 * scale)
  np.testing.assert_array_equal(got[0], np.zeros(3))     # nothing seen: the prior


@pytest.mark.parametrize("name", sorted(_MODELS))
def test_float32_marginal_close_to_float64(name):
  x, y, xt, _ = _data("digits")
  model = _MODELS[name]()
  p64 = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=10)
  p32 = jax.tree.map(lambda a: a.astype(jnp.float32), p64)
  o = _mask(xt.shape, 0.5, 1)
  s64 = np.asarray(model.log_likelihood(p64, jnp.asarray(xt), observed=jnp.asarray(o)))
  s32 = np.asarray(model.log_likelihood(p32, jnp.asarray(xt, jnp.float32),
                                        observed=jnp.asarray(o)))
  assert s32.dtype == np.float32
  ok = np.isfinite(s64)
  np.testing.assert_array_equal(np.isfinite(s32), ok)
  # Scores reach |s| ~ 1e4 on digits; float32 keeps them to a relative 1e-5 of that.
  np.testing.assert_allclose(s32[ok], s64[ok], rtol=0, atol=1e-5 * np.abs(s64[ok]).max())


@pytest.mark.parametrize("name", sorted(_MODELS))
def test_all_observed_equals_complete_scores_and_all_missing_gives_prior(name):
  x, y, xt, _ = _data("wine")
  model = _MODELS[name]()
  params = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=3)
  full = np.asarray(model.log_likelihood(params, jnp.asarray(xt)))
  seen = np.asarray(model.log_likelihood(params, jnp.asarray(xt),
                                         observed=jnp.ones(xt.shape, bool)))
  np.testing.assert_allclose(seen, full, rtol=1e-10, atol=1e-10 * np.abs(full).max())
  none = model.log_likelihood(params, jnp.full(xt.shape, jnp.nan),
                              observed=jnp.zeros(xt.shape, bool))
  post = jgen.log_posterior(model, params, jnp.asarray(xt[:1]))  # shape only
  assert post.shape == (1, 3)
  np.testing.assert_array_equal(np.asarray(none), 0.0)
  np.testing.assert_allclose(
      np.asarray(jgen.log_posterior(none, params.log_prior)),
      np.broadcast_to(np.asarray(params.log_prior), none.shape), atol=1e-12)


@pytest.mark.parametrize("name", sorted(_MODELS))
def test_one_program_for_any_mix_of_patterns_batched(name):
  x, y, xt, _ = _data("wine")
  model = _MODELS[name]()
  params = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=3)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def score(params, x, o):
    return model.log_likelihood(params, x, observed=o)

  outs = []
  for seed, frac in enumerate((0.0, 0.3, 0.9)):
    o = _mask(xt.shape, frac, seed)
    outs.append((o, np.asarray(score(params, jnp.asarray(xt), jnp.asarray(o)))))
  for o, got in outs:   # jitted == eager; a batch [2, M/2, D] == the flat rows
    eager = model.log_likelihood(params, jnp.asarray(xt), observed=jnp.asarray(o))
    np.testing.assert_allclose(got, np.asarray(eager), rtol=1e-12, atol=1e-12)
    m = xt.shape[0] // 2 * 2
    batched = model.log_likelihood(params, jnp.asarray(xt[:m].reshape(2, m // 2, -1)),
                                   observed=jnp.asarray(o[:m].reshape(2, m // 2, -1)))
    np.testing.assert_allclose(np.asarray(batched).reshape(m, 3), got[:m],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pos", ["first", "middle", "last"])
def test_nan_is_an_error_unless_marked_unobserved(pos):
  x, y, _, _ = _data("digits")
  model = jgen.lda(shrinkage=0.1)
  params = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=10)
  big = np.tile(x, (2, 1)).astype(np.float32)         # 2874 x 64 = 183,936 entries
  flat = {"first": 0, "middle": big.size // 2, "last": big.size - 1}[pos]
  bad = big.copy().reshape(-1)
  bad[flat] = np.nan
  bad = bad.reshape(big.shape)
  params32 = jax.tree.map(lambda a: a.astype(jnp.float32), params)
  o = np.ones(big.shape, bool)
  with pytest.raises(ValueError, match="x contains 1 non-finite.*observed entries"):
    model.log_likelihood(params32, jnp.asarray(bad), observed=jnp.asarray(o))
  o.reshape(-1)[flat] = False
  scores = model.log_likelihood(params32, jnp.asarray(bad), observed=jnp.asarray(o))
  assert int(jnp.sum(~jnp.isfinite(scores))) == 0


def test_observed_must_be_a_boolean_mask_of_x_shape():
  x, y, xt, _ = _data("wine")
  model = jgen.gaussian_nb()
  params = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=3)
  with pytest.raises(TypeError, match="observed must be a boolean mask"):
    model.log_likelihood(params, jnp.asarray(xt), observed=jnp.ones(xt.shape))
  with pytest.raises(ValueError, match="observed must have the shape of x"):
    model.log_likelihood(params, jnp.asarray(xt), observed=jnp.ones(xt.shape[1:], bool))


@pytest.mark.parametrize("pooled", [False, True])
def test_naive_bayes_fit_from_observed_entries_equals_per_feature_loop(pooled):
  x, y, _, _ = _data("wine")
  o = _mask(x.shape, 0.3, 2)
  xn = np.where(o, x, np.nan)
  vs = 1e-9 if not pooled else 1e-6
  model = jgen.gaussian_nb(var_smoothing=vs, pooled=pooled)
  params = model.fit(jnp.asarray(xn), jnp.asarray(y), num_classes=3,
                     observed=jnp.asarray(o))
  means = np.stack([np.nanmean(xn[y == k], axis=0) for k in range(3)])
  np.testing.assert_allclose(np.asarray(params.means), means, rtol=1e-12)
  if pooled:   # pooled within-class MLE per feature, plus the absolute epsilon
    sq = sum(np.nansum((xn[y == k] - means[k]) ** 2, axis=0) for k in range(3))
    var = np.broadcast_to(sq / o.sum(0) + vs, means.shape)
  else:        # per-class MLE plus var_smoothing times the largest observed variance
    var = np.stack([np.nanvar(xn[y == k], axis=0) for k in range(3)])
    var = var + vs * np.nanvar(xn, axis=0).max()
  np.testing.assert_allclose(np.asarray(params.variances), var, rtol=1e-10)
  np.testing.assert_allclose(np.exp(np.asarray(params.log_prior)),
                             np.bincount(y) / len(y), rtol=1e-12)


@pytest.mark.parametrize("name", ["nb", "nb_pooled", "lda"])
def test_weighted_fit_from_observed_entries_equals_repeated_rows(name):
  # Integer weights mean repeated examples (the definition of sample_weight).
  x, y, _, _ = _data("wine")
  o = _mask(x.shape, 0.3, 5)
  o[0] = True
  reps = np.random.default_rng(6).integers(0, 3, len(y))
  reps[:3] = 1
  model = _MODELS[name]()
  xn = np.where(o, x, np.nan)
  a = jgen.gaussian.fit_missing(model, jnp.asarray(xn), jnp.asarray(y), jnp.asarray(o),
                                num_classes=3, sample_weight=jnp.asarray(reps, float),
                                max_iter=5, tol=0.0)
  b = jgen.gaussian.fit_missing(model, jnp.asarray(np.repeat(xn, reps, 0)),
                                jnp.asarray(np.repeat(y, reps)),
                                jnp.asarray(np.repeat(o, reps, 0)), num_classes=3,
                                max_iter=5, tol=0.0)
  for u, v in zip(a.params, b.params):
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-9,
                               atol=1e-9 * np.abs(np.asarray(v)).max())


@pytest.mark.parametrize("name", sorted(_MODELS))
def test_fit_with_everything_observed_equals_fit(name):
  x, y, _, _ = _data("wine")
  model = _MODELS[name]()
  want = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=3)
  got = jgen.gaussian.fit_missing(model, jnp.asarray(x), jnp.asarray(y),
                                  jnp.ones(x.shape, bool), num_classes=3)
  for a, b in zip(got.params, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9,
                               atol=1e-9 * np.abs(np.asarray(b)).max())


@pytest.mark.parametrize("make_model", [lambda: jgen.lda(), lambda: jgen.qda()])
def test_em_never_lowers_the_observed_data_log_likelihood(make_model):
  x, y, _, _ = _data("wine")
  x = (x - x.mean(0)) / x.std(0)
  o = _mask(x.shape, 0.3, 3)
  o[0] = True   # every row observes something (the all-missing row adds a constant)
  model = make_model()
  res = jgen.gaussian.fit_missing(model, jnp.asarray(np.where(o, x, np.nan)),
                                  jnp.asarray(y), jnp.asarray(o), num_classes=3,
                                  max_iter=40, tol=0.0)
  hist = np.asarray(res.log_likelihood)
  assert int(res.num_iter) == 40 and np.isfinite(hist).sum() == 41
  steps = np.diff(hist)
  # Non-decreasing up to float64 rounding of a sum of |ll| ~ 2e3.
  assert steps.min() >= -1e-10 * np.abs(hist).max(), steps.min()
  assert hist[-1] > hist[0] + 1.0        # and it does climb from the imputed start
  # The history is the observed-data log-likelihood of the returned params.
  ll = model.log_likelihood(res.params, jnp.asarray(np.where(o, x, 0.0)),
                            observed=jnp.asarray(o)) + res.params.log_prior[None, :]
  direct = float(jnp.sum(jnp.take_along_axis(ll, jnp.asarray(y)[:, None], axis=1)))
  np.testing.assert_allclose(hist[-1], direct, rtol=1e-10)


def test_em_keeps_the_regularisation_and_fit_forwards_observed():
  x, y, _, _ = _data("wine")
  o = _mask(x.shape, 0.2, 4)
  xn = jnp.asarray(np.where(o, x, np.nan))
  for model in (jgen.lda(shrinkage=0.3), jgen.qda(reg_param=0.3)):
    res = jgen.gaussian.fit_missing(model, xn, jnp.asarray(y), jnp.asarray(o),
                                    num_classes=3)
    assert bool(res.converged)
    via_fit = model.fit(xn, jnp.asarray(y), num_classes=3, observed=jnp.asarray(o))
    for a, b in zip(via_fit, res.params):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The regularised covariance has eigenvalues of at least r (QDA: (1-r) C + r I).
    if model.name == "qda":
      cov = jgen.gaussian.missing.covariance_from_prec_chol(res.params.prec_chol)
      assert float(jnp.linalg.eigvalsh(cov).min()) >= 0.3 * (1 - 1e-9)


def test_fit_missing_errors_name_the_argument():
  x, y, _, _ = _data("wine")
  o = np.ones(x.shape, bool)
  o[y == 1, 4] = False                      # feature 4 never seen in class 1
  with pytest.raises(ValueError, match="feature 4 is never observed in class 1"):
    jgen.gaussian.fit_missing(jgen.gaussian_nb(), jnp.asarray(x), jnp.asarray(y),
                              jnp.asarray(o), num_classes=3)
  bad = x.copy()
  bad[5, 2] = np.nan
  with pytest.raises(ValueError, match="x contains 1 non-finite"):
    jgen.gaussian.fit_missing(jgen.lda(), jnp.asarray(bad), jnp.asarray(y),
                              jnp.ones(x.shape, bool), num_classes=3)
  with pytest.raises(TypeError, match="observed must be a boolean mask"):
    jgen.gaussian.fit_missing(jgen.lda(), jnp.asarray(x), jnp.asarray(y),
                              jnp.ones(x.shape), num_classes=3)


def _em_step_reference(params, x, y, o, pooled):
  """One EM step's expected statistics in float64, row by row with the missing columns
  dropped (Little and Rubin, ch. 11): ``x_m = mu_m + S_mo S_oo^{-1} (x_o - mu_o)`` and
  the conditional covariance ``S_mm - S_mo S_oo^{-1} S_om`` added to the second moments,
  all about the current class means."""
  means = np.asarray(params.means, np.float64)
  k_num, d = means.shape
  u = np.broadcast_to(np.asarray(params.prec_chol, np.float64), (k_num, d, d))
  covs = [np.linalg.inv(u[k] @ u[k].T) for k in range(k_num)]
  count, s1 = np.zeros(k_num), np.zeros((k_num, d))
  s2 = np.zeros((1 if pooled else k_num, d, d))
  for i in range(x.shape[0]):
    c, s = y[i], covs[y[i]]
    ob, mi = np.flatnonzero(o[i]), np.flatnonzero(~o[i])
    x_hat, cond = x[i].copy(), np.zeros((d, d))
    gain = s[np.ix_(mi, ob)] @ np.linalg.inv(s[np.ix_(ob, ob)])
    x_hat[mi] = means[c, mi] + gain @ (x[i, ob] - means[c, ob])
    cond[np.ix_(mi, mi)] = s[np.ix_(mi, mi)] - gain @ s[np.ix_(ob, mi)]
    dev = x_hat - means[c]
    count[c] += 1
    s1[c] += dev
    s2[0 if pooled else c] += np.outer(dev, dev) + cond
  return jgen.gaussian.GaussianStats(jnp.asarray(count), jnp.asarray(count[:, None] * means),
                                     jnp.asarray(s1), jnp.asarray(s2))


@pytest.mark.parametrize("name", ["lda", "qda"])
def test_em_step_equals_float64_row_by_row_reference(name):
  x, y, _, _ = _data("wine")
  x = (x - x.mean(0)) / x.std(0)
  o = _mask(x.shape, 0.3, 7)
  o[0] = True
  model = _MODELS[name]()
  xn, yj, oj = jnp.asarray(np.where(o, x, np.nan)), jnp.asarray(y), jnp.asarray(o)
  one = jgen.gaussian.fit_missing(model, xn, yj, oj, num_classes=3, max_iter=1, tol=0.0)
  two = jgen.gaussian.fit_missing(model, xn, yj, oj, num_classes=3, max_iter=2, tol=0.0)
  assert int(two.num_iter) == 2
  stats = _em_step_reference(one.params, x, y, o, pooled=name == "lda")
  want = jgen.gaussian.fit_stats(model, stats)
  for a, b in zip(two.params, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9,
                               atol=1e-9 * np.abs(np.asarray(b)).max())
