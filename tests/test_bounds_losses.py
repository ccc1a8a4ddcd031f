"""Losses, conditional risks and regrets of jgen.bounds against independent references."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import sklearn.metrics

from jgen import bounds

NAMES_TAUS = [("logistic", None), ("comp_sum", 0.0), ("comp_sum", 0.5), ("comp_sum", 1.5),
              ("comp_sum", 2.0), ("constrained_exponential", None), ("squared_hinge", None),
              ("hinge", None), ("crammer_singer", None)]


RNG_SEED = 0


def _normal(shape, seed=RNG_SEED):
  # NumPy data: avoids compiling a JAX sampler per test shape.
  return np.random.default_rng(seed).standard_normal(shape)


def _dirichlet(k, n, seed=RNG_SEED):
  return np.random.default_rng(seed).dirichlet(np.ones(k), n)


def _np_softmax(h):
  e = np.exp(h - h.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _np_loss(name, tau, h, y):
  """Plain NumPy loop reference, written from the definitions in the module docstring."""
  k = h.shape[-1]
  s = _np_softmax(h)[y]
  c = h - h.mean()
  others = [j for j in range(k) if j != y]
  if name == "logistic" or (name == "comp_sum" and tau == 1.0):
    return -np.log(s)
  if name == "comp_sum" and tau == 0.0:
    return sum(np.exp(h[j] - h[y]) for j in others)
  if name == "comp_sum":
    return (s ** (tau - 1.0) - 1.0) / (1.0 - tau)
  if name == "constrained_exponential":
    return sum(np.exp(c[j]) for j in others)
  if name == "squared_hinge":
    return sum(max(0.0, 1.0 + c[j]) ** 2 for j in others)
  if name == "hinge":
    return sum(max(0.0, 1.0 + c[j]) for j in others)
  if name == "crammer_singer":
    return max(0.0, 1.0 - h[y] + max(h[j] for j in others))
  raise AssertionError(name)


@pytest.mark.parametrize("name,tau", NAMES_TAUS)
def test_losses_match_numpy_loops(name, tau):
  h = _normal((6, 4)) * 2.0
  y = np.array([0, 1, 2, 3, 1, 0])
  got = bounds.get_loss(name, tau=tau)(jnp.asarray(h), jnp.asarray(y))
  want = [_np_loss(name, tau, h[i], y[i]) for i in range(6)]
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_crammer_singer_matches_sklearn_hinge_loss():
  # sklearn.metrics.hinge_loss is the Crammer-Singer loss for multiclass scores.
  h = _normal((50, 5))
  y = np.arange(50) % 5
  want = sklearn.metrics.hinge_loss(y, h, labels=np.arange(5))
  got = jnp.mean(bounds.crammer_singer_loss(h, y))
  np.testing.assert_allclose(got, want, rtol=1e-12)


def test_logistic_matches_sklearn_log_loss():
  h = _normal((40, 3)) * 3.0
  y = np.arange(40) % 3
  want = sklearn.metrics.log_loss(y, _np_softmax(h), labels=np.arange(3))
  np.testing.assert_allclose(jnp.mean(bounds.logistic_loss(h, y)), want, rtol=1e-10)


def test_comp_sum_is_continuous_at_tau_one():
  # expm1 form: tau = 1 +- 1e-9 must agree with the logistic loss to ~1e-9 relative.
  h = jnp.asarray(_normal((20, 5)) * 4.0)
  y = jnp.arange(20) % 5
  ref = bounds.logistic_loss(h, y)
  for tau in (1.0 - 1e-9, 1.0 + 1e-9):
    np.testing.assert_allclose(bounds.comp_sum_loss(h, y, tau), ref, rtol=1e-7)
  np.testing.assert_allclose(bounds.comp_sum_loss(h, y, 1.0), ref, rtol=0)


def test_constrained_losses_are_shift_invariant():
  # Losses are evaluated at the centred scores, so adding a constant changes nothing.
  h = jnp.asarray(_normal((10, 4)))
  y = jnp.arange(10) % 4
  for fn in (bounds.constrained_exponential_loss, bounds.squared_hinge_loss,
             bounds.hinge_loss):
    np.testing.assert_allclose(fn(h + 3.7, y), fn(h, y), rtol=1e-12, atol=1e-12)


def test_zero_one_loss_tie_rule():
  h = jnp.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
  # First maximal class wins ties: predictions 0 and 1.
  np.testing.assert_array_equal(bounds.zero_one_loss(h, jnp.array([0, 2])), [0.0, 1.0])
  p = jnp.array([[0.3, 0.5, 0.2], [0.2, 0.3, 0.5]])
  np.testing.assert_allclose(bounds.zero_one_regret(h, p), [0.2, 0.2], atol=1e-15)


def _scipy_best(name, tau, p):
  """Independent numerical infimum of the conditional risk with scipy (Nelder-Mead)."""
  k = p.shape[0]
  risk = lambda h: sum(p[y] * _np_loss(name, tau, h, y) for y in range(k))
  starts = [np.zeros(k), np.log(p), np.eye(k)[np.argmax(p)] * 2.0]
  best = min(scipy.optimize.minimize(risk, x0, method="Nelder-Mead",
                                     options=dict(xatol=1e-10, fatol=1e-12,
                                                  maxiter=20000)).fun
             for x0 in starts)
  return best


@pytest.mark.parametrize("name,tau", NAMES_TAUS)
def test_best_conditional_risk_closed_forms_match_scipy(name, tau):
  ps = np.array([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1], [0.34, 0.33, 0.33], [0.45, 0.45, 0.1]])
  got = bounds.best_conditional_risk(name, ps, tau=tau)
  want = [_scipy_best(name, tau, q) for q in ps]
  np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_numerical_best_risk_for_user_loss_matches_closed_form():
  # A wrapped loss is not recognised, so the optax path runs; compare to entropy.
  user = lambda h, y: bounds.logistic_loss(h, y)
  p = jnp.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
  got = bounds.best_conditional_risk(user, p, num_steps=2000)
  want = -jnp.sum(p * jnp.log(p), -1)
  assert np.all(np.asarray(got) >= np.asarray(want) - 1e-12)   # an upper estimate
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_conditional_risk_and_regret_definitions():
  h, p = jnp.asarray(_normal((5, 4))), jnp.asarray(_dirichlet(4, 5))
  risk = bounds.conditional_risk("hinge", h, p)
  hn, pn = np.asarray(h), np.asarray(p)
  want = [sum(pn[i, y] * _np_loss("hinge", None, hn[i], y) for y in range(4))
          for i in range(5)]
  np.testing.assert_allclose(risk, want, rtol=1e-12)
  np.testing.assert_allclose(bounds.conditional_regret("hinge", h, p),
                             risk - 4 * (1 - jnp.max(p, -1)), rtol=1e-12)
  np.testing.assert_allclose(bounds.conditional_regret("zero_one", h, p),
                             bounds.zero_one_regret(h, p), atol=1e-15)


def test_jit_vmap_traces_and_float32():
  h = jnp.asarray(_normal((7, 3)), jnp.float32)
  p = jnp.asarray(_dirichlet(3, 7), jnp.float32)
  eager = bounds.conditional_regret("logistic", h, p)
  assert eager.dtype == jnp.float32

  @jax.jit
  @chex.assert_max_traces(n=1)
  def f(h, p):
    return bounds.conditional_regret("logistic", h, p)

  np.testing.assert_allclose(f(h, p), eager, rtol=1e-6)
  f(h + 1.0, p)                                          # same shape: no retrace
  chex.clear_trace_counter()
  looped = jnp.stack([f(h[i], p[i]) for i in range(7)])
  vmapped = jax.vmap(lambda a, b: bounds.conditional_regret("logistic", a, b))(h, p)
  np.testing.assert_allclose(vmapped, looped, rtol=1e-6, atol=1e-7)
  f64 = bounds.conditional_regret("logistic", h.astype(jnp.float64), p.astype(jnp.float64))
  np.testing.assert_allclose(eager, f64, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,tau", NAMES_TAUS)
def test_gradients_match_finite_differences(name, tau):
  h = jnp.asarray(_normal((4,)) * 0.7)
  p = jnp.array([0.4, 0.3, 0.2, 0.1])
  f = jax.jit(lambda h: bounds.conditional_regret(name, h, p, tau=tau))
  g = jax.grad(f)(h)
  eps = 1e-6
  fd = [(f(h + eps * e) - f(h - eps * e)) / (2 * eps) for e in jnp.eye(4)]
  np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise():
  h = jnp.zeros((2, 3))
  good = jnp.full((2, 3), 1 / 3)
  with pytest.raises(ValueError, match="non-negative"):
    bounds.conditional_regret("logistic", h, jnp.array([[1.1, -0.1, 0.0]] * 2))
  with pytest.raises(ValueError, match="sum to 1"):
    bounds.conditional_regret("logistic", h, jnp.full((2, 3), 0.3))
  with pytest.raises(ValueError, match="same shape"):
    bounds.conditional_regret("logistic", jnp.zeros((2, 4)), good)
  with pytest.raises(ValueError, match="at least 2 classes"):
    bounds.logistic_loss(jnp.zeros((3, 1)), jnp.zeros(3, int))
  with pytest.raises(ValueError, match="leading shape"):
    bounds.logistic_loss(jnp.zeros((3, 2)), jnp.zeros(4, int))
  with pytest.raises(ValueError, match=r"\[0, num_classes=2\)"):
    bounds.logistic_loss(jnp.zeros((3, 2)), jnp.array([0, 1, 2]))
  with pytest.raises(TypeError, match="integer"):
    bounds.logistic_loss(jnp.zeros((3, 2)), jnp.zeros(3))
  with pytest.raises(ValueError, match="tau must lie"):
    bounds.comp_sum_loss(h, jnp.zeros(2, int), 2.5)
  with pytest.raises(ValueError, match="tau must lie"):
    bounds.conditional_regret("comp_sum", h, good, tau=-0.1)
  with pytest.raises(ValueError, match="tau is required"):
    bounds.conditional_regret("comp_sum", h, good)
  with pytest.raises(ValueError, match="loss_name"):
    bounds.conditional_regret("savage", h, good)


def test_off_simplex_under_jit_gives_nan_sentinel():
  h = jnp.zeros((2, 3))
  p = jnp.array([[0.5, 0.5, 0.5], [0.2, 0.3, 0.5]])
  out = jax.jit(lambda h, p: bounds.conditional_regret("logistic", h, p))(h, p)
  assert np.isnan(out[0]) and np.isfinite(out[1])
