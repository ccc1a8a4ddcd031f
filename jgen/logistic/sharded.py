"""Logistic regression with the examples split over the ``data`` mesh axis.

The full-batch L-BFGS fit of :func:`jgen.logistic_regression` is one jitted program;
given inputs laid out ``P("data")``, the compiler partitions every pass over the rows
(logits, cross-entropies, gradients) across the ``data`` devices and all-reduces the
``[D, K]`` gradient and the scalar objective, so each device holds ``N / data`` rows.
Rows are padded to a multiple of the ``data`` size with zero-weight examples, which
leave the weighted objective, its gradient and the preconditioner unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.parallel import mesh as _sh

__all__ = ["fit_logistic_data_parallel"]


def fit_logistic_data_parallel(model, x: ArrayLike, y: ArrayLike, *, num_classes: int,
                               mesh: Mesh, sample_weight: ArrayLike | None = None,
                               init=None):
  """``model.fit`` (full-batch L-BFGS) data-parallel over ``mesh``'s ``data`` axis.

  Args:
    model: ``jgen.logistic_regression(C, ...)``.
    x: ``[N, D]`` features; y: ``[N]`` labels; num_classes: static ``K``.
    mesh: a ``(data, classes)`` mesh; the data are replicated over ``classes``.
    sample_weight: optional ``[N]`` weights (default 1).
    init: optional warm start (as ``model.fit``).

  Returns:
    ``LogisticParams``: the single-device fit up to the rounding of the reordered
    row sums (both runs stop on the same tolerance).
  """
  num_classes = _checks.check_num_classes(num_classes)
  x, y = jnp.asarray(x), jnp.asarray(y)
  _checks.check_ndim(x, 2, "x")
  _checks.check_ndim(y, 1, "y")
  _checks.check_same_leading(x, y)
  _checks.check_labels(y, num_classes)
  sw = jnp.ones(x.shape[:1], x.dtype) if sample_weight is None else jnp.asarray(
      sample_weight, x.dtype)
  _checks.check_ndim(sw, 1, "sample_weight")
  _checks.check_same_leading(x, sw, "x", "sample_weight")
  d = _sh.axis_size(mesh, _sh.DATA)
  rows = NamedSharding(mesh, P(_sh.DATA))
  # Zero-weight padding rows: x = 0, y = 0 contribute 0 * CE = 0 to every sum.
  x, y, sw = (jax.device_put(_sh.pad_rows(a, d), rows) for a in (x, y, sw))
  return model.fit(x, y, num_classes=num_classes, sample_weight=sw, init=init)
