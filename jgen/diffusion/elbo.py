r"""Monte Carlo diffusion ELBO, vmapped over classes x timesteps.

For one example ``x`` and class ``y`` (VDM, Kingma et al. 2021), in nats,

.. math::
   -\log p(x \mid y) \le \mathrm{KL}(q(z_1 \mid x) \,\|\, N(0, I))
     + \mathbb{E}[-\log p(x \mid z_0)]
     + \tfrac12 \mathbb{E}_{t \sim U(0,1), \epsilon}
       [\gamma'(t)\, \|\epsilon - \hat\epsilon(z_t, \gamma_t, y)\|^2]

with the Gaussian decoder ``p(x | z_0) = N(x; z_0 / alpha_0, sigma_0^2 / alpha_0^2)``
(its expectation is exact: ``D/2 (log 2 pi + gamma_0 + 1)``). A discrete schedule with
``T`` steps uses ``t = i / T``, ``i ~ U{1..T}`` and the weight ``T expm1(gamma_t -
gamma_{t - 1/T})`` instead of ``gamma'(t)``.

The Diffusion Classifier (Li et al., ICCV 2023) scores every class with the SAME
``(t, eps)`` draws, so class differences are paired and their variance is small.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.diffusion.schedules import Schedule, alpha_sigma, gamma_prime

__all__ = [
    "diffusion_term",
    "draw_timesteps",
    "draw",
    "class_errors_at",
    "class_errors",
    "prior_kl",
    "reconstruction",
    "elbo_from_errors",
    "class_log_likelihoods",
    "batch_class_log_likelihoods",
    "bits_per_dim",
]

_LOSSES = ("l2", "l1", "huber")
_WEIGHTINGS = ("elbo", "uniform")
_TIMESTEPS = ("stratified", "grid", "iid")


def _elementwise_loss(r: jax.Array, loss: str) -> jax.Array:
  if loss == "l2":
    return r * r
  if loss == "l1":
    return jnp.abs(r)
  # Huber with delta = 1 (the reference implementation's smooth_l1 choice).
  a = jnp.abs(r)
  return jnp.where(a <= 1.0, 0.5 * r * r, a - 0.5)


def _check_options(weighting, loss, timesteps=None) -> None:
  if not (callable(weighting) or weighting in _WEIGHTINGS):
    raise ValueError(f"weighting must be one of {_WEIGHTINGS} or a callable t -> w,"
                     f" got {weighting!r}.")
  if loss not in _LOSSES:
    raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}.")
  if timesteps is not None and timesteps not in _TIMESTEPS:
    raise ValueError(f"timesteps must be one of {_TIMESTEPS}, got {timesteps!r}.")


def diffusion_term(eps_fn: Callable, x: ArrayLike, y: ArrayLike, t: ArrayLike,
                   eps: ArrayLike, *, schedule: Schedule, weighting="elbo",
                   loss: str = "l2") -> jax.Array:
  r"""Weighted denoising loss for one example, one class and one ``(t, eps)``.

  ``weighting="elbo"``: ``1/2 gamma'(t) sum(loss(eps - eps_hat))`` (continuous) or
  ``1/2 T expm1(gamma_t - gamma_s) sum(...)`` with ``s = t - 1/T`` (discrete); with
  ``loss="l2"`` its mean over ``t ~ U``, ``eps ~ N`` is the diffusion part of
  ``-ELBO``. ``"uniform"``: ``mean(loss(eps - eps_hat))`` (the Diffusion Classifier's
  score). A callable ``w(t)``: ``w(t) * mean(loss(...))``.

  Args:
    eps_fn: ``eps_fn(z, gamma, y) -> eps_hat`` for one example (``x``'s shape).
    x: one example, any shape.
    y: integer class label, scalar.
    t: time in ``[0, 1]``, scalar (a grid point ``i / T``, ``i >= 1``, for a discrete
      schedule).
    eps: standard normal noise, ``x``'s shape.
    schedule: the noise schedule.
    weighting: ``"elbo"``, ``"uniform"`` or a callable ``t -> weight``.
    loss: ``"l2"``, ``"l1"`` or ``"huber"``.

  Returns:
    Scalar loss, differentiable w.r.t. anything ``eps_fn`` closes over.
  """
  x = jnp.asarray(x)
  z, gamma_t, weight = _noisy(x, t, eps, schedule, weighting)
  return _weighted_loss(eps_fn(z, gamma_t, y), eps, weight, loss)


def _noisy(x, t, eps, schedule, weighting):
  """Class-independent part of a draw: ``(z_t, gamma_t, weight)`` (weight scalar)."""
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


def _weighted_loss(eps_hat, eps, weight, loss):
  if eps_hat.shape != eps.shape:
    raise ValueError(f"eps_fn must return eps_hat with x's shape {tuple(eps.shape)},"
                     f" got {tuple(eps_hat.shape)}.")
  return weight * jnp.sum(_elementwise_loss(eps - eps_hat, loss))


def draw_timesteps(key: jax.Array, num_t: int, schedule: Schedule,
                   timesteps: str = "stratified", dtype=jnp.float32) -> jax.Array:
  """Times ``[num_t]``: ``stratified`` ``mod(u + i/n, 1)`` (VDM), ``grid`` ``(i + 1/2)/n``
  (the paper's strided grid) or ``iid`` uniform. Discrete schedules round up onto
  ``{1/T, ..., 1}``."""
  i = jnp.arange(num_t, dtype=dtype)
  if timesteps == "stratified":
    t = jnp.mod(jax.random.uniform(key, (), dtype) + i / num_t, 1.0)
  elif timesteps == "grid":
    t = (i + 0.5) / num_t
  elif timesteps == "iid":
    t = jax.random.uniform(key, (num_t,), dtype)
  else:
    raise ValueError(f"timesteps must be one of {_TIMESTEPS}, got {timesteps!r}.")
  if schedule.num_steps is not None:
    num_steps = schedule.num_steps
    t = jnp.clip(jnp.ceil(t * num_steps), 1, num_steps) / num_steps
  return t.astype(dtype)


def draw(key: jax.Array, num_t: int, x: jax.Array, schedule: Schedule,
         timesteps: str = "stratified", antithetic: bool = False):
  """The ``(t [num_t], eps [num_t, *x.shape])`` draws used by :func:`class_errors`.

  With ``antithetic=True`` (``num_t`` even) the second half repeats the first half's
  times with negated noise, ``(t, -eps)``: unbiased, and it cancels the part of the
  error that is odd in ``eps`` (for a linear denoiser, all noise in class
  differences except the time variation).
  """
  t_key, eps_key = jax.random.split(key)
  n = num_t // 2 if antithetic else num_t
  t = draw_timesteps(t_key, n, schedule, timesteps, x.dtype)
  eps = jax.random.normal(eps_key, (n,) + x.shape, x.dtype)
  if antithetic:
    t, eps = jnp.concatenate([t, t]), jnp.concatenate([eps, -eps])
  return t, eps


def _check_antithetic(antithetic, num_t: int) -> None:
  if antithetic and num_t % 2:
    raise ValueError(f"antithetic draws need an even num_t, got {num_t}.")


def _check_eps_fn(eps_fn: Callable, x: jax.Array) -> None:
  """Traces ``eps_fn`` once abstractly: it must accept ``x``'s shape and return it."""
  try:
    out = jax.eval_shape(eps_fn, x, jnp.zeros((), x.dtype), jnp.zeros((), jnp.int32))
  except (TypeError, ValueError, IndexError) as e:  # JAX's shape errors
    raise ValueError(f"x of shape {tuple(x.shape)} is not accepted by eps_fn"
                     f" (eps_fn(z, gamma, y) for ONE example): {e}") from e
  if getattr(out, "shape", None) != x.shape:
    raise ValueError(f"eps_fn must return eps_hat with x's shape {tuple(x.shape)},"
                     f" got {getattr(out, 'shape', type(out).__name__)}.")


def _check_x(x: ArrayLike, eps_fn: Callable, name: str = "x") -> jax.Array:
  x = jnp.asarray(x)
  _checks.check_float(x, name)
  _checks.check_finite(x, name)
  _check_eps_fn(eps_fn, x)
  return x


def _check_num_t(num_t, name: str = "num_t") -> int:
  if isinstance(num_t, bool) or not isinstance(num_t, (int, np.integer)):
    raise TypeError(f"{name} must be a static Python int, got"
                    f" {type(num_t).__name__} ({num_t!r}).")
  if num_t < 1:
    raise ValueError(f"{name} must be >= 1, got {num_t}.")
  return int(num_t)


def _classes(classes, num_classes: int) -> jax.Array:
  if classes is None:
    return jnp.arange(num_classes, dtype=jnp.int32)
  classes = jnp.asarray(classes)
  _checks.check_ndim(classes, 1, "classes")
  _checks.check_labels(classes, num_classes, "classes")
  return classes


def class_errors_at(eps_fn: Callable, x: jax.Array, t: jax.Array, eps: jax.Array,
                    classes: jax.Array, *, schedule: Schedule, weighting="elbo",
                    loss: str = "l2", chunk_size: int | None = None) -> jax.Array:
  """Losses ``[C, num_t]`` at given ``t [num_t]``, ``eps [num_t, *x.shape]`` for
  ``classes [C]``: one vmapped call, or ``lax.map`` over chunks of ``chunk_size``
  flattened (class, t) pairs to bound peak memory. Deterministic; no checks."""
  if chunk_size is None:
    # The class-independent work (z_t, gamma_t, weights) once per draw, then the
    # denoiser on every (class, draw) pair in one vectorised call.
    z, gamma_t, weight = jax.vmap(
        lambda ti, ei: _noisy(x, ti, ei, schedule, weighting))(t, eps)

    def per_class(y):
      eps_hat = jax.vmap(lambda zi, gi: eps_fn(zi, gi, y))(z, gamma_t)
      return jax.vmap(lambda h, e, w: _weighted_loss(h, e, w, loss))(eps_hat, eps,
                                                                     weight)

    return jax.vmap(per_class)(classes)
  term = functools.partial(diffusion_term, eps_fn, schedule=schedule,
                           weighting=weighting, loss=loss)
  num_c, num_t = classes.shape[0], t.shape[0]

  def one(p):
    c, j = p // num_t, p % num_t
    return term(x, classes[c], t[j], eps[j])

  pairs = jnp.arange(num_c * num_t, dtype=jnp.int32)
  return jax.lax.map(one, pairs, batch_size=chunk_size).reshape(num_c, num_t)


def class_errors(key: jax.Array, eps_fn: Callable, x: ArrayLike, num_classes: int, *,
                 num_t: int, schedule: Schedule, timesteps: str = "stratified",
                 weighting="elbo", loss: str = "l2", classes: ArrayLike | None = None,
                 chunk_size: int | None = None, antithetic: bool = False) -> jax.Array:
  """Per-sample losses of every class on shared ``(t, eps)`` draws.

  Args:
    key: PRNG key (split into a time key and a noise key).
    eps_fn: ``eps_fn(z, gamma, y) -> eps_hat`` for one example.
    x: one example, any shape.
    num_classes: static ``K``.
    num_t: number of ``(t, eps)`` draws.
    schedule: noise schedule.
    timesteps: ``"stratified"``, ``"grid"`` or ``"iid"`` (see :func:`draw_timesteps`).
    weighting: ``"elbo"``, ``"uniform"`` or callable (see :func:`diffusion_term`).
    loss: ``"l2"``, ``"l1"`` or ``"huber"``.
    classes: optional keep-list of class ids ``[C]``; default all ``K``.
    chunk_size: evaluate at most this many (class, t) pairs per vectorised call.
    antithetic: pair each draw ``(t, eps)`` with ``(t, -eps)`` (see :func:`draw`).

  Returns:
    ``[C, num_t]`` losses (``C = K`` without ``classes``); row ``c`` is class
    ``classes[c]``; column ``j`` uses the same ``(t_j, eps_j)`` for every class.
  """
  num_classes = _checks.check_num_classes(num_classes)
  num_t = _check_num_t(num_t)
  _check_options(weighting, loss, timesteps)
  if chunk_size is not None:
    _check_num_t(chunk_size, "chunk_size")
  _check_antithetic(antithetic, num_t)
  x = _check_x(x, eps_fn)
  classes = _classes(classes, num_classes)
  t, eps = draw(key, num_t, x, schedule, timesteps, antithetic)
  return class_errors_at(eps_fn, x, t, eps, classes, schedule=schedule,
                         weighting=weighting, loss=loss, chunk_size=chunk_size)


def prior_kl(x: ArrayLike, schedule: Schedule) -> jax.Array:
  """``KL(q(z_1 | x) || N(0, I))`` in nats, scalar, for one example of any shape."""
  x = jnp.asarray(x)
  g1 = schedule.gamma(jnp.ones((), x.dtype))
  # sigma^2 - 1 = -sigmoid(-g), -log sigma^2 = softplus(-g): no cancellation.
  return 0.5 * jnp.sum(jax.nn.sigmoid(-g1) * (x * x - 1.0) + jax.nn.softplus(-g1))


def reconstruction(x: ArrayLike, schedule: Schedule) -> jax.Array:
  """``E[-log N(x; z_0 / alpha_0, sigma_0^2 / alpha_0^2)]`` in nats (exact), scalar."""
  x = jnp.asarray(x)
  g0 = schedule.gamma(jnp.zeros((), x.dtype))
  return 0.5 * x.size * (jnp.log(2.0 * jnp.pi).astype(x.dtype) + g0 + 1.0)


def elbo_from_errors(errors: ArrayLike, x: ArrayLike, schedule: Schedule) -> jax.Array:
  """ELBO estimates ``[...]`` from ``weighting="elbo", loss="l2"`` errors
  ``[..., num_t]`` of one example ``x``: ``-(KL + recon + mean_t errors)``."""
  errors = jnp.asarray(errors)
  return -(prior_kl(x, schedule) + reconstruction(x, schedule)
           + jnp.mean(errors, axis=-1))


def class_log_likelihoods(key: jax.Array, eps_fn: Callable, x: ArrayLike,
                          num_classes: int, *, schedule: Schedule, num_t: int,
                          timesteps: str = "stratified",
                          classes: ArrayLike | None = None,
                          chunk_size: int | None = None,
                          antithetic: bool = False) -> jax.Array:
  """Monte Carlo ELBO, an estimate of a lower bound on ``log p(x | y=k)``, in nats.

  Unbiased for the ELBO (``stratified``/``iid`` timesteps); every class uses the same
  ``(t, eps)``. Feed the result to :func:`jgen.log_posterior`.

  Returns:
    ``[C]`` ELBOs (``C = num_classes`` unless ``classes`` is given).
  """
  x = jnp.asarray(x)
  errors = class_errors(key, eps_fn, x, num_classes, num_t=num_t, schedule=schedule,
                        timesteps=timesteps, weighting="elbo", loss="l2",
                        classes=classes, chunk_size=chunk_size,
                        antithetic=antithetic)
  return elbo_from_errors(errors, x, schedule)


def batch_class_log_likelihoods(key: jax.Array, eps_fn: Callable, x: ArrayLike,
                                num_classes: int, *, schedule: Schedule, num_t: int,
                                timesteps: str = "stratified",
                                classes: ArrayLike | None = None,
                                chunk_size: int | None = None,
                                antithetic: bool = False) -> jax.Array:
  """:func:`class_log_likelihoods` for a batch ``x [N, ...]`` -> ``[N, C]``
  (independent draws per example, one vmapped call)."""
  x = jnp.asarray(x)
  _checks.check_min_ndim(x, 1, "x")
  _checks.check_float(x, "x")
  _checks.check_finite(x, "x")
  _check_eps_fn(eps_fn, x[0])
  num_classes = _checks.check_num_classes(num_classes)
  num_t = _check_num_t(num_t)
  _check_options("elbo", "l2", timesteps)
  _check_antithetic(antithetic, num_t)
  cls = _classes(classes, num_classes)
  keys = jax.random.split(key, x.shape[0])

  def one(k, xi):
    t, eps = draw(k, num_t, xi, schedule, timesteps, antithetic)
    errors = class_errors_at(eps_fn, xi, t, eps, cls, schedule=schedule,
                             chunk_size=chunk_size)
    return elbo_from_errors(errors, xi, schedule)

  return jax.vmap(one)(keys, x)


def bits_per_dim(log_lik: ArrayLike, num_dims: int) -> jax.Array:
  """Converts log-likelihoods in nats to bits per dimension: ``-log_lik / (D ln 2)``."""
  return -jnp.asarray(log_lik) / (num_dims * np.log(2.0))
