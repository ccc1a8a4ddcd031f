"""Residual MLP ε-network for inputs of any shape (flattened inside)."""

from __future__ import annotations

import numpy as np
from flax import nnx

from jgen.diffusion.nets.common import Conditioning, DenoiserBase

__all__ = ["MLPDenoiser"]


class MLPDenoiser(DenoiserBase):
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

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> from flax import nnx
    >>> net = jgen.diffusion.MLPDenoiser((2,), 2, width=8, depth=1, rngs=nnx.Rngs(0))
    >>> eps_hat = net(jnp.ones((4, 2)), jnp.zeros(4), jnp.array([0, 1, 0, 1]))
    >>> eps_hat.shape, float(jnp.abs(eps_hat).max())  # zero-initialised output
    ((4, 2), 0.0)
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
    self.cond = Conditioning(self.num_labels, cond_dim, num_fourier, rngs=rngs)
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
