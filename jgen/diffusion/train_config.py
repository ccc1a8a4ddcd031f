"""Configuration and state of a denoiser training run, and its optimiser.

[`TrainConfig`][jgen.diffusion.TrainConfig] is static (hashable, part of the jitted
step's cache key) and checked on construction; [`TrainState`][jgen.diffusion.TrainState]
is the pytree a step maps to the next one (checkpointed whole); ``make_optimizer`` is
global-norm clipping then AdamW with linear warm-up and cosine decay.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jgen.core import checks as _checks
from jgen.diffusion import validate

__all__ = [
    "TrainConfig",
    "TrainState",
    "TrainResult",
    "NonFiniteLossError",
    "make_optimizer",
    "init_state",
]


class _TrainConfigFields(NamedTuple):
  """The fields and defaults of [`TrainConfig`][jgen.diffusion.TrainConfig]."""
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
  """Static training configuration (hashable; part of the jitted step's key).

  Checked on construction: unknown ``weighting``/``loss``
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

  Examples:
    >>> import jgen
    >>> cfg = jgen.diffusion.TrainConfig(num_steps=3, batch_size=4)
    >>> cfg._replace(learning_rate=1e-3).learning_rate, cfg.weighting
    (0.001, 'uniform')
    >>> jgen.diffusion.TrainConfig(label_dropout=2.0)
    Traceback (most recent call last):
    ValueError: TrainConfig.label_dropout must lie in [0, 1], got 2.0.
  """
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
  validate.check_static_int(c.seed, "TrainConfig.seed", 0)
  _checks.check_number(c.learning_rate, "TrainConfig.learning_rate", positive=True)
  _checks.check_number(c.end_lr_ratio, "TrainConfig.end_lr_ratio", nonnegative=True)
  _checks.check_number(c.weight_decay, "TrainConfig.weight_decay", nonnegative=True)
  for name in ("label_dropout", "ema_decay", "grad_clip"):
    if getattr(c, name) is not None:
      _checks.check_number(getattr(c, name), f"TrainConfig.{name}")
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

  Examples:
    >>> import jgen
    >>> from flax import nnx
    >>> net = jgen.diffusion.MLPDenoiser((2,), 2, width=8, depth=1, rngs=nnx.Rngs(0))
    >>> cfg = jgen.diffusion.TrainConfig(num_steps=3, batch_size=4)
    >>> state = jgen.diffusion.train.init_state(net, cfg)
    >>> int(state.step), state.key.shape, sorted(state.params)[:3]
    (0, (2,), ['cond', 'conds', 'inp'])
  """
  params: Any
  ema: Any
  opt_state: Any
  step: jax.Array
  key: jax.Array


class TrainResult(NamedTuple):
  """What ``train`` returns: the trained module, its EMA copy, the final state,
  ``resumed_from`` (checkpoint step, or ``None``) and ``last_loss``."""
  model: nnx.Module
  ema_model: nnx.Module
  state: TrainState
  resumed_from: int | None
  last_loss: float


class NonFiniteLossError(FloatingPointError):
  """The loss or gradient became NaN/Inf; ``step`` is the failing step (1-based).

  Raised by ``train`` before anything non-finite is saved.

  Examples:
    >>> import jgen
    >>> try:  # what train() raises when a step's loss is NaN
    ...   raise jgen.diffusion.NonFiniteLossError("non-finite loss nan at step 3", 3)
    ... except FloatingPointError as e:
    ...   print(type(e).__name__, e.step)
    NonFiniteLossError 3
  """

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
  """Fresh [`TrainState`][jgen.diffusion.TrainState] for ``model`` (EMA starts at the
  parameters)."""
  params = nnx.to_pure_dict(nnx.split(model)[1])
  return TrainState(params, params,  # arrays are immutable: sharing is safe
                    make_optimizer(config).init(params), jnp.zeros((), jnp.int32),
                    jax.random.key_data(jax.random.key(config.seed)))
