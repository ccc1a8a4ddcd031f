"""Small convolutional U-Net ε-network for images ``[H, W(, C)]`` and signals ``[L(, C)]``."""

from __future__ import annotations

import math

import jax.numpy as jnp
from flax import nnx

from jgen.diffusion.nets.common import Conditioning, DenoiserBase

__all__ = ["UNetDenoiser"]


class _ResBlock(nnx.Module):

  def __init__(self, cin: int, cout: int, cond_dim: int, nd: int, *, rngs: nnx.Rngs):
    k = (3,) * nd
    self.nd = nd
    self.norm1 = nnx.GroupNorm(cin, num_groups=_groups(cin), rngs=rngs)
    self.conv1 = nnx.Conv(cin, cout, k, rngs=rngs)
    self.cond = nnx.Linear(cond_dim, cout, rngs=rngs)
    self.norm2 = nnx.GroupNorm(cout, num_groups=_groups(cout), rngs=rngs)
    self.conv2 = nnx.Conv(cout, cout, k, rngs=rngs)
    self.skip = nnx.Conv(cin, cout, (1,) * nd, rngs=rngs) if cin != cout else None

  def __call__(self, x, c):
    h = self.conv1(nnx.silu(self.norm1(x)))
    h = h + self.cond(c).reshape((x.shape[0],) + (1,) * self.nd + (h.shape[-1],))
    h = self.conv2(nnx.silu(self.norm2(h)))
    return h + (self.skip(x) if self.skip is not None else x)


def _upsample2(h):
  """Nearest-neighbour 2x upsampling of ``[B, *spatial, C]`` (``jnp.repeat`` along each
  spatial axis) as one broadcast and reshape: its gradient is a plain sum over the
  copies, where ``jnp.repeat``'s became a reduce-window that took a quarter of the
  1-D U-Net's training step on the CPU."""
  b, spatial, c = h.shape[0], h.shape[1:-1], h.shape[-1]
  expanded = h.reshape((b,) + sum(((s, 1) for s in spatial), ()) + (c,))
  target = (b,) + sum(((s, 2) for s in spatial), ()) + (c,)
  return jnp.broadcast_to(expanded, target).reshape(
      (b,) + tuple(2 * s for s in spatial) + (c,))


def _groups(c: int) -> int:
  return math.gcd(c, 8)


class UNetDenoiser(DenoiserBase):
  """Small convolutional U-Net ε-network for images and 1-D signals.

  ``len(channels)`` resolution levels; each level has one residual block (conditioned
  additively on the label/``gamma`` embedding), levels are joined by stride-2 convs
  down and nearest-neighbour upsampling + skip concatenation up.

  Args:
    data_shape: ``(H, W)`` or ``(H, W, C)`` images, or ``(L,)`` (or ``(L, C)`` with
      ``spatial_ndim=1``) signals. Spatial sizes must be divisible by
      ``2 ** (len(channels) - 1)``.
    num_classes: number of classes ``K``.
    channels: channels per level.
    cond_dim: conditioning width.
    spatial_ndim: 1 or 2; default 1 for rank-1 ``data_shape``, else 2.
    num_fourier: Fourier frequencies for ``gamma``.
    null_class: reserve label ``K`` for the unconditional model.
    rngs: ``nnx.Rngs``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> from flax import nnx
    >>> net = jgen.diffusion.UNetDenoiser((8,), 2, channels=(8, 8), cond_dim=8,
    ...                                   num_fourier=2, rngs=nnx.Rngs(0))
    >>> eps_hat = net(jnp.ones((3, 8)), jnp.zeros(3), jnp.array([0, 1, 1]))
    >>> eps_hat.shape, float(jnp.abs(eps_hat).max())  # zero-initialised output
    ((3, 8), 0.0)
  """

  def __init__(self, data_shape, num_classes: int, *, channels=(32, 64),
               cond_dim: int = 64, spatial_ndim: int | None = None,
               num_fourier: int = 16, null_class: bool = False, rngs: nnx.Rngs):
    data_shape = tuple(int(d) for d in data_shape)
    nd = spatial_ndim or (1 if len(data_shape) == 1 else 2)
    if nd not in (1, 2) or len(data_shape) not in (nd, nd + 1):
      raise ValueError(f"data_shape {data_shape} does not fit spatial_ndim={nd}:"
                       " expected (L,), (L, C), (H, W) or (H, W, C).")
    channels = tuple(int(c) for c in channels)
    factor = 2 ** (len(channels) - 1)
    if any(s % factor for s in data_shape[:nd]):
      raise ValueError(f"spatial sizes {data_shape[:nd]} must be divisible by {factor}"
                       f" for {len(channels)} levels (channels={channels}).")
    self._setup(data_shape, num_classes, null_class, dict(
        architecture="UNetDenoiser", data_shape=data_shape, num_classes=num_classes,
        channels=channels, cond_dim=cond_dim, spatial_ndim=nd,
        num_fourier=num_fourier, null_class=bool(null_class)))
    self.nd = nd
    self.in_ch = data_shape[nd] if len(data_shape) > nd else 1
    k = (3,) * nd
    self.cond = Conditioning(self.num_labels, cond_dim, num_fourier, rngs=rngs)
    self.conv_in = nnx.Conv(self.in_ch, channels[0], k, rngs=rngs)
    self.down = nnx.List([_ResBlock(c, c, cond_dim, nd, rngs=rngs) for c in channels])
    self.pool = nnx.List([nnx.Conv(a, b, k, strides=2, rngs=rngs)
                          for a, b in zip(channels[:-1], channels[1:])])
    self.mid = _ResBlock(channels[-1], channels[-1], cond_dim, nd, rngs=rngs)
    self.unpool = nnx.List([nnx.Conv(b, a, k, rngs=rngs)
                            for a, b in zip(channels[:-1], channels[1:])])
    self.up = nnx.List([_ResBlock(2 * c, c, cond_dim, nd, rngs=rngs)
                        for c in channels[:-1]])
    self.out_norm = nnx.GroupNorm(channels[0], num_groups=_groups(channels[0]),
                                  rngs=rngs)
    self.conv_out = nnx.Conv(channels[0], self.in_ch, k,
                             kernel_init=nnx.initializers.zeros, rngs=rngs)

  def _forward(self, z, gamma, y):
    b, nd = z.shape[0], self.nd
    c = nnx.silu(self.cond(gamma, y))
    h = self.conv_in(z.reshape((b,) + self.data_shape[:nd] + (self.in_ch,)))
    skips = []
    for i, block in enumerate(self.down):
      h = block(h, c)
      if i < len(self.pool):
        skips.append(h)
        h = self.pool[i](h)
    h = self.mid(h, c)
    for i in reversed(range(len(self.up))):
      h = _upsample2(h)
      h = self.up[i](jnp.concatenate([self.unpool[i](h), skips[i]], axis=-1), c)
    return self.conv_out(nnx.silu(self.out_norm(h))).reshape(z.shape)
