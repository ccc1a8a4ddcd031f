r"""A Llama-family decoder (Touvron et al. 2023) as an NNX module.

RMSNorm, rotary positions (default or Llama 3.1 ``llama3`` scaling), grouped-query
attention, SwiGLU MLP; optional q/k/v/o and MLP biases and a tied head cover the usual
relatives (Llama 2/3, TinyLlama, SmolLM, Mistral without sliding windows). Hugging Face
stores ``nn.Linear`` weights as ``(out, in)``; they are transposed on load to the
``(in, out)`` layout used here.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jgen.text import layers

__all__ = ["LlamaConfig", "Llama", "llama_config", "llama_weight_map"]


class LlamaConfig(NamedTuple):
  vocab_size: int
  hidden: int
  intermediate: int
  n_layer: int
  n_head: int
  n_kv_head: int
  head_dim: int
  eps: float
  rope_theta: float
  rope: tuple  # sorted (key, value) pairs of the rope dict; hashable
  tie: bool
  attn_bias: bool
  mlp_bias: bool


def llama_config(cfg: dict) -> LlamaConfig:
  """``LlamaConfig`` from a ``config.json`` dict (old and new RoPE formats)."""
  rope = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
  theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
  heads = cfg["num_attention_heads"]
  return LlamaConfig(
      cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"],
      cfg["num_hidden_layers"], heads, cfg.get("num_key_value_heads") or heads,
      cfg.get("head_dim") or cfg["hidden_size"] // heads, cfg.get("rms_norm_eps", 1e-6),
      float(theta), tuple(sorted(rope.items())), bool(cfg.get("tie_word_embeddings", False)),
      bool(cfg.get("attention_bias", False)), bool(cfg.get("mlp_bias", False)))


def _linear(rngs, din, dout, bias, dtype):
  w = nnx.Param(0.02 * jax.random.normal(rngs.params(), (din, dout), dtype))
  return w, (nnx.Param(jnp.zeros(dout, dtype)) if bias else None)


def _apply(x, w, b):
  return layers.linear(x, w[...], None if b is None else b[...])


class _Block(nnx.Module):

  def __init__(self, c: LlamaConfig, rngs: nnx.Rngs, dtype):
    hd = c.head_dim
    self.c = c
    self.in_norm = nnx.Param(jnp.ones(c.hidden, dtype))
    self.q_w, self.q_b = _linear(rngs, c.hidden, c.n_head * hd, c.attn_bias, dtype)
    self.k_w, self.k_b = _linear(rngs, c.hidden, c.n_kv_head * hd, c.attn_bias, dtype)
    self.v_w, self.v_b = _linear(rngs, c.hidden, c.n_kv_head * hd, c.attn_bias, dtype)
    self.o_w, self.o_b = _linear(rngs, c.n_head * hd, c.hidden, c.attn_bias, dtype)
    self.post_norm = nnx.Param(jnp.ones(c.hidden, dtype))
    self.gate_w, self.gate_b = _linear(rngs, c.hidden, c.intermediate, c.mlp_bias, dtype)
    self.up_w, self.up_b = _linear(rngs, c.hidden, c.intermediate, c.mlp_bias, dtype)
    self.down_w, self.down_b = _linear(rngs, c.intermediate, c.hidden, c.mlp_bias, dtype)

  def __call__(self, x, positions, inv_freq, cache_k, cache_v, mask):
    c, t = self.c, x.shape[0]
    h = layers.rms_norm(x, self.in_norm[...], c.eps)
    q = _apply(h, self.q_w, self.q_b).reshape(t, c.n_head, c.head_dim)
    k = _apply(h, self.k_w, self.k_b).reshape(t, c.n_kv_head, c.head_dim)
    v = _apply(h, self.v_w, self.v_b).reshape(t, c.n_kv_head, c.head_dim)
    q = layers.apply_rope(q, positions, inv_freq)
    k = layers.apply_rope(k, positions, inv_freq)
    att = layers.attention(q, layers.with_prefix(cache_k, k),
                           layers.with_prefix(cache_v, v), mask)
    x = x + _apply(att, self.o_w, self.o_b)
    h = layers.rms_norm(x, self.post_norm[...], c.eps)
    h = jax.nn.silu(_apply(h, self.gate_w, self.gate_b)) * _apply(h, self.up_w, self.up_b)
    return x + _apply(h, self.down_w, self.down_b), k, v


class Llama(nnx.Module):
  """Llama-family causal LM for one sequence; same call as ``GPT2``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jgen.text.llama import Llama, LlamaConfig
    >>> c = LlamaConfig(50, 16, 24, 1, 4, 2, 4, 1e-6, 1e4, (), False, False, False)
    >>> logits, kv = Llama(c, rngs=nnx.Rngs(0))(jnp.arange(3), jnp.arange(3))
    >>> logits.shape, kv.k.shape
    ((3, 50), (1, 3, 2, 4))
  """

  def __init__(self, config: LlamaConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
    c = config
    self.config = c
    self.embed = nnx.Param(0.02 * jax.random.normal(rngs.params(), (c.vocab_size, c.hidden), dtype))
    self.blocks = nnx.List([_Block(c, rngs, dtype) for _ in range(c.n_layer)])
    self.norm = nnx.Param(jnp.ones(c.hidden, dtype))
    if not c.tie:
      self.lm_head = nnx.Param(0.02 * jax.random.normal(rngs.params(), (c.hidden, c.vocab_size), dtype))

  def __call__(self, tokens, positions, cache=None, cache_valid=None):
    c = self.config
    inv_freq = layers.rope_inv_freq(c.head_dim, c.rope_theta, dict(c.rope))
    x = self.embed[...][tokens]
    mask = layers.prefix_mask(cache_valid, tokens.shape[0])
    ks, vs = [], []
    for i, block in enumerate(self.blocks):
      x, k, v = block(x, positions, inv_freq, None if cache is None else cache.k[i],
                      None if cache is None else cache.v[i], mask)
      ks.append(k)
      vs.append(v)
    x = layers.rms_norm(x, self.norm[...], c.eps)
    head = self.embed[...].T if c.tie else self.lm_head[...]
    return (x @ head).astype(jnp.float32), layers.KVCache(jnp.stack(ks), jnp.stack(vs))


def llama_weight_map(c: LlamaConfig) -> dict[str, tuple[tuple, bool]]:
  """Hugging Face tensor name -> (path in the NNX state, transpose?)."""
  out = {"model.embed_tokens.weight": (("embed",), False),
         "model.norm.weight": (("norm",), False)}
  if not c.tie:
    out["lm_head.weight"] = (("lm_head",), True)
  names = {"input_layernorm.weight": ("in_norm", False),
           "post_attention_layernorm.weight": ("post_norm", False)}
  for proj, ours, bias in [("self_attn.q_proj", "q", c.attn_bias), ("self_attn.k_proj", "k", c.attn_bias),
                           ("self_attn.v_proj", "v", c.attn_bias), ("self_attn.o_proj", "o", c.attn_bias),
                           ("mlp.gate_proj", "gate", c.mlp_bias), ("mlp.up_proj", "up", c.mlp_bias),
                           ("mlp.down_proj", "down", c.mlp_bias)]:
    names[f"{proj}.weight"] = (f"{ours}_w", True)
    if bias:
      names[f"{proj}.bias"] = (f"{ours}_b", False)
  for i in range(c.n_layer):
    for hf, (ours, tr) in names.items():
      out[f"model.layers.{i}.{hf}"] = (("blocks", i, ours), tr)
  return out
