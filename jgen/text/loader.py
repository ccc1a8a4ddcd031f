r"""Load Hugging Face-format folders into the NNX ports, without PyTorch.

A folder holds ``config.json``, one or more ``*.safetensors`` files (read with
safetensors' NumPy reader; bfloat16 tensors through ``ml_dtypes``) and
``tokenizer.json`` (the ``tokenizers`` library). ``model_type`` picks the port:
``gpt2``, ``llama`` (and ``mistral`` without a sliding window), ``modernbert``.
Every expected tensor must be present with the expected shape; buffers that hold no
weights (attention bias masks, rotary ``inv_freq``) are ignored; any other extra tensor
is an error, so a mislabelled checkpoint is never half-loaded.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import safetensors
import tokenizers
from flax import nnx

from jgen.text import gpt2, llama, modernbert

__all__ = ["PretrainedLM", "load_pretrained", "from_module", "read_safetensors"]

_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")
_FAMILIES = {
    "gpt2": ("causal", gpt2.gpt2_config, gpt2.GPT2, gpt2.gpt2_weight_map),
    "llama": ("causal", llama.llama_config, llama.Llama, llama.llama_weight_map),
    "mistral": ("causal", llama.llama_config, llama.Llama, llama.llama_weight_map),
    "modernbert": ("masked", modernbert.modernbert_config, modernbert.ModernBert,
                   modernbert.modernbert_weight_map),
}


class PretrainedLM(NamedTuple):
  """A language model split into a static graph and a weights pytree.

  Attributes:
    kind: ``"causal"`` or ``"masked"``.
    graphdef: the NNX graph definition (static; one compile per architecture).
    weights: the NNX ``State`` of parameters, passed to jitted code as data.
    tokenizer: a ``tokenizers.Tokenizer`` (or ``None``).
    config: the ``config.json`` dict (``{}`` for modules built in code).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jgen.text.gpt2 import GPT2, GPT2Config
    >>> lm = from_module(GPT2(GPT2Config(50, 16, 8, 1, 2, 32, 1e-5), rngs=nnx.Rngs(0)),
    ...                  "causal")
    >>> logits, _ = lm.apply(lm.weights, jnp.arange(3), jnp.arange(3))
    >>> lm.kind, lm.vocab_size, logits.shape
    ('causal', 50, (3, 50))
  """
  kind: str
  graphdef: Any
  weights: Any
  tokenizer: Any
  config: dict

  def apply(self, weights: Any, *args) -> Any:
    """Call the module rebuilt from ``weights`` (a pure function of its inputs)."""
    return nnx.merge(self.graphdef, weights)(*args)

  @property
  def vocab_size(self) -> int:
    return int(self.config.get("vocab_size", 0)) or _vocab_from_weights(self.weights)


def _vocab_from_weights(weights) -> int:
  leaves = nnx.to_pure_dict(weights)
  for name in ("wte", "embed", "log_table"):
    if name in leaves:
      return int(np.shape(leaves[name])[-2 if name != "log_table" else -1])
  raise ValueError("cannot infer the vocabulary size from the weights; set config['vocab_size'].")


def from_module(module: nnx.Module, kind: str, tokenizer=None, config: dict | None = None
                ) -> PretrainedLM:
  """Wrap an NNX module built in code (a toy or freshly trained LM) as a PretrainedLM.

  Examples:
    >>> from flax import nnx
    >>> from jgen.text.gpt2 import GPT2, GPT2Config
    >>> lm = from_module(GPT2(GPT2Config(50, 16, 8, 1, 2, 32, 1e-5), rngs=nnx.Rngs(0)), "causal")
    >>> lm.vocab_size
    50
  """
  if kind not in ("causal", "masked"):
    raise ValueError(f"kind must be 'causal' or 'masked', got {kind!r}.")
  graphdef, weights = nnx.split(module, nnx.Param)
  return PretrainedLM(kind, graphdef, weights, tokenizer, dict(config or {}))


def read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
  """Every tensor of one ``.safetensors`` file as NumPy (bfloat16 via ml_dtypes)."""
  out = {}
  with safetensors.safe_open(str(path), framework="numpy") as f:
    for name in f.keys():
      try:
        out[name] = f.get_tensor(name)
      except TypeError:  # NumPy has no bfloat16: read the raw bytes per the format spec
        out[name] = _read_raw(path, name)
  return out


def _read_raw(path: pathlib.Path, name: str) -> np.ndarray:
  with open(path, "rb") as fh:
    n = int.from_bytes(fh.read(8), "little")
    info = json.loads(fh.read(n))[name]
    start, end = info["data_offsets"]
    fh.seek(8 + n + start)
    raw = fh.read(end - start)
  dtypes = {"BF16": ml_dtypes.bfloat16, "F8_E4M3": ml_dtypes.float8_e4m3fn,
            "F8_E5M2": ml_dtypes.float8_e5m2}
  if info["dtype"] not in dtypes:
    raise TypeError(f"{path.name}: tensor {name!r} has unsupported dtype {info['dtype']}.")
  return np.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"])


def _read_config(folder: pathlib.Path) -> dict:
  path = folder / "config.json"
  if not path.is_file():
    raise ValueError(f"{folder}: no config.json (a Hugging Face model folder needs one).")
  cfg = json.loads(path.read_text())
  if cfg.get("model_type") not in _FAMILIES:
    raise ValueError(f"{path}: model_type {cfg.get('model_type')!r} is not supported"
                     f" ({', '.join(_FAMILIES)}).")
  if cfg.get("model_type") == "mistral" and cfg.get("sliding_window"):
    raise ValueError(f"{path}: sliding-window Mistral attention is not supported.")
  return cfg


def _read_tensors(folder: pathlib.Path) -> dict[str, tuple[np.ndarray, str]]:
  files = sorted(folder.glob("*.safetensors"))
  if not files:
    raise ValueError(f"{folder}: no *.safetensors file (PyTorch .bin files are not read).")
  tensors = {}
  for f in files:
    for name, arr in read_safetensors(f).items():
      tensors[name] = (arr, f.name)
  return tensors


def _fill(abstract: dict, weight_map: dict, tensors: dict, dtype, folder) -> dict:
  """Place each Hugging Face tensor at its NNX path, checking names and shapes."""
  filled = jax.tree.map(lambda _: None, abstract)
  for hf_name, (path, transpose) in weight_map.items():
    if hf_name not in tensors:
      raise ValueError(f"{folder}: missing tensor {hf_name!r} in the safetensors files.")
    arr, fname = tensors.pop(hf_name)
    arr = arr.T if transpose else arr
    node = filled
    for p in path[:-1]:
      node = node[p]
    want = abstract
    for p in path:
      want = want[p]
    if tuple(arr.shape) != tuple(want.shape):
      stored = tuple(want.shape)[::-1] if transpose else tuple(want.shape)
      raise ValueError(f"{fname}: tensor {hf_name!r} has shape {tuple(arr.T.shape if transpose else arr.shape)},"
                       f" expected {stored}.")
    node[path[-1]] = jnp.asarray(arr, dtype=dtype or arr.dtype)
  extra = [n for n in tensors if not n.endswith(_IGNORED_SUFFIXES)
           and not (n == "lm_head.weight" and "lm_head" not in abstract)]
  if extra:
    raise ValueError(f"{folder}: unexpected tensors {sorted(extra)[:5]} (wrong model_type?).")
  return filled


def _read_tokenizer(folder: pathlib.Path, vocab_size: int):
  path = folder / "tokenizer.json"
  if not path.is_file():
    return None
  tok = tokenizers.Tokenizer.from_file(str(path))
  n = tok.get_vocab_size(with_added_tokens=True)
  if n > vocab_size:
    raise ValueError(f"{path}: the tokenizer has {n} tokens but the model's vocabulary"
                     f" (config.json vocab_size) has {vocab_size}: they do not match.")
  return tok


def load_pretrained(folder: str | pathlib.Path, *, dtype=None) -> PretrainedLM:
  """Load a Hugging Face-format folder into the matching NNX port.

  Args:
    folder: directory with ``config.json``, ``*.safetensors`` and optionally
      ``tokenizer.json``.
    dtype: cast every weight to this dtype (e.g. ``jnp.float32`` for bfloat16
      checkpoints); ``None`` keeps the stored dtype.

  Returns:
    A [`PretrainedLM`][jgen.text.PretrainedLM].

  Raises:
    ValueError: a missing file, an unsupported ``model_type``, a missing, extra or
      mis-shaped tensor (named with its file), or a tokenizer larger than the model's
      vocabulary.

  Examples:
    >>> lm = load_pretrained("tests/data/text/gpt2")
    >>> lm.kind, lm.vocab_size
    ('causal', 308)
  """
  folder = pathlib.Path(folder)
  cfg = _read_config(folder)
  kind, make_cfg, module_cls, weight_map_fn = _FAMILIES[cfg["model_type"]]
  c = make_cfg(cfg)
  abstract_module = nnx.eval_shape(lambda: module_cls(c, rngs=nnx.Rngs(0)))
  graphdef, abstract_state = nnx.split(abstract_module, nnx.Param)
  abstract = nnx.to_pure_dict(abstract_state)
  tensors = _read_tensors(folder)
  if cfg["model_type"] == "gpt2" and "wte.weight" in tensors:  # the original checkpoints
    tensors = {"transformer." + k: v for k, v in tensors.items()}
  filled = _fill(abstract, weight_map_fn(c), tensors, dtype, folder)
  nnx.replace_by_pure_dict(abstract_state, filled)
  tok = _read_tokenizer(folder, cfg["vocab_size"])
  return PretrainedLM(kind, graphdef, abstract_state, tok, cfg)
