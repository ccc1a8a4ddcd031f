"""Tests of jgen.simulate: the mixture, its Bayes error and the learning-curve driver."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jgen import gaussian
from jgen import logistic
from jgen import simulate


def test_mixture_matches_the_paper():
  # Zheng et al., ICML 2023, the simulation's "easy" mode: means c_k 1_n with
  # c_0 = -1, c_k = 2^(k-1); covariance diag(n x floor(n/2), 1, ...); for K > 2
  # x <- (x - 2^(K-3)) / 2^(K-3), here 2^(5-3) = 4.
  m2 = simulate.zheng_mixture(2, 5, dtype=jnp.float64)
  np.testing.assert_array_equal(np.asarray(m2.means), [[-1.0] * 5, [1.0] * 5])
  np.testing.assert_array_equal(np.asarray(m2.variances), [5, 5, 1, 1, 1])
  m5 = simulate.zheng_mixture(5, 3, dtype=jnp.float64)
  np.testing.assert_allclose(np.asarray(m5.means[:, 0]),
                             (np.array([-1, 1, 2, 4, 8]) - 4) / 4)
  np.testing.assert_allclose(np.asarray(m5.variances), np.array([3, 1, 1]) / 16)


def test_sample_is_balanced_nested_and_has_the_right_moments(key):
  mix = simulate.zheng_mixture(3, 4, dtype=jnp.float64)
  x, y = simulate.sample(key, mix, 6_000)
  x_small, y_small = simulate.sample(key, mix, 100)
  np.testing.assert_array_equal(np.asarray(x[:100]), np.asarray(x_small))
  np.testing.assert_array_equal(np.bincount(np.asarray(y_small)), [34, 33, 33])
  for k in range(3):
    xk = np.asarray(x)[np.asarray(y) == k]
    se = np.sqrt(np.asarray(mix.variances) / len(xk))
    assert np.all(np.abs(xk.mean(0) - np.asarray(mix.means[k])) < 5 * se)
    # Variance of a sample variance of normals: 2 s^4 / (n - 1).
    se_var = np.sqrt(2 / (len(xk) - 1)) * np.asarray(mix.variances)
    assert np.all(np.abs(xk.var(0, ddof=1) - np.asarray(mix.variances)) < 5 * se_var)


def test_class_log_likelihood_and_posterior_match_scipy(key):
  mix = simulate.zheng_mixture(3, 4, dtype=jnp.float64)
  x, _ = simulate.sample(key, mix, 7)
  got = simulate.class_log_likelihood(mix, x.reshape(7, 1, 4))
  ref = np.stack([stats.multivariate_normal(np.asarray(mix.means[k]),
                                            np.diag(np.asarray(mix.variances))).logpdf(
                                                np.asarray(x)) for k in range(3)], -1)
  np.testing.assert_allclose(np.asarray(got[:, 0]), ref, rtol=1e-12)
  post = simulate.true_log_posterior(mix, x)
  np.testing.assert_allclose(np.asarray(post), ref - np.log(np.exp(ref).sum(-1,
                                                                            keepdims=True)),
                             atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 100])
def test_bayes_error_binary_closed_form(n):
  # K = 2: Phi(-Delta / 2), Delta the Mahalanobis distance between the means (scipy).
  mix = simulate.zheng_mixture(2, n, dtype=jnp.float64)
  diff = np.asarray(mix.means[1] - mix.means[0])
  delta = math.sqrt(diff @ (diff / np.asarray(mix.variances)))
  assert simulate.bayes_error(mix) == pytest.approx(stats.norm.sf(delta / 2), rel=1e-10)


@pytest.mark.parametrize("k", [3, 5])
def test_bayes_error_agrees_with_monte_carlo(key, k):
  # Low dimension so the error is large enough to estimate; 4 standard errors.
  mix = simulate.zheng_mixture(k, 2, dtype=jnp.float64)
  est, se = simulate.bayes_error_mc(key, mix, 400_000)
  exact = simulate.bayes_error(mix)
  assert exact > 0.05
  assert abs(est - exact) < 4 * se


def test_bayes_error_rejects_non_collinear_means():
  mix = simulate.GaussianMixture(jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
                                 jnp.ones(2))
  with pytest.raises(ValueError, match="one line"):
    simulate.bayes_error(mix)


@pytest.mark.parametrize("make", [lambda: gaussian.gaussian_nb(pooled=True),
                                  lambda: gaussian.gaussian_nb(),
                                  lambda: gaussian.lda(0.1), lambda: gaussian.qda(0.1)])
def test_zero_weight_rows_change_no_gaussian_fit(key, make):
  # The public sample_weight path the learning curve uses: padding rows with weight
  # 0 (holding arbitrary finite values) leave every family's fit exactly as on the
  # first m rows (reference: the unweighted fit on the slice, float64).
  mix = simulate.zheng_mixture(3, 5, dtype=jnp.float64)
  x, y = simulate.sample(key, mix, 40)
  x = x.at[23:].multiply(100.0)
  w = (jnp.arange(40) < 23).astype(jnp.float64)
  model = make()
  padded = model.fit(x, y, num_classes=3, sample_weight=w)
  direct = model.fit(x[:23], y[:23], num_classes=3)
  for a, b in zip(padded, direct):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_integer_weights_equal_repeated_rows(key):
  # Weight 2 on a row is the same fit as the row twice (closed form of weighted MLE).
  mix = simulate.zheng_mixture(2, 3, dtype=jnp.float64)
  x, y = simulate.sample(key, mix, 30)
  w = jnp.where(jnp.arange(30) % 3 == 0, 2.0, 1.0)
  rep = np.repeat(np.arange(30), np.asarray(w).astype(int))
  for model in (gaussian.gaussian_nb(), gaussian.lda(), gaussian.qda()):
    a = model.fit(x, y, num_classes=2, sample_weight=w)
    b = model.fit(x[rep], y[rep], num_classes=2)
    for u, v in zip(a, b):
      np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-9, atol=1e-12)


def _test_set(key, mix, n=2000):
  return simulate.sample(key, mix, n)


def test_padded_fits_equal_direct_fits(key):
  # A size-m evaluation inside a larger bucket (zero-weight rows, zero-padded
  # features) gives the fit on exactly the first m examples.
  # Shapes shared with test_find_m_star_scan_and_bisect, so nothing new compiles.
  test_key, train_key = jax.random.split(key)
  mix = simulate.zheng_mixture(2, 8)
  test = _test_set(test_key, mix)
  errors, params, ok = simulate.evaluate_sizes(train_key, mix, test, [10, 21, 30, 40],
                                               model="lr", num_reps=3)
  assert errors.shape == (4, 3) and ok.all()
  x, y = simulate.sample(jax.random.split(train_key, 3)[1], mix, 21)
  lr = logistic.logistic_regression(1.0)
  direct = lr.fit(x, y, num_classes=2)
  np.testing.assert_allclose(np.asarray(params.weights[1, 1]),
                             np.asarray(direct.weights), atol=2e-3)
  err = np.mean(np.asarray(lr.log_likelihood(direct, test[0]).argmax(-1)) != np.asarray(test[1]))
  assert abs(errors[1, 1] - err) <= 2 / len(test[1])


def test_whole_sweep_compiles_once(key):
  # Sizes in several buckets (64 and 256) and skipped slots share one program.
  mix = simulate.zheng_mixture(2, 8)
  test = _test_set(key, mix)
  model = simulate.resolve_model("nb")
  prog = simulate.curve_program(model, num_classes=2, buckets=simulate.buckets_for(200))
  assert prog.buckets == (64, 256)
  # The program is shared process-wide: another test in this worker (a float32
  # docstring example) may have compiled it already for other dtypes. Count the
  # programs this sweep adds: at most one for all sizes, buckets and skipped slots.
  before = prog.run._cache_size()
  for sizes in ([4, 5, 6, 7], [9, 100, 0, 0], [200, 70, 64, 65]):
    simulate.evaluate_sizes(key, mix, test, [s for s in sizes if s], model=model,
                            num_reps=3, chunk=4)
    simulate.evaluate_sizes(key, mix, test, [s for s in sizes if s] + [200],
                            model=model, num_reps=3, chunk=4)
  assert prog.run._cache_size() - before <= 1


def test_find_m_star_scan_and_bisect(key):
  mix = simulate.zheng_mixture(2, 8)
  target = simulate.bayes_error(mix) + 0.01
  grid = simulate.size_grid(2, 8, 200)
  assert grid[0] == 4 and grid[1] - grid[0] == math.ceil(math.log(8))
  scan = simulate.find_m_star(key, mix, model="lr", target=target, grid=grid,
                              num_reps=3, num_test=2000, strategy="scan", chunk=4)
  means = scan.errors.mean(1)
  first = int(np.argmax(means < target))
  assert means[first] < target and np.all(means[:first] >= target)
  assert scan.m_star == int(scan.sizes[first])
  bis = simulate.find_m_star(key, mix, model="lr", target=target, grid=grid,
                             num_reps=3, num_test=2000, strategy="bisect")
  i = list(bis.sizes).index(bis.m_star)
  assert bis.errors[i].mean() < target
  prev = grid[np.searchsorted(grid, bis.m_star) - 1]
  if prev in bis.sizes:  # the grid point just below was evaluated and missed
    assert bis.errors[list(bis.sizes).index(prev)].mean() >= target
  nb = simulate.find_m_star(key, mix, model="nb", target=target, grid=grid,
                            num_reps=3, num_test=2000)
  assert nb.m_star is not None and nb.m_star <= scan.m_star


@pytest.mark.parametrize("model", ["nb", "lr"])
def test_bucket_ratio_changes_padding_not_results(key, model, monkeypatch):
  # The padded rows carry weight 0, so finer buckets (less padding, more compiled
  # branches) fit the same training sets: equal test errors up to one test point of
  # rounding (sums over a different number of zero rows).
  mix = simulate.zheng_mixture(3, 6)
  test = _test_set(key, mix, 1000)
  sizes = [6, 40, 70, 130, 300]
  a, _, _ = simulate.evaluate_sizes(key, mix, test, sizes, model=model, num_reps=2)
  used = []
  buckets_for = simulate.engine.buckets_for
  monkeypatch.setattr(simulate.engine, "buckets_for",
                      lambda m, **kw: used.append(kw) or buckets_for(m, **kw))
  b, _, _ = simulate.evaluate_sizes(key, mix, test, sizes, model=model, num_reps=2,
                                    bucket_ratio=2)
  assert used == [dict(ratio=2)]  # the sweep padded with the ratio it was given
  assert simulate.buckets_for(300, ratio=2) != simulate.buckets_for(300)
  np.testing.assert_allclose(b, a, atol=1.5 / 1000)


def test_bad_input(key):
  mix = simulate.zheng_mixture(3, 4)
  test = _test_set(key, mix, 300)
  with pytest.raises(ValueError, match="m >= |>= num_classes"):
    simulate.evaluate_sizes(key, mix, test, [2], model="nb")
  with pytest.raises(ValueError, match="model"):
    simulate.evaluate_sizes(key, mix, test, [6], model="svm")
  with pytest.raises(ValueError, match="last dimension"):
    simulate.evaluate_sizes(key, mix, (test[0][:, :3], test[1]), [6], model="nb")
  bad = np.array(test[0])
  bad[0, 0] = np.inf
  with pytest.raises(ValueError, match="non-finite"):
    simulate.evaluate_sizes(key, mix, (bad, test[1]), [6], model="nb")
  with pytest.raises(ValueError, match="pad_dim"):
    simulate.pad_mixture(mix, 2)
  with pytest.raises(ValueError, match="increasing"):
    simulate.find_m_star(key, mix, model="nb", target=0.1, grid=[9, 6])
  with pytest.raises(ValueError, match="grid"):
    simulate.find_m_star(key, mix, model="nb", target=0.1, grid=[2, 6])
  for target in (0.0, 1.0, -0.1, 1.5):
    with pytest.raises(ValueError, match="target"):
      simulate.find_m_star(key, mix, model="nb", target=target, grid=[6, 9])
  with pytest.raises(ValueError, match="num_reps"):
    simulate.find_m_star(key, mix, model="nb", target=0.1, grid=[6, 9], num_reps=0)
  for ratio in (1, 2.5, True):
    with pytest.raises(ValueError, match="bucket_ratio"):
      simulate.find_m_star(key, mix, model="nb", target=0.1, grid=[6, 9],
                           bucket_ratio=ratio)
    with pytest.raises(ValueError, match="bucket_ratio"):
      simulate.evaluate_sizes(key, mix, test, [6], model="nb", bucket_ratio=ratio)
  with pytest.raises(ValueError, match="num_classes"):
    simulate.zheng_mixture(1, 4)
  with pytest.raises(ValueError, match="dim"):
    simulate.zheng_mixture(2, 0)


def test_experiment_quick_path_smoke(tmp_path, capsys):
  path = Path(__file__).resolve().parents[1] / "experiments" / "nb_vs_lr.py"
  spec = importlib.util.spec_from_file_location("nb_vs_lr", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  mod.main(["--K", "2", "--n", "4", "8", "--reps", "3", "--num-test", "2000",
            "--max-factor", "10", "--out", str(tmp_path), "--no-progress"])
  res = json.loads((tmp_path / "results.json").read_text())
  assert {(r["K"], r["n"], r["model"], r["strategy"]) for r in res["records"]} == {
      (2, n, m, s) for n in (4, 8) for m in ("nb", "lr") for s in ("scan", "bisect")}
  for r in res["records"]:
    assert set(r["curve"]) == {"m", "mean_error", "std_error"}
    assert "m_star" in r
  assert {f["model"] for f in res["fits"]} == {"nb", "lr"}
  assert (tmp_path / "error_vs_m.png").exists() and (tmp_path / "m_star_vs_n.png").exists()
  assert capsys.readouterr().out.splitlines()[-4:] == ["wrote:"] + [
      f"  {tmp_path / f}" for f in ("results.json", "error_vs_m.png", "m_star_vs_n.png")]
