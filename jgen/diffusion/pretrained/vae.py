"""The encoder of diffusers' ``AutoencoderKL`` as a flax NNX port (posterior mean, log-var).

``conv_in``; per block ``layers_per_block`` ResNet blocks and (except the last) a
stride-2 convolution after right/bottom zero padding; a mid block ResNet - attention -
ResNet; GroupNorm, SiLU, ``conv_out`` to ``2 latent_channels``; ``quant_conv``. The
moments split into the mean and the log-variance (clamped to ``[-30, 20]``, as
diffusers' ``DiagonalGaussianDistribution``). One image at a time, channels last:
``image[H, W, C]`` in ``[-1, 1]``.

Reference: Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion
Models", CVPR 2022; huggingface/diffusers ``autoencoders/vae.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jgen.core import compilation
from jgen.diffusion.pretrained.loading import fill_state, random_state, read_config
from jgen.diffusion.pretrained.loading import read_tensors

__all__ = ["VAEConfig", "VAEEncoder", "vae_config", "load_vae_encoder",
           "init_vae_encoder", "encode"]


class VAEConfig(NamedTuple):
  """The encoder fields of an ``AutoencoderKL`` ``config.json``.

  Examples:
    >>> cfg = VAEConfig(block_out_channels=(8, 16, 16), norm_num_groups=4)
    >>> cfg.downsampling, cfg.latent_channels, cfg.scaling_factor
    (4, 4, 0.18215)
  """
  in_channels: int = 3
  latent_channels: int = 4
  block_out_channels: tuple[int, ...] = (64,)
  layers_per_block: int = 1
  norm_num_groups: int = 32
  use_quant_conv: bool = True
  mid_block_add_attention: bool = True
  scaling_factor: float = 0.18215

  @property
  def downsampling(self) -> int:
    return 2 ** (len(self.block_out_channels) - 1)


def vae_config(config: dict) -> VAEConfig:
  """A [`VAEConfig`][jgen.diffusion.pretrained.VAEConfig] from a parsed ``config.json``.

  Raises:
    ValueError: naming the field for settings this port does not implement.

  Examples:
    >>> vae_config({"block_out_channels": [8, 16], "norm_num_groups": 4,
    ...             "down_block_types": ["DownEncoderBlock2D"] * 2}).downsampling
    2
  """
  fields = {k: config[k] for k in VAEConfig._fields if k in config}
  fields["block_out_channels"] = tuple(fields.get("block_out_channels", (64,)))
  cfg = VAEConfig(**fields)
  blocks = tuple(config.get("down_block_types", ("DownEncoderBlock2D",)))
  if any(b != "DownEncoderBlock2D" for b in blocks) or len(blocks) != len(
      cfg.block_out_channels):
    raise ValueError(f"down_block_types={list(blocks)} is not supported; expected one"
                     " 'DownEncoderBlock2D' per entry of block_out_channels.")
  if config.get("act_fn", "silu") != "silu":
    raise ValueError(f"act_fn={config['act_fn']!r} is not supported; expected 'silu'.")
  if config.get("shift_factor") not in (None, 0, 0.0):
    raise ValueError(f"shift_factor={config['shift_factor']} is not supported.")
  return cfg


def _norm(c, groups, rngs, dtype):
  return nnx.GroupNorm(c, num_groups=groups, epsilon=1e-6, use_fast_variance=False,
                       dtype=dtype, param_dtype=dtype, rngs=rngs)


def _conv(c_in, c_out, k, rngs, dtype, stride=1, padding="SAME"):
  return nnx.Conv(c_in, c_out, (k, k), strides=(stride, stride), padding=padding,
                  dtype=dtype, param_dtype=dtype, rngs=rngs)


class _Resnet(nnx.Module):
  def __init__(self, c_in, c_out, groups, *, dtype, rngs):
    self.norm1 = _norm(c_in, groups, rngs, dtype)
    self.conv1 = _conv(c_in, c_out, 3, rngs, dtype)
    self.norm2 = _norm(c_out, groups, rngs, dtype)
    self.conv2 = _conv(c_out, c_out, 3, rngs, dtype)
    self.conv_shortcut = _conv(c_in, c_out, 1, rngs, dtype) if c_in != c_out else None

  def __call__(self, x):
    h = self.conv1(jax.nn.silu(self.norm1(x)))
    h = self.conv2(jax.nn.silu(self.norm2(h)))
    return h + (x if self.conv_shortcut is None else self.conv_shortcut(x))


class _SpatialAttention(nnx.Module):
  """Single-head attention over the ``H W`` positions with a GroupNorm in front."""

  def __init__(self, c, groups, *, dtype, rngs):
    lin = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
    self.group_norm = _norm(c, groups, rngs, dtype)
    self.to_q, self.to_k, self.to_v = (nnx.Linear(c, c, **lin) for _ in range(3))
    self.to_out = nnx.List([nnx.Linear(c, c, **lin)])

  def __call__(self, x):
    h, w, c = x.shape[-3:]  # x is [1, H, W, C]: GroupNorm needs the batch axis
    t = self.group_norm(x).reshape(h * w, c)
    q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
    logits = (q @ k.T / math.sqrt(c)).astype(jnp.promote_types(q.dtype, jnp.float32))
    out = jax.nn.softmax(logits, axis=-1).astype(v.dtype) @ v
    return x + self.to_out[0](out).reshape(x.shape)


class _DownBlock(nnx.Module):
  def __init__(self, c_in, c_out, cfg, last, *, dtype, rngs):
    g = cfg.norm_num_groups
    self.resnets = nnx.List([_Resnet(c_in if i == 0 else c_out, c_out, g, dtype=dtype,
                                     rngs=rngs) for i in range(cfg.layers_per_block)])
    self.downsamplers = None if last else nnx.List([nnx.Module()])
    if not last:  # diffusers' Downsample2D(name="op") keeps its conv as `.conv`
      self.downsamplers[0].conv = _conv(c_out, c_out, 3, rngs, dtype, stride=2,
                                        padding=((0, 1), (0, 1)))

  def __call__(self, x):
    for r in self.resnets:
      x = r(x)
    return x if self.downsamplers is None else self.downsamplers[0].conv(x)


class _MidBlock(nnx.Module):
  def __init__(self, c, cfg, *, dtype, rngs):
    g = cfg.norm_num_groups
    self.resnets = nnx.List([_Resnet(c, c, g, dtype=dtype, rngs=rngs) for _ in "ab"])
    self.attentions = (nnx.List([_SpatialAttention(c, g, dtype=dtype, rngs=rngs)])
                       if cfg.mid_block_add_attention else None)

  def __call__(self, x):
    x = self.resnets[0](x)
    if self.attentions is not None:
      x = self.attentions[0](x)
    return self.resnets[1](x)


class _Encoder(nnx.Module):
  def __init__(self, cfg, *, dtype, rngs):
    ch = cfg.block_out_channels
    self.conv_in = _conv(cfg.in_channels, ch[0], 3, rngs, dtype)
    self.down_blocks = nnx.List([
        _DownBlock(ch[max(i - 1, 0)], c, cfg, i == len(ch) - 1, dtype=dtype, rngs=rngs)
        for i, c in enumerate(ch)])
    self.mid_block = _MidBlock(ch[-1], cfg, dtype=dtype, rngs=rngs)
    self.conv_norm_out = _norm(ch[-1], cfg.norm_num_groups, rngs, dtype)
    self.conv_out = _conv(ch[-1], 2 * cfg.latent_channels, 3, rngs, dtype)

  def __call__(self, x):
    x = self.conv_in(x)
    for block in self.down_blocks:
      x = block(x)
    x = self.mid_block(x)
    return self.conv_out(jax.nn.silu(self.conv_norm_out(x)))


class VAEEncoder(nnx.Module):
  """``image[H, W, C] -> (mean, logvar)``, each ``[H / f, W / f, latent_channels]``.

  ``f = config.downsampling``; random weights here (load real ones with
  [`load_vae_encoder`][jgen.diffusion.pretrained.load_vae_encoder], run them with
  [`encode`][jgen.diffusion.pretrained.encode]).

  Examples:
    >>> cfg = VAEConfig(block_out_channels=(8, 8), norm_num_groups=4)
    >>> model = VAEEncoder(cfg, rngs=nnx.Rngs(0))
    >>> mean, logvar = model(jnp.zeros((4, 4, 3), jnp.float32))
    >>> mean.shape, logvar.shape
    ((2, 2, 4), (2, 2, 4))
  """

  def __init__(self, config: VAEConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.encoder = _Encoder(config, dtype=dtype, rngs=rngs)
    c = 2 * config.latent_channels
    self.quant_conv = _conv(c, c, 1, rngs, dtype) if config.use_quant_conv else None

  def __call__(self, image):
    dtype = self.encoder.conv_in.kernel[...].dtype
    moments = self.encoder(image.astype(dtype)[None])
    if self.quant_conv is not None:
      moments = self.quant_conv(moments)
    mean, logvar = jnp.split(moments[0], 2, axis=-1)
    return mean, jnp.clip(logvar, -30.0, 20.0)


@functools.lru_cache(maxsize=None)
def _graphdef(config: VAEConfig, dtype_name: str):
  return nnx.split(nnx.eval_shape(lambda: VAEEncoder(
      config, dtype=jnp.dtype(dtype_name), rngs=nnx.Rngs(0))))


def load_vae_encoder(folder: str, dtype=jnp.float32) -> tuple[VAEConfig, nnx.State]:
  """The encoder half of an ``AutoencoderKL`` folder (decoder tensors are skipped).

  Args:
    folder: a diffusers folder, e.g. a snapshot of ``stabilityai/sd-vae-ft-ema``.
    dtype: ``jnp.float32`` or ``jnp.bfloat16``.

  Returns:
    ``(config, params)``.

  Raises:
    ValueError: naming the file or tensor that is missing, mis-shaped or foreign.

  Examples:
    >>> config, params = load_vae_encoder("sd-vae-ft-ema")  # doctest: +SKIP
  """
  if jnp.dtype(dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)):
    raise ValueError(f"dtype must be float32 or bfloat16, got {jnp.dtype(dtype)}.")
  config = vae_config(read_config(folder, ("AutoencoderKL",)))
  tensors = {k: v for k, v in read_tensors(folder).items()
             if not k.startswith(("decoder.", "post_quant_conv."))}
  _, abstract = _graphdef(config, jnp.dtype(dtype).name)
  return config, fill_state(abstract, tensors, folder, jnp.dtype(dtype))


def init_vae_encoder(key: jax.Array, config: VAEConfig, dtype=jnp.float32) -> nnx.State:
  """Random encoder parameters for tests and smoke runs.

  Examples:
    >>> cfg = VAEConfig(block_out_channels=(8,), norm_num_groups=4)
    >>> params = init_vae_encoder(jax.random.key(0), cfg)
  """
  return random_state(key, _graphdef(config, jnp.dtype(dtype).name)[1])


@dataclasses.dataclass(frozen=True)
class _Encode:
  config: VAEConfig

  def __call__(self, params, image):
    cfg = self.config
    h, w, c = image.shape if image.ndim == 3 else (None, None, None)
    f = cfg.downsampling
    if image.ndim != 3 or c != cfg.in_channels or h % f or w % f:
      raise ValueError(f"image must be [H, W, {cfg.in_channels}] with H and W"
                       f" multiples of {f}, got shape {tuple(image.shape)}.")
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    model = nnx.merge(_graphdef(cfg, jnp.dtype(dtype).name)[0], params)
    mean, logvar = model(image)
    return mean.astype(image.dtype), logvar.astype(image.dtype)


@functools.partial(compilation.jit, static_argnums=0)
def encode(config: VAEConfig, params: nnx.State, image: jax.Array
           ) -> tuple[jax.Array, jax.Array]:
  """Posterior ``(mean, logvar)`` of one image; ``image[H, W, C]`` in ``[-1, 1]``.

  Returns:
    ``mean`` and ``logvar``, each ``[H / f, W / f, latent_channels]`` with
    ``f = 2^(len(block_out_channels) - 1)``. DiT's latent is ``mean *
    config.scaling_factor``.

  Examples:
    >>> cfg = VAEConfig(block_out_channels=(8, 8), norm_num_groups=4)
    >>> p = init_vae_encoder(jax.random.key(0), cfg)
    >>> encode(cfg, p, jnp.zeros((4, 4, 3), jnp.float32))[0].shape
    (2, 2, 4)
  """
  return _Encode(config)(params, image)
