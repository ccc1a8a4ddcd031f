"""Tests for the flax NNX denoisers and their (Denoiser, params) split."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jgen import diffusion
from jgen.diffusion import nets

CASES = [
    (nets.MLPDenoiser, (4, 3), dict(width=32, depth=2)),
    (nets.UNetDenoiser, (8, 8), dict(channels=(4, 8), cond_dim=8)),
    (nets.UNetDenoiser, (8, 2), dict(channels=(4, 8), cond_dim=8, spatial_ndim=1)),
]


def _batched(module, z, gamma, y):
  """The module on a batch, jitted (eager NNX calls compile op by op: slow)."""
  den, params = diffusion.nnx_denoiser(module)
  return jax.jit(den.apply)(params, z, gamma, y)


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
def test_denoiser_matches_batched_module_and_loop(i, key):
  k_z, k_g = jax.random.split(key)
  shape = CASES[i][1]
  module = _module(i)
  z = jax.random.normal(k_z, (5,) + shape, jnp.float32)
  gamma = jax.random.uniform(k_g, (5,), jnp.float32, -13.0, 5.0)
  y = jnp.array([0, 1, 2, 1, 0])
  batched = _batched(module, z, gamma, y)
  assert batched.shape == z.shape and batched.dtype == jnp.float32
  assert float(jnp.std(batched)) > 1e-3  # non-trivial output, so the comparison bites
  den, params = diffusion.nnx_denoiser(module)
  one = jax.jit(den.apply)
  loop = jnp.stack([one(params, z[i], gamma[i], y[i]) for i in range(5)])
  vmapped = jax.jit(jax.vmap(den.apply, in_axes=(None, 0, 0, 0)))(params, z, gamma, y)
  np.testing.assert_allclose(loop, batched, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(vmapped, batched, rtol=1e-5, atol=1e-5)
  assert den.data_shape == shape and den.num_classes == 3


def _eps_fn(module):
  den, params = diffusion.nnx_denoiser(module)
  return lambda z, g, y: den.apply(params, z, g, y)


def test_label_and_gamma_change_the_output():
  eps_fn = _eps_fn(_module(0))
  z = jnp.ones((4, 3), jnp.float32)
  a, b = eps_fn(z, 0.0, 0), eps_fn(z, 0.0, 1)
  c = eps_fn(z, 3.0, 0)
  assert float(jnp.max(jnp.abs(a - b))) > 1e-4
  assert float(jnp.max(jnp.abs(a - c))) > 1e-4


def test_zero_initialised_output():
  module = nets.MLPDenoiser((4, 3), 2, width=32, depth=2, rngs=nnx.Rngs(0))
  out = _eps_fn(module)(jnp.ones((2, 4, 3), jnp.float32), jnp.zeros(2),
                        jnp.array([0, 1]))
  np.testing.assert_array_equal(out, 0.0)


def test_three_parameter_sets_of_one_architecture_compile_once(key):
  # Every module of one graph definition gives an equal Denoiser, so classify, a
  # jitted log_likelihood and a vmap over params each compile once for all of them.
  from jgen.diffusion import classifier
  module = _module(0)
  dens = []
  for i in range(3):
    graphdef, params = nnx.split(module)
    dens.append(diffusion.nnx_denoiser(nnx.merge(graphdef, jax.tree.map(
        lambda p: p + 0.1 * i, params))))
  assert dens[0][0] == dens[1][0] == dens[2][0]
  assert hash(dens[0][0]) == hash(dens[2][0])
  x = jax.random.normal(key, (4, 3), jnp.float32)
  before = classifier._run._cache_size()
  labels = [int(diffusion.classify(jax.random.key(1), den, p, x, 3, num_t=4).label)
            for den, p in dens]
  assert classifier._run._cache_size() == before + 1 and len(labels) == 3
  model = diffusion.diffusion_classifier(dens[0][0], num_t=4)
  ids, prior = jnp.arange(3, dtype=jnp.int32), jnp.log(jnp.full(3, 1 / 3))
  ll = jax.jit(chex.assert_max_traces(model.log_likelihood, n=1))
  chex.clear_trace_counter()
  outs = [ll(diffusion.DiffusionParams(p, ids, prior), x[None], key=jax.random.key(2))
          for _, p in dens]
  assert outs[0].shape == (1, 3) and not np.array_equal(outs[0], outs[1])
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *[p for _, p in dens])
  vm = jax.vmap(lambda p: model.log_likelihood(diffusion.DiffusionParams(p, ids, prior),
                                               x[None], key=jax.random.key(2)))(stacked)
  np.testing.assert_allclose(vm[1], outs[1], rtol=1e-5, atol=1e-5)


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
  with_null = _eps_fn(random_module(nets.MLPDenoiser, (4, 3), 3, jax.random.key(0),
                                           width=32, depth=2, null_class=True))
  assert with_null(z, 0.0, 3).shape == (4, 3)  # label K is the null class
  without = _eps_fn(_module(0))
  with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=3\)"):
    without(z, 0.0, 3)


def test_bad_input():
  eps_fn = _eps_fn(_module(1))  # UNet on 8x8, 3 classes
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
  eps_fn = _eps_fn(_module(0))
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


def test_unet_upsampling_equals_repeat():
  from jgen.diffusion.nets.unet import _upsample2
  for shape in [(2, 5, 3), (2, 3, 4, 5)]:
    h = jax.random.normal(jax.random.key(0), shape)
    ref = h  # reference: jnp.repeat along each spatial axis (nearest neighbour)
    for ax in range(1, len(shape) - 1):
      ref = jnp.repeat(ref, 2, axis=ax)
    assert bool((_upsample2(h) == ref).all())
