r"""GPT-2 (Radford et al. 2019) as an NNX module, read from Hugging Face weights.

Pre-LayerNorm blocks, learned absolute positions, tanh-GELU MLP, LM head tied to the
token embedding. Hugging Face stores GPT-2's ``Conv1D`` weights as ``(in, out)``, the
layout used here, so they load untransposed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jgen.text import layers

__all__ = ["GPT2Config", "GPT2", "gpt2_config", "gpt2_weight_map"]


class GPT2Config(NamedTuple):
  vocab_size: int
  n_positions: int
  n_embd: int
  n_layer: int
  n_head: int
  n_inner: int
  eps: float


def gpt2_config(cfg: dict) -> GPT2Config:
  """``GPT2Config`` from a ``config.json`` dict."""
  return GPT2Config(cfg["vocab_size"], cfg["n_positions"], cfg["n_embd"], cfg["n_layer"],
                    cfg["n_head"], cfg.get("n_inner") or 4 * cfg["n_embd"],
                    cfg.get("layer_norm_epsilon", 1e-5))


def _param(rngs: nnx.Rngs, shape, dtype, std: float = 0.02) -> nnx.Param:
  return nnx.Param(std * jax.random.normal(rngs.params(), shape, dtype))


class _Block(nnx.Module):

  def __init__(self, c: GPT2Config, rngs: nnx.Rngs, dtype):
    d = c.n_embd
    self.ln_1_w, self.ln_1_b = nnx.Param(jnp.ones(d, dtype)), nnx.Param(jnp.zeros(d, dtype))
    self.c_attn_w, self.c_attn_b = _param(rngs, (d, 3 * d), dtype), nnx.Param(jnp.zeros(3 * d, dtype))
    self.c_proj_w, self.c_proj_b = _param(rngs, (d, d), dtype), nnx.Param(jnp.zeros(d, dtype))
    self.ln_2_w, self.ln_2_b = nnx.Param(jnp.ones(d, dtype)), nnx.Param(jnp.zeros(d, dtype))
    self.fc_w, self.fc_b = _param(rngs, (d, c.n_inner), dtype), nnx.Param(jnp.zeros(c.n_inner, dtype))
    self.mlp_proj_w = _param(rngs, (c.n_inner, d), dtype)
    self.mlp_proj_b = nnx.Param(jnp.zeros(d, dtype))
    self.c = c

  def __call__(self, x, cache_k, cache_v, mask):
    c = self.c
    h = layers.layer_norm(x, self.ln_1_w[...], self.ln_1_b[...], c.eps)
    qkv = layers.linear(h, self.c_attn_w[...], self.c_attn_b[...])
    q, k, v = (a.reshape(x.shape[0], c.n_head, -1) for a in jnp.split(qkv, 3, axis=-1))
    att = layers.attention(q, layers.with_prefix(cache_k, k),
                           layers.with_prefix(cache_v, v), mask)
    x = x + layers.linear(att, self.c_proj_w[...], self.c_proj_b[...])
    h = layers.layer_norm(x, self.ln_2_w[...], self.ln_2_b[...], c.eps)
    h = layers.gelu_tanh(layers.linear(h, self.fc_w[...], self.fc_b[...]))
    return x + layers.linear(h, self.mlp_proj_w[...], self.mlp_proj_b[...]), k, v


class GPT2(nnx.Module):
  """GPT-2 language model for one sequence.

  Call: ``model(tokens[T], positions[T], cache=None, cache_valid=None)`` returns
  ``(logits [T, V] float32, KVCache)`` with the new positions' keys and values;
  ``cache`` is a ``KVCache`` of ``S`` earlier positions of
  which ``cache_valid [S]`` may be attended.

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jgen.text.gpt2 import GPT2, GPT2Config
    >>> m = GPT2(GPT2Config(50, 16, 8, 1, 2, 32, 1e-5), rngs=nnx.Rngs(0))
    >>> logits, kv = m(jnp.arange(3), jnp.arange(3))
    >>> logits.shape, kv.k.shape
    ((3, 50), (1, 3, 2, 4))
  """

  def __init__(self, config: GPT2Config, *, rngs: nnx.Rngs, dtype=jnp.float32):
    c = config
    self.config = c
    self.wte = _param(rngs, (c.vocab_size, c.n_embd), dtype)
    self.wpe = _param(rngs, (c.n_positions, c.n_embd), dtype, 0.01)
    self.blocks = nnx.List([_Block(c, rngs, dtype) for _ in range(c.n_layer)])
    self.ln_f_w = nnx.Param(jnp.ones(c.n_embd, dtype))
    self.ln_f_b = nnx.Param(jnp.zeros(c.n_embd, dtype))

  def __call__(self, tokens, positions, cache=None, cache_valid=None):
    x = self.wte[...][tokens] + self.wpe[...][positions]
    mask = layers.prefix_mask(cache_valid, tokens.shape[0])
    ks, vs = [], []
    for i, block in enumerate(self.blocks):
      x, k, v = block(x, None if cache is None else cache.k[i],
                      None if cache is None else cache.v[i], mask)
      ks.append(k)
      vs.append(v)
    x = layers.layer_norm(x, self.ln_f_w[...], self.ln_f_b[...], self.config.eps)
    logits = (x @ self.wte[...].T).astype(jnp.float32)
    return logits, layers.KVCache(jnp.stack(ks), jnp.stack(vs))


def gpt2_weight_map(c: GPT2Config) -> dict[str, tuple[tuple, bool]]:
  """Hugging Face tensor name -> (path in the NNX state, transpose?)."""
  out = {"wte.weight": (("wte",), False), "wpe.weight": (("wpe",), False),
         "ln_f.weight": (("ln_f_w",), False), "ln_f.bias": (("ln_f_b",), False)}
  names = {"ln_1.weight": "ln_1_w", "ln_1.bias": "ln_1_b", "attn.c_attn.weight": "c_attn_w",
           "attn.c_attn.bias": "c_attn_b", "attn.c_proj.weight": "c_proj_w",
           "attn.c_proj.bias": "c_proj_b", "ln_2.weight": "ln_2_w", "ln_2.bias": "ln_2_b",
           "mlp.c_fc.weight": "fc_w", "mlp.c_fc.bias": "fc_b",
           "mlp.c_proj.weight": "mlp_proj_w", "mlp.c_proj.bias": "mlp_proj_b"}
  for i in range(c.n_layer):
    for hf, ours in names.items():
      out[f"h.{i}.{hf}"] = (("blocks", i, ours), False)
  return {"transformer." + k: v for k, v in out.items()}
