"""Data-parallel denoiser training == single-device training for the same state.

Reference: ``jgen.diffusion.train.train_step`` on one device (same key flow), float32;
tolerance 1e-5 relative: the batch mean is summed in another order across devices.
"""

import jax
import numpy as np
import pytest
from flax import nnx

import jgen
from jgen import diffusion
from jgen.diffusion import nets
from jgen.diffusion import train as train_mod
K, DIM = 3, 4


@pytest.fixture(scope="module")
def setup():
  rng = np.random.default_rng(0)
  y = rng.integers(0, K, size=64).astype(np.int32)
  x = (rng.normal(size=(K, DIM))[y] + 0.3 * rng.normal(size=(64, DIM))).astype(
      np.float32)
  model = nets.MLPDenoiser((DIM,), K, width=32, depth=1, rngs=nnx.Rngs(0))
  config = train_mod.TrainConfig(num_steps=10, batch_size=16, warmup_steps=1)
  den, _ = diffusion.nnx_denoiser(model)
  return x, y, den, train_mod.init_state(model, config), config


def test_data_parallel_steps_equal_single_device(setup):
  x, y, den, state0, config = setup
  schedule = diffusion.linear_schedule()
  mesh = jgen.parallel.make_mesh(data=8, classes=1)
  kw = dict(denoiser=den, schedule=schedule, config=config, num_classes=K)
  ref, got = state0, jgen.parallel.replicate(state0, mesh)
  for _ in range(2):
    ref, ref_loss, _ = train_mod.train_step(ref, x, y, **kw)
    got, loss, _ = train_mod.train_step(got, x, y, mesh=mesh, **kw)  # the same step
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  assert int(got.step) == 2
  for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(ref.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  # Parameters stay replicated: every device holds the full arrays.
  leaf = jax.tree.leaves(got.params)[0]
  assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 8


def test_batch_must_split_evenly(setup):
  x, y, den, state0, config = setup
  with pytest.raises(ValueError, match="batch_size=16 must be divisible by the data"):
    train_mod.train_step(
        state0, x, y, denoiser=den, schedule=diffusion.linear_schedule(),
        config=config, num_classes=K,
        mesh=jgen.parallel.make_mesh(data=3, classes=1))
