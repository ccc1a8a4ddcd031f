"""Training class-conditional denoisers: ε-prediction, optax, EMA, resumable orbax runs.

The objective is :func:`jgen.diffusion.diffusion_term` averaged over a minibatch, with
stratified times ``t_i = mod(u + i/B, 1)`` (VDM) and ``weighting="elbo"`` (the
diffusion part of the negative ELBO) or ``"uniform"`` (mean squared ε-error). Optimiser:
gradient clipping then AdamW with linear warm-up and cosine decay. An EMA copy of the
parameters is kept for evaluation.

Runs are resumable and exact: the whole :class:`TrainState` (params, EMA, optimiser
state, step, PRNG key) is saved by an orbax ``CheckpointManager`` every
``checkpoint_every`` steps, minibatches are drawn from the PRNG key in the state, and
the jitted step is the same program, so a run killed at any point and resumed ends with
bitwise the parameters of an uninterrupted run. Unreadable checkpoints are moved aside
(with a warning) and the previous good step is used. A non-finite loss or gradient
stops the run with :class:`NonFiniteLossError` before anything non-finite is saved.

There is one train step. Given a ``mesh``, the same step runs data-parallel through
shardings alone: the minibatch is constrained to ``P("data")`` and the state to
``P()``, so the compiler splits the denoiser's work over devices and all-reduces the
gradient before the identical optimiser update on every device.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jgen.core import checks as _checks
from jgen.parallel import mesh as _mesh
from jgen.parallel.checkpoint import CheckpointError
from jgen.diffusion import validate
from jgen.diffusion.elbo import diffusion_term, draw_timesteps
from jgen.diffusion.nets import denoiser_config, drop_labels
from jgen.diffusion.parametrizations import Denoiser, nnx_denoiser
from jgen.diffusion.schedules import Schedule

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


class _TrainConfigFields(NamedTuple):
  """Static training configuration (hashable; part of the jitted step's key).

  Checked on construction (:class:`TrainConfig`): unknown ``weighting``/``loss``
  and non-positive counts raise ``ValueError`` naming the field.

  Attributes:
    num_steps: total optimiser steps.
    batch_size: examples per step (drawn with replacement from the PRNG key).
    learning_rate: peak AdamW learning rate.
    warmup_steps: linear warm-up length.
    end_lr_ratio: final / peak learning rate of the cosine decay.
    weight_decay: AdamW decoupled weight decay.
    grad_clip: global-norm clipping threshold; ``None``: no clipping.
    ema_decay: EMA decay (ramped as ``min(decay, (1 + s) / (10 + s))``); ``None``:
      no EMA (``TrainState.ema`` is then the parameters themselves).
    weighting: ``"elbo"`` or ``"uniform"`` (see ``diffusion_term``).
    loss: ``"l2"``, ``"l1"`` or ``"huber"``.
    label_dropout: probability of replacing a label by the null class (needs a
      module built with ``null_class=True``).
    seed: PRNG seed of the run (minibatches, times, noise, dropout).
    checkpoint_every: save every this many steps (with a ``workdir``).
    keep: number of checkpoints kept.
    log_every: JSON-lines metrics interval.
  """
  num_steps: int = 2000
  batch_size: int = 128
  learning_rate: float = 2e-3
  warmup_steps: int = 100
  end_lr_ratio: float = 0.01
  weight_decay: float = 1e-4
  grad_clip: float | None = 1.0
  ema_decay: float | None = 0.999
  weighting: str = "uniform"
  loss: str = "l2"
  label_dropout: float = 0.0
  seed: int = 0
  checkpoint_every: int = 500
  keep: int = 3
  log_every: int = 50


class TrainConfig(_TrainConfigFields):
  __doc__ = _TrainConfigFields.__doc__
  __slots__ = ()

  def __new__(cls, *args, **kwargs):
    self = super().__new__(cls, *args, **kwargs)
    _check_config(self)
    return self

  def _replace(self, **kwargs):
    return type(self)(**{**self._asdict(), **kwargs})


def _check_config(c) -> None:
  validate.check_options(c.weighting, c.loss)
  for name in ("num_steps", "batch_size", "checkpoint_every", "keep", "log_every"):
    validate.check_static_int(getattr(c, name), f"TrainConfig.{name}")
  validate.check_static_int(c.warmup_steps, "TrainConfig.warmup_steps", 0)
  if not 0.0 <= c.label_dropout <= 1.0:
    raise ValueError(f"TrainConfig.label_dropout must lie in [0, 1], got"
                     f" {c.label_dropout}.")
  if c.ema_decay is not None and not 0.0 <= c.ema_decay < 1.0:
    raise ValueError(f"TrainConfig.ema_decay must lie in [0, 1) or be None, got"
                     f" {c.ema_decay}.")
  if c.grad_clip is not None and not c.grad_clip > 0:
    raise ValueError(f"TrainConfig.grad_clip must be > 0 or None, got {c.grad_clip}.")


class TrainState(NamedTuple):
  """Everything a step depends on (a pytree; checkpointed whole).

  Attributes:
    params: model parameters (nested dict, ``nnx.State.to_pure_dict`` form).
    ema: EMA of ``params``.
    opt_state: optax state.
    step: int32 scalar, optimiser steps taken.
    key: ``uint32[2]`` raw PRNG key data (orbax stores plain arrays).
  """
  params: Any
  ema: Any
  opt_state: Any
  step: jax.Array
  key: jax.Array


class TrainResult(NamedTuple):
  """What :func:`train` returns: the trained module, its EMA copy, the final state,
  ``resumed_from`` (checkpoint step, or ``None``) and ``last_loss``."""
  model: nnx.Module
  ema_model: nnx.Module
  state: TrainState
  resumed_from: int | None
  last_loss: float


class NonFiniteLossError(FloatingPointError):
  """The loss or gradient became NaN/Inf; ``step`` is the failing step (1-based)."""

  def __init__(self, msg: str, step: int):
    super().__init__(msg)
    self.step = step


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
  """Global-norm clipping (unless ``grad_clip=None``), then AdamW with warm-up +
  cosine decay."""
  lr = optax.warmup_cosine_decay_schedule(
      0.0, config.learning_rate, max(config.warmup_steps, 1),
      max(config.num_steps, config.warmup_steps + 1),
      end_value=config.learning_rate * config.end_lr_ratio)
  adamw = optax.adamw(lr, weight_decay=config.weight_decay)
  if config.grad_clip is None:
    return adamw
  return optax.chain(optax.clip_by_global_norm(config.grad_clip), adamw)


def init_state(model: nnx.Module, config: TrainConfig) -> TrainState:
  """Fresh :class:`TrainState` for ``model`` (EMA starts at the parameters)."""
  params = nnx.to_pure_dict(nnx.split(model)[1])
  return TrainState(params, params,  # arrays are immutable: sharing is safe
                    make_optimizer(config).init(params), jnp.zeros((), jnp.int32),
                    jax.random.key_data(jax.random.key(config.seed)))


def loss_fn(params, denoiser: Denoiser, x, y, key, *, schedule: Schedule,
            config: TrainConfig, num_classes: int) -> jax.Array:
  """Mean weighted ε-prediction loss over a minibatch ``x [B, ...]``, ``y [B]``."""
  t_key, eps_key, drop_key = jax.random.split(key, 3)
  t = draw_timesteps(t_key, x.shape[0], schedule, "stratified", x.dtype)
  eps = jax.random.normal(eps_key, x.shape, x.dtype)
  if config.label_dropout > 0:
    y = drop_labels(drop_key, y, num_classes, config.label_dropout)
  term = functools.partial(diffusion_term, denoiser, params, schedule=schedule,
                           weighting=config.weighting, loss=config.loss)
  return jnp.mean(jax.vmap(term)(x, y, t, eps))


@functools.partial(jax.jit, static_argnames=("denoiser", "schedule", "config",
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
    state: :class:`TrainState` (replicated over ``mesh`` when one is given).
    x_all: ``[N, *data_shape]`` training set; y_all: ``[N]`` labels.
    denoiser: the :class:`~jgen.diffusion.Denoiser` whose ``params`` are trained.
    schedule: noise schedule of the objective; config: :class:`TrainConfig`.
    num_classes: the null label of label dropout.
    mesh: ``None`` (one device) or a mesh whose ``data`` axis splits the minibatch
      (its size must divide ``config.batch_size``); parameters stay replicated.
    sample_weight: ``[N]`` non-negative weights: minibatches are drawn in
      proportion to them.

  Returns:
    ``(new_state, loss, grad_norm)``; the caller must check finiteness. With a mesh
    the result equals the one-device step up to the order of the batch-mean sums.

  Example:
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


def _run_record(model: nnx.Module, config: TrainConfig, schedule_spec) -> dict:
  cfg = config._asdict()
  for k in ("num_steps", "log_every"):  # may change between resumes
    cfg.pop(k)
  return {"denoiser": denoiser_config(model), "train": cfg, "schedule": schedule_spec}


def _check_run(workdir: str, record: dict) -> None:
  """The run in ``workdir`` must have the same model/config (named mismatches)."""
  path = os.path.join(workdir, "run.json")
  if os.path.isfile(path):
    with open(path) as f:
      saved = json.load(f)
    bad = [f"{part}.{k}: saved {saved.get(part, {}).get(k)!r}, now {v!r}"
           for part in ("denoiser", "train") for k, v in record[part].items()
           if saved.get(part, {}).get(k) != v]
    if saved.get("schedule") != record["schedule"]:
      bad.append(f"schedule: saved {saved.get('schedule')!r}, now"
                 f" {record['schedule']!r}")
    if bad:
      raise CheckpointError(f"{workdir} holds a run with a different model or config;"
                            " use a new workdir or the same settings:\n  "
                            + "\n  ".join(bad))
  else:
    with open(path, "w") as f:
      json.dump(record, f, indent=1, sort_keys=True)


def _restore_latest(mngr: ocp.CheckpointManager, abstract: TrainState, workdir: str):
  """Newest readable checkpoint, moving unreadable ones aside; ``(state, step)``."""
  failures = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      return mngr.restore(step, args=ocp.args.StandardRestore(abstract)), step
    except Exception as e:  # orbax raises many types for truncated/missing files
      failures.append(f"step {step}: {type(e).__name__}: {str(e)[:200]}")
      bad_dir = os.path.join(workdir, "checkpoints", str(step))
      aside = os.path.join(workdir, "corrupt", f"{step}-{time.time_ns()}")
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      if os.path.isdir(bad_dir):
        shutil.move(bad_dir, aside)
      warnings.warn(f"checkpoint at step {step} in {workdir} is unreadable and was"
                    f" moved to {aside} ({failures[-1]}); trying the previous step.")
      mngr.reload()
  if failures:
    warnings.warn(f"no readable checkpoint in {workdir}; starting from step 0."
                  " Failures:\n  " + "\n  ".join(failures))
  return None, None


def _progress(enabled: bool, total: int, initial: int):
  if not enabled:
    return None
  from tqdm.auto import tqdm  # optional dependency (experiments extra)
  return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


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
    config: :class:`TrainConfig`.
    workdir: run directory (checkpoints, ``metrics.jsonl``, ``run.json``); resumes
      from its newest readable checkpoint. ``None``: no checkpoints or logs.
    schedule_spec: JSON description of ``schedule`` recorded in ``run.json``.
    progress: show a tqdm bar (loss and steps/s).
    callback: ``callback(step, state)`` after every step (and its checkpoint).
    sample_weight: optional ``[N]`` non-negative weights (minibatch draw
      probabilities).

  Returns:
    :class:`TrainResult`.

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
    os.makedirs(workdir, exist_ok=True)
    _check_run(workdir, _run_record(model, config, schedule_spec))
    mngr = ocp.CheckpointManager(
        os.path.join(workdir, "checkpoints"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=config.keep, enable_async_checkpointing=False))
    restored, resumed_from = _restore_latest(
        mngr, jax.tree.map(ocp.utils.to_shape_dtype_struct, state), workdir)
    state = restored if restored is not None else state
    log = open(os.path.join(workdir, "metrics.jsonl"), "a")
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
  bar = _progress(progress, config.num_steps, start)
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
      mngr.save(step, args=ocp.args.StandardSave(state), force=True)
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
