"""Fixed-difficulty mixtures, naive Bayes's asymptotic error and the resolved m*."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jgen import simulate


def _dense_cov(mix):
  var = np.asarray(mix.variances, np.float64)
  corr = np.eye(var.size)
  if mix.correlation_cholesky is not None:
    chol = np.asarray(mix.correlation_cholesky, np.float64)
    corr = chol @ chol.T
  return np.sqrt(var)[:, None] * corr * np.sqrt(var)[None, :]


@pytest.mark.parametrize("k", [2, 3, 5, 7])
@pytest.mark.parametrize("level", [0.05, 0.1, 0.2])
@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_bayes_error_is_held_at_the_level(k, level, rho):
  for n in (10, 101):
    mix = simulate.fixed_difficulty_mixture(k, n, level, correlation=rho)
    # float32 means: the level holds to the rounding of the scale (~1e-7 relative).
    assert abs(simulate.bayes_error(mix) - level) < 1e-6
    # The paper's structure: means on the line c_k 1_n, covariance diagonal of
    # floor(n/2) entries n and the rest 1 (divided by 2^(2(K-3)) for K > 2).
    base = simulate.zheng_mixture(k, n)
    np.testing.assert_array_equal(mix.variances, base.variances)
    ratio = np.asarray(mix.means, np.float64) / np.where(base.means == 0, 1, base.means)
    scale = ratio[np.asarray(base.means) != 0]
    np.testing.assert_allclose(scale, scale[0], rtol=1e-6)


def test_two_class_level_matches_the_mahalanobis_closed_form():
  # K = 2: Bayes error = Phi(-Delta / 2), Delta^2 = u^T Sigma^{-1} u with the dense
  # covariance solved by NumPy (an independent route from the AR(1) factor).
  for rho in (0.0, 0.3, 0.8):
    mix = simulate.fixed_difficulty_mixture(2, 50, 0.1, correlation=rho)
    u = np.diff(np.asarray(mix.means, np.float64), axis=0)[0]
    delta = math.sqrt(u @ np.linalg.solve(_dense_cov(mix), u))
    assert abs(stats.norm.cdf(-delta / 2) - 0.1) < 1e-6


@pytest.mark.parametrize("k,rho", [(2, 0.0), (3, 0.5), (7, 0.0), (5, 0.5)])
def test_level_agrees_with_monte_carlo(k, rho):
  # 2e5 draws classified by the exact posterior; within 4 binomial standard errors.
  mix = simulate.fixed_difficulty_mixture(k, 40, 0.1, correlation=rho)
  est, se = simulate.bayes_error_mc(jax.random.key(3), mix, 200_000, chunk=50_000)
  assert abs(est - 0.1) < 4 * se


def test_naive_bayes_asymptotic_error_closed_form_and_monte_carlo():
  mix = simulate.fixed_difficulty_mixture(3, 40, 0.1, correlation=0.5)
  exact = simulate.nb_asymptotic_error(mix)
  assert exact > simulate.bayes_error(mix) + 0.005     # misspecified: strictly worse
  x, y = simulate.sample(jax.random.key(5), mix, 200_000)
  mc = simulate.rule_error(simulate.nb_population_mixture(mix), x, y)
  se = math.sqrt(exact * (1 - exact) / y.size)
  assert abs(mc - exact) < 4 * se
  # Independent features: naive Bayes is the Bayes rule.
  ind = simulate.fixed_difficulty_mixture(3, 40, 0.1)
  assert simulate.nb_asymptotic_error(ind) == simulate.bayes_error(ind)


def test_naive_bayes_fitted_on_a_large_sample_reaches_the_closed_form():
  # The pooled naive Bayes fitted on 5e4 points: its error on fresh 2e5 points is the
  # closed form within 4 standard errors (its excess error, of order D / N with
  # D = 16, is far below one standard error, 6.7e-4).
  mix = simulate.fixed_difficulty_mixture(2, 16, 0.1, correlation=0.6)
  test = simulate.sample(jax.random.key(1), mix, 200_000)
  err, _, _ = simulate.evaluate_sizes(jax.random.key(2), mix, test, [50_000],
                                      model="nb", num_reps=1)
  exact = simulate.nb_asymptotic_error(mix)
  assert abs(float(err[0, 0]) - exact) < 4 * math.sqrt(exact * (1 - exact) / 200_000)


def test_ar1_factor_and_correlated_likelihood():
  rho = 0.7
  chol = simulate.ar1_cholesky(6, rho)
  lag = np.abs(np.subtract.outer(np.arange(6), np.arange(6)))
  np.testing.assert_allclose(chol @ chol.T, rho ** lag, rtol=1e-12, atol=1e-15)
  mix = simulate.fixed_difficulty_mixture(3, 6, 0.2, correlation=rho, dtype=jnp.float64)
  x, _ = simulate.sample(jax.random.key(0), mix, 50)
  ref = np.stack([stats.multivariate_normal(np.asarray(mu), _dense_cov(mix)).logpdf(
      np.asarray(x)) for mu in mix.means], -1)
  np.testing.assert_allclose(simulate.class_log_likelihood(mix, x), ref, rtol=1e-10)
  # Sample covariance of the draws matches the AR(1) covariance (k = 5 SE per entry).
  xs, ys = simulate.sample(jax.random.key(1), mix, 120_000)
  xs = np.asarray(xs) - np.asarray(mix.means)[np.asarray(ys)]
  cov = _dense_cov(mix)
  se = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / len(xs))
  assert np.all(np.abs(xs.T @ xs / len(xs) - cov) < 5 * se)


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="bayes_error"):
    simulate.fixed_difficulty_mixture(3, 10, 0.7)
  with pytest.raises(ValueError, match="correlation"):
    simulate.fixed_difficulty_mixture(2, 10, 0.1, correlation=1.0)
  with pytest.raises(ValueError, match="errors"):
    simulate.bootstrap_m_star([2, 4], np.zeros((3, 5)), 0.1)


def test_resolved_grid_is_dense_at_the_low_end():
  grid = simulate.resolved_grid(3, 5000)
  np.testing.assert_array_equal(grid[:32], 3 * np.arange(1, 33))
  assert np.all(grid % 3 == 0) and np.all(np.diff(grid) > 0) and grid[-1] >= 5000
  # Past the dense part consecutive sizes differ by at most 5% (rounded up to K).
  tail = grid[32:]
  assert np.all(tail[1:] <= np.ceil(tail[:-1] * 1.05 / 3) * 3 + 3)


def test_censoring_is_reported():
  sizes = np.array([2, 4, 6, 8])
  errors = np.tile(np.array([[0.3], [0.2], [0.15], [0.12]]), (1, 10))
  left = simulate.bootstrap_m_star(sizes, errors, 0.5)
  assert (left.m_star, left.censored) == (2, "left")
  right = simulate.bootstrap_m_star(sizes, errors, 0.1)
  assert (right.m_star, right.censored, right.low, right.high) == (None, "right", None,
                                                                    None)
  assert np.all(np.isinf(right.boot))
  inside = simulate.bootstrap_m_star(sizes, errors, 0.16)
  assert (inside.m_star, inside.censored) == (6, None)


def test_bootstrap_interval_covers_on_a_synthetic_curve():
  # Learning curves of nested training sets are smooth within a repetition: here
  # repetition r has error 0.1 + a_r / m + 0.002 noise, a_r ~ N(1, 0.5^2), on a grid of
  # step 10. The target 0.1 + 1/205 is first met in expectation at m = 210. Over 300
  # synthetic experiments of 100 repetitions the 95% interval must cover 210 at least
  # 0.95 - 3 binomial SE (3 * sqrt(0.95 * 0.05 / 300) = 0.038) of the time.
  sizes = np.arange(10, 1001, 10)
  target, true_m = 0.1 + 1 / 205, 210
  rng = np.random.default_rng(0)
  covered = 0
  trials = 300
  for t in range(trials):
    a = rng.normal(1.0, 0.5, 100)
    errors = (0.1 + a[None, :] / sizes[:, None]
              + 0.002 * rng.standard_normal((sizes.size, 100)))
    res = simulate.bootstrap_m_star(sizes, errors, target, num_boot=400, seed=t)
    covered += res.low <= true_m <= res.high
  assert covered / trials >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / trials)


def test_growth_fit_recovers_slopes():
  ns = np.array([4.0, 8, 16, 32])
  rng = np.random.default_rng(1)
  lin = 7 * ns[:, None] + rng.normal(0, 1, (4, 500))
  fit = simulate.growth_fit(ns, lin)
  assert fit["slope_vs_n_ci"][0] < 7 < fit["slope_vs_n_ci"][1]
  assert fit["r2_vs_n"] > fit["r2_vs_log_n"]
  log = 20 * np.log(ns)[:, None] + rng.normal(0, 1, (4, 500))
  fit = simulate.growth_fit(ns, log)
  assert fit["slope_vs_log_n_ci"][0] < 20 < fit["slope_vs_log_n_ci"][1]
  assert fit["r2_vs_log_n"] > fit["r2_vs_n"]
  two = simulate.growth_fit(ns[:2], lin[:2])     # any two points lie on a line
  assert two["r2_vs_n"] is None and two["slope_vs_n_ci"][0] < 7 < two["slope_vs_n_ci"][1]


def test_scan_until_equals_evaluate_sizes_and_stops_past_the_crossing():
  mix = simulate.fixed_difficulty_mixture(2, 8, 0.1)
  key = jax.random.key(4)
  test_key, train_key = jax.random.split(key)
  test = simulate.sample(test_key, mix, 4000)
  grid = simulate.resolved_grid(2, 2000)
  target = simulate.rule_error(mix, *test) + 0.02
  sizes, errors, bad = simulate.scan_until(key, mix, grid, model="nb", stop_target=target,
                                           num_reps=20, test=test)
  ref, _, _ = simulate.evaluate_sizes(train_key, mix, test, sizes, model="nb",
                                      num_reps=20)
  np.testing.assert_allclose(errors, ref, atol=1e-7)
  first = sizes[np.argmax(errors.mean(1) < target)]
  assert bad == 0 and sizes[-1] >= 1.5 * first and sizes[-1] < grid[-1]


def test_fixed_difficulty_experiment_smoke(tmp_path):
  from experiments import nb_vs_lr
  res = nb_vs_lr.main(["--mode", "fixed-difficulty", "--K", "2", "--n", "4", "8",
                       "--reps", "8", "--num-test", "2000", "--max-factor", "10",
                       "--no-progress", "--out", str(tmp_path)])
  saved = json.loads((tmp_path / "results.json").read_text())
  assert len(saved["records"]) == 4 and not saved["config"]["partial"]
  assert (tmp_path / "m_star_vs_n.png").stat().st_size > 0
  for r in res["records"]:
    assert [m["eps"] for m in r["m_star"]] == [0.005, 0.01, 0.02]
    assert r["m_star"][0]["m_star"] is None or r["m_star"][0]["m_star"] > 2


def test_summary_marks_censored_cells():
  from experiments import nb_vs_lr_fixed
  rec = dict(K=2, n=4, rho=0.0, model="nb", level=0.1, asymptotic_error=0.1,
             m_star=[dict(eps=e, m_star=m, low=lo, high=hi, censored=c, boot=[])
                     for e, m, lo, hi, c in ((0.005, None, None, None, "right"),
                                             (0.01, 2, 2.0, 4.0, "left"),
                                             (0.02, 6, 4.0, 8.0, None))])
  text = nb_vs_lr_fixed.summary(dict(records=[rec], fits=nb_vs_lr_fixed.fits([rec])))
  row = next(line for line in text.splitlines() if line.startswith("| 0.1 | 2 | 4 "))
  assert "censored (none)" in row and "2 [2, 4] censored" in row and "6 [4, 8] |" in row


def test_real_data_verdicts_need_two_standard_errors():
  from experiments import nb_vs_lr_real
  sizes = [1, 2, 3, 4, 5]
  se = [0.01] * 5
  # NB - LR: tie, NB better by 3 SE, tie, LR better by 3 SE twice.
  v = nb_vs_lr_real.verdicts(sizes, [0.0, -0.03, 0.01, 0.03, 0.05], se)
  assert v == dict(better=["tie", "NB", "tie", "LR", "LR"], few_shot=True,
                   two_regimes=True)
  # 1.5 SE is a tie; NB better again after LR is not two regimes.
  v = nb_vs_lr_real.verdicts(sizes, [-0.015, 0.03, -0.03, 0.0, 0.0], se)
  assert v == dict(better=["tie", "LR", "NB", "tie", "tie"], few_shot=False,
                   two_regimes=False)


def test_scan_until_bootstrap_stop_keeps_m_star_and_its_replicates():
  # Reference: the same scan with only the overshoot rule (overshoot 3, so it runs
  # well past the point where every replicate has crossed).
  mix = simulate.fixed_difficulty_mixture(2, 4, 0.1)
  key = jax.random.key(7)
  test = simulate.sample(jax.random.split(key)[0], mix, 2000)
  grid = simulate.resolved_grid(2, 3000)
  stop = simulate.rule_error(mix, *test) + 0.01
  kw = dict(model="nb", stop_target=stop, num_reps=30, test=test, overshoot=3.0)
  s_all, e_all, _ = simulate.scan_until(key, mix, grid, **kw)
  s_cut, e_cut, _ = simulate.scan_until(key, mix, grid, boot_stop=(200, 3), **kw)
  assert s_cut.size < s_all.size
  np.testing.assert_array_equal(s_cut, s_all[: s_cut.size])
  np.testing.assert_array_equal(e_cut, e_all[: s_cut.size])
  for eps in (0.01, 0.02, 0.05):  # the stop target and looser ones
    a = simulate.bootstrap_m_star(s_all, e_all, stop - 0.01 + eps, num_boot=200, seed=3)
    b = simulate.bootstrap_m_star(s_cut, e_cut, stop - 0.01 + eps, num_boot=200, seed=3)
    assert (a.m_star, a.low, a.high, a.censored) == (b.m_star, b.low, b.high, b.censored)
    np.testing.assert_array_equal(a.boot, b.boot)
  # At the stop every replicate (plain loop over the resampled repetitions) has crossed.
  idx = simulate.boot_indices(30, 200, 3)
  for rows in idx:
    assert any(np.mean([e_cut[g, r] for r in rows]) < stop for g in range(s_cut.size))
  assert simulate.boot_indices(30, 200, 3).tolist() == idx.tolist()
  assert idx.min() >= 0 and idx.max() < 30


def test_fixed_difficulty_records_do_not_depend_on_the_worker_processes(tmp_path):
  from experiments import nb_vs_lr
  args = ["--mode", "fixed-difficulty", "--K", "2", "--n", "4", "--reps", "8",
          "--num-test", "1000", "--max-factor", "10", "--no-progress"]
  one = nb_vs_lr.main(args + ["--jobs", "1", "--out", str(tmp_path / "one")])
  two = nb_vs_lr.main(args + ["--jobs", "2", "--out", str(tmp_path / "two")])
  assert [(r["model"], r["curve"], r["m_star"]) for r in one["records"]] == [
      (r["model"], r["curve"], r["m_star"]) for r in two["records"]]
  assert [r["model"] for r in two["records"]] == ["nb", "lr"]
  with pytest.raises(ValueError, match="--jobs"):
    nb_vs_lr.main(args + ["--jobs", "0", "--out", str(tmp_path / "zero")])
