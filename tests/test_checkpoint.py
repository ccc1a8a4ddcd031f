"""Tests for jgen.checkpoint: pytree and model save/restore, config mismatches."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jgen import checkpoint
from jgen.diffusion import nets, nnx_denoiser

SPEC = {"name": "linear", "gamma_min": -10.0, "gamma_max": 6.0}


def small_mlp(width=16, num_classes=3):
  return nets.MLPDenoiser((4, 3), num_classes, width=width, depth=1, cond_dim=16,
                          num_fourier=4, rngs=nnx.Rngs(0))


def test_model_round_trip(tmp_path, key):
  model = small_mlp()
  graphdef, params = nnx.split(model)
  params = jax.tree.map(lambda p: p + 0.05, params)  # non-zero output layer
  model = nnx.merge(graphdef, params)
  path = tmp_path / "model"
  checkpoint.save_model(path, model, schedule=SPEC, extra={"classes": ["a", "b", "c"]})
  loaded = checkpoint.load_model(path, expect={"num_classes": 3, "data_shape": [4, 3]})
  assert isinstance(loaded.module, nets.MLPDenoiser)
  assert loaded.config["extra"] == {"classes": ["a", "b", "c"]}
  assert nets.denoiser_config(loaded.module) == nets.denoiser_config(model)
  z = jax.random.normal(key, (4, 3), jnp.float32)
  den, p_loaded = nnx_denoiser(loaded.module)
  _, p_model = nnx_denoiser(model)
  np.testing.assert_array_equal(den.apply(p_loaded, z, 1.0, 2), den.apply(p_model, z, 1.0, 2))
  # The schedule is rebuilt from its spec: gamma(0), gamma(1) are the endpoints.
  np.testing.assert_allclose(loaded.schedule.gamma(jnp.array([0.0, 1.0])), [-10.0, 6.0],
                             rtol=1e-6)
  # Saving other parameters (e.g. the EMA copy) and restoring into a fresh module.
  ema = jax.tree.map(lambda p: 2 * p, nnx.to_pure_dict(params))
  checkpoint.save_model(path, model, params=ema)
  restored = checkpoint.restore_params(path, small_mlp())
  assert all(np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(nnx.to_pure_dict(nnx.split(restored)[1])), jax.tree.leaves(ema)))


def test_mismatched_config_is_named(tmp_path):
  path = tmp_path / "model"
  checkpoint.save_model(path, small_mlp())
  with pytest.raises(checkpoint.CheckpointError, match=r"width: checkpoint 16, expected 32"):
    checkpoint.restore_params(path, nets.MLPDenoiser((4, 3), 3, width=32, depth=1,
                                                     cond_dim=16, num_fourier=4,
                                                     rngs=nnx.Rngs(0)))
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"num_classes: checkpoint 3, expected 10"):
    checkpoint.load_model(path, expect={"num_classes": 10})
  with pytest.raises(checkpoint.CheckpointError, match="architecture"):
    unet = nnx.eval_shape(lambda: nets.UNetDenoiser((4, 3), 3, channels=(4,),
                                                    cond_dim=8, spatial_ndim=1,
                                                    rngs=nnx.Rngs(0)))
    checkpoint.restore_params(path, unet)


def test_pytree_restore_and_shape_mismatch(tmp_path):
  tree = {"w": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3),
          "b": {"c": jnp.ones(4, jnp.int32)}}
  path = tmp_path / "tree"
  checkpoint.save_pytree(path, tree)
  assert checkpoint.checkpoint_shapes(path) == {"w": ((2, 3), "float32"),
                                                "b/c": ((4,), "int32")}
  back = checkpoint.restore_pytree(path, jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree))
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), back, tree))
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"w: checkpoint shape \(2, 3\), target shape \(3, 2\)"):
    checkpoint.restore_pytree(path, {"w": jnp.zeros((3, 2)), "b": {"c": jnp.ones(4)}})
  with pytest.raises(checkpoint.CheckpointError, match="b/c: in checkpoint but not"):
    checkpoint.restore_pytree(path, {"w": jnp.zeros((2, 3))})


def test_restore_into_target_shardings(tmp_path):
  """A checkpoint restores straight into a new device layout (resharded restore)."""
  mesh = jax.make_mesh((jax.device_count(),), ("x",),
                       axis_types=(jax.sharding.AxisType.Explicit,))
  n = 2 * jax.device_count()
  tree = {"w": jnp.arange(n * 3, dtype=jnp.float32).reshape(n, 3)}
  path = tmp_path / "tree"
  checkpoint.save_pytree(path, tree)
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x", None))
  target = {"w": jax.ShapeDtypeStruct((n, 3), jnp.float32, sharding=sharding)}
  back = checkpoint.restore_pytree(path, target)
  assert back["w"].sharding == sharding
  np.testing.assert_array_equal(back["w"], tree["w"])


def test_bad_directories(tmp_path):
  with pytest.raises(checkpoint.CheckpointError, match="no config.json"):
    checkpoint.load_model(tmp_path)
  with pytest.raises(checkpoint.CheckpointError, match="no checkpoint directory"):
    checkpoint.restore_pytree(tmp_path / "missing")
  path = tmp_path / "model"
  checkpoint.save_model(path, small_mlp())
  for root, _, files in os.walk(path / "params"):  # corrupt the parameters
    for name in files:
      open(os.path.join(root, name), "w").close()
  with pytest.raises(checkpoint.CheckpointError, match="unreadable checkpoint|could not"):
    checkpoint.load_model(path)
  with pytest.raises(TypeError, match="jgen denoiser"):
    checkpoint.save_model(tmp_path / "x", nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
