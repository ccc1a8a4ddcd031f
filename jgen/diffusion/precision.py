"""A denoiser run under a mixed-precision policy (``jgen.core.precision``).

[`mixed_precision`][jgen.diffusion.mixed_precision] wraps any
[`Denoiser`][jgen.diffusion.Denoiser]: its parameters and its input ``z`` are cast to the
policy's dtypes (so a flax network's matmuls run in bfloat16), ``gamma`` and the label
stay as given, and the prediction is cast to float32 (float64 for float64 data) before jgen
forms ``eps - eps_hat``, squares and sums it. Every accumulation (ε-errors, ELBO sums,
the ODE's trace) and every returned score is therefore float32 whatever the network
computes in. Cast the parameters once with ``policy.cast_params`` to store them in
bfloat16; the wrapper's own cast is then free.

Measured effect (``tests/test_precision.py``): on the exact Gaussian oracle and on a
digits MLP denoiser the bfloat16 scores differ from float32's by at most
``BF16_SCORE_TOLERANCE`` of the scores' scale, and the decisions agree.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jgen.core.precision import PrecisionPolicy
from jgen.diffusion.parametrizations import Denoiser

__all__ = ["BF16_SCORE_TOLERANCE", "mixed_precision"]

# bfloat16 keeps 8 significant bits: unit roundoff u = 2^-8 = 0.0039. A network output
# carries a few u of relative error; the ELBO's per-class score is a weighted sum of
# squared ε-errors, whose float32 accumulation adds nothing measurable. The bound below
# is 4u relative to mean |score| (measured on the oracle and the digits MLP in
# tests/test_precision.py: see the docs' accelerator page for the numbers).
BF16_SCORE_TOLERANCE = 4 * 2.0 ** -8


@dataclasses.dataclass(frozen=True)
class _PolicyApply:
  apply: Callable
  policy: PrecisionPolicy

  def __call__(self, params: Any, z: jax.Array, gamma: jax.Array, y: jax.Array):
    out = self.apply(self.policy.cast_params(params), self.policy.cast_compute(z),
                     gamma, y)
    return jnp.asarray(out).astype(self.policy.out_dtype(z))


def mixed_precision(denoiser: Denoiser, policy: PrecisionPolicy) -> Denoiser:
  """``denoiser`` computing under ``policy``; predictions come back in its output
  dtype (float32, or float64 for float64 ``z``).

  Args:
    denoiser: any [`Denoiser`][jgen.diffusion.Denoiser].
    policy: a [`PrecisionPolicy`][jgen.core.precision.PrecisionPolicy], e.g.
      ``jgen.core.precision.policy("bfloat16")``.

  Returns:
    A ``Denoiser`` with the same parametrization, data shape and classes; equal
    wrappers of an equal denoiser compare equal (one compile).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> from jgen.core.precision import policy
    >>> den, params = diffusion.gaussian_oracle(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    >>> bf = diffusion.mixed_precision(den, policy("bfloat16"))
    >>> bf.apply(params, jnp.ones(3), jnp.asarray(0.0), 1).dtype
    dtype('float32')
  """
  if not isinstance(denoiser, Denoiser):
    raise TypeError(f"denoiser must be a jgen.diffusion.Denoiser, got"
                    f" {type(denoiser).__name__}.")
  if not isinstance(policy, PrecisionPolicy):
    raise TypeError(f"policy must be a PrecisionPolicy, got {type(policy).__name__}.")
  return denoiser._replace(apply=_PolicyApply(denoiser.apply, policy))
