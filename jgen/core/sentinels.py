"""Labels from scores, never from broken ones: the rows that cannot be classified.

A row of class scores ``[..., K]`` is *broken* when it holds a NaN or a ``+inf``, or
when every class scores ``-inf``: no class is then more likely than another, and the
``argmax`` would return an arbitrary (and plausible-looking) label. Eagerly jgen raises
``ValueError`` naming the argument and the first broken row; under ``jit`` (where
values cannot raise) the row gets the label ``INVALID_LABEL`` (``-1``), which is not a
class, so [`accuracy`][jgen.accuracy] counts it as wrong and a user can find it with
``labels < 0``.

The detection counts (``jnp.isnan``, ``jnp.isposinf``) instead of relying on a
reduction propagating NaN, which XLA's CPU backend does not do for float32 ``max``
over more than about 4096 elements.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jgen.core import checks as _checks

__all__ = ["INVALID_LABEL", "broken_rows", "check_scores", "labels_from_scores",
           "raise_for_invalid_labels"]

INVALID_LABEL = -1
"""The label of a row whose scores are broken, under ``jit`` (not a valid class)."""


def broken_rows(scores: jax.Array) -> jax.Array:
  """``[...]`` bool: rows of ``scores [..., K]`` with a NaN or ``+inf`` entry, or whose
  every entry is ``-inf`` (traceable).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.core import sentinels
    >>> s = jnp.array([[0.0, -jnp.inf], [-jnp.inf, -jnp.inf], [jnp.nan, 1.0]])
    >>> sentinels.broken_rows(s).tolist()
    [False, True, True]
  """
  bad = jnp.any(jnp.isnan(scores) | jnp.isposinf(scores), axis=-1)
  return bad | jnp.all(jnp.isneginf(scores), axis=-1)


@jax.jit
def _broken_summary(scores: jax.Array) -> tuple[jax.Array, jax.Array]:
  broken = broken_rows(scores).reshape(-1)
  return jnp.sum(broken, dtype=jnp.int32), jnp.argmax(broken)


def _raise_broken(count: int, first: int, shape, name: str) -> None:
  where = ""
  if shape:
    row = np.unravel_index(first, shape)
    where = f", the first at index {', '.join(str(int(i)) for i in row)}"
  raise ValueError(
      f"{name} has {count} row(s) that cannot be classified (a NaN or +inf score, or"
      f" -inf for every class){where}; a non-finite input or a degenerate model gives"
      " such scores.")


def check_scores(scores: jax.Array, name: str = "scores") -> None:
  """Raise ``ValueError`` if concrete ``scores [..., K]`` have a broken row.

  Under a trace it stages the check for [`checked`][jgen.checked] and returns.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.core import sentinels
    >>> sentinels.check_scores(jnp.array([[0.0, 1.0], [jnp.nan, 0.0]]), "log_lik")
    Traceback (most recent call last):
        ...
    ValueError: log_lik has 1 row(s) that cannot be classified (a NaN or +inf score, or -inf for every class), the first at index 1; a non-finite input or a degenerate model gives such scores.
  """
  if not _checks.is_concrete(scores):
    _checks.staged_check(~broken_rows(scores),
                         f"{name} has row(s) that cannot be classified (a NaN or +inf"
                         " score, or -inf for every class).")
    return
  if not scores.size:
    return
  if isinstance(scores, np.ndarray) or not isinstance(scores, jax.Array):
    s = np.asarray(scores)
    broken = (np.any(np.isnan(s) | np.isposinf(s), axis=-1)
              | np.all(np.isneginf(s), axis=-1)).reshape(-1)
    count, first = int(np.sum(broken)), int(np.argmax(broken))
  else:
    count, first = (int(v) for v in jax.device_get(_broken_summary(scores)))
  if count:
    _raise_broken(count, first, scores.shape[:-1], name)


def labels_from_scores(scores: jax.Array, name: str = "scores") -> jax.Array:
  """``argmax_k scores`` ``[...]`` (integer): ``ValueError`` eagerly on a broken row,
  ``INVALID_LABEL`` for it under ``jit``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen.core import sentinels
    >>> s = jnp.array([[0.0, 1.0], [-jnp.inf, -jnp.inf]])
    >>> jax.jit(sentinels.labels_from_scores)(s).tolist()
    [1, -1]
  """
  check_scores(scores, name)
  label = jnp.argmax(scores, axis=-1)
  return jnp.where(broken_rows(scores), jnp.asarray(INVALID_LABEL, label.dtype), label)


def raise_for_invalid_labels(label: jax.Array, name: str) -> None:
  """Eagerly, ``ValueError`` if concrete labels hold ``INVALID_LABEL`` (a row of
  ``name`` that could not be classified); nothing under a trace.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.core import sentinels
    >>> sentinels.raise_for_invalid_labels(jnp.array([2, 0, 1]), "scores")  # all fine
  """
  if not _checks.is_concrete(label) or not label.size:
    return
  count, first = (int(v) for v in jax.device_get(_invalid_summary(label)))
  if count:
    _raise_broken(count, first, label.shape, name)


@jax.jit
def _invalid_summary(label: jax.Array):
  invalid = (label == INVALID_LABEL).reshape(-1)
  return jnp.sum(invalid, dtype=jnp.int32), jnp.argmax(invalid)
