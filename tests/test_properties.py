"""Property-based tests (hypothesis) of the invariants users rely on.

Shapes are fixed so every example reuses one compiled program; hypothesis varies the
values (and the seeds that generate data). Each property is exact mathematics, so the
tolerances only absorb floating-point rounding (float64 unless stated).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jgen

K, D, N = 3, 4, 36
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
FAMILIES = [lambda: jgen.gaussian_nb(), lambda: jgen.gaussian_nb(pooled=True),
            lambda: jgen.lda(0.05), lambda: jgen.qda(0.05)]
finite = st.floats(-50, 50, allow_nan=False, width=64)


def _data(seed, dtype=np.float64):
  rng = np.random.default_rng(seed)
  y = np.repeat(np.arange(K), N // K).astype(np.int32)
  x = rng.normal(size=(N, D)) * rng.uniform(0.5, 3.0, size=D) + 2.0 * rng.normal(
      size=(K, D))[y]
  return x.astype(dtype), y


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), perm=st.permutations(range(K)),
       family=st.sampled_from(range(len(FAMILIES))))
def test_permuting_classes_permutes_scores(seed, perm, family):
  # Relabelling class k as perm[k] moves column k of the scores to column perm[k].
  x, y = _data(seed)
  model = FAMILIES[family]()
  perm = np.asarray(perm)
  base = np.asarray(model.log_likelihood(model.fit(x, y, num_classes=K), x))
  relabelled = model.fit(x, perm[y].astype(np.int32), num_classes=K)
  moved = np.asarray(model.log_likelihood(relabelled, x))
  np.testing.assert_allclose(moved[:, perm], base, rtol=1e-9, atol=1e-9)


@SETTINGS
@given(scores=hnp.arrays(np.float64, (5, K), elements=finite),
       shift=hnp.arrays(np.float64, (5, 1), elements=finite))
def test_adding_a_constant_per_example_leaves_posteriors_unchanged(scores, shift):
  # log p(x|k) + c(x) for every k: Bayes' rule normalises c(x) away.
  prior = np.log(np.array([0.2, 0.3, 0.5]))
  a = jgen.log_posterior(scores, prior)
  b = jgen.log_posterior(scores + shift, prior)
  np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
  np.testing.assert_array_equal(jgen.predict(scores, prior), jgen.predict(scores + shift,
                                                                          prior))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), cut=st.integers(1, N - 1),
       shift=hnp.arrays(np.float64, (D,), elements=st.floats(-5, 5, width=64)))
def test_chunked_sufficient_statistics_equal_the_whole(seed, cut, shift):
  # Statistics about a common shift are additive over any split of the rows.
  x, y = _data(seed)
  stats = lambda a, b: jgen.gaussian.sufficient_stats(a, b, K, shift=shift)  # noqa: E731
  merged = jgen.gaussian.merge_stats(stats(x[:cut], y[:cut]), stats(x[cut:], y[cut:]))
  for a, b in zip(merged, stats(x, y)):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-9)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), family=st.sampled_from(range(len(FAMILIES))))
def test_float32_agrees_with_float64(seed, family):
  # Well-conditioned data (feature scales within 6x, separated classes): float32
  # log-likelihoods agree with float64 to 1e-3 relative to the score's magnitude
  # (float32 epsilon 1.2e-7 times the condition of the expansion) and the
  # predictions agree wherever float64's margin exceeds that.
  x, y = _data(seed)
  model = FAMILIES[family]()
  ll64 = np.asarray(model.log_likelihood(model.fit(x, y, num_classes=K), x))
  x32 = x.astype(np.float32)
  ll32 = np.asarray(model.log_likelihood(model.fit(x32, y, num_classes=K), x32),
                    np.float64)
  scale = np.maximum(1.0, np.abs(ll64))
  assert np.max(np.abs(ll32 - ll64) / scale) < 1e-3
  top2 = np.sort(ll64, axis=1)[:, -2:]
  clear = (top2[:, 1] - top2[:, 0]) > 1e-2 * scale.max(axis=1)
  np.testing.assert_array_equal(ll32.argmax(1)[clear], ll64.argmax(1)[clear])


@SETTINGS
@given(scores=hnp.arrays(np.float64, (6, 5), elements=finite))
def test_sharded_bayes_rule_equals_single_device(scores):
  # 5 classes over a (2, 4) mesh: padded to 8 classes, rows split in two.
  mesh = jgen.parallel.make_mesh(data=2, classes=4)
  out = jgen.parallel.bayes_reduce(scores, mesh, num_classes=5)
  np.testing.assert_array_equal(out.label, np.asarray(jgen.predict(scores)))
  np.testing.assert_allclose(out.log_normalizer, jax.scipy.special.logsumexp(
      jnp.asarray(scores), axis=-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("family", range(len(FAMILIES)))
def test_sharded_family_scores_equal_single_device(family):
  # One fixed draw per family on 8 devices (the generic class-sharded scorer).
  x, y = _data(7)
  model = FAMILIES[family]()
  params = model.fit(x, y, num_classes=K)
  mesh = jgen.parallel.make_mesh(data=2, classes=4)
  got = np.asarray(jgen.parallel.class_sharded_log_likelihood(model, params, x, mesh))
  np.testing.assert_allclose(got[:, :K], model.log_likelihood(params, x), rtol=1e-9,
                             atol=1e-9)
