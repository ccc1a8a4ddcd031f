r"""ModernBERT masked LM (Warner et al. 2024, arXiv 2412.13663) as an NNX module.

Pre-norm encoder with bias-free LayerNorms, fused ``Wqkv``, GeGLU MLP, rotary positions
with two bases (``global_rope_theta`` on global layers, ``local_rope_theta`` on local
ones), global attention every ``global_attn_every_n_layers`` layers and a bidirectional
sliding window ``|i - j| <= local_attention // 2`` elsewhere; the MLM head is
dense -> GELU -> LayerNorm -> decoder tied to the token embedding, with a bias.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jgen.text import layers

__all__ = ["ModernBertConfig", "ModernBert", "modernbert_config", "modernbert_weight_map"]


class ModernBertConfig(NamedTuple):
  vocab_size: int
  hidden: int
  intermediate: int
  n_layer: int
  n_head: int
  eps: float
  is_global: tuple  # bool per layer
  global_theta: float
  local_theta: float
  window: int  # half window: local layers see |i - j| <= window
  norm_bias: bool
  attn_bias: bool
  mlp_bias: bool
  head_bias: bool
  decoder_bias: bool


def modernbert_config(cfg: dict) -> ModernBertConfig:
  """``ModernBertConfig`` from a ``config.json`` dict (old and new formats)."""
  n = cfg["num_hidden_layers"]
  if cfg.get("layer_types"):
    is_global = tuple(t == "full_attention" for t in cfg["layer_types"])
  else:
    every = cfg.get("global_attn_every_n_layers", 3)
    is_global = tuple(i % every == 0 for i in range(n))
  rope = cfg.get("rope_parameters") or {}
  g = rope.get("full_attention", {}).get("rope_theta", cfg.get("global_rope_theta", 160000.0))
  loc = rope.get("sliding_attention", {}).get("rope_theta", cfg.get("local_rope_theta", 10000.0))
  for act_key in ("hidden_activation", "classifier_activation"):
    if cfg.get(act_key, "gelu") != "gelu":
      raise ValueError(f"config.json: {act_key}={cfg[act_key]!r} is not supported (gelu).")
  return ModernBertConfig(
      cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"], n,
      cfg["num_attention_heads"], cfg.get("norm_eps", 1e-5), is_global, float(g),
      float(loc), cfg.get("local_attention", 128) // 2, bool(cfg.get("norm_bias", False)),
      bool(cfg.get("attention_bias", False)), bool(cfg.get("mlp_bias", False)),
      bool(cfg.get("classifier_bias", False)), bool(cfg.get("decoder_bias", True)))


def _p(rngs, shape, dtype):
  return nnx.Param(0.02 * jax.random.normal(rngs.params(), shape, dtype))


def _norm(d, bias, dtype):
  return nnx.Param(jnp.ones(d, dtype)), (nnx.Param(jnp.zeros(d, dtype)) if bias else None)


def _ln(x, w, b, eps):
  return layers.layer_norm(x, w[...], None if b is None else b[...], eps)


def _lin(x, w, b):
  return layers.linear(x, w[...], None if b is None else b[...])


class _Layer(nnx.Module):

  def __init__(self, c: ModernBertConfig, idx: int, rngs: nnx.Rngs, dtype):
    d, f = c.hidden, c.intermediate
    self.c, self.idx = c, idx
    self.attn_norm_w, self.attn_norm_b = _norm(d, c.norm_bias, dtype) if idx else (None, None)
    self.wqkv = _p(rngs, (d, 3 * d), dtype)
    self.wqkv_b = nnx.Param(jnp.zeros(3 * d, dtype)) if c.attn_bias else None
    self.wo = _p(rngs, (d, d), dtype)
    self.wo_b = nnx.Param(jnp.zeros(d, dtype)) if c.attn_bias else None
    self.mlp_norm_w, self.mlp_norm_b = _norm(d, c.norm_bias, dtype)
    self.wi = _p(rngs, (d, 2 * f), dtype)
    self.wi_b = nnx.Param(jnp.zeros(2 * f, dtype)) if c.mlp_bias else None
    self.mlp_wo = _p(rngs, (f, d), dtype)
    self.mlp_wo_b = nnx.Param(jnp.zeros(d, dtype)) if c.mlp_bias else None

  def __call__(self, x, positions, mask):
    c, t = self.c, x.shape[0]
    h = x if self.idx == 0 else _ln(x, self.attn_norm_w, self.attn_norm_b, c.eps)
    q, k, v = (a.reshape(t, c.n_head, -1) for a in
               jnp.split(_lin(h, self.wqkv, self.wqkv_b), 3, axis=-1))
    theta = c.global_theta if c.is_global[self.idx] else c.local_theta
    inv_freq = layers.rope_inv_freq(q.shape[-1], theta)
    q, k = layers.apply_rope(q, positions, inv_freq), layers.apply_rope(k, positions, inv_freq)
    x = x + _lin(layers.attention(q, k, v, mask), self.wo, self.wo_b)
    h = _lin(_ln(x, self.mlp_norm_w, self.mlp_norm_b, c.eps), self.wi, self.wi_b)
    inp, gate = jnp.split(h, 2, axis=-1)
    return x + _lin(layers.gelu_erf(inp) * gate, self.mlp_wo, self.mlp_wo_b)


class ModernBert(nnx.Module):
  """ModernBERT masked LM for one sequence.

  Call: ``model(tokens[T], valid[T]) -> logits [T, V]`` (float32); ``valid`` marks the
  real tokens (keys at invalid positions are never attended), positions are ``0..T-1``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jgen.text.modernbert import ModernBert, ModernBertConfig
    >>> c = ModernBertConfig(50, 8, 12, 2, 2, 1e-5, (True, False), 160., 10., 2,
    ...                      False, False, False, False, True)
    >>> ModernBert(c, rngs=nnx.Rngs(0))(jnp.arange(4), jnp.ones(4, bool)).shape
    (4, 50)
  """

  def __init__(self, config: ModernBertConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
    c = config
    self.config = c
    self.embed = _p(rngs, (c.vocab_size, c.hidden), dtype)
    self.emb_norm_w, self.emb_norm_b = _norm(c.hidden, c.norm_bias, dtype)
    self.layers = nnx.List([_Layer(c, i, rngs, dtype) for i in range(c.n_layer)])
    self.final_norm_w, self.final_norm_b = _norm(c.hidden, c.norm_bias, dtype)
    self.head_w = _p(rngs, (c.hidden, c.hidden), dtype)
    self.head_b = nnx.Param(jnp.zeros(c.hidden, dtype)) if c.head_bias else None
    self.head_norm_w, self.head_norm_b = _norm(c.hidden, c.norm_bias, dtype)
    self.decoder_b = nnx.Param(jnp.zeros(c.vocab_size, dtype)) if c.decoder_bias else None

  def __call__(self, tokens, valid):
    c, t = self.config, tokens.shape[0]
    positions = jnp.arange(t)
    full = jnp.broadcast_to(valid[None, :], (t, t))
    local = full & (jnp.abs(positions[:, None] - positions[None, :]) <= c.window)
    x = _ln(self.embed[...][tokens], self.emb_norm_w, self.emb_norm_b, c.eps)
    for i, layer in enumerate(self.layers):
      x = layer(x, positions, full if c.is_global[i] else local)
    x = _ln(x, self.final_norm_w, self.final_norm_b, c.eps)
    x = _ln(layers.gelu_erf(_lin(x, self.head_w, self.head_b)), self.head_norm_w,
            self.head_norm_b, c.eps)
    logits = x @ self.embed[...].T
    if self.decoder_b is not None:
      logits = layers.linear(x, self.embed[...].T, self.decoder_b[...])
    return logits.astype(jnp.float32)


def modernbert_weight_map(c: ModernBertConfig) -> dict[str, tuple[tuple, bool]]:
  """Hugging Face tensor name -> (path in the NNX state, transpose?)."""
  out = {"model.embeddings.tok_embeddings.weight": (("embed",), False),
         "head.dense.weight": (("head_w",), True)}
  norms = {"model.embeddings.norm": "emb_norm", "model.final_norm": "final_norm",
           "head.norm": "head_norm"}
  per_layer = {"attn.Wqkv": ("wqkv", True), "attn.Wo": ("wo", True),
               "mlp.Wi": ("wi", True), "mlp.Wo": ("mlp_wo", True)}
  for hf, ours in norms.items():
    out[hf + ".weight"] = ((ours + "_w",), False)
    if c.norm_bias:
      out[hf + ".bias"] = ((ours + "_b",), False)
  if c.head_bias:
    out["head.dense.bias"] = (("head_b",), False)
  if c.decoder_bias:
    out["decoder.bias"] = (("decoder_b",), False)
  for i in range(c.n_layer):
    pre = f"model.layers.{i}."
    for name, bias in [("attn_norm", c.norm_bias), ("mlp_norm", c.norm_bias)]:
      if name == "attn_norm" and i == 0:
        continue
      out[pre + name + ".weight"] = (("layers", i, name + "_w"), False)
      if bias:
        out[pre + name + ".bias"] = (("layers", i, name + "_b"), False)
    for hf, (ours, tr) in per_layer.items():
      out[pre + hf + ".weight"] = (("layers", i, ours), tr)
      bias = c.attn_bias if hf.startswith("attn") else c.mlp_bias
      if bias:
        out[pre + hf + ".bias"] = (("layers", i, ours + "_b"), False)
  return out
