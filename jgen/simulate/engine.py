"""One compiled program per (family, K, D) for a whole learning curve.

A learning curve fits a [`jgen.Classifier`][jgen.Classifier] on the first ``m`` examples
of ``R`` training streams for many sizes ``m`` and reports the test error of each fit.
This module compiles that sweep once per shape:

* the streams are padded to the largest size; a fit on ``m`` examples uses the smallest
  *bucket* (``64 * 4^j``) that holds them, with zero sample weights past ``m``. The
  buckets are branches of one ``lax.switch`` whose index is the same for every
  repetition, so under ``vmap`` only the chosen branch runs, and the program is
  compiled once, not once per bucket;
* the sizes of one call run in a ``lax.scan``; families whose ``fit`` takes ``init``
  (logistic regression) are warm-started from the fit at the previous size, which is
  what makes fine ``m`` grids cheap;
* a size of ``0`` is skipped (a ``lax.cond`` on an unbatched predicate), so callers
  evaluating one size at a time (bisection) reuse the same program;
* the repetitions are ``vmap``-ped: use a solver without data-dependent branches, e.g.
  [`jgen.logistic.batched.batched_logistic_regression`][jgen.logistic.batched_logistic_regression].
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen import parallel
from jgen.core.contract import Classifier
from jgen.simulate import mixtures

__all__ = ["CurveProgram", "curve_program", "buckets_for", "warm_startable", "zeros_init",
           "sample_streams", "shard_streams", "as_sizes"]


def warm_startable(model: Classifier) -> bool:
  """Whether ``model.fit`` accepts ``init=`` (a warm start)."""
  try:
    return "init" in inspect.signature(model.fit).parameters
  except (TypeError, ValueError):
    return False


def buckets_for(max_size: int, minimum: int = 64, ratio: int = 4) -> tuple[int, ...]:
  """Bucket sizes ``minimum * ratio^j`` up to the first one ``>= max_size``.

  Padding is at most ``ratio``-fold; fewer buckets mean fewer branches to compile.

  Args:
    max_size: the largest number of examples ``>= 1``.
    minimum: the smallest bucket.
    ratio: growth factor between buckets.

  Returns:
    Ascending tuple of ints.

  Examples:
    >>> from jgen import simulate
    >>> simulate.buckets_for(1000), simulate.buckets_for(100, minimum=16, ratio=2)
    ((64, 256, 1024), (16, 32, 64, 128))
  """
  if max_size < 1:
    raise ValueError(f"max_size must be >= 1, got {max_size}.")
  out = [minimum]
  while out[-1] < max_size:
    out.append(ratio * out[-1])
  return tuple(out)


class CurveProgram(NamedTuple):
  """A compiled sweep; call ``run(x [R, N, D], y [R, N], x_test, y_test, sizes [G], init)``.

  Returns ``(errors [G, R], params [G, R, ...] or None, converged [G, R])``; rows of
  skipped sizes (``0``) are ``nan`` / unchanged.

  Attributes:
    run: the jitted sweep.
    buckets: the padded sizes, ascending.
    warm: whether fits warm-start from the previous size (``fit`` takes ``init``).

  Examples:
    >>> from jgen import simulate
    >>> nb = simulate.resolve_model("nb")
    >>> prog = simulate.curve_program(nb, num_classes=2, buckets=(64, 256))
    >>> prog.buckets, prog.warm
    ((64, 256), False)
    >>> lr = simulate.resolve_model("lr")  # logistic fits take init=
    >>> simulate.curve_program(lr, num_classes=2, buckets=(64,)).warm
    True
  """
  run: Any
  buckets: tuple[int, ...]
  warm: bool


def _score_error(model, params, x_test, y_test):
  scores = model.log_likelihood(params, x_test)
  if not model.conditional:
    prior = model.log_prior(params)
    if prior is not None:
      scores = scores + prior[None, :]
  return jnp.mean(jnp.argmax(scores, -1) != y_test)


def _converged(params):
  info = getattr(params, "info", None)
  ok = getattr(info, "converged", None)
  return jnp.asarray(True) if ok is None else ok


_CACHE: dict = {}


def curve_program(model: Classifier, *, num_classes: int, buckets: tuple[int, ...]
                  ) -> CurveProgram:
  """Builds (or reuses) the jitted sweep for ``model`` and the given buckets.

  Args:
    model: any [`jgen.Classifier`][jgen.Classifier] whose ``fit`` accepts
      ``sample_weight``.
    num_classes: static ``K``.
    buckets: ascending padded sizes; the streams passed to ``run`` must hold
      ``buckets[-1]`` examples.

  Returns:
    [`CurveProgram`][jgen.simulate.CurveProgram]; jax retraces only for new array shapes.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> from jgen import simulate
    >>> mix = simulate.zheng_mixture(2, 4)
    >>> x, y = jax.vmap(lambda k: simulate.sample(k, mix, 64))(jax.random.split(
    ...     jax.random.key(0), 2))
    >>> xt, yt = simulate.sample(jax.random.key(1), mix, 100)
    >>> prog = simulate.curve_program(jgen.gaussian_nb(pooled=True), num_classes=2,
    ...                               buckets=(64,))
    >>> err, _, _ = prog.run(x, y, xt, yt, jnp.array([8, 0, 32]), None)
    >>> err.shape
    (3, 2)
  """
  key = (id(model), num_classes, tuple(buckets))
  if key in _CACHE:
    return _CACHE[key][1]
  warm = warm_startable(model)
  buckets = tuple(int(b) for b in buckets)

  def fit_eval(xb, yb, m, init, x_test, y_test):
    w = (jnp.arange(xb.shape[0]) < m).astype(xb.dtype)
    kw = dict(init=init) if warm else {}
    params = model.fit(xb, yb, num_classes=num_classes, sample_weight=w, **kw)
    return params, _score_error(model, params, x_test, y_test), _converged(params)

  def branch(b):
    def go(x, y, m, init, x_test, y_test):
      return jax.vmap(fit_eval, in_axes=(0, 0, None, 0 if warm else None, None, None))(
          x[:, :b], y[:, :b], m, init, x_test, y_test)
    return go

  branches = [branch(b) for b in buckets]
  edges = jnp.asarray(buckets, jnp.int32)

  @jax.jit
  def run(x, y, x_test, y_test, sizes, init):
    num_reps = x.shape[0]
    shape = jax.eval_shape(branches[0], x, y, jnp.int32(1), init, x_test, y_test)
    nan = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype)
                       if jnp.issubdtype(s.dtype, jnp.floating) else
                       jnp.zeros(s.shape, s.dtype), shape)

    def step(carry, m):
      def do(carry):
        idx = jnp.searchsorted(edges, m, side="left")
        out = jax.lax.switch(idx, branches, x, y, m, carry, x_test, y_test)
        return (out[0] if warm else carry), out

      def skip(carry):
        return carry, jax.tree.map(lambda a: a, nan)

      return jax.lax.cond(m > 0, do, skip, carry)

    carry, (params, err, ok) = jax.lax.scan(step, init, sizes)
    del num_reps, carry
    return err, (params if warm else None), ok

  prog = CurveProgram(run, buckets, warm)
  _CACHE[key] = (model, prog)
  return prog


def zeros_init(model: Classifier, x: jax.Array, y: jax.Array, num_classes: int) -> Any:
  """A zero warm start ``[R, ...]`` with the structure ``model.fit`` returns.

  Args:
    x: ``[R, N, D]`` streams; y: ``[R, N]``.
  """
  if not warm_startable(model):
    return None
  shape = jax.eval_shape(
      jax.vmap(lambda a, b: model.fit(a, b, num_classes=num_classes,
                                      sample_weight=jnp.ones(a.shape[:1], a.dtype))),
      x[:, :num_classes], y[:, :num_classes])
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shape)


def sample_streams(key: jax.Array, mixture, num_reps: int, num_examples: int):
  """``R`` nested balanced streams ``x [R, N, D]``, ``y [R, N]`` (repetition ``r`` uses
  the ``r``-th split of ``key``)."""
  return _streams(jax.random.split(key, num_reps), mixture, num_examples)


@functools.partial(jax.jit, static_argnums=2)
def _streams(keys, mixture, num_examples):
  return jax.vmap(lambda k: mixtures.sample(k, mixture, num_examples))(keys)


def as_sizes(sizes, length: int) -> np.ndarray:
  """Pads ``sizes`` with zeros (skipped) to ``length``."""
  out = np.zeros(length, np.int32)
  out[: len(sizes)] = sizes
  return out


def shard_streams(mesh, x: jax.Array, y: jax.Array):
  """Places the repetitions axis of the streams on the mesh's ``data`` axis.

  The compiled sweep is unchanged: ``jit`` partitions the vmapped repetitions across
  the devices (each device fits its own repetitions; the loop's stopping test is the
  only cross-device reduction), so the numbers equal the one-device run.

  Args:
    mesh: a mesh from [`jgen.parallel.make_mesh`][jgen.parallel.make_mesh]; its ``data``
      size must divide the number of repetitions.
    x: ``[R, N, D]``; y: ``[R, N]``.
  """
  from jax.sharding import NamedSharding, PartitionSpec as P
  size = parallel.axis_size(mesh, parallel.DATA)
  if x.shape[0] % size:
    raise ValueError(f"num_reps={x.shape[0]} must be a multiple of the mesh's"
                     f" '{parallel.DATA}' axis size {size}.")
  sharding = NamedSharding(mesh, P(parallel.DATA))
  return jax.device_put(x, sharding), jax.device_put(y, sharding)
