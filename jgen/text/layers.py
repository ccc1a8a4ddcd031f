r"""Functional building blocks shared by the transformer ports.

Per-example semantics: a sequence is ``[T, D]``; batches and classes are ``vmap``\ ed
by the callers. Attention takes keys made of an optional cached prefix ``[S]`` followed
by the sequence's own ``[T]`` positions, so one function serves a prefill, a cached
continuation and a bidirectional encoder.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["KVCache", "layer_norm", "rms_norm", "rope_inv_freq", "apply_rope",
           "attention", "causal_mask", "linear", "gelu_tanh", "gelu_erf"]


class KVCache(NamedTuple):
  """Keys and values of every layer for a sequence of ``S`` positions.

  Attributes:
    k: ``[layers, S, kv_heads, head_dim]`` (after RoPE where the model uses it).
    v: ``[layers, S, kv_heads, head_dim]``.
  """
  k: jax.Array
  v: jax.Array


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array | None,
               eps: float) -> jax.Array:
  """LayerNorm over the last axis (biased variance, as ``torch.nn.LayerNorm``)."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  y = (x - mean) * jax.lax.rsqrt(var + eps) * _lead(scale, x)
  return y if bias is None else y + _lead(bias, x)


def rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
  """RMSNorm (Zhang & Sennrich 2019) computed in float32, cast back, then scaled."""
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
  return _lead(scale, x) * y.astype(x.dtype)


def _lead(v: jax.Array, x: jax.Array) -> jax.Array:
  """``v [D]`` with leading unit axes to ``x``'s rank (rank promotion is explicit)."""
  return v.reshape((1,) * (x.ndim - 1) + v.shape)


def linear(x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
  """``x [..., Din] @ w [Din, Dout] (+ b [Dout])``."""
  y = x @ w
  return y if b is None else y + _lead(b, y)


def gelu_tanh(x: jax.Array) -> jax.Array:
  """GPT-2's ``gelu_new``: the tanh approximation of GELU."""
  return jax.nn.gelu(x, approximate=True)


def gelu_erf(x: jax.Array) -> jax.Array:
  """Exact (erf) GELU, ``torch.nn.GELU()``'s default."""
  return jax.nn.gelu(x, approximate=False)


def rope_inv_freq(head_dim: int, theta: float, rope: dict | None = None) -> jax.Array:
  """RoPE inverse frequencies ``[head_dim // 2]`` (Su et al. 2021), float32.

  ``rope`` is a Hugging Face ``rope_parameters``/``rope_scaling`` dict; ``"default"``
  and Llama 3.1's ``"llama3"`` frequency-dependent scaling are supported.

  Raises:
    ValueError: for another ``rope_type``.
  """
  inv = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  kind = (rope or {}).get("rope_type", (rope or {}).get("type", "default"))
  if kind == "default":
    return inv
  if kind != "llama3":
    raise ValueError(f"rope_type {kind!r} is not supported (default, llama3).")
  factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
  old_len = rope["original_max_position_embeddings"]
  wavelen = 2 * math.pi / inv
  scaled = jnp.where(wavelen > old_len / low, inv / factor, inv)
  smooth = (old_len / wavelen - low) / (high - low)
  smoothed = (1 - smooth) * scaled / factor + smooth * scaled
  medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
  return jnp.where(medium, smoothed, scaled)


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
  """Rotate ``x [T, H, Dh]`` by ``positions [T]`` (the "rotate half" layout)."""
  angles = positions.astype(jnp.float32)[:, None] * inv_freq[None, :]
  emb = jnp.concatenate([angles, angles], axis=-1)[:, None, :]
  cos, sin = jnp.cos(emb).astype(x.dtype), jnp.sin(emb).astype(x.dtype)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return x * cos + rotated * sin


def causal_mask(num: int) -> jax.Array:
  """``bool [T, T]``: position ``i`` sees ``j <= i``."""
  return jnp.tril(jnp.ones((num, num), dtype=bool))


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
  """Scaled dot-product attention with grouped-query heads.

  Args:
    q: ``[T, H, Dh]``.
    k: ``[S, Hkv, Dh]`` with ``H % Hkv == 0`` (query head ``h`` reads kv head
      ``h // (H // Hkv)``, as ``repeat_kv`` in transformers).
    v: ``[S, Hkv, Dh]``.
    mask: ``bool [T, S]``, True where a query may attend. Every row needs one True.

  Returns:
    ``[T, H * Dh]``.
  """
  t, h, dh = q.shape
  groups = h // k.shape[1]
  qg = q.reshape(t, k.shape[1], groups, dh)
  logits = jnp.einsum("tkgd,skd->kgts", qg, k) / jnp.sqrt(jnp.asarray(dh, q.dtype))
  logits = jnp.where(mask[None, None], logits.astype(jnp.float32), -jnp.inf)
  weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  out = jnp.einsum("kgts,skd->tkgd", weights, v)
  return out.reshape(t, h * dh)


def prefix_mask(prefix_valid: jax.Array | None, num: int) -> jax.Array:
  """``bool [T, S + T]``: the valid cached prefix, then causal self-attention."""
  own = causal_mask(num)
  if prefix_valid is None:
    return own
  pre = jnp.broadcast_to(prefix_valid[None, :], (num, prefix_valid.shape[0]))
  return jnp.concatenate([pre, own], axis=1)


def with_prefix(cache_kv: jax.Array | None, own: jax.Array) -> jax.Array:
  """Concatenate a cached prefix ``[S, ...]`` (or nothing) with ``own [T, ...]``."""
  return own if cache_kv is None else jnp.concatenate([cache_kv, own], axis=0)
