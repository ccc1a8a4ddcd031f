"""Training class-conditional denoisers: ε-prediction, optax, EMA, resumable orbax runs.

The objective is [`jgen.diffusion.diffusion_term`][jgen.diffusion.diffusion_term]
averaged over a minibatch, with stratified times ``t_i = mod(u + i/B, 1)`` (VDM) and
``weighting="elbo"`` (the diffusion part of the negative ELBO) or ``"uniform"`` (mean
squared ε-error). Optimiser: gradient clipping then AdamW with linear warm-up and cosine
decay. An EMA copy of the parameters is kept for evaluation.

Runs are resumable and exact: the whole [`TrainState`][jgen.diffusion.TrainState]
(params, EMA, optimiser state, step, PRNG key) is saved by an orbax
``CheckpointManager`` every ``checkpoint_every`` steps, minibatches are drawn from the
PRNG key in the state, and the jitted step is the same program, so a run killed at any
point and resumed ends with bitwise the parameters of an uninterrupted run. Unreadable
checkpoints are moved aside (with a warning) and the previous good step is used. A
non-finite loss or gradient stops the run with
[`NonFiniteLossError`][jgen.diffusion.NonFiniteLossError] before anything non-finite is
saved.

There is one train step. Given a ``mesh``, the same step runs data-parallel through
shardings alone: the minibatch is constrained to ``P("data")`` and the state to
``P()``, so the compiler splits the denoiser's work over devices and all-reduces the
gradient before the identical optimiser update on every device.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jgen.core import checks as _checks
from jgen.core import compilation
from jgen.parallel import mesh as _mesh
from jgen.diffusion import runs
from jgen.diffusion.losses import (batch_eps_prediction, draw_timesteps, noisy,
                                   weighted_loss)
from jgen.diffusion.nets import drop_labels
from jgen.diffusion.parametrizations import Denoiser, nnx_denoiser
from jgen.diffusion.schedules import Schedule
# Configuration, state and optimiser live in train_config.py; re-exported here.
from jgen.diffusion.train_config import (NonFiniteLossError, TrainConfig, TrainResult,
                                         TrainState, init_state, make_optimizer)

__all__ = [
    "TrainConfig",
    "TrainState",
    "TrainResult",
    "NonFiniteLossError",
    "make_optimizer",
    "init_state",
    "loss_fn",
    "train_step",
    "train",
]


def loss_fn(params, denoiser: Denoiser, x, y, key, *, schedule: Schedule,
            config: TrainConfig, num_classes: int) -> jax.Array:
  """Mean weighted ε-prediction loss over a minibatch ``x [B, ...]``, ``y [B]``.

  Per example it is [`diffusion_term`][jgen.diffusion.diffusion_term] at stratified times
  ``t_i = mod(u + i/B, 1)`` and fresh noise; the denoiser runs on the whole
  minibatch (``batch_eps_prediction``).
  """
  t_key, eps_key, drop_key = jax.random.split(key, 3)
  t = draw_timesteps(t_key, x.shape[0], schedule, "stratified", x.dtype)
  eps = jax.random.normal(eps_key, x.shape, x.dtype)
  if config.label_dropout > 0:
    y = drop_labels(drop_key, y, num_classes, config.label_dropout)
  noise = functools.partial(noisy, schedule=schedule, weighting=config.weighting)
  z, gamma_t, weight = jax.vmap(noise)(x, t, eps)
  eps_hat = batch_eps_prediction(denoiser, params, z, gamma_t, y)
  if eps_hat.shape != x.shape:
    raise ValueError(f"the denoiser must return a prediction with x's shape"
                     f" {tuple(x.shape[1:])} per example, got"
                     f" {tuple(eps_hat.shape[1:])}.")
  term = functools.partial(weighted_loss, loss=config.loss)
  return jnp.mean(jax.vmap(term)(eps_hat, eps, weight))


@functools.partial(compilation.jit, static_argnames=("denoiser", "schedule", "config",
                                             "num_classes", "mesh"))
def _step(state, x_all, y_all, weights, *, denoiser, schedule, config, num_classes,
          mesh):
  if mesh is not None:
    rep, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P(_mesh.DATA))
    place = jax.lax.with_sharding_constraint
  else:
    rep = rows = None
    place = lambda a, _: a  # noqa: E731
  state = place(state, rep)
  key = jax.random.wrap_key_data(state.key)
  key, batch_key, loss_key = jax.random.split(key, 3)
  if weights is None:
    idx = jax.random.randint(batch_key, (config.batch_size,), 0, x_all.shape[0])
  else:  # drawn in proportion to the weights: a zero-weight example is never used
    idx = jax.random.choice(batch_key, x_all.shape[0], (config.batch_size,),
                            p=weights / jnp.sum(weights))
  x, y = place(x_all[idx], rows), place(y_all[idx], rows)
  loss, grads = jax.value_and_grad(loss_fn)(
      state.params, denoiser, x, y, loss_key, schedule=schedule, config=config,
      num_classes=num_classes)
  grads = place(grads, rep)  # with a mesh: the cross-device gradient reduction
  updates, opt_state = make_optimizer(config).update(grads, state.opt_state,
                                                     state.params)
  params = optax.apply_updates(state.params, updates)
  if config.ema_decay is None:
    ema = params
  else:
    s = state.step.astype(jnp.float32)
    decay = jnp.minimum(config.ema_decay, (1.0 + s) / (10.0 + s))
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, params)
  new = TrainState(params, ema, opt_state, state.step + 1, jax.random.key_data(key))
  return place(new, rep), loss, optax.tree.norm(grads)


def train_step(state: TrainState, x_all: jax.Array, y_all: jax.Array, *,
               denoiser: Denoiser, schedule: Schedule, config: TrainConfig,
               num_classes: int, mesh: Mesh | None = None,
               sample_weight: jax.Array | None = None):
  """One optimiser step on a minibatch drawn from ``(x_all, y_all)`` by the state key.

  Args:
    state: [`TrainState`][jgen.diffusion.TrainState] (replicated over ``mesh`` when one
      is given).
    x_all: ``[N, *data_shape]`` training set; y_all: ``[N]`` labels.
    denoiser: the [`Denoiser`][jgen.diffusion.Denoiser] whose ``params`` are trained.
    schedule: noise schedule of the objective; config:
      [`TrainConfig`][jgen.diffusion.TrainConfig].
    num_classes: the null label of label dropout.
    mesh: ``None`` (one device) or a mesh whose ``data`` axis splits the minibatch
      (its size must divide ``config.batch_size``); parameters stay replicated.
    sample_weight: ``[N]`` non-negative weights: minibatches are drawn in
      proportion to them.

  Returns:
    ``(new_state, loss, grad_norm)``; the caller must check finiteness. With a mesh
    the result equals the one-device step up to the order of the batch-mean sums.

  Examples:
    >>> from flax import nnx
    >>> from jgen import diffusion
    >>> from jgen.diffusion import nets, train
    >>> import jax.numpy as jnp
    >>> module = nets.MLPDenoiser((2,), 2, width=8, depth=1, rngs=nnx.Rngs(0))
    >>> den, _ = diffusion.nnx_denoiser(module)
    >>> cfg = train.TrainConfig(num_steps=1, batch_size=4)
    >>> state, loss, _ = train.train_step(train.init_state(module, cfg),
    ...     jnp.zeros((8, 2)), jnp.zeros(8, jnp.int32), denoiser=den,
    ...     schedule=diffusion.linear_schedule(), config=cfg, num_classes=2)
    >>> int(state.step)
    1
  """
  if mesh is not None:
    d = _mesh.axis_size(mesh, _mesh.DATA)
    if config.batch_size % d:
      raise ValueError(f"config.batch_size={config.batch_size} must be divisible by"
                       f" the data axis size {d} (each device takes an equal share).")
  return _step(state, x_all, y_all, sample_weight, denoiser=denoiser,
               schedule=schedule, config=config, num_classes=num_classes, mesh=mesh)


def train(model: nnx.Module, x: Any, y: Any, *, schedule: Schedule,
          config: TrainConfig = TrainConfig(), workdir: str | os.PathLike | None = None,
          schedule_spec: dict | None = None, progress: bool = True,
          callback: Callable[[int, TrainState], None] | None = None,
          sample_weight: Any = None) -> TrainResult:
  """Trains a class-conditional denoiser on ``(x, y)``; resumes from ``workdir``.

  Args:
    model: an NNX denoiser (its parameters are the initial point of a fresh run).
    x: ``[N, *data_shape]`` training data (e.g. scaled to ``[-1, 1]``).
    y: ``[N]`` integer labels in ``[0, model.num_classes)``.
    schedule: noise schedule of the objective.
    config: [`TrainConfig`][jgen.diffusion.TrainConfig].
    workdir: run directory (checkpoints, ``metrics.jsonl``, ``run.json``); resumes
      from its newest readable checkpoint. ``None``: no checkpoints or logs.
    schedule_spec: JSON description of ``schedule`` recorded in ``run.json``.
    progress: show a tqdm bar (loss and steps/s).
    callback: ``callback(step, state)`` after every step (and its checkpoint).
    sample_weight: optional ``[N]`` non-negative weights (minibatch draw
      probabilities).

  Returns:
    ``TrainResult``.

  Raises:
    NonFiniteLossError: NaN/Inf loss or gradient (the step is named; the last good
      checkpoint is kept). CheckpointError: ``workdir`` holds a different run.
    ValueError/TypeError: bad ``x``/``y`` (shape, labels outside the model's classes).
  """
  x, y = jnp.asarray(x), jnp.asarray(y)
  _checks.check_float(x, "x")
  _checks.check_finite(x, "x")
  _checks.check_ndim(y, 1, "y")
  _checks.check_same_leading(x, y)
  if tuple(x.shape[1:]) != model.data_shape:
    raise ValueError(f"x must have shape [N, *{model.data_shape}] (the model's"
                     f" data_shape), got {tuple(x.shape)}.")
  _checks.check_labels(y, model.num_classes, "y")
  if config.label_dropout > 0 and not model.null_class:
    raise ValueError("label_dropout > 0 needs a model built with null_class=True.")
  denoiser, _ = nnx_denoiser(model)
  state, resumed_from, mngr, log = init_state(model, config), None, None, None
  if workdir is not None:
    workdir = os.path.abspath(os.fspath(workdir))
    mngr, log = runs.open_run(workdir, runs.run_record(model, config, schedule_spec),
                              config.keep)
    restored, resumed_from = runs.restore_latest(mngr, state, workdir)
    state = restored if restored is not None else state
  try:
    return _loop(state, x, y, denoiser, schedule, config, model.num_classes, mngr,
                 log, progress, callback, resumed_from, workdir, sample_weight)
  finally:
    if log is not None:
      log.close()
    if mngr is not None:
      mngr.close()


def _loop(state, x, y, denoiser, schedule, config, num_classes, mngr, log, progress,
          callback, resumed_from, workdir, sample_weight) -> TrainResult:
  start = int(state.step)
  bar = runs.progress_bar(progress, config.num_steps, start)
  step_fn = functools.partial(train_step, denoiser=denoiser, schedule=schedule,
                              config=config, num_classes=num_classes,
                              sample_weight=sample_weight)
  t0, last_t, window, loss_f = time.perf_counter(), time.perf_counter(), [], float("nan")
  for step in range(start + 1, config.num_steps + 1):
    state, loss, gnorm = step_fn(state, x, y)
    loss_f, gnorm_f = float(loss), float(gnorm)
    if not (np.isfinite(loss_f) and np.isfinite(gnorm_f)):
      last = mngr.latest_step() if mngr is not None else None
      raise NonFiniteLossError(
          f"non-finite loss {loss_f} (gradient norm {gnorm_f}) at step {step}; the"
          f" last good checkpoint is step {last} in {workdir}. Lower the learning"
          " rate or check the data.", step)
    window.append(loss_f)
    if mngr is not None and (step % config.checkpoint_every == 0
                             or step == config.num_steps):
      runs.save(mngr, step, state)
    if callback is not None:
      callback(step, state)
    if step % config.log_every == 0 or step == config.num_steps:
      now = time.perf_counter()
      rate = len(window) / max(now - last_t, 1e-9)
      record = {"step": step, "loss": float(np.mean(window)), "grad_norm": gnorm_f,
                "steps_per_s": rate, "wall_s": now - t0}
      if log is not None:
        log.write(json.dumps(record) + "\n")
        log.flush()
      if bar is not None:
        bar.set_postfix(loss=f"{record['loss']:.4g}", steps_s=f"{rate:.1f}")
      window, last_t = [], now
    if bar is not None:
      bar.update(1)
  if bar is not None:
    bar.close()
  if mngr is not None:
    mngr.wait_until_finished()
  graphdef = denoiser.apply.graphdef
  return TrainResult(nnx.merge(graphdef, state.params), nnx.merge(graphdef, state.ema),
                     state, resumed_from, loss_f)
