"""Data-parallel denoiser training: minibatch split over ``data``, parameters replicated.

:func:`data_parallel_train_step` is :func:`jgen.diffusion.train.train_step` (same key
flow, loss, optimiser and EMA) with the layout made explicit: the minibatch drawn from
the state key is constrained to ``P("data")``, so each device evaluates the denoiser on
``batch_size / data`` examples; parameters, optimiser state and EMA are replicated
``P()``, so the compiler all-reduces the gradient (a mean over the batch) before the
identical optimiser update on every device.
"""

from __future__ import annotations

import functools

import jax
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jgen.parallel import mesh as _sh

# The package may re-export a function named ``train``: import the module itself.
from jgen.diffusion import train as _train

__all__ = ["data_parallel_train_step"]


@functools.partial(jax.jit, static_argnames=("graphdef", "schedule", "config",
                                             "num_classes", "mesh"))
def _step(state, x_all, y_all, *, graphdef, schedule, config, num_classes, mesh):
  rep, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P(_sh.DATA))
  constrain = jax.lax.with_sharding_constraint
  state = constrain(state, rep)
  key = jax.random.wrap_key_data(state.key)
  key, batch_key, loss_key = jax.random.split(key, 3)
  idx = jax.random.randint(batch_key, (config.batch_size,), 0, x_all.shape[0])
  x, y = constrain(x_all[idx], rows), constrain(y_all[idx], rows)
  loss, grads = jax.value_and_grad(_train.loss_fn)(
      state.params, graphdef, x, y, loss_key, schedule=schedule, config=config,
      num_classes=num_classes)
  grads = constrain(grads, rep)  # the cross-device gradient reduction
  updates, opt_state = _train.make_optimizer(config).update(grads, state.opt_state,
                                                            state.params)
  params = optax.apply_updates(state.params, updates)
  s = state.step.astype(jax.numpy.float32)
  decay = jax.numpy.minimum(config.ema_decay, (1.0 + s) / (10.0 + s))
  ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, params)
  new = _train.TrainState(params, ema, opt_state, state.step + 1,
                          jax.random.key_data(key))
  return constrain(new, rep), loss, optax.tree.norm(grads)


def data_parallel_train_step(state, x_all, y_all, *, graphdef, schedule, config,
                             num_classes: int, mesh: Mesh):
  """One data-parallel step of :func:`jgen.diffusion.train.train_step`.

  Args:
    state: a ``TrainState`` (``jgen.diffusion.train.init_state``); replicated here.
    x_all, y_all: the training set ``[N, ...]``, ``[N]`` (any layout; the minibatch is
      gathered from it and split over ``data``).
    graphdef, schedule, config, num_classes: as ``train_step``.
    mesh: a mesh whose ``data`` axis size divides ``config.batch_size``.

  Returns:
    ``(new_state, loss, grad_norm)``, equal to ``train_step``'s up to the rounding of
    the reordered batch mean.
  """
  d = _sh.axis_size(mesh, _sh.DATA)
  if config.batch_size % d:
    raise ValueError(f"config.batch_size={config.batch_size} must be divisible by the"
                     f" data axis size {d} (each device takes an equal share).")
  return _step(state, x_all, y_all, graphdef=graphdef, schedule=schedule,
               config=config, num_classes=num_classes, mesh=mesh)
