"""H-consistency transforms psi (T), their inverses and the bound on random (p, h) pairs."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import bounds

CASES = [("logistic", None), ("comp_sum", 0.0), ("comp_sum", 0.5), ("comp_sum", 1.5),
         ("comp_sum", 2.0), ("constrained_exponential", None), ("squared_hinge", None),
         ("hinge", None), ("crammer_singer", None)]
KS = (2, 3, 5, 10)
T_GRID = np.linspace(0.0, 1.0, 201)


def _random_pairs(k, n, seed):
  """``n`` pairs (p, h): p Dirichlet with alpha in {0.05, 0.3, 1, 5}; h a third random
  (scales 0.01 to 10), a third near-optimal ``log p`` + noise, a third the same with
  the two top scores swapped (wrong predictions with small surrogate regret)."""
  rng = np.random.default_rng(seed)
  alphas = rng.choice([0.05, 0.3, 1.0, 5.0], size=n)
  g = rng.gamma(np.repeat(alphas[:, None], k, 1), 1.0) + 1e-300
  p = g / g.sum(-1, keepdims=True)
  third = n // 3
  scale = np.exp(rng.uniform(np.log(0.01), np.log(10.0), (n, 1)))
  noise = np.exp(rng.uniform(np.log(1e-4), np.log(1.0), (n, 1)))
  h = rng.standard_normal((n, k)) * scale
  near = np.log(p + 1e-12) + noise * rng.standard_normal((n, k))
  h[third:2 * third] = near[third:2 * third]
  swapped = near[2 * third:].copy()
  order = np.argsort(-swapped, -1)
  rows = np.arange(swapped.shape[0])
  top, second = order[:, 0], order[:, 1]
  swapped[rows, top], swapped[rows, second] = swapped[rows, second], swapped[rows, top]
  h[2 * third:] = swapped
  return jnp.asarray(h), jnp.asarray(p)


@functools.partial(jax.jit, static_argnums=(2,))
def _all_losses(h, p, k):
  """Per loss: (min surrogate regret, max of 0-1 regret minus its bound, fraction < 1)."""
  zero_one = bounds.zero_one_regret(h, p)
  out = []
  for name, tau in CASES:
    regret = bounds.conditional_regret(name, h, p, tau=tau)
    bound = bounds.zero_one_bound(name, jnp.maximum(regret, 0.0), num_classes=k, tau=tau)
    out.append(jnp.stack([jnp.min(regret), jnp.max(zero_one - bound),
                          jnp.mean(bound < 1.0)]))
  return jnp.stack(out)


@pytest.mark.parametrize("k", KS)
def test_bound_holds_on_100k_random_pairs(k):
  h, p = _random_pairs(k, 100_000, seed=k)
  stats = np.asarray(_all_losses(h, p, k))
  for (name, tau), (min_regret, excess, informative) in zip(CASES, stats):
    # Surrogate regrets are >= 0 (closed-form C* is a true infimum), up to rounding.
    assert min_regret >= -1e-9, (name, tau, min_regret)
    # Delta C_01 <= Gamma(Delta C_l) everywhere (1e-9: float64 rounding).
    assert excess <= 1e-9, (name, tau, excess)
    # The bound is informative (< 1) on many pairs, except where none exists.
    if not (name == "crammer_singer" and k > 2):
      assert informative > 0.1, (name, tau, informative)


@pytest.mark.parametrize("name,tau", CASES)
@pytest.mark.parametrize("k", KS)
def test_known_values_monotone_convex(name, tau, k):
  t = jnp.asarray(T_GRID)
  T = np.asarray(bounds.psi(name, t, num_classes=k, tau=tau))
  assert T[0] == 0.0
  assert np.all(np.diff(T) >= -1e-15)                      # non-decreasing
  assert np.all(np.diff(T, 2) >= -1e-12)                   # convex (second differences)
  if not (name == "crammer_singer" and k > 2):
    assert np.all(np.diff(T) > 0)                          # strictly increasing


def test_closed_forms_at_known_points():
  t = jnp.asarray(T_GRID)
  tn = T_GRID
  # tau = 0: 1 - sqrt(1 - t^2) (issue statement, sum-exponential case).
  np.testing.assert_allclose(bounds.psi("comp_sum", t, num_classes=4, tau=0.0),
                             1.0 - np.sqrt(1.0 - tn**2), atol=1e-15)
  # Logistic: Pinsker-type lower bound t^2/2, and T(1) = log 2.
  T1 = np.asarray(bounds.psi("logistic", t, num_classes=3))
  assert np.all(T1 >= tn**2 / 2 - 1e-16)
  np.testing.assert_allclose(T1[-1], math.log(2.0), rtol=1e-15)
  # Written out without expm1/log1p: the tau = 0.5 formula and T_tau(1).
  tau, a = 0.5, 1 / 1.5
  direct = (2**0.5 / 0.5) * (1 - (((1 + tn)**a + (1 - tn)**a) / 2) ** 1.5)
  np.testing.assert_allclose(bounds.psi("comp_sum", t, num_classes=3, tau=tau), direct,
                             rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(direct[-1], (2**0.5 - 1) / 0.5, rtol=1e-12)
  # tau = 1.5 depends on n: [(((1+t)^2 + (1-t)^2)/2)^0.5 - 1] / (0.5 n^0.5).
  direct = (np.sqrt(((1 + tn)**2 + (1 - tn)**2) / 2) - 1) / (0.5 * 5**0.5)
  np.testing.assert_allclose(bounds.psi("comp_sum", t, num_classes=5, tau=1.5), direct,
                             rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(bounds.psi("comp_sum", t, num_classes=5, tau=2.0), tn / 5)
  np.testing.assert_allclose(bounds.psi("constrained_exponential", t, num_classes=3),
                             2 - np.sqrt(4 - tn**2), atol=1e-15)
  np.testing.assert_allclose(bounds.psi("crammer_singer", t, num_classes=3),
                             np.maximum(0, 2 * tn - 1), atol=1e-15)


def test_comp_sum_transform_is_continuous_in_tau():
  t = jnp.asarray(T_GRID)
  ref = bounds.psi("logistic", t, num_classes=4)
  for tau in (1 - 1e-7, 1 + 1e-7):
    np.testing.assert_allclose(bounds.psi("comp_sum", t, num_classes=4, tau=tau), ref,
                               atol=1e-6)
  np.testing.assert_allclose(bounds.psi("comp_sum", t, num_classes=4, tau=2 - 1e-7),
                             T_GRID / 4, atol=1e-6)


@pytest.mark.parametrize("name,tau", CASES + [("logistic_bounded", None)])
def test_inverse_inverts_to_1e10_float64(name, tau):
  kw = dict(num_classes=3, tau=tau)
  if name == "logistic_bounded":
    name, kw = "logistic", dict(num_classes=2, score_bound=0.7)
  t = jnp.linspace(0.0, 1.0, 1001)
  T = bounds.psi(name, t, **kw)
  back = bounds.inverse_psi(name, T, **kw)
  flat = (name == "crammer_singer") & (np.asarray(t) < 0.5)   # T = 0 there: Gamma(0) = 1/2
  err = np.where(flat, 0.0, np.abs(np.asarray(back) - np.asarray(t)))
  assert err.max() <= 1e-10, err.max()
  u = jnp.linspace(0.0, float(T[-1]), 1001)[:-1]
  np.testing.assert_allclose(bounds.psi(name, bounds.inverse_psi(name, u, **kw), **kw),
                             u, atol=1e-10, rtol=0)
  # Gamma never under-shoots beyond rounding: T(Gamma(u)) >= u (the bound stays
  # valid); closed forms near t = 1, where T' is unbounded, round to ~1e-13.
  assert np.all(np.asarray(bounds.psi(name, bounds.inverse_psi(name, u, **kw), **kw))
                >= np.asarray(u) - 1e-12)
  np.testing.assert_array_equal(bounds.inverse_psi(name, jnp.array([T[-1], 5.0]), **kw),
                                [1.0, 1.0])


def test_float32_and_jit_vmap_traces():
  t32 = jnp.linspace(0.05, 0.95, 19, dtype=jnp.float32)
  T32 = bounds.psi("comp_sum", t32, num_classes=5, tau=0.5)
  assert T32.dtype == jnp.float32
  T64 = bounds.psi("comp_sum", t32.astype(jnp.float64), num_classes=5, tau=0.5)
  np.testing.assert_allclose(T32, T64, rtol=1e-5)
  back = bounds.inverse_psi("comp_sum", T32, num_classes=5, tau=0.5)
  assert back.dtype == jnp.float32
  np.testing.assert_allclose(back, t32, atol=1e-5)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def bound(u):
    return bounds.zero_one_bound("logistic", u, num_classes=10)

  u = jnp.linspace(0.0, 0.8, 9)
  eager = bounds.zero_one_bound("logistic", u, num_classes=10)
  np.testing.assert_array_equal(bound(u), eager)
  bound(u + 0.01)
  chex.clear_trace_counter()
  looped = jnp.stack([bounds.zero_one_bound("logistic", ui, num_classes=10) for ui in u])
  vm = jax.vmap(lambda x: bounds.zero_one_bound("logistic", x, num_classes=10))(u)
  np.testing.assert_array_equal(vm, looped)


def test_gradients_of_transforms():
  # d/dt T_logistic(t) = atanh(t) (differentiate the closed form).
  t = jnp.array([0.1, 0.5, 0.9])
  g = jax.vmap(jax.grad(lambda s: bounds.psi("logistic", s, num_classes=3)))(t)
  np.testing.assert_allclose(g, np.arctanh(np.asarray(t)), rtol=1e-12)
  # Closed-form inverse for tau = 0: d/du sqrt(2u - u^2) = (1 - u)/sqrt(2u - u^2).
  u = jnp.array([0.1, 0.4])
  g = jax.vmap(jax.grad(lambda s: bounds.inverse_psi("comp_sum", s, num_classes=3,
                                                     tau=0.0)))(u)
  un = np.asarray(u)
  np.testing.assert_allclose(g, (1 - un) / np.sqrt(2 * un - un**2), rtol=1e-12)


def test_minimizability_gaps_enter_the_bound():
  u = jnp.array([0.01, 0.05])
  plain = bounds.zero_one_bound("logistic", u + 0.02, num_classes=3)
  with_gaps = bounds.zero_one_bound("logistic", u, num_classes=3, surrogate_gap=0.02,
                                    zero_one_gap=0.01)
  np.testing.assert_allclose(with_gaps, plain - 0.01, rtol=1e-14)


def test_bounded_logistic_n2_tangent_continuation():
  lam = 0.7
  t = jnp.linspace(0, 1, 101)
  T = np.asarray(bounds.psi("logistic", t, num_classes=2, score_bound=lam))
  T1 = np.asarray(bounds.psi("logistic", t, num_classes=2))
  tn = np.asarray(t)
  below = tn <= np.tanh(lam)
  np.testing.assert_allclose(T[below], T1[below], rtol=0, atol=0)
  np.testing.assert_allclose(T[~below], tn[~below] * lam - np.log(np.cosh(lam)),
                             rtol=1e-13)
  assert np.all(T <= T1 + 1e-15)                 # a bounded set can only weaken T


def test_bad_inputs_raise_and_sentinels():
  with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
    bounds.psi("logistic", jnp.array([0.5, 1.2]), num_classes=3)
  with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
    bounds.psi("logistic", -0.1, num_classes=3)
  with pytest.raises(ValueError, match="num_classes must be >= 2"):
    bounds.psi("logistic", 0.5, num_classes=1)
  with pytest.raises(TypeError, match="num_classes must be a static Python int"):
    bounds.psi("logistic", 0.5, num_classes=3.0)
  with pytest.raises(ValueError, match="tau must lie"):
    bounds.psi("comp_sum", 0.5, num_classes=3, tau=2.5)
  with pytest.raises(ValueError, match="tau is required"):
    bounds.psi("comp_sum", 0.5, num_classes=3)
  with pytest.raises(ValueError, match="tau applies to the comp_sum loss only"):
    bounds.psi("hinge", 0.5, num_classes=3, tau=0.5)
  with pytest.raises(ValueError, match="loss_name"):
    bounds.psi("zero_one", 0.5, num_classes=3)
  with pytest.raises(ValueError, match="num_classes == 2 only"):
    bounds.psi("logistic", 0.5, num_classes=3, score_bound=1.0)
  with pytest.raises(ValueError, match="logistic loss only"):
    bounds.psi("hinge", 0.5, num_classes=2, score_bound=1.0)
  with pytest.raises(ValueError, match="positive and finite"):
    bounds.psi("logistic", 0.5, num_classes=2, score_bound=-1.0)
  with pytest.raises(ValueError, match="surrogate_excess must be >= 0"):
    bounds.zero_one_bound("logistic", jnp.array([-0.1]), num_classes=3)
  with pytest.raises(ValueError, match="surrogate_gap must be >= 0"):
    bounds.zero_one_bound("logistic", 0.1, num_classes=3, surrogate_gap=-1.0)
  # Under jit, values cannot be checked: out-of-range inputs give NaN, never a number.
  f = jax.jit(lambda t: bounds.psi("logistic", t, num_classes=3))
  out = f(jnp.array([-0.5, 0.5, 1.5]))
  assert np.isnan(out[0]) and np.isfinite(out[1]) and np.isnan(out[2])
  g = jax.jit(lambda u: bounds.zero_one_bound("logistic", u, num_classes=3))
  out = g(jnp.array([-0.5, 0.1]))
  assert np.isnan(out[0]) and np.isfinite(out[1])
