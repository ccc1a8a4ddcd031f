r"""Noise schedules as log-SNR functions ``gamma(t) = -log SNR(t)`` on ``t in [0, 1]``.

Variational-diffusion (VDM) parameterisation (Kingma et al., 2021): a schedule is an
increasing function ``gamma`` with

$$
\alpha_t^2 = \operatorname{sigmoid}(-\gamma_t), \quad
\sigma_t^2 = \operatorname{sigmoid}(\gamma_t), \quad
z_t = \alpha_t x + \sigma_t \epsilon .
$$

Continuous schedules have ``num_steps=None``. Discrete schedules have ``num_steps=T``
and are evaluated on the grid ``t_i = i / T`` for ``i = 0, ..., T``; ``z_0`` (``t = 0``)
is the least noisy latent, seen by the decoder, and ``z_T`` (``t = 1``) the most
noisy, seen by the prior.

Pretrained DDPM / Stable Diffusion epsilon-models. ``ddpm_schedule(num_steps=N)`` holds
the ``N`` cumulative products ``abar_j`` of the model's betas (DDPM timestep index
``j = 0, ..., N - 1``) as ``gamma_j = log((1 - abar_j) / abar_j)`` on the grid
``t_j = j / (N - 1)``; the returned schedule therefore has ``N - 1`` intervals
(``Schedule.num_steps == N - 1``), which makes its discrete-time ELBO exactly the
DDPM's (DDPM index 0 is ``z_0``, index ``N - 1`` is ``z_1``). Since
``alpha_t^2 = abar_j``, ``z_t`` is the DDPM's ``x_j`` unchanged; only the timestep must
be translated, which [`ddpm_eps_fn`][jgen.diffusion.ddpm_eps_fn] does (gamma -> nearest
index).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "Schedule",
    "linear_schedule",
    "cosine_schedule",
    "ddpm_schedule",
    "rectified_flow_schedule",
    "discretize",
    "alpha_sigma",
    "gamma_prime",
    "grid",
    "ddpm_timestep",
    "ddpm_eps_fn",
]


class Schedule(NamedTuple):
  """A log-SNR noise schedule.

  Attributes:
    gamma: ``t -> gamma``, elementwise on any shape, increasing on ``[0, 1]``;
      ``gamma = -log SNR``.
    num_steps: ``None`` for continuous time; ``T`` for a discrete schedule on the grid
      ``t_i = i / T`` (``T + 1`` latents ``z_0 ... z_T``).
    name: a label for tables and error messages.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> s = jgen.diffusion.Schedule(gamma=lambda t: 10.0 * jnp.asarray(t) - 5.0,
    ...                             name="my-linear")
    >>> float(s.gamma(0.5)), s.num_steps
    (0.0, None)
  """
  gamma: Callable[[jax.Array], jax.Array]
  num_steps: int | None = None
  name: str = "schedule"


def _check_range(gamma_min: float, gamma_max: float) -> None:
  if not (math.isfinite(gamma_min) and math.isfinite(gamma_max)):
    raise ValueError(f"gamma_min and gamma_max must be finite, got"
                     f" ({gamma_min}, {gamma_max}).")
  if not gamma_min < gamma_max:
    raise ValueError(f"gamma_min must be < gamma_max, got gamma_min={gamma_min},"
                     f" gamma_max={gamma_max}.")


def linear_schedule(gamma_min: float = -13.3, gamma_max: float = 5.0) -> Schedule:
  """VDM's linear log-SNR schedule ``gamma(t) = gamma_min + (gamma_max - gamma_min) t``.

  Args:
    gamma_min: ``gamma(0)``, the least noise (VDM default ``-13.3``).
    gamma_max: ``gamma(1)``, the most noise (VDM default ``5.0``).

  Returns:
    A continuous [`Schedule`][jgen.diffusion.Schedule].

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> s = jgen.diffusion.linear_schedule(gamma_min=-10.0, gamma_max=10.0)
    >>> s.name, s.gamma(jnp.array([0.0, 0.5, 1.0])).tolist()
    ('linear[-10,10]', [-10.0, 0.0, 10.0])
  """
  _check_range(gamma_min, gamma_max)
  g0, g1 = float(gamma_min), float(gamma_max)

  def gamma(t):
    t = jnp.asarray(t)
    return g0 + (g1 - g0) * t

  return Schedule(gamma=gamma, num_steps=None, name=f"linear[{g0:g},{g1:g}]")


def cosine_schedule(gamma_min: float = -13.3, gamma_max: float = 5.0) -> Schedule:
  r"""Cosine schedule truncated to ``[gamma_min, gamma_max]``.

  The cosine schedule (Nichol & Dhariwal, 2021) has ``alpha = cos(pi t / 2)``, i.e.
  ``gamma(t) = 2 log tan(pi t / 2)``; here the angle is mapped linearly onto
  ``[atan(exp(gamma_min / 2)), atan(exp(gamma_max / 2))]`` so that ``gamma(0)`` and
  ``gamma(1)`` are finite.

  Args:
    gamma_min: ``gamma(0)``.
    gamma_max: ``gamma(1)``.

  Returns:
    A continuous [`Schedule`][jgen.diffusion.Schedule].

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> s = jgen.diffusion.cosine_schedule(gamma_min=-10.0, gamma_max=10.0)
    >>> tuple(round(float(g), 2) for g in s.gamma(jnp.array([0.0, 1.0])))
    (-10.0, 10.0)
  """
  _check_range(gamma_min, gamma_max)
  a = math.atan(math.exp(0.5 * gamma_min))
  b = math.atan(math.exp(0.5 * gamma_max))

  def gamma(t):
    t = jnp.asarray(t)
    return 2.0 * jnp.log(jnp.tan(a + (b - a) * t))

  return Schedule(gamma=gamma, num_steps=None,
                  name=f"cosine[{gamma_min:g},{gamma_max:g}]")


def rectified_flow_schedule(s_min: float = 1e-3, s_max: float = 0.999,
                            shift: float = 1.0) -> Schedule:
  r"""The rectified-flow path ``x_s = (1 - s) x + s eps`` as a log-SNR schedule.

  Its SNR is ``((1 - s) / s)^2``, so ``gamma(s) = 2 logit(s)``; rescaling the flow
  state by ``1 / sqrt((1 - s)^2 + s^2)`` gives the VP state of that ``gamma``. ``t``
  maps linearly onto ``s in [s_min, s_max]`` (finite ``gamma`` at both ends), then the
  timestep shift of SD 3 (Esser et al. 2024), ``s' = shift s / (1 + (shift - 1) s)``,
  which adds ``2 log(shift)`` to ``gamma``.

  Args:
    s_min: flow time at ``t = 0``, in ``(0, s_max)``.
    s_max: flow time at ``t = 1``, in ``(s_min, 1)``.
    shift: SD 3's timestep shift, > 0 (``1``: none; SD 3 uses ``3``).

  Returns:
    A continuous [`Schedule`][jgen.diffusion.Schedule].

  Examples:
    >>> from jgen.diffusion import rectified_flow_schedule
    >>> float(rectified_flow_schedule(0.25, 0.75).gamma(0.5))  # s = 1/2: SNR = 1
    0.0
  """
  if not 0.0 < s_min < s_max < 1.0:
    raise ValueError(f"need 0 < s_min < s_max < 1, got s_min={s_min}, s_max={s_max}.")
  if not (math.isfinite(shift) and shift > 0.0):
    raise ValueError(f"shift must be finite and > 0, got {shift}.")
  lo, hi, log_shift = float(s_min), float(s_max), math.log(shift)

  def gamma(t):
    s = lo + (hi - lo) * jnp.asarray(t)
    return 2.0 * (jnp.log(s) - jnp.log1p(-s) + log_shift)

  return Schedule(gamma=gamma, num_steps=None,
                  name=f"rectified-flow[{lo:g},{hi:g},shift={shift:g}]")


def _piecewise_linear(table: np.ndarray) -> Callable[[jax.Array], jax.Array]:
  knots = np.linspace(0.0, 1.0, table.shape[0])

  def gamma(t):
    t = jnp.asarray(t)
    dtype = t.dtype if jnp.issubdtype(t.dtype, jnp.floating) else jnp.float32
    return jnp.interp(t, jnp.asarray(knots, dtype), jnp.asarray(table, dtype))

  return gamma


def ddpm_schedule(num_steps: int = 1000, beta_start: float = 1e-4,
                  beta_end: float = 0.02, kind: str = "linear") -> Schedule:
  """The discrete DDPM / Stable Diffusion beta schedule, expressed as ``gamma``.

  ``kind="linear"`` (DDPM, Ho et al. 2020): ``beta_j`` linear from ``beta_start`` to
  ``beta_end``. ``kind="scaled_linear"`` (Stable Diffusion; use ``beta_start=0.00085,
  beta_end=0.012``): ``sqrt(beta_j)`` linear. With ``abar_j = prod_{i<=j} (1 - beta_i)``,
  ``gamma_j = log((1 - abar_j) / abar_j)`` sits at ``t_j = j / (num_steps - 1)``; between
  grid points ``gamma`` is interpolated linearly (so continuous-time code also runs).

  Args:
    num_steps: the model's number of timesteps ``N`` (betas), e.g. 1000.
    beta_start: first beta.
    beta_end: last beta.
    kind: ``"linear"`` or ``"scaled_linear"``.

  Returns:
    A discrete [`Schedule`][jgen.diffusion.Schedule] with ``num_steps = N - 1``
    intervals (module docstring); grid index ``j`` is DDPM timestep ``j``.

  Examples:
    >>> import jgen
    >>> s = jgen.diffusion.ddpm_schedule(num_steps=1000)  # DDPM's linear betas
    >>> s.num_steps, round(float(s.gamma(0.0)), 2), round(float(s.gamma(1.0)), 2)
    (999, -9.21, 10.12)
  """
  if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
    raise TypeError(f"num_steps must be a Python int, got {type(num_steps).__name__}.")
  if num_steps < 2:
    raise ValueError(f"num_steps must be >= 2, got {num_steps}.")
  if not 0.0 < beta_start <= beta_end < 1.0:
    raise ValueError("need 0 < beta_start <= beta_end < 1, got beta_start="
                     f"{beta_start}, beta_end={beta_end}.")
  if kind == "linear":
    betas = np.linspace(beta_start, beta_end, num_steps, dtype=np.float64)
  elif kind == "scaled_linear":
    betas = np.linspace(beta_start**0.5, beta_end**0.5, num_steps,
                        dtype=np.float64) ** 2
  else:
    raise ValueError(f"kind must be 'linear' or 'scaled_linear', got {kind!r}.")
  log_abar = np.cumsum(np.log1p(-betas))
  table = np.log(-np.expm1(log_abar)) - log_abar  # log((1 - abar) / abar)
  return Schedule(gamma=_piecewise_linear(table), num_steps=int(num_steps) - 1,
                  name=f"ddpm-{kind}[{num_steps}]")


def discretize(schedule: Schedule, num_steps: int) -> Schedule:
  """The same ``gamma`` used in discrete time with ``num_steps`` intervals.

  Args:
    schedule: any [`Schedule`][jgen.diffusion.Schedule], continuous or discrete.
    num_steps: the number of intervals ``T >= 1`` (a Python int).

  Returns:
    A [`Schedule`][jgen.diffusion.Schedule] with the same ``gamma`` and ``num_steps = T``.

  Examples:
    >>> import jgen
    >>> s = jgen.diffusion.discretize(jgen.diffusion.linear_schedule(), 4)
    >>> s.num_steps, s.name
    (4, 'linear[-13.3,5]/T=4')
  """
  if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
    raise TypeError(f"num_steps must be a Python int, got {type(num_steps).__name__}.")
  if num_steps < 1:
    raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
  return schedule._replace(num_steps=int(num_steps),
                           name=f"{schedule.name}/T={num_steps}")


def alpha_sigma(gamma: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """``(alpha, sigma)`` with ``alpha^2 = sigmoid(-gamma)``, ``sigma^2 = sigmoid(gamma)``.

  Args:
    gamma: log noise-to-signal ratio, any shape.

  Returns:
    ``alpha`` and ``sigma``, each of ``gamma``'s shape.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> alpha, sigma = jgen.diffusion.alpha_sigma(jnp.array([-5.0, 0.0, 5.0]))
    >>> [round(float(a), 3) for a in alpha], round(float(sigma[1]), 3)
    ([0.997, 0.707, 0.082], 0.707)
  """
  gamma = jnp.asarray(gamma)
  return jnp.sqrt(jax.nn.sigmoid(-gamma)), jnp.sqrt(jax.nn.sigmoid(gamma))


def gamma_prime(schedule: Schedule, t: ArrayLike) -> jax.Array:
  """``d gamma / d t`` at ``t`` (elementwise), by forward-mode ``jax.jvp``.

  Args:
    schedule: a [`Schedule`][jgen.diffusion.Schedule].
    t: times in ``[0, 1]``, any shape (integers are cast to ``float32``).

  Returns:
    ``gamma'(t)``, ``t``'s shape.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> s = jgen.diffusion.linear_schedule(gamma_min=-10.0, gamma_max=10.0)
    >>> jgen.diffusion.gamma_prime(s, jnp.array([0.0, 0.5])).tolist()
    [20.0, 20.0]
  """
  t = jnp.asarray(t)
  if not jnp.issubdtype(t.dtype, jnp.floating):
    t = t.astype(jnp.float32)
  _, dgamma = jax.jvp(schedule.gamma, (t,), (jnp.ones_like(t),))
  return dgamma


def grid(schedule: Schedule, dtype=jnp.float32) -> jax.Array:
  """``gamma`` on a discrete schedule's grid ``t_i = i / T``.

  Args:
    schedule: a discrete [`Schedule`][jgen.diffusion.Schedule] (``num_steps = T``, not
      ``None``).
    dtype: floating dtype of the grid.

  Returns:
    ``[T + 1]`` values ``gamma(i / T)``, ``i = 0, ..., T``.

  Examples:
    >>> import jgen
    >>> s = jgen.diffusion.linear_schedule(gamma_min=-10.0, gamma_max=10.0)
    >>> jgen.diffusion.grid(jgen.diffusion.discretize(s, 4)).tolist()
    [-10.0, -5.0, 0.0, 5.0, 10.0]
  """
  if schedule.num_steps is None:
    raise ValueError(f"schedule {schedule.name!r} is continuous (num_steps=None);"
                     " grid() needs a discrete schedule.")
  t = jnp.arange(schedule.num_steps + 1, dtype=dtype) / schedule.num_steps
  return schedule.gamma(t)


def ddpm_timestep(schedule: Schedule, gamma: ArrayLike) -> jax.Array:
  """The integer grid index (DDPM timestep) whose ``gamma`` is nearest to ``gamma``.

  Args:
    schedule: a discrete schedule, e.g. from
      [`ddpm_schedule`][jgen.diffusion.ddpm_schedule].
    gamma: any shape.

  Returns:
    ``int32`` indices in ``[0, num_steps]``, ``gamma``'s shape.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> s = jgen.diffusion.ddpm_schedule(num_steps=10)
    >>> jgen.diffusion.ddpm_timestep(s, jgen.diffusion.grid(s)[jnp.array([0, 3, 9])])
    Array([0, 3, 9], dtype=int32)
  """
  gamma = jnp.asarray(gamma)
  table = grid(schedule, gamma.dtype if jnp.issubdtype(gamma.dtype, jnp.floating)
               else jnp.float32)
  # Nearest neighbour on an increasing table: exact for gamma taken from the grid.
  dist = jnp.abs(gamma[..., None] - table.reshape((1,) * gamma.ndim + table.shape))
  return jnp.argmin(dist, axis=-1).astype(jnp.int32)


def ddpm_eps_fn(model_fn: Callable, schedule: Schedule) -> Callable:
  """Adapts a timestep-indexed epsilon-model to jgen's ``eps_fn(z, gamma, y)``.

  Args:
    model_fn: ``model_fn(x_t, timestep, y) -> eps_hat`` for one example, with
      ``timestep`` an ``int32`` scalar DDPM index (``x_t = sqrt(abar) x + sqrt(1 -
      abar) eps``, which equals jgen's ``z_t``).
    schedule: the model's [`ddpm_schedule`][jgen.diffusion.ddpm_schedule].

  Returns:
    ``eps_fn(z, gamma, y) -> eps_hat``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> s = jgen.diffusion.ddpm_schedule(num_steps=10)
    >>> model_fn = lambda x, timestep, y: jnp.full_like(x, timestep)  # echoes the index
    >>> eps_fn = jgen.diffusion.ddpm_eps_fn(model_fn, s)
    >>> eps_fn(jnp.zeros(2), jgen.diffusion.grid(s)[7], 0).tolist()
    [7.0, 7.0]
  """
  def eps_fn(z, gamma, y):
    return model_fn(z, ddpm_timestep(schedule, gamma), y)

  return eps_fn
