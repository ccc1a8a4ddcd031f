"""DiT (Peebles & Xie, 2023) as a flax NNX port of diffusers' ``DiTTransformer2DModel``.

Patch embedding with fixed 2-D sin-cos positions, ``num_layers`` adaLN-Zero transformer
blocks conditioned on the timestep and the class (a table of ``num_classes + 1`` rows:
the last row is the null class of classifier-free guidance), a final adaptive LayerNorm
and a linear un-patchify. With learned sigma (``out_channels = 2 in_channels``) the
first ``in_channels`` output channels are ε. One example at a time, channels last:
``z[H, W, C]``. Attribute names mirror diffusers', so a ``save_pretrained`` folder
loads by path (``jgen.diffusion.pretrained.loading``).

Reference: W. Peebles, S. Xie, "Scalable Diffusion Models with Transformers", ICCV
2023; facebookresearch/DiT; huggingface/diffusers ``dit_transformer_2d.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgen.diffusion.pretrained.layers import Attention, Identity, layer_norm
from jgen.diffusion.pretrained.layers import sinusoidal_embedding

__all__ = ["DiTConfig", "DiT", "dit_config", "pos_embed_2d"]

_ACTIVATIONS = {"gelu-approximate": True, "gelu": False}


class DiTConfig(NamedTuple):
  """The architecture fields of a ``DiTTransformer2DModel`` ``config.json``.

  The defaults are DiT-XL/2 on 32 x 32 latents (``facebook/DiT-XL-2-256``).

  Examples:
    >>> cfg = DiTConfig(num_attention_heads=2, attention_head_dim=8, out_channels=8)
    >>> cfg.dim, cfg.in_channels, cfg.output_channels
    (16, 4, 8)
    >>> DiTConfig().dim, DiTConfig().num_layers
    (1152, 28)
  """
  num_attention_heads: int = 16
  attention_head_dim: int = 72
  in_channels: int = 4
  out_channels: int | None = None
  num_layers: int = 28
  sample_size: int = 32
  patch_size: int = 2
  activation_fn: str = "gelu-approximate"
  num_embeds_ada_norm: int = 1000
  norm_elementwise_affine: bool = False
  norm_eps: float = 1e-5
  attention_bias: bool = True

  @property
  def dim(self) -> int:
    return self.num_attention_heads * self.attention_head_dim

  @property
  def output_channels(self) -> int:
    return self.in_channels if self.out_channels is None else self.out_channels


def dit_config(config: dict) -> DiTConfig:
  """A [`DiTConfig`][jgen.diffusion.pretrained.DiTConfig] from a parsed ``config.json``
  (unknown keys ignored).

  Raises:
    ValueError: naming the field for a setting this port does not implement.

  Examples:
    >>> dit_config({"num_layers": 2, "attention_head_dim": 8}).num_layers
    2
  """
  fields = {k: config[k] for k in DiTConfig._fields if k in config}
  cfg = DiTConfig(**fields)
  if config.get("norm_type", "ada_norm_zero") != "ada_norm_zero":
    raise ValueError(f"norm_type={config['norm_type']!r} is not supported; DiT uses"
                     " 'ada_norm_zero'.")
  if cfg.activation_fn not in _ACTIVATIONS:
    raise ValueError(f"activation_fn={cfg.activation_fn!r} is not supported; expected"
                     f" one of {list(_ACTIVATIONS)}.")
  if cfg.sample_size % cfg.patch_size or cfg.dim % 4:
    raise ValueError(f"sample_size={cfg.sample_size} must be a multiple of patch_size="
                     f"{cfg.patch_size} and the width {cfg.dim} a multiple of 4.")
  if cfg.num_embeds_ada_norm is None:
    raise ValueError("num_embeds_ada_norm (the number of classes) must be set.")
  return cfg


def pos_embed_2d(dim: int, grid: int) -> np.ndarray:
  """diffusers' fixed 2-D sin-cos positions ``[grid * grid, dim]`` (float64).

  Token ``i * grid + j`` (row ``i``, column ``j``) gets ``[e(j), e(i)]`` with
  ``e(p) = [sin(p w), cos(p w)]``, ``w_k = 10000^(-k / (dim / 4))``.
  """
  omega = 1.0 / 10000.0 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
  rows, cols = np.meshgrid(np.arange(grid, dtype=np.float64),
                           np.arange(grid, dtype=np.float64), indexing="ij")
  def emb(pos):
    out = np.outer(pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)
  return np.concatenate([emb(cols), emb(rows)], axis=1)


class _Linears(nnx.Module):
  def __init__(self, d_in, d_out, *, dtype, rngs):
    lin = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
    self.linear_1 = nnx.Linear(d_in, d_out, **lin)
    self.linear_2 = nnx.Linear(d_out, d_out, **lin)

  def __call__(self, x):
    return self.linear_2(jax.nn.silu(self.linear_1(x)))


class _LabelEmbedding(nnx.Module):
  def __init__(self, num_classes, dim, *, dtype, rngs):
    self.embedding_table = nnx.Embed(num_classes + 1, dim, dtype=dtype,
                                     param_dtype=dtype, rngs=rngs)


class _Conditioning(nnx.Module):
  """``CombinedTimestepLabelEmbeddings``: MLP(sinusoid(t)) + table[y]."""

  def __init__(self, num_classes, dim, *, dtype, rngs):
    self.timestep_embedder = _Linears(256, dim, dtype=dtype, rngs=rngs)
    self.class_embedder = _LabelEmbedding(num_classes, dim, dtype=dtype, rngs=rngs)

  def __call__(self, t, y, dtype):
    t_emb = self.timestep_embedder(sinusoidal_embedding(t).astype(dtype))
    return t_emb + self.class_embedder.embedding_table(y)


class _AdaLNZero(nnx.Module):
  def __init__(self, num_classes, dim, *, dtype, rngs):
    self.emb = _Conditioning(num_classes, dim, dtype=dtype, rngs=rngs)
    self.linear = nnx.Linear(dim, 6 * dim, dtype=dtype, param_dtype=dtype, rngs=rngs)


class _GELUProj(nnx.Module):
  def __init__(self, d_in, d_out, approximate, *, dtype, rngs):
    self.approximate = approximate
    self.proj = nnx.Linear(d_in, d_out, dtype=dtype, param_dtype=dtype, rngs=rngs)

  def __call__(self, x):
    return jax.nn.gelu(self.proj(x), approximate=self.approximate)


class _FeedForward(nnx.Module):
  def __init__(self, dim, approximate, *, dtype, rngs):
    self.net = nnx.List([
        _GELUProj(dim, 4 * dim, approximate, dtype=dtype, rngs=rngs), Identity(),
        nnx.Linear(4 * dim, dim, dtype=dtype, param_dtype=dtype, rngs=rngs)])

  def __call__(self, x):
    for layer in self.net:
      x = layer(x)
    return x


class _Block(nnx.Module):
  """diffusers ``BasicTransformerBlock`` with ``norm_type='ada_norm_zero'``."""

  def __init__(self, cfg: DiTConfig, *, dtype, rngs):
    d = cfg.dim
    self.norm_eps = cfg.norm_eps
    self.norm1 = _AdaLNZero(cfg.num_embeds_ada_norm, d, dtype=dtype, rngs=rngs)
    self.attn1 = Attention(d, cfg.num_attention_heads, cfg.attention_head_dim,
                           bias=cfg.attention_bias, dtype=dtype, rngs=rngs)
    affine = cfg.norm_elementwise_affine
    self.norm3 = nnx.LayerNorm(d, epsilon=cfg.norm_eps, use_bias=affine,
                               use_scale=affine, use_fast_variance=False,
                               dtype=dtype, param_dtype=dtype, rngs=rngs)
    self.ff = _FeedForward(d, _ACTIVATIONS[cfg.activation_fn], dtype=dtype, rngs=rngs)

  def __call__(self, h, t, y):
    cond = self.norm1.emb(t, y, h.dtype)
    mods = jnp.split(self.norm1.linear(jax.nn.silu(cond))[None], 6, axis=-1)
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
    x = layer_norm(h, 1e-6) * (1 + scale_msa) + shift_msa
    h = h + gate_msa * self.attn1(x)
    x = self.norm3(h) * (1 + scale_mlp) + shift_mlp
    return h + gate_mlp * self.ff(x)


class DiT(nnx.Module):
  """The DiT network: ``(z[H, W, C], t, y) -> out[H, W, output_channels]``.

  Args:
    config: the architecture.
    dtype: parameter and compute dtype.
    rngs: initialisers' keys (random weights; load real ones with ``load_dit``).

  Examples:
    >>> cfg = DiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=1,
    ...                 sample_size=4, out_channels=8, num_embeds_ada_norm=3)
    >>> model = DiT(cfg, rngs=nnx.Rngs(0))
    >>> z = jnp.zeros((4, 4, 4), jnp.float32)
    >>> model(z, jnp.array(10.0, jnp.float32), jnp.array(1, jnp.int32)).shape
    (4, 4, 8)
  """

  def __init__(self, config: DiTConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
    cfg, d, p = config, config.dim, config.patch_size
    self.config = cfg
    self.pos_embed = nnx.Module()  # container named like diffusers' PatchEmbed
    self.pos_embed.proj = nnx.Conv(cfg.in_channels, d, (p, p), strides=(p, p),
                                   padding="VALID", dtype=dtype, param_dtype=dtype,
                                   rngs=rngs)
    self.transformer_blocks = nnx.List(
        [_Block(cfg, dtype=dtype, rngs=rngs) for _ in range(cfg.num_layers)])
    lin = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
    self.proj_out_1 = nnx.Linear(d, 2 * d, **lin)
    self.proj_out_2 = nnx.Linear(d, p * p * cfg.output_channels, **lin)

  def __call__(self, z: jax.Array, t: jax.Array, y: jax.Array) -> jax.Array:
    cfg, p = self.config, self.config.patch_size
    g = cfg.sample_size // p
    dtype = self.proj_out_2.kernel[...].dtype
    h = self.pos_embed.proj(z.astype(dtype)[None])[0].reshape(g * g, cfg.dim)
    h = h + jnp.asarray(pos_embed_2d(cfg.dim, g), jnp.float32).astype(dtype)
    for block in self.transformer_blocks:
      h = block(h, t, y)
    cond = self.transformer_blocks[0].norm1.emb(t, y, dtype)
    shift, scale = jnp.split(self.proj_out_1(jax.nn.silu(cond))[None], 2, axis=-1)
    h = self.proj_out_2(layer_norm(h, 1e-6) * (1 + scale) + shift)
    c = cfg.output_channels
    h = h.reshape(g, g, p, p, c).transpose(0, 2, 1, 3, 4)
    return h.reshape(g * p, g * p, c)
