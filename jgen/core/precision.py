"""Mixed precision as a stated policy: what is stored, computed and accumulated in.

A [`PrecisionPolicy`][jgen.core.precision.PrecisionPolicy] names three dtypes:

- ``param_dtype``: the parameters as stored and read by the network;
- ``compute_dtype``: the network's inputs and therefore its matmuls and activations;
- ``output_dtype``: every accumulation jgen does over a network's outputs (ε-errors,
  ELBO sums, log-likelihood sums, the probability-flow ODE's trace) and every score it
  returns. Always float32, or float64 for float64 data (x64 enabled): a bfloat16 sum
  of 1,000 terms loses every digit past the third (unit roundoff ``2^-8``).

``policy("bfloat16")`` is the accelerator setting (parameters and matmuls in
bfloat16, the tensor-core rate), ``policy("float32")`` the default.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["PrecisionPolicy", "policy", "output_dtype"]

_FLOATS = ("float32", "bfloat16", "float16", "float64")


def output_dtype(like: Any = None) -> jnp.dtype:
  """The dtype of accumulations and returned scores: float32, or float64 for float64
  data (which needs x64 enabled).

  Args:
    like: the data (an array or dtype) the scores are of; ``None``: float32.

  Examples:
    >>> output_dtype(jnp.bfloat16)
    dtype('float32')
  """
  if like is None:
    return jnp.dtype(jnp.float32)
  dtype = getattr(like, "dtype", like)
  return jnp.dtype(jnp.promote_types(dtype, jnp.float32))


class PrecisionPolicy(NamedTuple):
  """Parameter, compute and output dtypes (names, so the policy is hashable/static).

  Attributes:
    param_dtype: dtype the floating parameters are cast to.
    compute_dtype: dtype of the network's floating inputs (its matmuls follow).
    output_dtype: dtype of network outputs before any accumulation; ``None``: float32,
      or float64 for float64 data (``output_dtype(like)``).

  Examples:
    >>> p = policy("bfloat16")
    >>> p.cast_params({"w": jnp.ones(2)})["w"].dtype, p.cast_output(jnp.ones(2, jnp.bfloat16)).dtype
    (dtype(bfloat16), dtype('float32'))
  """
  param_dtype: str = "float32"
  compute_dtype: str = "float32"
  output_dtype: str | None = None

  def out_dtype(self, like: Any = None) -> jnp.dtype:
    """The resolved output dtype for data ``like``."""
    if self.output_dtype is None:
      return output_dtype(like)
    return jnp.dtype(self.output_dtype)

  def cast_params(self, params: Any) -> Any:
    """Floating leaves of ``params`` to ``param_dtype``; other leaves unchanged."""
    return _cast_floats(params, jnp.dtype(self.param_dtype))

  def cast_compute(self, x: Any) -> Any:
    """Floating leaves of ``x`` to ``compute_dtype``."""
    return _cast_floats(x, jnp.dtype(self.compute_dtype))

  def cast_output(self, x: Any, like: Any = None) -> Any:
    """Floating leaves of ``x`` to the output dtype for data ``like`` (before any
    accumulation)."""
    return _cast_floats(x, self.out_dtype(like))


def policy(compute: str = "float32") -> PrecisionPolicy:
  """The policy with parameters and matmuls in ``compute`` and float32 (float64 for
  float64 data) accumulations and scores.

  Args:
    compute: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"float64"``.

  Returns:
    [`PrecisionPolicy`][jgen.core.precision.PrecisionPolicy]``(compute, compute,
    None)``.

  Raises:
    ValueError: naming ``compute`` if it is not a floating dtype name above.

  Examples:
    >>> policy("bfloat16")
    PrecisionPolicy(param_dtype='bfloat16', compute_dtype='bfloat16', output_dtype=None)
  """
  name = jnp.dtype(compute).name if not isinstance(compute, str) else compute
  if name not in _FLOATS:
    raise ValueError(f"compute must be one of {_FLOATS}, got {compute!r}.")
  return PrecisionPolicy(name, name, None)


def _cast_floats(tree: Any, dtype) -> Any:
  def cast(leaf):
    if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating):
      return leaf.astype(dtype)
    return leaf
  return jax.tree.map(cast, tree)
