"""Shared NNX building blocks named like their diffusers counterparts.

Attribute names follow diffusers' module names (``to_q``, ``to_out.0``, ``linear_1``),
so ``jgen.diffusion.pretrained.loading.fill_state`` finds each tensor by path.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["Identity", "Attention", "layer_norm", "sinusoidal_embedding"]


class Identity(nnx.Module):
  """A parameter-free slot that keeps diffusers' list indices (e.g. dropout)."""

  def __call__(self, x):
    return x


class Attention(nnx.Module):
  """Multi-head self-attention over tokens ``[N, D]`` (diffusers ``Attention``).

  Attributes follow diffusers: ``to_q``, ``to_k``, ``to_v`` and ``to_out.0``.
  """

  def __init__(self, dim: int, heads: int, head_dim: int, *, bias: bool,
               dtype, rngs: nnx.Rngs):
    inner = heads * head_dim
    lin = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
    self.heads, self.head_dim = heads, head_dim
    self.to_q = nnx.Linear(dim, inner, use_bias=bias, **lin)
    self.to_k = nnx.Linear(dim, inner, use_bias=bias, **lin)
    self.to_v = nnx.Linear(dim, inner, use_bias=bias, **lin)
    self.to_out = nnx.List([nnx.Linear(inner, dim, use_bias=True, **lin)])

  def __call__(self, x: jax.Array) -> jax.Array:
    n = x.shape[0]
    split = lambda a: a.reshape(n, self.heads, self.head_dim)
    q, k, v = split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))
    logits = jnp.einsum("qhd,khd->hqk", q, k) / math.sqrt(self.head_dim)
    # Softmax in float32 at least, as PyTorch's SDPA accumulates for half types.
    weights = jax.nn.softmax(logits.astype(jnp.promote_types(logits.dtype,
                                                             jnp.float32)), axis=-1)
    out = jnp.einsum("hqk,khd->qhd", weights.astype(v.dtype), v)
    return self.to_out[0](out.reshape(n, self.heads * self.head_dim))


def layer_norm(x: jax.Array, eps: float) -> jax.Array:
  """Affine-free LayerNorm over the last axis (two-pass variance, as PyTorch)."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


def sinusoidal_embedding(t: jax.Array, dim: int = 256) -> jax.Array:
  """diffusers' ``get_timestep_embedding(t, dim, flip_sin_to_cos=True, shift=1)``.

  Args:
    t: a scalar timestep (float).
    dim: embedding width (even).

  Returns:
    ``[dim]`` float32: ``[cos(t f), sin(t f)]`` with ``f_i = 10000^(-i / (dim/2 - 1))``.
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32)
                  / (half - 1.0))
  arg = jnp.asarray(t, jnp.float32) * freqs
  return jnp.concatenate([jnp.cos(arg), jnp.sin(arg)])
