"""Diffusion Classifier strategies against the exact Bayes classifier on Gaussian data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import diffusion

K, D = 10, 16


def _mixture(num_points, seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  means = 0.8 * rng.normal(size=(K, D))
  variances = np.exp(0.3 * rng.normal(size=(K, D)))
  y = rng.integers(0, K, num_points)
  x = means[y] + np.sqrt(variances[y]) * rng.normal(size=(num_points, D))
  return means.astype(dtype), variances.astype(dtype), x.astype(dtype), y


def test_adaptive_plan_reproduces_the_papers_counts():
  # Li et al. (ICCV 2023), REFERENCES section 2: CIFAR-10 (50, 500)/(5, 1) -> 2,750
  # evaluations per image; ImageNet (50, 100, 500, 1000)/(500, 50, 10, 1) -> 124,500.
  positions, classes, total = diffusion.adaptive_plan((50, 500), (5, 1), 10)
  assert total == 2750 and classes == [10, 5]
  assert [len(p) for p in positions] == [50, 450]
  positions, classes, total = diffusion.adaptive_plan(
      (50, 100, 500, 1000), (500, 50, 10, 1), 1000)
  assert total == 124_500 and classes == [1000, 500, 50, 10]
  # The strided subsets do not nest, so 100 + 400 + 450 (not 50 + 400 + 500) are new.
  assert [len(p) for p in positions] == [50, 100, 400, 450]
  assert sorted(sum(positions, ())) == list(range(1000))


def test_strategies_reach_bayes_accuracy_with_fewer_evaluations():
  # The documented experiment's run at its full size (so the experiment cannot rot):
  # 10 classes, D = 16, 2,000 float32 test points, oracle denoiser, cosine schedule;
  # the reference is the exact Bayes classifier (argmax of the exact log-densities).
  from experiments import diffusion_oracle
  out = {}
  diffusion_oracle.mixture(out, 2000, 512)
  mix = out["mixture"]
  # Tolerance: with 512 antithetic draws the paired ELBO difference of the two best
  # classes has SD ~0.1 nats (measured over replicates), so only points within
  # ~0.3 nats of the Bayes boundary (~1-2% of 2,000) can flip, and each flip changes
  # the accuracy by +-1/2000 with nearly even odds: the expected |gap| is ~0.1-0.2
  # points, the bound is 0.5.
  for name in ("full", "adaptive", "sequential"):
    assert abs(mix[name]["accuracy"] - mix["bayes_accuracy"]) <= 0.005, (name, mix)
  assert mix["full"]["mean_evals"] == K * 512
  assert mix["adaptive"]["mean_evals"] == 10 * 32 + 2 * 480
  assert mix["full"]["mean_evals"] >= 3 * mix["adaptive"]["mean_evals"]
  assert mix["full"]["mean_evals"] >= 3 * mix["sequential"]["mean_evals"]


def test_full_scores_are_class_log_likelihoods():
  means, variances, x, _ = _mixture(1, dtype=np.float64)
  den, params = diffusion.gaussian_oracle(means, variances)
  s = diffusion.linear_schedule()
  key = jax.random.key(2)
  res = diffusion.classify(key, den, params, x[0], K, num_t=16, schedule=s)
  ll = diffusion.class_log_likelihoods(key, den, params, x[0], K, num_t=16, schedule=s)
  np.testing.assert_allclose(res.scores, ll, rtol=1e-12)
  assert int(res.label) == int(np.argmax(ll)) and int(res.num_evals) == K * 16


STRATEGIES = [
    dict(strategy="full", num_t=16),
    dict(strategy="adaptive", n_samples=(4, 16), to_keep=(3, 1)),
    dict(strategy="sequential", num_t=32, chunk_t=4),
]


@pytest.mark.parametrize("opts", STRATEGIES, ids=lambda o: o["strategy"])
def test_batch_equals_single_and_jit_equals_eager(opts):
  k = 4                        # small: three bucket sizes (1, 2, 4) for sequential
  means, variances, x, _ = _mixture(2, seed=1, dtype=np.float64)
  den, params = diffusion.gaussian_oracle(means[:k, :4], variances[:k, :4])
  x = x[:, :4]
  s = diffusion.linear_schedule()
  key = jax.random.key(3)
  batch = diffusion.batch_classify(key, den, params, x, k, schedule=s, **opts)
  keys = jax.random.split(key, 2)
  for n in range(2):
    single = diffusion.classify(keys[n], den, params, x[n], k, schedule=s, **opts)
    np.testing.assert_allclose(batch.scores[n], single.scores, rtol=1e-10)
    assert int(batch.label[n]) == int(single.label)
    assert int(batch.num_evals[n]) == int(single.num_evals)
  if opts["strategy"] != "sequential":
    # adaptive's stage loop is host Python already; full's scores are compared with
    # the eager class_log_likelihoods in test_full_scores_are_class_log_likelihoods.
    return
  with jax.disable_jit():      # while_loop / switch / vmap run op by op
    eager = diffusion.classify(keys[0], den, params, x[0], k, schedule=s, **opts)
  np.testing.assert_allclose(eager.scores, batch.scores[0], rtol=1e-10)
  assert int(eager.num_evals) == int(batch.num_evals[0])


@pytest.mark.parametrize("opts", STRATEGIES, ids=lambda o: o["strategy"])
def test_three_parameter_sets_compile_once(opts):
  # params are traced data: new values of one architecture reuse the compiled program
  # (version 1 closed over them and compiled once per eps_fn); a new dtype compiles.
  from jgen.diffusion import classifier
  means, variances, x, _ = _mixture(4, seed=2)
  s = diffusion.linear_schedule()
  before = classifier._run._cache_size()
  for n in range(3):
    den, params = diffusion.gaussian_oracle(means + n, variances * (n + 1))
    diffusion.classify(jax.random.key(n), den, params, x[n], K, schedule=s, **opts)
  assert classifier._run._cache_size() == before + 1
  den, params = diffusion.gaussian_oracle(means.astype(np.float64), variances)
  diffusion.classify(jax.random.key(0), den, params, x[0].astype(np.float64), K,
                     schedule=s, **opts)
  assert classifier._run._cache_size() == before + 2


def test_nan_class_never_wins():
  # A denoiser that returns NaN for class 0 (the true class): its score is the -inf
  # sentinel and another class wins, in every strategy.
  means, variances, x, y = _mixture(1, seed=4, dtype=np.float64)
  den, params = diffusion.gaussian_oracle(means, variances)
  bad = lambda z, g, c: jnp.where(c == y[0], jnp.nan, den.apply(params, z, g, c))  # noqa: E731
  nan_den, nan_params = diffusion.from_eps_fn(bad)
  for opts in STRATEGIES:
    res = diffusion.classify(jax.random.key(0), nan_den, nan_params, x[0], K, **opts)
    assert int(res.label) != int(y[0]) and res.scores[y[0]] == -np.inf, opts
    assert not np.any(np.isnan(np.asarray(res.scores)))


@pytest.mark.parametrize("opts", STRATEGIES, ids=lambda o: o["strategy"])
def test_class_subset(opts):
  means, variances, x, _ = _mixture(1, seed=3, dtype=np.float64)
  den, params = diffusion.gaussian_oracle(means, variances)
  s = diffusion.linear_schedule()
  key = jax.random.key(4)
  keep = [7, 2, 5, 0]
  sub = diffusion.classify(key, den, params, x[0], K, schedule=s, classes=keep,
                           **{**opts, "to_keep": (2, 1)} if "to_keep" in opts
                           else opts)
  assert sub.scores.shape == (4,) and int(sub.label) in keep
  if opts["strategy"] == "full":
    allc = diffusion.classify(key, den, params, x[0], K, schedule=s, **opts)
    np.testing.assert_allclose(sub.scores, np.asarray(allc.scores)[keep], rtol=1e-12)
    assert int(sub.label) == keep[int(np.argmax(sub.scores))]


def test_sequential_keeps_the_best_class_of_two_identical_ones():
  # Classes 0 and 1 are the same Gaussian: the paired differences are exactly zero,
  # so neither may be eliminated against the other; the other 8 classes are far away.
  rng = np.random.default_rng(5)
  means = 4.0 * rng.normal(size=(K, D))
  means[1] = means[0]
  variances = np.ones((K, D))
  den, params = diffusion.gaussian_oracle(means, variances)
  x = means[0] + rng.normal(size=D)
  res = diffusion.classify(jax.random.key(6), den, params, x, K, strategy="sequential",
                           num_t=128, chunk_t=8, schedule=diffusion.linear_schedule())
  assert int(res.label) in (0, 1)
  np.testing.assert_allclose(res.scores[0], res.scores[1], rtol=1e-12)
  # 10 classes until the far ones are eliminated (the t critical values at level
  # 0.01 / (9 * 16) are large for the first few rounds), then the tied pair (bucket 2)
  # to the end of the budget: about half the 1,280 evaluations of `full`.
  assert int(res.num_evals) < 1280 / 2


def test_bad_inputs():
  means, variances, x, _ = _mixture(1)
  den, params = diffusion.gaussian_oracle(means, variances)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="strategy"):
    diffusion.classify(key, den, params, x[0], K, strategy="greedy")
  with pytest.raises(ValueError, match="same length"):
    diffusion.classify(key, den, params, x[0], K, strategy="adaptive", n_samples=(5, 10),
                       to_keep=(1,))
  with pytest.raises(ValueError, match="strictly decreasing"):
    diffusion.classify(key, den, params, x[0], K, strategy="adaptive", n_samples=(5, 10),
                       to_keep=(3, 3))
  with pytest.raises(ValueError, match="exceeds the number of classes"):
    diffusion.classify(key, den, params, x[0], K, strategy="adaptive", n_samples=(5, 10),
                       to_keep=(11, 1))
  with pytest.raises(ValueError, match="strictly increasing"):
    diffusion.classify(key, den, params, x[0], K, strategy="adaptive", n_samples=(10, 5),
                       to_keep=(3, 1))
  with pytest.raises(ValueError, match="multiple of chunk_t"):
    diffusion.classify(key, den, params, x[0], K, strategy="sequential", num_t=30,
                       chunk_t=8)
  with pytest.raises(ValueError, match="confidence"):
    diffusion.classify(key, den, params, x[0], K, strategy="sequential", confidence=1.5)
  with pytest.raises(ValueError, match="antithetic"):
    diffusion.classify(key, den, params, x[0], K, strategy="adaptive", antithetic=True)
  with pytest.raises(ValueError, match="num_t must be >= 1"):
    diffusion.classify(key, den, params, x[0], K, num_t=0)
  with pytest.raises(ValueError, match="not accepted by the denoiser"):
    diffusion.classify(key, den, params, x[0, :5], K)
  with pytest.raises(ValueError, match="must return a prediction"):
    diffusion.classify(key, *diffusion.from_eps_fn(lambda z, g, y: jnp.sum(z)), x[0], K)
  with pytest.raises(ValueError, match="exceeds the denoiser's num_classes=10"):
    diffusion.classify(key, den, params, x[0], K + 1)
  with pytest.raises(ValueError, match="non-finite"):
    diffusion.batch_classify(key, den, params, np.full((2, D), np.inf, np.float32), K)
  with pytest.raises(TypeError, match="unexpected"):
    diffusion.batch_classify(key, den, params, x, K, n_stages=3)

