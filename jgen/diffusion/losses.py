"""The denoising loss of one draw, and the ``(t, eps)`` draws it is evaluated on.

One example ``x``, one time ``t`` and one noise ``eps`` give ``z_t = alpha_t x +
sigma_t eps`` (VDM, Kingma et al. 2021) and the weighted prediction error of a
[`Denoiser`][jgen.diffusion.Denoiser]. Training
([`jgen.diffusion.train`][jgen.diffusion.train]) averages it over a minibatch; the Monte Carlo ELBO and the Diffusion Classifier
(``jgen.diffusion.elbo``) evaluate it for every class on shared draws.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

from jgen.diffusion import validate
from jgen.diffusion.nets import DenoiserBase
from jgen.diffusion.parametrizations import Denoiser, eps_prediction, to_eps
from jgen.diffusion.schedules import Schedule, alpha_sigma, gamma_prime

__all__ = [
    "elementwise_loss",
    "weighted_loss",
    "batch_eps_prediction",
    "noisy",
    "diffusion_term",
    "draw_timesteps",
    "draw",
]


def elementwise_loss(r: jax.Array, loss: str) -> jax.Array:
  """``loss(r)`` elementwise: ``"l2"`` ``r^2``, ``"l1"`` ``|r|``, ``"huber"`` (delta 1).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import losses
    >>> losses.elementwise_loss(jnp.array([0.5, 2.0]), "huber").tolist()
    [0.125, 1.5]
  """
  if loss == "l2":
    return r * r
  if loss == "l1":
    return jnp.abs(r)
  # Huber with delta = 1 (the reference implementation's smooth_l1 choice).
  a = jnp.abs(r)
  return jnp.where(a <= 1.0, 0.5 * r * r, a - 0.5)


def noisy(x: jax.Array, t: jax.Array, eps: jax.Array, schedule: Schedule,
          weighting="elbo"):
  """Class-independent part of one draw: ``(z_t, gamma_t, weight)`` (weight scalar).

  ``weighting="elbo"``: ``1/2 gamma'(t)`` (continuous) or ``1/2 T expm1(gamma_t -
  gamma_s)``, ``s = t - 1/T`` (discrete); ``"uniform"``: ``1 / x.size``; a callable
  ``w``: ``w(t) / x.size``.

  Args:
    x: one example ``[*data_shape]``.
    t: scalar time in ``[0, 1]``.
    eps: standard normal noise, ``x``'s shape.
    schedule: the noise schedule.
    weighting: ``"elbo"``, ``"uniform"`` or a callable ``t -> weight``.

  Returns:
    ``(z_t [*data_shape], gamma_t [], weight [])`` with ``z_t = alpha_t x + sigma_t
    eps``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> s = jgen.diffusion.linear_schedule(gamma_min=-10.0, gamma_max=10.0)
    >>> z, gamma, weight = jgen.diffusion.noisy(jnp.ones(2), 0.5, jnp.zeros(2), s)
    >>> [round(float(v), 4) for v in z], float(gamma), float(weight)  # 1/2 gamma'
    ([0.7071, 0.7071], 0.0, 10.0)
  """
  t = jnp.asarray(t, x.dtype)
  gamma_t = schedule.gamma(t)
  alpha, sigma = alpha_sigma(gamma_t)
  z = alpha * x + sigma * eps
  if callable(weighting):
    weight = weighting(t) / x.size
  elif weighting == "uniform":
    weight = jnp.asarray(1.0 / x.size, x.dtype)
  elif schedule.num_steps is None:
    weight = 0.5 * gamma_prime(schedule, t)
  else:
    num_steps = schedule.num_steps
    gamma_s = schedule.gamma(t - 1.0 / num_steps)
    weight = 0.5 * num_steps * jnp.expm1(gamma_t - gamma_s)
  return z, gamma_t, weight


def weighted_loss(eps_hat: jax.Array, eps: jax.Array, weight: jax.Array,
                  loss: str) -> jax.Array:
  """``weight * sum(loss(eps - eps_hat))``, scalar (one draw, one class).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import losses
    >>> float(losses.weighted_loss(jnp.zeros(2), jnp.ones(2), 0.5, "l2"))
    1.0
  """
  return weight * jnp.sum(elementwise_loss(eps - eps_hat, loss))


def diffusion_term(denoiser: Denoiser, params: Any, x: ArrayLike, y: ArrayLike,
                   t: ArrayLike, eps: ArrayLike, *, schedule: Schedule,
                   weighting="elbo", loss: str = "l2") -> jax.Array:
  r"""Weighted denoising loss for one example, one class and one ``(t, eps)``.

  ``weighting="elbo"``: ``1/2 gamma'(t) sum(loss(eps - eps_hat))`` (continuous) or
  ``1/2 T expm1(gamma_t - gamma_s) sum(...)`` with ``s = t - 1/T`` (discrete); with
  ``loss="l2"`` its mean over ``t ~ U``, ``eps ~ N`` is the diffusion part of
  ``-ELBO``. ``"uniform"``: ``mean(loss(eps - eps_hat))`` (the Diffusion Classifier's
  score). A callable ``w(t)``: ``w(t) * mean(loss(...))``.

  Args:
    denoiser: a [`Denoiser`][jgen.diffusion.Denoiser].
    params: its parameters (traced).
    x: one example ``[*data_shape]``.
    y: integer class label, scalar.
    t: time in ``[0, 1]``, scalar (a grid point ``i / T``, ``i >= 1``, for a discrete
      schedule).
    eps: standard normal noise, ``x``'s shape.
    schedule: the noise schedule.
    weighting: ``"elbo"``, ``"uniform"`` or a callable ``t -> weight``.
    loss: ``"l2"``, ``"l1"`` or ``"huber"``.

  Returns:
    Scalar loss, differentiable w.r.t. ``params``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, params = diffusion.from_eps_fn(lambda z, g, y: jnp.zeros_like(z))
    >>> float(diffusion.diffusion_term(den, params, jnp.zeros(2), 0, 0.5, jnp.ones(2),
    ...       schedule=diffusion.linear_schedule(), weighting="uniform"))
    1.0
  """
  x = jnp.asarray(x)
  z, gamma_t, weight = noisy(x, t, eps, schedule, weighting)
  eps_hat = eps_prediction(denoiser, params, z, gamma_t, y)
  if eps_hat.shape != x.shape:
    raise ValueError(f"the denoiser must return a prediction with x's shape"
                     f" {tuple(x.shape)}, got {tuple(eps_hat.shape)}.")
  return weighted_loss(eps_hat, eps, weight, loss)


def draw_timesteps(key: jax.Array, num_t: int, schedule: Schedule,
                   timesteps: str = "stratified", dtype=jnp.float32) -> jax.Array:
  """Times ``[num_t]``: ``stratified`` ``mod(u + i/n, 1)`` (VDM), ``grid`` ``(i + 1/2)/n``
  (the paper's strided grid) or ``iid`` uniform. Discrete schedules round up onto
  ``{1/T, ..., 1}``.

  Examples:
    >>> import jax
    >>> from jgen import diffusion
    >>> diffusion.draw_timesteps(jax.random.key(0), 4, diffusion.linear_schedule(),
    ...                          "grid").tolist()
    [0.125, 0.375, 0.625, 0.875]
  """
  i = jnp.arange(num_t, dtype=dtype)
  if timesteps == "stratified":
    t = jnp.mod(jax.random.uniform(key, (), dtype) + i / num_t, 1.0)
  elif timesteps == "grid":
    t = (i + 0.5) / num_t
  elif timesteps == "iid":
    t = jax.random.uniform(key, (num_t,), dtype)
  else:
    raise ValueError(f"timesteps must be one of {validate.TIMESTEPS}, got"
                     f" {timesteps!r}.")
  if schedule.num_steps is not None:
    num_steps = schedule.num_steps
    t = jnp.clip(jnp.ceil(t * num_steps), 1, num_steps) / num_steps
  return t.astype(dtype)


def draw(key: jax.Array, num_t: int, x: jax.Array, schedule: Schedule,
         timesteps: str = "stratified", antithetic: bool = False):
  """The ``(t [num_t], eps [num_t, *x.shape])`` draws used by
  [`class_errors`][jgen.diffusion.class_errors].

  With ``antithetic=True`` (``num_t`` even) the second half repeats the first half's
  times with negated noise, ``(t, -eps)``: unbiased, and it cancels the part of the
  error that is odd in ``eps`` (for a linear denoiser, all noise in class
  differences except the time variation).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> t, eps = diffusion.draw(jax.random.key(0), 4, jnp.zeros(3),
    ...                         diffusion.linear_schedule(), antithetic=True)
    >>> t.shape, eps.shape, bool((eps[:2] == -eps[2:]).all())
    ((4,), (4, 3), True)
  """
  t_key, eps_key = jax.random.split(key)
  n = num_t // 2 if antithetic else num_t
  t = draw_timesteps(t_key, n, schedule, timesteps, x.dtype)
  eps = jax.random.normal(eps_key, (n,) + x.shape, x.dtype)
  if antithetic:
    t, eps = jnp.concatenate([t, t]), jnp.concatenate([eps, -eps])
  return t, eps


def batch_eps_prediction(denoiser: Denoiser, params: Any, z: jax.Array,
                         gamma: jax.Array, y: jax.Array) -> jax.Array:
  """``eps_hat [B, *data_shape]`` of a minibatch ``z [B, ...]``, ``gamma [B]``, ``y [B]``.

  A jgen network (``DenoiserBase``, split by
  [`nnx_denoiser`][jgen.diffusion.nnx_denoiser]) accepts leading axes and is called once
  on the whole minibatch; any other denoiser is vmapped per example. The values are the
  same; the batched call avoids the layout copies XLA inserts around the size-1 batch
  axis of a vmapped single-example call (about a third of an MLP train step on CPU,
  ``benchmarks/diffusion_train.py``).

  Examples:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jgen import diffusion
    >>> from jgen.diffusion import losses, nets
    >>> den, p = diffusion.nnx_denoiser(nets.MLPDenoiser((2,), 2, width=8, depth=1,
    ...                                                  rngs=nnx.Rngs(0)))
    >>> losses.batch_eps_prediction(den, p, jnp.zeros((3, 2)), jnp.zeros(3),
    ...                            jnp.zeros(3, jnp.int32)).shape
    (3, 2)
  """
  graphdef = getattr(denoiser.apply, "graphdef", None)
  if graphdef is not None:
    module = nnx.merge(graphdef, params)
    if isinstance(module, DenoiserBase):
      out = module(z, gamma, y)
      convert = functools.partial(to_eps, parametrization=denoiser.parametrization)
      return jax.vmap(convert)(out, z, gamma)
  return jax.vmap(functools.partial(eps_prediction, denoiser, params))(z, gamma, y)
