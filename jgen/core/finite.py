"""Counting non-finite values: the one way jgen detects NaN and infinities.

Re-exported from ``jgen.core.checks``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
  "count_nonfinite",
  "max_finite_abs",
  "screen_nonfinite",
  "value_screen",
  "value_summary",
]


@jax.jit
def value_summary(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(number of non-finite entries, largest finite |x|)`` on device: one pass."""
  return count_nonfinite(x), max_finite_abs(x)


@jax.jit
def value_screen(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(screen_nonfinite(x), max |x|)``: the value checks' fast first look."""
  return screen_nonfinite(x), jnp.max(jnp.abs(x))


def screen_nonfinite(x: jax.Array) -> jax.Array:
  """Number of non-finite row sums of ``x`` (traceable): zero exactly when a count
  would find no NaN or infinity in ``x``, at the cost of a sum.

  A row sum is NaN or infinite whenever one of its entries is (IEEE arithmetic: NaN
  propagates through additions, an infinity survives every finite addend, and
  ``inf - inf`` is NaN), so a zero here proves ``x`` finite. A positive count says
  "count exactly" (``count_nonfinite``): finite entries can overflow a sum. The non-finite entries are still found by counting,
  here in ``N`` sums instead of ``N D`` entries: on XLA's CPU backend counting every
  entry of a 200,000 x 256 float32 array takes about ten times as long as summing it.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.core import checks
    >>> x = jnp.zeros((3000, 4), jnp.float32)
    >>> int(checks.screen_nonfinite(x)), int(checks.screen_nonfinite(x.at[-1, 2].set(jnp.inf)))
    (0, 1)
  """
  rows = x.reshape(-1, x.shape[-1]) if x.ndim >= 2 else x.reshape(1, -1)
  return count_nonfinite(jnp.sum(rows, axis=-1))


def count_nonfinite(x: jax.Array) -> jax.Array:
  """Number of NaN and infinite entries of ``x`` (traceable), by counting.

  The one way jgen detects non-finite values. A reduction such as ``max |x|`` is no
  substitute: XLA's CPU backend does not propagate NaN through a float32 ``max`` over
  more than about 4096 elements (it returns the largest finite value or ``-inf``),
  and GPU and TPU reductions make no promise either; a count is exact everywhere.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.core import checks
    >>> x = jnp.zeros(5000, jnp.float32).at[-1].set(jnp.nan)
    >>> int(checks.count_nonfinite(x))
    1
  """
  return jnp.sum(~jnp.isfinite(x), dtype=jnp.int32)


def max_finite_abs(x: jax.Array) -> jax.Array:
  """Largest ``|x|`` over the finite entries of ``x`` (0 when there are none).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.core import checks
    >>> float(checks.max_finite_abs(jnp.array([1.0, -3.0, jnp.inf, jnp.nan])))
    3.0
  """
  return jnp.max(jnp.where(jnp.isfinite(x), jnp.abs(x), 0), initial=0)
