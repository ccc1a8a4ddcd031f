"""Bad input to the pretrained loaders and models: errors name the file/tensor/argument."""

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jgen.diffusion.pretrained import dit_denoiser, load_dit, scoring, vae

DATA = os.path.join(os.path.dirname(__file__), "data", "pretrained")
WEIGHTS = "diffusion_pytorch_model.safetensors"


def _copy(tmp_path, name="dit_tiny"):
  dst = tmp_path / name
  shutil.copytree(os.path.join(DATA, name), dst)
  return dst


def _edit_config(folder, **changes):
  config = json.loads((folder / "config.json").read_text())
  config.update(changes)
  (folder / "config.json").write_text(json.dumps(config))


def _edit_tensors(folder, fn):
  tensors = load_file(str(folder / WEIGHTS))
  fn(tensors)
  save_file(tensors, str(folder / WEIGHTS))


def test_folder_without_config(tmp_path):
  folder = _copy(tmp_path)
  os.remove(folder / "config.json")
  with pytest.raises(ValueError, match="no config.json"):
    load_dit(str(folder))
  with pytest.raises(ValueError, match="does not exist"):
    load_dit(str(tmp_path / "nowhere"))


def test_unknown_class_name(tmp_path):
  folder = _copy(tmp_path)
  _edit_config(folder, _class_name="UNet2DConditionModel")
  with pytest.raises(ValueError, match="_class_name='UNet2DConditionModel'"):
    load_dit(str(folder))
  with pytest.raises(ValueError, match="_class_name='DiTTransformer2DModel'"):
    vae.load_vae_encoder(os.path.join(DATA, "dit_tiny"))


def test_wrong_shape_tensor(tmp_path):
  folder = _copy(tmp_path)
  name = "transformer_blocks.1.attn1.to_k.weight"
  _edit_tensors(folder, lambda t: t.update({name: np.zeros((16, 15), np.float32)}))
  with pytest.raises(ValueError, match=rf"{name}.*{WEIGHTS}.*\(16, 15\).*\(16, 16\)"):
    load_dit(str(folder))


def test_missing_tensor(tmp_path):
  folder = _copy(tmp_path)
  name = "proj_out_2.bias"
  _edit_tensors(folder, lambda t: t.pop(name))
  with pytest.raises(ValueError, match=f"{name}.*missing"):
    load_dit(str(folder))


def test_checkpoint_of_another_architecture(tmp_path):
  folder = _copy(tmp_path)
  _edit_config(folder, num_layers=1)  # the file holds a 2-block model
  with pytest.raises(ValueError, match="not used.*transformer_blocks.1"):
    load_dit(str(folder))
  folder = _copy(tmp_path, "vae_tiny")
  _edit_config(folder, layers_per_block=2)
  with pytest.raises(ValueError, match="resnets.1.*missing"):
    vae.load_vae_encoder(str(folder))


def test_unsupported_config_fields(tmp_path):
  folder = _copy(tmp_path)
  _edit_config(folder, norm_type="ada_norm_single")
  with pytest.raises(ValueError, match="norm_type"):
    load_dit(str(folder))
  with pytest.raises(ValueError, match="dtype"):
    load_dit(os.path.join(DATA, "dit_tiny"), jnp.float16)


def test_images_and_latents_of_wrong_shape():
  config, params = vae.load_vae_encoder(os.path.join(DATA, "vae_tiny"))
  with pytest.raises(ValueError, match=r"image must be \[H, W, 3\].*\(16, 16, 4\)"):
    vae.encode(config, params, jnp.zeros((16, 16, 4), jnp.float32))
  with pytest.raises(ValueError, match=r"multiples of 4.*\(18, 16, 3\)"):
    vae.encode(config, params, jnp.zeros((18, 16, 3), jnp.float32))
  dit_cfg, dit_params = load_dit(os.path.join(DATA, "dit_tiny"))
  den = dit_denoiser(dit_cfg)
  with pytest.raises(ValueError, match=r"z must have shape \(8, 8, 4\)"):
    den.apply(dit_params, jnp.zeros((4, 8, 8), jnp.float32), 0.0, 1)
  with pytest.raises(ValueError, match="noise must have shape"):
    scoring.class_eps_errors(den, dit_params, jnp.zeros((8, 8, 4), jnp.float32),
                             jnp.zeros((2, 8, 8, 4), jnp.float32),
                             scoring.reference_gammas(250), jnp.arange(3))
