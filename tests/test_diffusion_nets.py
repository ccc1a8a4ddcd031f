"""Tests for the flax NNX denoisers and their per-example eps_fn adapters."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jgen.diffusion import nets

CASES = [
    (nets.MLPDenoiser, (4, 3), dict(width=32, depth=2)),
    (nets.UNetDenoiser, (8, 8), dict(channels=(4, 8), cond_dim=8)),
    (nets.UNetDenoiser, (8, 2), dict(channels=(4, 8), cond_dim=8, spatial_ndim=1)),
]


def _batched(module, z, gamma, y):
  """The module on a batch, jitted (eager NNX calls compile op by op: slow)."""
  graphdef, params = nnx.split(module)
  return nets._apply_jit(graphdef, params, z, gamma, y)


def random_module(cls, shape, num_classes, key, **kw):
  """A denoiser with N(0, 0.3^2) parameters (non-trivial outputs, unlike the zero-
  initialised output layer), built without the eager constructor: eager NNX
  initialisation compiles one program per parameter shape, which is slow on CPU."""
  abstract = nnx.eval_shape(lambda: cls(shape, num_classes, rngs=nnx.Rngs(0), **kw))
  graphdef, abstract_params = nnx.split(abstract)
  leaves, treedef = jax.tree.flatten(abstract_params)
  sizes = [int(np.prod(l.shape)) for l in leaves]
  flat = 0.3 * np.asarray(jax.random.normal(key, (sum(sizes),), jnp.float32))
  chunks = np.split(flat, np.cumsum(sizes)[:-1])
  leaves = [jnp.asarray(c.reshape(l.shape)) for c, l in zip(chunks, leaves)]
  return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))


@functools.lru_cache(maxsize=None)
def _module(i):
  cls, shape, kw = CASES[i]
  return random_module(cls, shape, 3, jax.random.key(i), **kw)


@pytest.mark.parametrize("i", range(len(CASES)))
def test_eps_fn_matches_batched_module_and_loop(i, key):
  k_z, k_g = jax.random.split(key)
  shape = CASES[i][1]
  module = _module(i)
  z = jax.random.normal(k_z, (5,) + shape, jnp.float32)
  gamma = jax.random.uniform(k_g, (5,), jnp.float32, -13.0, 5.0)
  y = jnp.array([0, 1, 2, 1, 0])
  batched = _batched(module, z, gamma, y)
  assert batched.shape == z.shape and batched.dtype == jnp.float32
  assert float(jnp.std(batched)) > 1e-3  # non-trivial output, so the comparison bites
  eps_fn = nets.as_eps_fn(module)
  loop = jnp.stack([eps_fn(z[i], gamma[i], y[i]) for i in range(5)])
  vmapped = jax.jit(jax.vmap(eps_fn))(z, gamma, y)
  np.testing.assert_allclose(loop, batched, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(vmapped, batched, rtol=1e-5, atol=1e-5)
  # The (graphdef, params) form gives the same function.
  graphdef, params = nnx.split(module)
  np.testing.assert_array_equal(nets.as_eps_fn(graphdef, params)(z[0], gamma[0], y[0]),
                                loop[0])


def test_label_and_gamma_change_the_output():
  eps_fn = nets.as_eps_fn(_module(0))
  z = jnp.ones((4, 3), jnp.float32)
  a, b = eps_fn(z, 0.0, 0), eps_fn(z, 0.0, 1)
  c = eps_fn(z, 3.0, 0)
  assert float(jnp.max(jnp.abs(a - b))) > 1e-4
  assert float(jnp.max(jnp.abs(a - c))) > 1e-4


def test_zero_initialised_output():
  module = nets.MLPDenoiser((4, 3), 2, width=32, depth=2, rngs=nnx.Rngs(0))
  out = nets.as_eps_fn(module)(jnp.ones((2, 4, 3), jnp.float32), jnp.zeros(2),
                               jnp.array([0, 1]))
  np.testing.assert_array_equal(out, 0.0)


def test_adapter_does_not_retrace(monkeypatch, key):
  traced = jax.jit(chex.assert_max_traces(nets._apply_jit.__wrapped__, n=1),
                   static_argnums=0)
  monkeypatch.setattr(nets, "_apply_jit", traced)
  chex.clear_trace_counter()
  module = _module(0)
  graphdef, params = nnx.split(module)
  other = nnx.merge(graphdef, jax.tree.map(lambda p: p + 1.0, params))
  z = jax.random.normal(key, (4, 3), jnp.float32)
  for i in range(4):
    nets.as_eps_fn(module)(z + i, jnp.float32(i), i % 3)
    nets.as_eps_fn(graphdef, params)(z - i, jnp.float32(-i), (i + 1) % 3)
    nets.as_eps_fn(other)(z, jnp.float32(0.5 * i), 0)  # new params, same structure
  # A different shape is a new trace, which the counter must catch.
  with pytest.raises(AssertionError):
    nets.as_eps_fn(module)(z[None], jnp.zeros(1, jnp.float32), jnp.zeros(1, jnp.int32))


def test_drop_labels_rate(key):
  y = jnp.zeros(20000, jnp.int32) + 3
  out = nets.drop_labels(key, y, 10, 0.2)
  frac = float(jnp.mean(out == 10))
  # Binomial(20000, 0.2): standard error sqrt(0.2 * 0.8 / 20000) = 0.00283; 4 SE.
  assert abs(frac - 0.2) < 4 * 0.00283
  assert set(np.unique(np.asarray(out)).tolist()) == {3, 10}
  np.testing.assert_array_equal(nets.drop_labels(key, y, 10, 0.0), y)
  np.testing.assert_array_equal(nets.drop_labels(key, y, 10, 1.0), 10)
  with pytest.raises(ValueError, match="rate"):
    nets.drop_labels(key, y, 10, 1.5)


def test_null_class_label():
  z = jnp.zeros((4, 3), jnp.float32)
  with_null = nets.as_eps_fn(random_module(nets.MLPDenoiser, (4, 3), 3, jax.random.key(0),
                                           width=32, depth=2, null_class=True))
  assert with_null(z, 0.0, 3).shape == (4, 3)  # label K is the null class
  without = nets.as_eps_fn(_module(0))
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=3\)"):
    without(z, 0.0, 3)


def test_bad_input():
  eps_fn = nets.as_eps_fn(_module(1))  # UNet on 8x8, 3 classes
  with pytest.raises(ValueError, match=r"trained data shape \(8, 8\)"):
    eps_fn(jnp.zeros((7, 7), jnp.float32), 0.0, 0)
  with pytest.raises(ValueError, match=r"num_classes=3"):
    eps_fn(jnp.zeros((8, 8), jnp.float32), 0.0, 3)
  with pytest.raises(ValueError, match="leading shape"):
    eps_fn(jnp.zeros((2, 8, 8), jnp.float32), jnp.zeros(3), jnp.zeros(2, jnp.int32))
  with pytest.raises(TypeError, match="floating"):
    eps_fn(jnp.zeros((8, 8), jnp.int32), 0.0, 0)
  with pytest.raises(ValueError, match="divisible"):
    nets.UNetDenoiser((6, 6), 2, channels=(8, 16, 32), rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match="jgen denoiser"):
    nets.denoiser_config(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))


def test_traced_out_of_range_label_is_nan():
  """Under jit labels cannot be checked; they give NaN, never a silent wrong score."""
  eps_fn = nets.as_eps_fn(_module(0))
  out = jax.jit(eps_fn)(jnp.zeros((4, 3), jnp.float32), 0.0, jnp.int32(5))
  assert bool(jnp.all(jnp.isnan(out)))


def test_gradients_finite(key):
  module = random_module(nets.UNetDenoiser, (8, 2), 10, key, channels=(4, 8),
                         cond_dim=8, spatial_ndim=1, null_class=True)
  graphdef, params = nnx.split(module)
  z = jax.random.normal(key, (3, 8, 2), jnp.float32)

  def loss(p):
    return jnp.sum(nnx.merge(graphdef, p)(z, jnp.zeros(3), jnp.array([0, 5, 10])) ** 2
                   + nnx.merge(graphdef, p)(z, jnp.ones(3), jnp.array([1, 2, 3])))

  grads = jax.jit(jax.grad(loss))(params)
  leaves = jax.tree.leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  assert any(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)
