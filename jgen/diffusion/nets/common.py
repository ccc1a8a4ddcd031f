"""Pieces shared by jgen's flax NNX denoisers: conditioning, label dropout, checks.

Every jgen net accepts any number of leading batch axes: ``z[*lead, *data_shape]``,
``gamma[*lead]``, ``y[*lead]`` (``lead = ()`` for one example, the form
[`jgen.diffusion.nnx_denoiser`][jgen.diffusion.nnx_denoiser] calls). With
``null_class=True`` the extra label ``num_classes`` is the unconditional model
(classifier-free training by label dropout,
[`drop_labels`][jgen.diffusion.drop_labels]).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgen.core import checks as _checks

__all__ = ["fourier_features", "drop_labels", "Conditioning", "DenoiserBase",
           "denoiser_config", "check_denoiser_inputs"]


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

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> y = jnp.array([0, 1, 2, 0])
    >>> jgen.diffusion.drop_labels(jax.random.key(0), y, 3, rate=1.0)
    Array([3, 3, 3, 3], dtype=int32)
    >>> out = jgen.diffusion.drop_labels(jax.random.key(0), y, 3, rate=0.5)
    >>> bool(((out == y) | (out == 3)).all())
    True
  """
  if not 0.0 <= rate <= 1.0:
    raise ValueError(f"rate must lie in [0, 1], got {rate}.")
  drop = jax.random.bernoulli(key, rate, y.shape)
  return jnp.where(drop, jnp.asarray(num_classes, y.dtype), y)


class Conditioning(nnx.Module):
  """Label embedding + Fourier(gamma) -> ``[B, cond_dim]``."""

  def __init__(self, num_labels: int, cond_dim: int, num_fourier: int, *,
               rngs: nnx.Rngs):
    self.num_fourier = num_fourier
    self.embed = nnx.Embed(num_labels, cond_dim, rngs=rngs)
    self.gamma_in = nnx.Linear(2 * num_fourier + 1, cond_dim, rngs=rngs)
    self.out = nnx.Linear(cond_dim, cond_dim, rngs=rngs)

  def __call__(self, gamma: jax.Array, y: jax.Array) -> jax.Array:
    # Features in float32 (sin/cos of gamma), then the parameters' dtype: a bfloat16
    # network stays bfloat16 (jgen.core.precision); a no-op in float32.
    dtype = self.gamma_in.kernel[...].dtype
    g = self.gamma_in(fourier_features(gamma, self.num_fourier).astype(dtype))
    return self.out(nnx.silu(self.embed(y).astype(dtype) + g))


class DenoiserBase(nnx.Module):
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
