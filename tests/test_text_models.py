"""NNX ports against PyTorch: GPT-2, Llama (GQA, llama3 RoPE) and ModernBERT.

Reference values: ``tests/data/text/<name>/logits.npy``, written by
``tests/data/text/make_text_fixtures.py`` from the transformers implementations
(``GPT2LMHeadModel``, ``LlamaForCausalLM``, ``ModernBertForMaskedLM``) on random tiny
configurations saved with ``save_pretrained``. A live test re-runs PyTorch when it
is importable.
"""

import importlib.util
import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jgen.text import loader

DATA = pathlib.Path(__file__).parent / "data" / "text"
NAMES = ["gpt2", "llama", "modernbert"]


def _logits(lm, ids):
  t = jnp.asarray(ids)
  if lm.kind == "causal":
    fn = jax.jit(lambda w, t: lm.apply(w, t, jnp.arange(t.shape[0]))[0])
  else:
    fn = jax.jit(lambda w, t: lm.apply(w, t, jnp.ones(t.shape[0], bool)))
  return np.asarray(fn(lm.weights, t))


@pytest.mark.parametrize("name", NAMES)
def test_logits_match_pytorch_fixture(name):
  lm = loader.load_pretrained(DATA / name)
  ids = np.load(DATA / name / "input_ids.npy")
  ref = np.load(DATA / name / "logits.npy")
  for b in range(ids.shape[0]):
    np.testing.assert_allclose(_logits(lm, ids[b]), ref[b], atol=1e-4, rtol=0)


def test_cached_continuation_equals_full_forward():
  """Prefill + cached extension = one forward pass over the concatenation."""
  lm = loader.load_pretrained(DATA / "llama")
  ids = jnp.asarray(np.load(DATA / "llama" / "input_ids.npy")[0])

  @jax.jit
  def both(w, ids):
    full, _ = lm.apply(w, ids, jnp.arange(12))
    _, cache = lm.apply(w, ids[:7], jnp.arange(7))
    ext, _ = lm.apply(w, ids[7:], jnp.arange(7, 12), cache, jnp.ones(7, bool))
    return full, ext

  full, ext = both(lm.weights, ids)
  np.testing.assert_allclose(ext, full[7:], atol=1e-5, rtol=0)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None
                    or importlib.util.find_spec("transformers") is None,
                    reason="live comparison needs torch and transformers")
def test_logits_match_pytorch_live():
  import torch
  import transformers
  classes = {"gpt2": transformers.GPT2LMHeadModel, "llama": transformers.LlamaForCausalLM,
             "modernbert": transformers.ModernBertForMaskedLM}
  ids = np.random.default_rng(7).integers(0, 250, size=(1, 9))
  for name, cls in classes.items():
    model = cls.from_pretrained(DATA / name, attn_implementation="eager").eval()
    with torch.no_grad():
      ref = model(torch.from_numpy(ids)).logits.numpy()[0]
    np.testing.assert_allclose(_logits(loader.load_pretrained(DATA / name), ids[0]), ref,
                               atol=1e-4, rtol=0, err_msg=name)


def _copy(name, tmp_path):
  dst = tmp_path / name
  shutil.copytree(DATA / name, dst)
  return dst


def test_missing_tensor_is_named(tmp_path):
  d = _copy("gpt2", tmp_path)
  tensors = load_file(d / "model.safetensors")
  del tensors["transformer.h.1.mlp.c_fc.weight"]
  save_file(tensors, d / "model.safetensors")
  with pytest.raises(ValueError, match="transformer.h.1.mlp.c_fc.weight"):
    loader.load_pretrained(d)


def test_misshaped_tensor_is_named_with_file(tmp_path):
  d = _copy("llama", tmp_path)
  tensors = load_file(d / "model.safetensors")
  tensors["model.layers.0.self_attn.k_proj.weight"] = np.zeros((8, 32), np.float32)
  save_file(tensors, d / "model.safetensors")
  with pytest.raises(ValueError, match=r"model.safetensors.*k_proj.weight.*\(8, 32\), expected \(16, 32\)"):
    loader.load_pretrained(d)


def test_unexpected_tensor_is_named(tmp_path):
  d = _copy("modernbert", tmp_path)
  tensors = load_file(d / "model.safetensors")
  tensors["classifier.weight"] = np.zeros((2, 32), np.float32)
  save_file(tensors, d / "model.safetensors")
  with pytest.raises(ValueError, match="classifier.weight"):
    loader.load_pretrained(d)


def test_missing_files_are_named(tmp_path):
  with pytest.raises(ValueError, match="config.json"):
    loader.load_pretrained(tmp_path)
  d = _copy("gpt2", tmp_path)
  (d / "model.safetensors").unlink()
  with pytest.raises(ValueError, match="safetensors"):
    loader.load_pretrained(d)


def test_tokenizer_vocabulary_mismatch(tmp_path):
  d = _copy("gpt2", tmp_path)
  cfg = json.loads((d / "config.json").read_text())
  cfg["vocab_size"] = 100
  (d / "config.json").write_text(json.dumps(cfg))
  tensors = load_file(d / "model.safetensors")
  tensors["transformer.wte.weight"] = tensors["transformer.wte.weight"][:100]
  save_file(tensors, d / "model.safetensors")
  with pytest.raises(ValueError, match="tokenizer.json.*do not match"):
    loader.load_pretrained(d)


def test_bfloat16_checkpoint_reads_and_casts(tmp_path):
  import ml_dtypes
  d = _copy("gpt2", tmp_path)
  tensors = {k: v.astype(ml_dtypes.bfloat16) for k, v in load_file(d / "model.safetensors").items()}
  # safetensors' NumPy writer knows no bfloat16: write the format by hand (spec: 8-byte
  # little-endian header size, JSON header with data_offsets, raw bytes).
  header, blobs, off = {}, [], 0
  for k, v in tensors.items():
    b = v.tobytes()
    header[k] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
  h = json.dumps(header).encode()
  (d / "model.safetensors").write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))
  lm = loader.load_pretrained(d, dtype=jnp.float32)
  ref = loader.load_pretrained(DATA / "gpt2")
  ids = np.load(DATA / "gpt2" / "input_ids.npy")[0]
  # bfloat16 keeps 8 bits of mantissa: logits agree to bfloat16 rounding of the weights.
  np.testing.assert_allclose(_logits(lm, ids), _logits(ref, ids), atol=5e-2)
