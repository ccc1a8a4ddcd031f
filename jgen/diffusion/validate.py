"""Input checks shared by the diffusion entry points (eager errors naming the argument).

Static properties (shapes, dtypes, option names) are always checked; value properties
(finite inputs, labels in range) only on concrete arrays, so jitted callers get the
documented sentinels instead.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import checks
from jgen.diffusion.parametrizations import Denoiser, eps_prediction
from jgen.diffusion.schedules import Schedule

__all__ = ["LOSSES", "WEIGHTINGS", "TIMESTEPS", "check_options", "check_static_int",
           "check_antithetic", "check_denoiser", "check_x", "class_ids",
           "check_num_classes_fit"]

LOSSES = ("l2", "l1", "huber")
WEIGHTINGS = ("elbo", "uniform")
TIMESTEPS = ("stratified", "grid", "iid")


def check_options(weighting, loss, timesteps=None) -> None:
  """``weighting``, ``loss`` and ``timesteps`` must be known options."""
  if not (callable(weighting) or weighting in WEIGHTINGS):
    raise ValueError(f"weighting must be one of {WEIGHTINGS} or a callable t -> w,"
                     f" got {weighting!r}.")
  if loss not in LOSSES:
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
  if timesteps is not None and timesteps not in TIMESTEPS:
    raise ValueError(f"timesteps must be one of {TIMESTEPS}, got {timesteps!r}.")


def check_static_int(value: Any, name: str, minimum: int = 1) -> int:
  """``value`` must be a static Python int ``>= minimum``."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{name} must be a static Python int, got"
                    f" {type(value).__name__} ({value!r}).")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}.")
  return int(value)


def check_schedule(schedule: Any, name: str = "schedule"):
  """``schedule`` must be a ``Schedule`` (e.g. ``jgen.diffusion.linear_schedule()``).

  Examples:
    >>> import jgen
    >>> from jgen.diffusion import validate
    >>> validate.check_schedule(jgen.diffusion.linear_schedule()).name
    'linear[-13.3,5]'
    >>> validate.check_schedule("linear")
    Traceback (most recent call last):
        ...
    TypeError: schedule must be a jgen.diffusion Schedule (e.g. jgen.diffusion.linear_schedule()), got str ('linear').
  """
  if not isinstance(schedule, Schedule):
    raise TypeError(f"{name} must be a jgen.diffusion Schedule (e.g."
                    " jgen.diffusion.linear_schedule()), got"
                    f" {type(schedule).__name__} ({schedule!r:.40}).")
  return schedule


def check_antithetic(antithetic: bool, num_t: int, name: str = "num_t") -> None:
  if antithetic and num_t % 2:
    raise ValueError(f"antithetic draws need an even {name}, got {num_t}.")


def check_denoiser(denoiser: Any) -> Denoiser:
  if not isinstance(denoiser, Denoiser):
    raise TypeError("denoiser must be a jgen.diffusion.Denoiser (nnx_denoiser,"
                    f" from_eps_fn, gaussian_oracle), got {type(denoiser).__name__}.")
  return denoiser


def _check_shape(denoiser: Denoiser, params: Any, x: jax.Array) -> None:
  """Traces the denoiser once abstractly: it must accept ``x``'s shape and return it."""
  fn = lambda p, z: eps_prediction(denoiser, p, z, jnp.zeros((), z.dtype),  # noqa: E731
                                   jnp.zeros((), jnp.int32))
  try:
    out = jax.eval_shape(fn, params, x)
  except (TypeError, ValueError, IndexError) as e:  # JAX's shape errors
    raise ValueError(f"x of shape {tuple(x.shape)} is not accepted by the denoiser"
                     f" (apply(params, z, gamma, y) for ONE example): {e}") from e
  if getattr(out, "shape", None) != x.shape:
    raise ValueError(f"the denoiser must return a prediction with x's shape"
                     f" {tuple(x.shape)}, got"
                     f" {getattr(out, 'shape', type(out).__name__)}.")


def check_x(denoiser: Denoiser, params: Any, x: ArrayLike, *, batched: bool = False,
            name: str = "x") -> jax.Array:
  """Float, finite (when concrete) examples the denoiser accepts; ``[N, ...]`` if
  ``batched``."""
  check_denoiser(denoiser)
  x = jnp.asarray(x)
  checks.check_float(x, name)
  checks.check_finite(x, name)
  if batched:
    checks.check_min_ndim(x, 1, name)
  _check_shape(denoiser, params, x[0] if batched else x)
  return x


def check_num_classes_fit(denoiser: Denoiser, num_classes: Any) -> int:
  """A static ``num_classes >= 2`` that the denoiser can score."""
  num_classes = checks.check_num_classes(num_classes)
  if denoiser.num_classes is not None and num_classes > denoiser.num_classes:
    raise ValueError(f"num_classes={num_classes} exceeds the denoiser's"
                     f" num_classes={denoiser.num_classes}.")
  return num_classes


def class_ids(classes: ArrayLike | None, num_classes: int) -> jax.Array:
  """``int32 [C]`` class ids: ``arange(K)`` or the checked keep-list ``classes``."""
  if classes is None:
    return jnp.arange(num_classes, dtype=jnp.int32)
  classes = jnp.asarray(classes)
  checks.check_ndim(classes, 1, "classes")
  if classes.shape[0] < 1:
    raise ValueError("classes must not be empty.")
  checks.check_labels(classes, num_classes, "classes")
  return classes.astype(jnp.int32)
