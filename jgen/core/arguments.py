"""Checks of scalar arguments (counts, rates, keys) and of array-likes' types.

Each returns the checked value or raises ``TypeError``/``ValueError`` naming the
argument, so that no bad number reaches JAX, optax or LAPACK and comes back as an
error from inside them, an empty array or a NaN.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["as_array", "as_features", "check_int", "check_number", "check_key"]


def as_array(x: Any, name: str) -> jax.Array:
  """``jnp.asarray(x)``, or a ``TypeError`` naming ``name`` for strings, objects and
  other values that are not numeric arrays.

  Examples:
    >>> from jgen.core import checks
    >>> checks.as_array([1, 2], "y").shape
    (2,)
    >>> checks.as_array("abc", "y")
    Traceback (most recent call last):
        ...
    TypeError: y must be a numeric array, got str 'abc'.
  """
  if isinstance(x, (str, bytes)):
    raise TypeError(f"{name} must be a numeric array, got {type(x).__name__} {x!r}.")
  try:
    a = x if isinstance(x, jax.Array) else jnp.asarray(x)
  except (TypeError, ValueError) as e:
    raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}.") from e
  if not (jnp.issubdtype(a.dtype, jnp.number) or a.dtype == jnp.bool_):
    raise TypeError(f"{name} must be a numeric array, got dtype {a.dtype}.")
  return a


def check_int(value: Any, name: str, minimum: int | None = None) -> int:
  """``value`` as a Python int: ``TypeError`` unless it is an integer (not a bool, not
  a float such as ``2.5`` or ``2.0``), ``ValueError`` if it is below ``minimum``.

  Examples:
    >>> from jgen.core import checks
    >>> checks.check_int(3, "batch_size", 1)
    3
    >>> checks.check_int(2.5, "batch_size", 1)
    Traceback (most recent call last):
        ...
    TypeError: batch_size must be an int, got float (2.5).
  """
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r}).")
  if minimum is not None and value < minimum:
    raise ValueError(f"{name} must be an int >= {minimum}, got {value}.")
  return int(value)


def check_number(value: Any, name: str, *, positive: bool = False,
                 nonnegative: bool = False) -> float:
  """``value`` as a finite Python float (a real scalar, not a bool or string), > 0
  with ``positive`` and >= 0 with ``nonnegative``; ``TypeError``/``ValueError``
  naming ``name`` otherwise. Traced values pass through unchecked.

  Examples:
    >>> from jgen.core import checks
    >>> checks.check_number(0.01, "learning_rate", positive=True)
    0.01
    >>> checks.check_number(float("nan"), "learning_rate", positive=True)
    Traceback (most recent call last):
        ...
    ValueError: learning_rate must be a finite number > 0, got nan.
  """
  if isinstance(value, jax.core.Tracer):
    return value
  if isinstance(value, (bool, np.bool_, str, bytes)) or not (
      isinstance(value, (int, float, np.integer, np.floating))
      or (hasattr(value, "shape") and np.shape(value) == ()
          and np.issubdtype(np.asarray(value).dtype, np.number)
          and not np.iscomplexobj(value))):
    raise TypeError(f"{name} must be a real number, got {type(value).__name__}"
                    f" ({value!r}).")
  v = float(value)
  want = " > 0" if positive else " >= 0" if nonnegative else ""
  if not math.isfinite(v) or (positive and not v > 0) or (nonnegative and not v >= 0):
    raise ValueError(f"{name} must be a finite number{want}, got {v}.")
  return v


def check_key(key: Any, name: str = "key") -> jax.Array:
  """A PRNG key: a typed key (``jax.random.key``) or a raw ``uint32[2]`` key
  (``jax.random.PRNGKey``); anything else (a plain int seed, say) is a ``TypeError``
  saying what to pass.

  Examples:
    >>> import jax
    >>> from jgen.core import checks
    >>> checks.check_key(jax.random.key(0)).shape
    ()
    >>> checks.check_key(0)
    Traceback (most recent call last):
        ...
    TypeError: key must be a PRNG key: pass jax.random.key(seed), got int (0).
  """
  if isinstance(key, jax.Array) or isinstance(key, jax.core.Tracer):
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
      return key
    if key.dtype == jnp.uint32 and key.shape[-1:] == (2,):
      return key
  raise TypeError(f"{name} must be a PRNG key: pass jax.random.key(seed), got"
                  f" {type(key).__name__} ({key!r:.60}).")


_LOW_PRECISION = ("float16", "bfloat16")


def as_features(x: Any, name: str = "x") -> jax.Array:
  """Features as a float32/float64 array, or a ``TypeError`` naming ``name``.

  Integer and boolean features are converted to the default float dtype (exact for
  counts and pixels). Complex, object and string arrays are rejected (a complex input
  would otherwise lose its imaginary part), and so are float16/bfloat16, whose range
  and precision cannot hold second moments or a Cholesky factorisation.
  """
  try:
    x = x if isinstance(x, jax.Array) else jnp.asarray(x)
  except TypeError as e:
    raise TypeError(f"{name} must be a numeric array, got {type(x).__name__} ({e}).") from e
  if jnp.issubdtype(x.dtype, jnp.complexfloating):
    raise TypeError(f"{name} must be real, got complex dtype {x.dtype}.")
  if str(x.dtype) in _LOW_PRECISION:
    raise TypeError(f"{name} has dtype {x.dtype}, too imprecise for covariances and"
                    " likelihoods; convert it to float32 or float64.")
  if jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_:
    x = x.astype(jnp.result_type(float))
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{name} must have a real numeric dtype, got {x.dtype}.")
  return x
