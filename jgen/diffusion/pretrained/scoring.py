r"""The Diffusion Classifier's DiT protocol on jgen's gamma: timestep grid and class errors.

Li et al. (2023), ``eval_prob_dit.py`` of diffusion-classifier/diffusion-classifier:
a DiT trained on 1,000 linear DDPM betas scores class ``k`` by the uniform mean, over
the timesteps ``range(t_interval // 2, 1000, t_interval)``, of
``|| eps - eps_hat(sqrt(abar_t) x + sqrt(1 - abar_t) eps, t, k) ||^2 / dim`` with one
noise ``eps`` shared by every timestep and class. On jgen's gamma,
``gamma_t = log((1 - abar_t) / abar_t)`` gives ``alpha^2 = sigmoid(-gamma) = abar_t``,
so ``z = alpha x + sigma eps`` is the reference's ``x_t`` and the denoiser maps
``gamma_t`` back to ``t`` exactly
([`DiTDenoiser`][jgen.diffusion.pretrained.DiTDenoiser]).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import compilation
from jgen.core.plan import items_per_call
from jgen.diffusion.chunking import activation_bytes
from jgen.diffusion.parametrizations import Denoiser, eps_prediction
from jgen.diffusion.pretrained.denoiser import DDPMSchedule
from jgen.diffusion.schedules import grid

__all__ = ["reference_timesteps", "reference_gammas", "reference_times",
           "class_eps_errors", "class_mean_errors"]


def reference_timesteps(t_interval: int = 5, schedule: DDPMSchedule = DDPMSchedule()
                        ) -> np.ndarray:
  """The reference's DDPM timesteps ``range(t_interval // 2, T, t_interval)``.

  Args:
    t_interval: spacing (the reference's default 5 gives 200 timesteps).
    schedule: the DDPM schedule (``T = num_train_timesteps``).

  Returns:
    ``int64[T / t_interval]``.

  Raises:
    ValueError: when ``t_interval`` is not a positive divisor of ``T`` (the reference
      asserts ``T % t_interval == 0``).

  Examples:
    >>> reference_timesteps(250).tolist()
    [125, 375, 625, 875]
  """
  n = schedule.num_train_timesteps
  if (isinstance(t_interval, bool) or not isinstance(t_interval, (int, np.integer))
      or t_interval < 1 or n % t_interval):
    raise ValueError(f"t_interval must be a positive int dividing {n}, got"
                     f" {t_interval!r}.")
  return np.arange(t_interval // 2, n, t_interval, dtype=np.int64)


def reference_gammas(t_interval: int = 5, schedule: DDPMSchedule = DDPMSchedule()
                     ) -> jax.Array:
  """The reference's timesteps as gammas ``log((1 - abar_t) / abar_t)``, float32.

  They are entries of the same float32 table the denoiser's gamma-to-timestep map
  searches, so each maps back to its timestep exactly.

  Examples:
    >>> reference_gammas(250).shape
    (4,)
  """
  table = grid(schedule.schedule(), jnp.float32)
  return table[reference_timesteps(t_interval, schedule)]


def reference_times(t_interval: int = 5, schedule: DDPMSchedule = DDPMSchedule()
                    ) -> jax.Array:
  """The reference's timesteps as jgen times ``t = j / (T - 1)`` on
  ``schedule.schedule()``, float32, for
  [`jgen.diffusion.class_errors_at`][jgen.diffusion.class_errors_at].

  ``schedule.schedule().gamma(t)`` is then bitwise the table entry
  [`reference_gammas`][jgen.diffusion.pretrained.reference_gammas] returns (the same
  float32 division), so
  ``class_errors_at(den, params, x, t, eps, classes, schedule=..., weighting="uniform")``
  gives the reference's errors ``[K, num_t]``.

  Examples:
    >>> t = reference_times(250)
    >>> bool((DDPMSchedule().schedule().gamma(t) == reference_gammas(250)).all())
    True
  """
  steps = reference_timesteps(t_interval, schedule)
  return jnp.asarray(steps, jnp.float32) / (schedule.num_train_timesteps - 1)


def class_eps_errors(apply_fn: Denoiser | Callable, params, x: ArrayLike, noise: ArrayLike,
                     gammas: ArrayLike, classes: ArrayLike, *,
                     pairs_per_call: int | None = None) -> jax.Array:
  """Mean squared ε-errors of every class at every gamma, with shared noise.

  The ``num_t * K`` (timestep, class) pairs run ``pairs_per_call`` per vectorised
  denoiser call (``lax.map`` over chunks), by default as many as the execution plan
  in force allows (``jgen.core.plan``: the cache on CPU, free memory on GPU/TPU).
  Errors are accumulated in float32 whatever the denoiser computes in.

  Args:
    apply_fn: a [`Denoiser`][jgen.diffusion.Denoiser] (e.g.
      [`dit_denoiser`][jgen.diffusion.pretrained.dit_denoiser]) or a hashable
      ``apply(params, z, gamma, y) -> eps_hat`` (static).
    params: its parameter pytree (traced: new weights never recompile).
    x: the clean latent ``[*shape]``.
    noise: ``eps`` of shape ``[*shape]`` shared by all timesteps (the reference's
      default) or ``[num_t, *shape]`` (one per timestep); shared by all classes.
    gammas: ``[num_t]`` (e.g.
      [`reference_gammas`][jgen.diffusion.pretrained.reference_gammas]).
    classes: ``int[K]`` labels to score.
    pairs_per_call: (timestep, class) pairs per call; default from the plan.

  Returns:
    ``[num_t, K]`` float32: ``mean((eps - eps_hat)^2)`` over the data axes.

  Raises:
    ValueError: naming the budget when one pair does not fit a memory plan.

  Examples:
    >>> from jgen.diffusion.pretrained import DiTConfig, dit_denoiser, init_dit
    >>> cfg = DiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=1,
    ...                 sample_size=4, out_channels=8, num_embeds_ada_norm=3)
    >>> den = dit_denoiser(cfg)
    >>> x = jnp.zeros((4, 4, 4), jnp.float32)
    >>> class_eps_errors(den, init_dit(jax.random.key(0), cfg), x, x,
    ...                  reference_gammas(250), jnp.arange(3)).shape
    (4, 3)
  """
  x = jnp.asarray(x, jnp.float32)
  classes = jnp.asarray(classes, jnp.int32)
  gammas = jnp.asarray(gammas, jnp.float32)
  total = int(gammas.shape[0]) * int(classes.shape[0])
  if pairs_per_call is None:
    den = apply_fn if isinstance(apply_fn, Denoiser) else Denoiser(apply_fn, "eps")
    pairs_per_call = items_per_call(activation_bytes(den, params, x.shape, x.dtype),
                                    total)
  elif isinstance(pairs_per_call, bool) or not isinstance(pairs_per_call, int) \
      or pairs_per_call < 1:
    raise ValueError(f"pairs_per_call must be a positive int, got {pairs_per_call!r}.")
  return _class_eps_errors(apply_fn, params, x, noise, gammas, classes,
                           min(pairs_per_call, max(total, 1)))


@functools.partial(compilation.jit, static_argnums=(0, 6))
def _class_eps_errors(apply_fn, params, x, noise, gammas, classes, chunk):
  noise = jnp.asarray(noise, jnp.float32)
  if noise.shape == x.shape:
    noise = jnp.broadcast_to(noise, gammas.shape + x.shape)
  if noise.shape != gammas.shape + x.shape:
    raise ValueError(f"noise must have shape {x.shape} or {gammas.shape + x.shape},"
                     f" got {noise.shape}.")
  num_k = classes.shape[0]
  alpha = jnp.sqrt(jax.nn.sigmoid(-gammas)).reshape((-1,) + (1,) * x.ndim)
  sigma = jnp.sqrt(jax.nn.sigmoid(gammas)).reshape((-1,) + (1,) * x.ndim)
  z = alpha * x[None] + sigma * noise                             # [num_t, *shape]

  def err(p):  # pair index -> error of (timestep p // K, class p % K)
    j, y = p // num_k, classes[p % num_k]
    if isinstance(apply_fn, Denoiser):
      eps_hat = eps_prediction(apply_fn, params, z[j], gammas[j], y)
    else:
      eps_hat = apply_fn(params, z[j], gammas[j], y)
    return jnp.mean(jnp.square(noise[j] - eps_hat.astype(jnp.float32)))

  pairs = jnp.arange(gammas.shape[0] * num_k, dtype=jnp.int32)
  return jax.lax.map(err, pairs, batch_size=chunk).reshape(gammas.shape[0], num_k)


def class_mean_errors(apply_fn: Denoiser | Callable, params, x: ArrayLike, noise: ArrayLike,
                      gammas: ArrayLike, classes: ArrayLike) -> jax.Array:
  """The reference's class scores:
  [`class_eps_errors`][jgen.diffusion.pretrained.class_eps_errors] averaged over
  timesteps.

  Returns:
    ``[K]``; the predicted class is the argmin (``log p(x | k)`` grows with
    ``-error``).

  Examples:
    >>> # scores = class_mean_errors(den, params, x, eps, reference_gammas(), ks)
  """
  return jnp.mean(class_eps_errors(apply_fn, params, x, noise, gammas, classes),
                  axis=0)
