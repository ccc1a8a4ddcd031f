"""Semi-supervised EM on the contract: monotone, jittable, sharded, family-agnostic.

EM cannot lower the observed-data log-likelihood when the M-step maximises the weighted
likelihood (Dempster, Laird and Rubin, 1977); the unregularised Gaussian fits do.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgen
from jgen.parallel import semi_supervised_fit


def _mixture(n=1200, d=3, k=3, labels_per_class=2, seed=0):
  """A well-specified mixture: classes N(2 e_k-ish, I), equal priors."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, k, n)
  centres = 2.5 * np.eye(k, d)
  x = centres[y] + rng.normal(size=(n, d))
  ylab = np.full(n, -1)
  for c in range(k):
    ylab[np.flatnonzero(y == c)[:labels_per_class]] = c
  return x, y, ylab, centres


_FAMILIES = [lambda: jgen.gaussian_nb(var_smoothing=0.0),
             lambda: jgen.gaussian_nb(var_smoothing=0.0, pooled=True),
             lambda: jgen.lda(), lambda: jgen.qda()]


@pytest.mark.parametrize("make_model", _FAMILIES)
def test_log_likelihood_never_decreases_under_jit(make_model):
  x, _, ylab, _ = _mixture(labels_per_class=4)
  model = make_model()
  fit = jax.jit(lambda x, y: semi_supervised_fit(model, x, y, num_classes=3,
                                                 max_iter=30, tol=0.0))
  res = fit(jnp.asarray(x), jnp.asarray(ylab))
  t = int(res.num_iter)    # below 30 only at an exact fixed point (tol=0)
  hist = np.asarray(res.log_likelihood)[:t + 1]
  assert t >= 10 and np.isfinite(hist).all()
  assert np.diff(hist).min() >= -1e-10 * np.abs(hist).max(), np.diff(hist).min()
  assert hist[-1] > hist[0]


def test_eager_equals_jit_and_stops_on_tol():
  x, _, ylab, _ = _mixture()
  model = jgen.lda()
  eager = semi_supervised_fit(model, jnp.asarray(x), jnp.asarray(ylab), num_classes=3,
                              tol=1e-8)
  jitted = jax.jit(lambda x, y: semi_supervised_fit(model, x, y, num_classes=3,
                                                    tol=1e-8))(jnp.asarray(x),
                                                               jnp.asarray(ylab))
  assert bool(eager.converged) and int(eager.num_iter) < 100
  assert int(jitted.num_iter) == int(eager.num_iter)
  for a, b in zip(eager.params, jitted.params):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
  t = int(eager.num_iter)
  hist = np.asarray(eager.log_likelihood)
  assert np.isfinite(hist[:t + 1]).all() and np.isnan(hist[t + 1:]).all()
  assert abs(hist[t - 1] - hist[t - 2]) <= 1e-8 * abs(hist[t - 1])


def test_em_recovers_the_means_of_a_well_specified_mixture():
  # Two labels per class, 1194 unlabeled examples: the EM means lie within 4 standard
  # errors (sd / sqrt(n_k), n_k ~ 400) of the true centres; the labelled-only means,
  # from two examples each, are typically ~0.7 away.
  x, _, ylab, centres = _mixture(labels_per_class=2, seed=1)
  res = semi_supervised_fit(jgen.gaussian_nb(pooled=True), jnp.asarray(x),
                            jnp.asarray(ylab), num_classes=3)
  se = 1.0 / np.sqrt(1200 / 3)
  assert np.abs(np.asarray(res.params.means) - centres).max() < 4 * se


def test_unlabeled_weight_zero_is_the_labelled_fit_and_all_labelled_is_fit():
  x, y, ylab, _ = _mixture(labels_per_class=10)
  model = jgen.lda(shrinkage=0.1)
  res = semi_supervised_fit(model, jnp.asarray(x), jnp.asarray(ylab), num_classes=3,
                            unlabeled_weight=0.0)
  lab = ylab >= 0
  want = model.fit(jnp.asarray(x[lab]), jnp.asarray(ylab[lab]), num_classes=3)
  for a, b in zip(res.params, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
  full = semi_supervised_fit(model, jnp.asarray(x), jnp.asarray(y), num_classes=3)
  want = model.fit(jnp.asarray(x), jnp.asarray(y), num_classes=3)
  assert int(full.num_iter) == 2    # nothing to impute: the second E-step converges
  for a, b in zip(full.params, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_any_family_on_the_contract_and_sharded_m_steps():
  x, _, ylab, _ = _mixture(n=400)

  def fit(x, y, *, num_classes, sample_weight=None):   # class means, unit variance
    w = jnp.ones(y.shape) if sample_weight is None else sample_weight
    onehot = jax.nn.one_hot(y, num_classes, dtype=x.dtype) * w[:, None]
    return (onehot.T @ x) / onehot.sum(0)[:, None]

  model = jgen.Classifier(
      fit=fit, log_likelihood=lambda m, x, *, key=None: -0.5 * jnp.sum(
          (x[:, None, :] - m[None]) ** 2, axis=-1),
      log_prior=lambda m: jnp.full(m.shape[0], -jnp.log(m.shape[0])),
      class_axes=lambda m: 0, name="centroids", hyperparams={}, params_type=jax.Array)
  res = semi_supervised_fit(model, jnp.asarray(x), jnp.asarray(ylab), num_classes=3)
  assert np.diff(np.asarray(res.log_likelihood)[:int(res.num_iter) + 1]).min() >= -1e-9

  mesh = jgen.parallel.make_mesh(data=len(jax.devices()), classes=1)
  nb = jgen.gaussian_nb(pooled=True)
  one = semi_supervised_fit(nb, jnp.asarray(x), jnp.asarray(ylab), num_classes=3)
  sharded = semi_supervised_fit(nb, jnp.asarray(x), jnp.asarray(ylab), num_classes=3,
                                mesh=mesh)
  assert int(sharded.num_iter) == int(one.num_iter)
  for a, b in zip(sharded.params, one.params):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_bad_input_names_the_argument():
  x, _, ylab, _ = _mixture(n=60)
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=3\) or be -1"):
    semi_supervised_fit(jgen.lda(), x, np.where(ylab < 0, -2, ylab), num_classes=3)
  with pytest.raises(ValueError, match="unlabeled_weight must be >= 0"):
    semi_supervised_fit(jgen.lda(), x, ylab, num_classes=3, unlabeled_weight=-1.0)
  with pytest.raises(ValueError, match="needs a generative family"):
    semi_supervised_fit(jgen.logistic_regression(), x, ylab, num_classes=3)
  with pytest.raises(TypeError, match="model must be a jgen.Classifier"):
    semi_supervised_fit("lda", x, ylab, num_classes=3)
  with pytest.raises(TypeError, match="y must have an integer dtype"):
    semi_supervised_fit(jgen.lda(), x, ylab.astype(float), num_classes=3)
