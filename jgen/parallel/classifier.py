"""Any classifier on a device mesh: class-sharded scoring and data-parallel fitting.

Both tools read only the classifier contract, so they never branch on the family:

* [`class_sharded_log_likelihood`][jgen.parallel.class_sharded_log_likelihood] splits
  every ``params`` leaf that carries the class axis (``model.class_axes(params)``) over
  the ``classes`` mesh axis, replicates the rest, and runs ``model.log_likelihood`` on
  each device's slice of classes and rows. Classes are padded to a multiple of the axis
  size by repeating the last real class, and the padded columns are masked to ``-inf``.
  A stochastic family receives the same ``key`` on every device, so Monte Carlo draws
  stay shared across classes (the paired comparison of the Diffusion Classifier).
* [`class_sharded_predict`][jgen.parallel.class_sharded_predict] finishes with the
  sharded Bayes rule ([`jgen.parallel.bayes_reduce`][jgen.parallel.bayes_reduce]):
  ``O(N)`` communication, ``[N, K]`` never gathered.
* [`fit_data_parallel`][jgen.parallel.fit_data_parallel] lays the examples out over the
  ``data`` axis (padding with zero-weight rows, never dropping one) and calls
  ``model.fit``: XLA partitions the fit's sums over the devices and inserts the
  all-reduces.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core.contract import Classifier
from jgen.parallel.collectives import BayesReduction
from jgen.parallel.collectives import bayes_reduce
from jgen.parallel.collectives import class_sharded_scores
from jgen.parallel.mesh import DATA
from jgen.parallel.mesh import axis_size
from jgen.parallel.mesh import pad_rows

__all__ = ["class_sharded_log_likelihood", "class_sharded_predict", "fit_data_parallel"]


def _split(model: Classifier, params: Any):
  """(per-class leaves moved to axis 0, shared leaves, the layout to rebuild params)."""
  axes = model.class_axes(params)
  flat_axes, axes_def = jax.tree.flatten(axes, is_leaf=lambda a: a is None)
  leaves = axes_def.flatten_up_to(params)
  per, shared, layout = [], [], []
  for ax, leaf in zip(flat_axes, leaves):
    if ax is None:
      layout.append((False, None, len(shared)))
      shared.append(leaf)
    else:
      layout.append((True, int(ax), len(per)))
      per.append(jnp.moveaxis(jnp.asarray(leaf), int(ax), 0))
  if not per:
    raise ValueError(f"{model.name}: no params leaf carries the class axis"
                     " (model.class_axes), so the classes cannot be sharded.")
  sizes = {p.shape[0] for p in per}
  if len(sizes) != 1:
    raise ValueError(f"{model.name}: params leaves disagree on the number of classes"
                     f" along their class axes: {sorted(sizes)}.")
  return per, shared, (axes_def, tuple(layout)), sizes.pop()


class _Scorer:
  """Per-shard scoring of one family; equal (so compiled once) for equal families."""

  def __init__(self, model: Classifier, layout):
    self.model, self.layout = model, layout
    try:
      self._id = (model.name, tuple(sorted(model.hyperparams.items())), layout)
      hash(self._id)
    except TypeError:  # unhashable hyperparameters: identify by the function
      self._id = (id(model.log_likelihood), layout)

  def __eq__(self, other):
    return isinstance(other, _Scorer) and other._id == self._id

  def __hash__(self):
    return hash(self._id)

  def __call__(self, per, shared, ids, x):
    del ids
    shared_leaves, key = shared
    axes_def, layout = self.layout
    leaves = [jnp.moveaxis(per[i], 0, ax) if is_per else shared_leaves[i]
              for is_per, ax, i in layout]
    params = axes_def.unflatten(leaves)
    key = None if key is None else jax.random.wrap_key_data(key)
    return self.model.log_likelihood(params, x, key=key)


def class_sharded_log_likelihood(model: Classifier, params: Any, x: ArrayLike,
                                 mesh: Mesh, *, key: jax.Array | None = None
                                 ) -> jax.Array:
  """``model.log_likelihood(params, x)`` with the classes split over ``classes``.

  Args:
    model: any [`jgen.Classifier`][jgen.Classifier].
    params: its params (``K`` classes along the axes ``model.class_axes`` names).
    x: inputs ``[N, ...]``; rows are split over the ``data`` axis.
    mesh: a ``(data, classes)`` mesh
      ([`jgen.parallel.make_mesh`][jgen.parallel.make_mesh]).
    key: PRNG key for stochastic families (the same on every device).

  Returns:
    ``[N, K_pad]`` scores sharded ``P("data", "classes")``; padded columns are
    ``-inf``. Equal to the single-device scores up to the rounding of reordered sums.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> model = jgen.gaussian_nb(); params = model.fit(x, y, num_classes=2)
    >>> mesh = jgen.parallel.make_mesh(data=1, classes=1)
    >>> jgen.parallel.class_sharded_log_likelihood(model, params, x, mesh).shape
    (4, 2)
  """
  if not isinstance(model, Classifier):
    raise TypeError(f"model must be a jgen.Classifier, got {type(model).__name__}.")
  if not isinstance(params, model.params_type):
    raise TypeError(f"params must be {model.params_type.__name__} (from {model.name}'s"
                    f" fit), got {type(params).__name__}.")
  if model.stochastic and key is None:
    raise ValueError(f"{model.name} scores are Monte Carlo estimates: pass key=.")
  x = _checks.as_array(x, "x")
  _checks.check_min_ndim(x, 1, "x")
  if jnp.issubdtype(x.dtype, jnp.floating):
    _checks.check_finite(x, "x")   # the checks model.log_likelihood makes eagerly
  per, shared, layout, num_classes = _split(model, params)
  key_data = None if key is None else jax.random.key_data(key)
  return class_sharded_scores(_Scorer(model, layout), per, x, mesh,
                              num_classes=num_classes, shared=(shared, key_data))


def class_sharded_predict(model: Classifier, params: Any, x: ArrayLike, mesh: Mesh, *,
                          key: jax.Array | None = None) -> BayesReduction:
  """Bayes' rule with the classes split over devices, without gathering ``[N, K]``.

  The prior is ``model.log_prior(params)`` (none for conditional families).

  Returns:
    [`jgen.parallel.BayesReduction`][jgen.parallel.BayesReduction] of ``[N]`` arrays:
    ``label`` equals ``jgen.predict(model, params, x)``, ``log_normalizer`` is
    ``log p(x)`` for generative families.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> model = jgen.lda(shrinkage=0.1); params = model.fit(x, y, num_classes=2)
    >>> mesh = jgen.parallel.make_mesh(data=1, classes=1)
    >>> jgen.parallel.class_sharded_predict(model, params, x, mesh).label.tolist()
    [0, 0, 1, 1]
  """
  scores = class_sharded_log_likelihood(model, params, x, mesh, key=key)
  per, _, _, num_classes = _split(model, params)
  del per
  prior = None if model.conditional else model.log_prior(params)
  return bayes_reduce(scores, mesh, num_classes=num_classes, log_prior=prior)


def fit_data_parallel(model: Classifier, x: ArrayLike, y: ArrayLike, mesh: Mesh, *,
                      num_classes: int, sample_weight: ArrayLike | None = None,
                      **fit_kwargs: Any) -> Any:
  """``model.fit`` with the examples split over the ``data`` axis of ``mesh``.

  Rows are padded to a multiple of the ``data`` axis size with zero-weight examples
  (which change no family's fit) and placed ``P("data")``; the family's jitted fit
  then runs partitioned over the devices, its sums reduced across them.

  Args:
    model: any [`jgen.Classifier`][jgen.Classifier] whose ``fit`` supports
      ``sample_weight``.
    x: ``[N, ...]`` inputs; y: ``[N]`` labels; num_classes: static ``K``.
    mesh: a mesh with a ``data`` axis.
    sample_weight: optional ``[N]`` weights (default 1).
    **fit_kwargs: passed to ``model.fit`` (e.g. ``priors=`` or ``init=``).

  Returns:
    The family's params, equal to ``model.fit(x, y, ...)`` on one device up to the
    rounding of reordered sums.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4], [0.1]]); y = jnp.array([0, 0, 1, 1, 0])
    >>> mesh = jgen.parallel.make_mesh(data=1, classes=1)
    >>> p = jgen.parallel.fit_data_parallel(jgen.gaussian_nb(), x, y, mesh, num_classes=2)
    >>> tuple(round(float(m), 2) for m in p.means[:, 0])
    (0.1, 2.2)
  """
  if not isinstance(model, Classifier):
    raise TypeError(f"model must be a jgen.Classifier, got {type(model).__name__}.")
  x, y = jnp.asarray(x), jnp.asarray(y)
  _checks.check_min_ndim(x, 1, "x")
  _checks.check_ndim(y, 1, "y")
  _checks.check_same_leading(x, y)
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
  w = _checks.check_sample_weight(sample_weight, x.shape[0], dtype)
  if w is None:
    w = jnp.ones(x.shape[:1], dtype)
  d = axis_size(mesh, DATA)
  rows = NamedSharding(mesh, P(DATA))
  x, y, w = (jax.device_put(pad_rows(a, d), rows) for a in (x, y, w))
  return model.fit(x, y, num_classes=num_classes, sample_weight=w, **fit_kwargs)
