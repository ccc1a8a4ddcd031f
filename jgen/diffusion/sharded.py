"""The Diffusion Classifier with the class axis split over the ``classes`` mesh axis.

A ``shard_map`` shell, nothing more: it validates through
``jgen.diffusion.classifier.prepare``, pads the class ids to the mesh with ``-1``
(dummy classes, scored ``-inf``), picks the shardings and runs the SAME strategy code
as [`jgen.diffusion.classify`][jgen.diffusion.classify] with ``axis_name="classes"``.
The ``(t, eps)`` draws depend only on the key, so for the same key, errors, scores and
labels equal the single-device ones. ``num_evals`` counts the evaluations on all
devices, padded dummy classes and each device's ``sequential`` bucket included.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P

from jgen.core import checks as _checks
from jgen.core import compilation
from jgen.diffusion import validate
from jgen.diffusion.classifier import check_examples
from jgen.diffusion.classifier import finish
from jgen.diffusion.classifier import mark_unclassifiable
from jgen.diffusion.classifier import prepare
from jgen.diffusion.elbo import class_errors_at
from jgen.diffusion.losses import draw
from jgen.diffusion.dispatch import run_strategy
from jgen.diffusion.strategies import ClassifyResult
from jgen.parallel import mesh as pmesh

__all__ = ["sharded_class_errors", "sharded_classify", "sharded_batch_classify"]


def _pad_ids(ids: jax.Array, mesh: Mesh) -> jax.Array:
  c_pad = -(-ids.shape[0] // pmesh.axis_size(mesh, pmesh.CLASSES)) * pmesh.axis_size(
      mesh, pmesh.CLASSES)
  return pmesh.pad_classes(ids, c_pad, axis=0, fill=-1)


@functools.partial(compilation.jit, static_argnames=("mesh", "strategy", "cfg", "opts",
                                             "batched", "impl"))
def _run(key_data, params, x, ids, *, mesh, strategy, cfg, opts, batched, impl):
  def block(kd, p, xs, ids_local):
    keys = kd if impl is None else jax.random.wrap_key_data(kd, impl=impl)
    return run_strategy(strategy, keys, p, xs, ids_local, cfg=cfg, opts=dict(opts),
                        axis_name=pmesh.CLASSES, batched=True)

  rows = P(pmesh.DATA) if batched else P(None)
  n = x.shape[0]
  if batched:
    d = pmesh.axis_size(mesh, pmesh.DATA)
    key_data, x = pmesh.pad_rows(key_data, d), pmesh.pad_rows(x, d)
  out = jax.shard_map(
      block, mesh=mesh, in_specs=(rows, P(), rows, P(pmesh.CLASSES)),
      out_specs=ClassifyResult(rows, P(*rows, pmesh.CLASSES), rows),
      check_vma=False)(key_data, params, x, ids)
  return mark_unclassifiable(pmesh.unpad_rows(out, n, mesh))


def _key_data(keys: jax.Array):
  if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(keys), jax.random.key_impl(keys)
  return keys, None  # raw uint32 keys pass through unchanged


def _call(key, denoiser, params, x, num_classes, mesh, options, batched):
  _checks.check_key(key)
  if batched:
    check_examples(x)
  p = prepare(denoiser, params, x, num_classes, options, batched=batched)
  keys = jax.random.split(key, p.x.shape[0]) if batched else key[None]
  key_data, impl = _key_data(keys)
  out = _run(key_data, params, p.x if batched else p.x[None], _pad_ids(p.ids, mesh),
             mesh=mesh, strategy=p.strategy, cfg=p.cfg, opts=p.opts, batched=batched,
             impl=impl)
  return finish(out if batched else jax.tree.map(lambda a: a[0], out))


def sharded_classify(key: jax.Array, denoiser, params: Any, x, num_classes: int,
                     mesh: Mesh, **options) -> ClassifyResult:
  """[`jgen.diffusion.classify`][jgen.diffusion.classify] with the classes split over
  ``mesh``'s
  ``classes`` axis (the ``data`` axis computes redundantly: use ``data=1``).

  Returns:
    ``ClassifyResult(label [], scores [C_pad], num_evals [])``: ``label`` and
    ``scores[:C]`` equal the single-device result for the same key; ``scores`` stay
    sharded over ``classes`` and the padded entries are ``-inf``.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> from jgen import diffusion
    >>> den, params = diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
    >>> mesh = jgen.parallel.make_mesh(classes=1)
    >>> int(diffusion.sharded_classify(jax.random.key(0), den, params, jnp.eye(3)[1],
    ...                                3, mesh, num_t=64).label)
    1
  """
  return _call(key, denoiser, params, x, num_classes, mesh, options, batched=False)


def sharded_batch_classify(key: jax.Array, denoiser, params: Any, x,
                           num_classes: int, mesh: Mesh, **options) -> ClassifyResult:
  """[`jgen.diffusion.batch_classify`][jgen.diffusion.batch_classify] on a mesh:
  examples ``x [N, ...]`` split
  over ``data``, classes over ``classes``. Row ``n`` uses
  ``jax.random.split(key, N)[n]``, as the single-device function does.

  Returns:
    ``ClassifyResult(label [N], scores [N, C_pad], num_evals [N])``.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> from jgen import diffusion
    >>> den, params = diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
    >>> mesh = jgen.parallel.make_mesh(classes=1)
    >>> diffusion.sharded_batch_classify(jax.random.key(0), den, params, jnp.eye(3),
    ...                                  3, mesh, num_t=64).label.tolist()
    [0, 1, 2]
  """
  return _call(key, denoiser, params, x, num_classes, mesh, options, batched=True)


@functools.partial(compilation.jit, static_argnames=("mesh", "cfg", "num_t"))
def _errors_run(key, params, x, ids, *, mesh, cfg, num_t):
  def block(ids_local):
    t, eps = draw(key, num_t, x, cfg.schedule, cfg.timesteps, cfg.antithetic)
    err = class_errors_at(cfg.denoiser, params, x, t, eps, jnp.maximum(ids_local, 0),
                          schedule=cfg.schedule, weighting=cfg.weighting,
                          loss=cfg.loss, chunk_size=cfg.chunk_size)
    return jnp.where((ids_local >= 0)[:, None], err, jnp.inf)

  return jax.shard_map(block, mesh=mesh, in_specs=P(pmesh.CLASSES),
                       out_specs=P(pmesh.CLASSES), check_vma=False)(ids)


def sharded_class_errors(key: jax.Array, denoiser, params: Any, x, num_classes: int,
                         mesh: Mesh, *, num_t: int, schedule, timesteps="stratified",
                         weighting="elbo", loss="l2", classes=None, chunk_size=None,
                         antithetic: bool = False) -> jax.Array:
  """[`jgen.diffusion.class_errors`][jgen.diffusion.class_errors] with the class axis
  split over devices.

  Returns:
    ``[C_pad, num_t]`` errors sharded over ``classes``: rows ``[:C]`` equal
    ``class_errors(key, ...)`` (same ``(t, eps)`` for every class); padded rows are
    ``+inf`` (lower is better, so a dummy class never wins).

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> from jgen import diffusion
    >>> den, params = diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
    >>> diffusion.sharded_class_errors(jax.random.key(0), den, params, jnp.zeros(3), 3,
    ...     jgen.parallel.make_mesh(classes=1), num_t=4,
    ...     schedule=diffusion.linear_schedule()).shape
    (3, 4)
  """
  p = prepare(denoiser, params, x, num_classes,
              dict(num_t=num_t, schedule=schedule, timesteps=timesteps,
                   weighting=weighting, loss=loss, classes=classes,
                   chunk_size=chunk_size, antithetic=antithetic), batched=False)
  validate.check_antithetic(antithetic, num_t)
  return _errors_run(key, params, p.x, _pad_ids(p.ids, mesh), mesh=mesh, cfg=p.cfg,
                     num_t=dict(p.opts)["num_t"])
