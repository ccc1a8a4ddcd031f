"""jgen.io.save / load: a round trip is bitwise exact for every family; a missing,
foreign, newer-version or damaged folder raises CheckpointError naming the problem.

The reference for every round trip is the model before saving: ``log_likelihood`` of
the loaded ``(model, params)`` must equal it bit for bit (same inputs, same key).
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jgen
from jgen import diffusion
from jgen.io import FORMAT_VERSION, load, save
from jgen.parallel.checkpoint import CheckpointError, save_pytree


def _data(key, n=24, d=3, k=3, dtype=jnp.float32):
  kx, ky = jax.random.split(key)
  y = jnp.arange(n) % k
  x = jax.random.normal(kx, (n, d), dtype) + jnp.eye(k, d, dtype=dtype)[y] * 2
  return x, y


FAMILIES = {
    "gaussian_nb": lambda: jgen.gaussian_nb(var_smoothing=1e-6),
    "gaussian_nb_pooled": lambda: jgen.gaussian_nb(pooled=True),
    "lda": lambda: jgen.lda(shrinkage=0.3),
    "qda": lambda: jgen.qda(reg_param=0.05),
    "logistic_regression": lambda: jgen.logistic_regression(C=2.0, max_iter=50),
}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_round_trip_is_bitwise(family, dtype, key, tmp_path):
  x, y = _data(key, dtype=dtype)
  model = FAMILIES[family]()
  params = model.fit(x, y, num_classes=3)
  save(tmp_path / "m", model, params)
  model2, params2 = load(tmp_path / "m")
  assert model2.name == model.name and model2.hyperparams == model.hyperparams
  assert type(params2) is type(params)
  assert jax.tree.map(lambda a: a.dtype, params2) == jax.tree.map(lambda a: a.dtype,
                                                                    params)
  a = np.asarray(model.log_likelihood(params, x))
  b = np.asarray(model2.log_likelihood(params2, x))
  np.testing.assert_array_equal(a, b)
  assert a.dtype == b.dtype == dtype


def _tiny_diffusion(key, tmp_path=None):
  module = diffusion.MLPDenoiser((2,), 2, width=8, depth=1, rngs=nnx.Rngs(0))
  den, init = diffusion.nnx_denoiser(module)
  cfg = diffusion.TrainConfig(num_steps=6, batch_size=8, warmup_steps=1,
                              learning_rate=1e-2, log_every=1000)
  model = diffusion.diffusion_classifier(den, num_t=4, train_config=cfg,
                                         init_params=init,
                                         schedule=diffusion.cosine_schedule(-10.0, 6.0))
  x, y = _data(key, n=16, d=2, k=2)
  return model, model.fit(x, y, num_classes=2), x


def test_round_trip_trained_diffusion_classifier(key, tmp_path):
  model, params, x = _tiny_diffusion(key)
  save(tmp_path / "dc", model, params)
  model2, params2 = load(tmp_path / "dc")
  k = jax.random.key(3)
  a = np.asarray(model.log_likelihood(params, x, key=k))
  b = np.asarray(model2.log_likelihood(params2, x, key=k))
  np.testing.assert_array_equal(a, b)
  assert np.isfinite(a).all()
  assert model2.hyperparams["train_config"] == model.hyperparams["train_config"]
  assert model2.hyperparams["schedule"].name == model.hyperparams["schedule"].name


def _saved(tmp_path, key):
  x, y = _data(key)
  model = jgen.qda(reg_param=0.1)
  save(tmp_path / "m", model, model.fit(x, y, num_classes=3))
  return tmp_path / "m"


def test_missing_folder(tmp_path):
  with pytest.raises(CheckpointError, match="does not exist"):
    load(tmp_path / "nothing_here")


def test_foreign_folders(tmp_path):
  (tmp_path / "plain").mkdir()
  (tmp_path / "plain" / "notes.txt").write_text("hello")
  with pytest.raises(CheckpointError, match="not a readable jgen model"):
    load(tmp_path / "plain")
  save_pytree(tmp_path / "orbax", {"w": np.ones(3, np.float32)})
  with pytest.raises(CheckpointError, match="not a jgen model"):
    load(tmp_path / "orbax")


def test_newer_format_version(tmp_path, key):
  x, y = _data(key)
  model = jgen.gaussian_nb()
  params = model.fit(x, y, num_classes=3)
  meta = {"format": "jgen.model", "format_version": FORMAT_VERSION + 1,
          "family": "gaussian_nb", "hyperparams": dict(model.hyperparams), "digest": ""}
  text = json.dumps(meta).encode()
  save_pytree(tmp_path / "new", {"meta": np.frombuffer(text, np.uint8),
                                 "params": dict(params._asdict())})
  with pytest.raises(CheckpointError, match="newer than this jgen reads"):
    load(tmp_path / "new")


def _data_files(folder):
  """The files orbax's OCDBT store keeps array chunks in (``.../d/<hash>``)."""
  return [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs
          if os.path.basename(r) == "d"]


def test_truncated_array_files(tmp_path, key):
  folder = _saved(tmp_path, key)
  files = _data_files(folder)
  assert files, "no array data files found in the orbax folder"
  for p in files:
    with open(p, "r+b") as f:
      f.truncate(os.path.getsize(p) // 2)
  with pytest.raises(CheckpointError, match="not a readable jgen model|damaged"):
    load(folder)


def test_missing_metadata_file(tmp_path, key):
  folder = _saved(tmp_path, key)
  os.remove(folder / "_METADATA")
  with pytest.raises(CheckpointError, match="not a readable jgen model"):
    load(folder)


def test_corrupted_values_fail_the_digest(tmp_path, key):
  # A checkpoint whose arrays were replaced by other valid arrays (same shapes):
  # orbax reads it fine; the digest saved in the metadata catches it.
  x, y = _data(key)
  model = jgen.lda(shrinkage=0.1)
  params = model.fit(x, y, num_classes=3)
  save(tmp_path / "m", model, params)
  tree = jgen.checkpoint.restore_pytree(tmp_path / "m")
  tree["params"]["means"] = np.asarray(tree["params"]["means"]) + np.float32(1e-3)
  save_pytree(tmp_path / "m", tree)
  with pytest.raises(CheckpointError, match="digest differs"):
    load(tmp_path / "m")


def test_save_rejects_mismatched_params_and_unknown_family(tmp_path, key):
  x, y = _data(key)
  nb = jgen.gaussian_nb()
  with pytest.raises(TypeError, match="params must be GaussianNBParams"):
    save(tmp_path / "m", nb, jgen.lda().fit(x, y, num_classes=3))
  custom = nb._replace(name="my_density")
  with pytest.raises(ValueError, match="my_density"):
    save(tmp_path / "m", custom, nb.fit(x, y, num_classes=3))
  assert not (tmp_path / "m").exists()
