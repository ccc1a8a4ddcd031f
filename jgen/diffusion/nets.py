"""Class-conditional flax NNX denoisers and their per-example ``eps_fn`` adapters.

Two ε-prediction networks, both conditioned on the class label (a learned embedding)
and on ``gamma = -log SNR`` (Fourier features):

* :class:`MLPDenoiser` — a residual MLP for inputs of any shape (flattened inside).
* :class:`UNetDenoiser` — a small convolutional U-Net for images ``[H, W]`` /
  ``[H, W, C]`` and 1-D signals ``[L]`` / ``[L, C]`` (e.g. 8x8 digits, MNIST-1D's 40).

Both accept any number of leading batch axes: ``z[*lead, *data_shape]``,
``gamma[*lead]``, ``y[*lead]`` (``lead = ()`` for one example). With
``null_class=True`` they reserve the extra label ``num_classes`` for the unconditional
model (classifier-free training by label dropout, :func:`drop_labels`).

:func:`as_eps_fn` turns a module (or ``(graphdef, params)``) into the per-example
``eps_fn(z, gamma, y) -> eps_hat`` the ELBO core expects; it calls one module-level
jitted function keyed on the static graph definition, so repeated calls with the same
shapes never re-trace.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgen.core import checks as _checks

__all__ = [
    "MLPDenoiser",
    "UNetDenoiser",
    "ARCHITECTURES",
    "as_eps_fn",
    "drop_labels",
    "fourier_features",
    "denoiser_config",
    "check_denoiser_inputs",
]


def fourier_features(gamma: jax.Array, num_features: int) -> jax.Array:
  """Sinusoidal features of ``gamma`` on log-spaced frequencies.

  Args:
    gamma: ``[B]`` -log SNR values (typically in ``[-20, 10]``).
    num_features: number of frequencies ``F``.

  Returns:
    ``[B, 2 F + 1]``: ``sin``/``cos`` of ``gamma * f`` for ``f`` from 1/32 to 4, plus
    ``gamma / 10``.
  """
  freqs = jnp.exp(jnp.linspace(math.log(1 / 32), math.log(4.0), num_features,
                               dtype=gamma.dtype))
  arg = gamma[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.sin(arg), jnp.cos(arg), gamma[:, None] / 10.0], axis=-1)


def drop_labels(key: jax.Array, y: jax.Array, num_classes: int, rate: float) -> jax.Array:
  """Label dropout for classifier-free training: ``y -> num_classes`` w.p. ``rate``.

  Args:
    key: PRNG key.
    y: ``[...]`` integer labels in ``[0, num_classes)``.
    num_classes: the null label is ``num_classes``.
    rate: drop probability in ``[0, 1]``.

  Returns:
    ``[...]`` labels, each replaced by ``num_classes`` independently with prob ``rate``.
  """
  if not 0.0 <= rate <= 1.0:
    raise ValueError(f"rate must lie in [0, 1], got {rate}.")
  drop = jax.random.bernoulli(key, rate, y.shape)
  return jnp.where(drop, jnp.asarray(num_classes, y.dtype), y)


class _Conditioning(nnx.Module):
  """Label embedding + Fourier(gamma) -> ``[B, cond_dim]``."""

  def __init__(self, num_labels: int, cond_dim: int, num_fourier: int, *,
               rngs: nnx.Rngs):
    self.num_fourier = num_fourier
    self.embed = nnx.Embed(num_labels, cond_dim, rngs=rngs)
    self.gamma_in = nnx.Linear(2 * num_fourier + 1, cond_dim, rngs=rngs)
    self.out = nnx.Linear(cond_dim, cond_dim, rngs=rngs)

  def __call__(self, gamma: jax.Array, y: jax.Array) -> jax.Array:
    g = self.gamma_in(fourier_features(gamma, self.num_fourier))
    return self.out(nnx.silu(self.embed(y) + g))


class _Base(nnx.Module):
  """Shared bookkeeping: config, input checks, batching of leading axes."""

  def _setup(self, data_shape, num_classes, null_class, config):
    self.data_shape = tuple(int(d) for d in data_shape)
    self.num_classes = _checks.check_num_classes(num_classes)
    self.null_class = bool(null_class)
    self.num_labels = self.num_classes + int(self.null_class)
    # Constructor arguments as a static tuple: saved with checkpoints and compared on
    # restore, so a checkpoint from another architecture fails with a named mismatch.
    self.config = tuple(sorted(config.items()))

  def __call__(self, z: jax.Array, gamma: jax.Array, y: jax.Array) -> jax.Array:
    """Predicts the noise ``eps`` from ``z = alpha x + sigma eps``.

    Args:
      z: ``[*lead, *data_shape]`` noisy input.
      gamma: ``[*lead]`` -log SNR.
      y: ``[*lead]`` integer labels in ``[0, num_classes]`` (``num_classes`` is the
        null label, only with ``null_class=True``). Concrete labels outside the
        range raise ``ValueError``; traced ones give NaN outputs (a loud sentinel).

    Returns:
      ``[*lead, *data_shape]`` predicted noise, in ``z``'s dtype.
    """
    z, gamma, y = jnp.asarray(z), jnp.asarray(gamma), jnp.asarray(y)
    lead = check_denoiser_inputs(self, z, gamma, y)
    b = int(np.prod(lead, dtype=np.int64))
    out = self._forward(z.reshape((b,) + self.data_shape), gamma.reshape(b),
                        y.reshape(b))
    valid = (y.reshape(b) >= 0) & (y.reshape(b) < self.num_labels)
    out = jnp.where(valid.reshape((b,) + (1,) * len(self.data_shape)), out, jnp.nan)
    return out.reshape(z.shape).astype(z.dtype)


class MLPDenoiser(_Base):
  """Residual MLP ε-network for inputs of any shape.

  ``h = W_in x``; ``depth`` blocks ``h += W_i silu(LayerNorm(h) + U_i c)`` with the
  conditioning ``c`` (label embedding + Fourier features of ``gamma``); output
  ``W_out silu(LayerNorm(h))`` (zero-initialised, so training starts at ``eps_hat = 0``).
  Cost per example: ``2 (2 D W + depth W^2 + ...)`` matmul FLOPs.

  Args:
    data_shape: shape of one example, e.g. ``(64,)`` or ``(8, 8)``.
    num_classes: number of classes ``K``.
    width: hidden width ``W``.
    depth: number of ``W x W`` residual layers.
    cond_dim: conditioning width (default ``width // 4``).
    num_fourier: Fourier frequencies for ``gamma``.
    null_class: reserve label ``K`` for the unconditional model.
    rngs: ``nnx.Rngs`` for initialisation.
  """

  def __init__(self, data_shape, num_classes: int, *, width: int = 512, depth: int = 4,
               cond_dim: int | None = None, num_fourier: int = 16,
               null_class: bool = False, rngs: nnx.Rngs):
    cond_dim = int(cond_dim or max(width // 4, 16))
    self._setup(data_shape, num_classes, null_class, dict(
        architecture="MLPDenoiser", data_shape=tuple(data_shape),
        num_classes=num_classes, width=width, depth=depth, cond_dim=cond_dim,
        num_fourier=num_fourier, null_class=bool(null_class)))
    d = int(np.prod(self.data_shape, dtype=np.int64))
    self.cond = _Conditioning(self.num_labels, cond_dim, num_fourier, rngs=rngs)
    self.inp = nnx.Linear(d, width, rngs=rngs)
    self.norms = nnx.List([nnx.LayerNorm(width, rngs=rngs) for _ in range(depth)])
    self.conds = nnx.List([nnx.Linear(cond_dim, width, rngs=rngs)
                           for _ in range(depth)])
    self.layers = nnx.List([nnx.Linear(width, width, rngs=rngs) for _ in range(depth)])
    self.out_norm = nnx.LayerNorm(width, rngs=rngs)
    self.out = nnx.Linear(width, d, kernel_init=nnx.initializers.zeros, rngs=rngs)

  def _forward(self, z, gamma, y):
    b = z.shape[0]
    c = nnx.silu(self.cond(gamma, y))
    h = self.inp(z.reshape(b, -1))
    for norm, cond, layer in zip(self.norms, self.conds, self.layers):
      h = h + layer(nnx.silu(norm(h) + cond(c)))
    return self.out(nnx.silu(self.out_norm(h))).reshape(z.shape)


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


def _groups(c: int) -> int:
  return math.gcd(c, 8)


class UNetDenoiser(_Base):
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
    self.cond = _Conditioning(self.num_labels, cond_dim, num_fourier, rngs=rngs)
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
      for ax in range(1, nd + 1):
        h = jnp.repeat(h, 2, axis=ax)
      h = self.up[i](jnp.concatenate([self.unpool[i](h), skips[i]], axis=-1), c)
    return self.conv_out(nnx.silu(self.out_norm(h))).reshape(z.shape)


ARCHITECTURES: dict[str, type] = {"MLPDenoiser": MLPDenoiser,
                                  "UNetDenoiser": UNetDenoiser}


def denoiser_config(module: nnx.Module) -> dict[str, Any]:
  """The constructor arguments of a jgen denoiser, as a JSON-friendly dict."""
  if not hasattr(module, "config"):
    raise TypeError(f"module must be a jgen denoiser (MLPDenoiser or UNetDenoiser),"
                    f" got {type(module).__name__}.")
  return {k: (list(v) if isinstance(v, tuple) else v) for k, v in module.config}


def check_denoiser_inputs(module, z: jax.Array, gamma: jax.Array,
                          y: jax.Array) -> tuple[int, ...]:
  """Static shape/dtype checks (+ label range when concrete); returns the lead shape."""
  ds = module.data_shape
  if z.ndim < len(ds) or tuple(z.shape[z.ndim - len(ds):]) != ds:
    raise ValueError(f"z must end with the trained data shape {ds}, got shape"
                     f" {tuple(z.shape)}.")
  lead = tuple(z.shape[:z.ndim - len(ds)])
  if tuple(gamma.shape) != lead or tuple(y.shape) != lead:
    raise ValueError(f"gamma and y must have the leading shape {lead} of z, got"
                     f" gamma {tuple(gamma.shape)} and y {tuple(y.shape)}.")
  _checks.check_float(z, "z")
  _checks.check_labels(y, module.num_labels, "y")
  return lead


@functools.partial(jax.jit, static_argnums=0)
def _apply_jit(graphdef, params, z, gamma, y):
  return nnx.merge(graphdef, params)(z, gamma, y)


def _apply(graphdef, params, z, gamma, y):
  # One module-level jitted function: its cache is keyed on the (hashable) graphdef
  # and the argument shapes, so every adapter of the same architecture shares it.
  return _apply_jit(graphdef, params, z, gamma, y)


def as_eps_fn(module_or_graphdef, params: Any = None) -> Callable:
  """Adapts a denoiser to the per-example ``eps_fn(z, gamma, y) -> eps_hat``.

  Args:
    module_or_graphdef: an NNX denoiser, or the ``graphdef`` of ``nnx.split``.
    params: the parameter state when a ``graphdef`` is given (e.g. EMA params).

  Returns:
    ``eps_fn(z[*data_shape], gamma[], y[] int) -> eps_hat[*data_shape]``; also accepts
    leading batch axes and works under ``jit``/``vmap``. It carries ``num_classes``,
    ``data_shape`` and ``null_class`` attributes for callers' checks.
  """
  if params is None:
    if not isinstance(module_or_graphdef, nnx.Module):
      raise TypeError("as_eps_fn needs an nnx.Module, or a graphdef and params.")
    graphdef, params = nnx.split(module_or_graphdef)
  else:
    graphdef = module_or_graphdef
  module = nnx.merge(graphdef, params)
  label_hi = module.num_labels

  def eps_fn(z, gamma, y):
    z, gamma, y = jnp.asarray(z), jnp.asarray(gamma), jnp.asarray(y)
    check_denoiser_inputs(module, z, gamma, y)  # eager errors; jit sees shapes only
    return _apply(graphdef, params, z, gamma, y)

  eps_fn.num_classes = module.num_classes
  eps_fn.num_labels = label_hi
  eps_fn.data_shape = module.data_shape
  eps_fn.null_class = module.null_class
  return eps_fn
