r"""Monte Carlo diffusion ELBO, vmapped over classes x timesteps.

For one example ``x`` and class ``y`` (VDM, Kingma et al. 2021), in nats,

$$
-\log p(x \mid y) \le \mathrm{KL}(q(z_1 \mid x) \,\|\, N(0, I)) + \mathbb{E}[-\log p(x \mid z_0)] + \tfrac12 \mathbb{E}_{t \sim U(0,1), \epsilon}
[\gamma'(t)\, \|\epsilon - \hat\epsilon(z_t, \gamma_t, y)\|^2]
$$

with the Gaussian decoder ``p(x | z_0) = N(x; z_0 / alpha_0, sigma_0^2 / alpha_0^2)``
(its expectation is exact: ``D/2 (log 2 pi + gamma_0 + 1)``). A discrete schedule with
``T`` steps uses ``t = i / T``, ``i ~ U{1..T}`` and the weight ``T expm1(gamma_t -
gamma_{t - 1/T})`` instead of ``gamma'(t)``.

A denoiser is a [`Denoiser`][jgen.diffusion.Denoiser] with traced ``params``.

The Diffusion Classifier (Li et al., ICCV 2023) scores every class with the SAME
``(t, eps)`` draws, so class differences are paired and their variance is small.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import checks
from jgen.diffusion import validate
from jgen.diffusion.chunking import pairs_per_call
from jgen.diffusion.losses import batch_eps_prediction, draw, noisy, weighted_loss
from jgen.diffusion.parametrizations import Denoiser
from jgen.diffusion.schedules import Schedule

__all__ = [
    "class_errors_at",
    "class_errors",
    "prior_kl",
    "reconstruction",
    "elbo_from_errors",
    "class_log_likelihoods",
    "batch_class_log_likelihoods",
    "bits_per_dim",
]


def class_errors_at(denoiser: Denoiser, params: Any, x: jax.Array, t: jax.Array,
                    eps: jax.Array, classes: jax.Array, *, schedule: Schedule,
                    weighting="elbo", loss: str = "l2", chunk_size: int | None = None,
                    cache_bytes: int | None = None) -> jax.Array:
  """Losses ``[C, num_t]`` at given ``t [num_t]``, ``eps [num_t, *x.shape]`` for
  ``classes [C]``. Deterministic; no checks.

  The class-independent work (``z_t``, ``gamma_t``, weights) is done once per draw;
  the denoiser then runs on the ``C * num_t`` (class, draw) pairs, ``chunk_size`` pairs
  per call (``lax.map`` over chunks; each chunk one batched call,
  ``batch_eps_prediction``). ``chunk_size=None`` picks it from the shapes so
  one call's largest activation fits the execution plan in force, or a cache budget of
  ``cache_bytes`` when given (``jgen.diffusion.chunking``, ``jgen.core.plan``).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, p = diffusion.gaussian_oracle(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    >>> s = diffusion.linear_schedule()
    >>> t, eps = diffusion.draw(jax.random.key(0), 5, jnp.zeros(3), s)
    >>> diffusion.class_errors_at(den, p, jnp.zeros(3), t, eps, jnp.arange(2),
    ...                           schedule=s).shape
    (2, 5)
  """
  z, gamma_t, weight = jax.vmap(lambda ti, ei: noisy(x, ti, ei, schedule,
                                                     weighting))(t, eps)
  num_c, num_t = classes.shape[0], t.shape[0]
  total = num_c * num_t
  if chunk_size is None:
    chunk_size = pairs_per_call(denoiser, params, x.shape, x.dtype, total, cache_bytes)

  def losses(p):  # pair indices [m] -> losses [m]: one batched denoiser call
    c, j = p // num_t, p % num_t
    eps_hat = batch_eps_prediction(denoiser, params, z[j], gamma_t[j], classes[c])
    return jax.vmap(lambda e, ei, wi: weighted_loss(e, ei, wi, loss))(
        eps_hat, eps[j], weight[j])

  pairs = jnp.arange(total, dtype=jnp.int32)
  if chunk_size >= total:
    return losses(pairs).reshape(num_c, num_t)
  n_full = total // chunk_size
  out = jax.lax.map(losses, pairs[:n_full * chunk_size].reshape(n_full, chunk_size))
  out = out.reshape(-1)
  if total > n_full * chunk_size:
    out = jnp.concatenate([out, losses(pairs[n_full * chunk_size:])])
  return out.reshape(num_c, num_t)


def class_errors(key: jax.Array, denoiser: Denoiser, params: Any, x: ArrayLike,
                 num_classes: int, *, num_t: int, schedule: Schedule,
                 timesteps: str = "stratified", weighting="elbo", loss: str = "l2",
                 classes: ArrayLike | None = None, chunk_size: int | None = None,
                 antithetic: bool = False) -> jax.Array:
  """Per-sample losses of every class on shared ``(t, eps)`` draws.

  Args:
    key: PRNG key (split into a time key and a noise key).
    denoiser: a [`Denoiser`][jgen.diffusion.Denoiser].
    params: its parameters (a traced pytree).
    x: one example ``[*data_shape]``.
    num_classes: static ``K``.
    num_t: number of ``(t, eps)`` draws.
    schedule: noise schedule.
    timesteps: ``"stratified"``, ``"grid"`` or ``"iid"`` (see
      [`draw_timesteps`][jgen.diffusion.draw_timesteps]).
    weighting: ``"elbo"``, ``"uniform"`` or callable (see
      [`diffusion_term`][jgen.diffusion.diffusion_term]).
    loss: ``"l2"``, ``"l1"`` or ``"huber"``.
    classes: optional keep-list of class ids ``[C]``; default all ``K``.
    chunk_size: (class, draw) pairs per vectorised call; ``None``: from the shapes.
    antithetic: pair each draw ``(t, eps)`` with ``(t, -eps)`` (see
      [`draw`][jgen.diffusion.draw]).

  Returns:
    ``[C, num_t]`` losses (``C = K`` without ``classes``); row ``c`` is class
    ``classes[c]``; column ``j`` uses the same ``(t_j, eps_j)`` for every class.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, p = diffusion.gaussian_oracle(jnp.zeros((3, 2)), jnp.ones((3, 2)))
    >>> diffusion.class_errors(jax.random.key(0), den, p, jnp.zeros(2), 3, num_t=4,
    ...                        schedule=diffusion.linear_schedule()).shape
    (3, 4)
  """
  num_classes = validate.check_num_classes_fit(validate.check_denoiser(denoiser),
                                               num_classes)
  num_t = validate.check_static_int(num_t, "num_t")
  validate.check_options(weighting, loss, timesteps)
  if chunk_size is not None:
    validate.check_static_int(chunk_size, "chunk_size")
  validate.check_antithetic(antithetic, num_t)
  checks.check_key(key)
  validate.check_schedule(schedule)
  x = validate.check_x(denoiser, params, x)
  ids = validate.class_ids(classes, num_classes)
  t, eps = draw(key, num_t, x, schedule, timesteps, antithetic)
  return class_errors_at(denoiser, params, x, t, eps, ids, schedule=schedule,
                         weighting=weighting, loss=loss, chunk_size=chunk_size)


def prior_kl(x: ArrayLike, schedule: Schedule) -> jax.Array:
  """``KL(q(z_1 | x) || N(0, I))`` in nats, scalar, for one example of any shape.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> bool(diffusion.prior_kl(jnp.zeros(3), diffusion.linear_schedule()) > 0)
    True
  """
  x = jnp.asarray(x)
  validate.check_schedule(schedule)
  g1 = schedule.gamma(jnp.ones((), x.dtype))
  # sigma^2 - 1 = -sigmoid(-g), -log sigma^2 = softplus(-g): no cancellation.
  return 0.5 * jnp.sum(jax.nn.sigmoid(-g1) * (x * x - 1.0) + jax.nn.softplus(-g1))


def reconstruction(x: ArrayLike, schedule: Schedule) -> jax.Array:
  """``E[-log N(x; z_0 / alpha_0, sigma_0^2 / alpha_0^2)]`` in nats (exact), scalar.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> round(float(diffusion.reconstruction(jnp.zeros(1),
    ...       diffusion.linear_schedule(-13.3, 5.0))), 4)  # (log 2 pi - 13.3 + 1) / 2
    -5.2311
  """
  x = jnp.asarray(x)
  validate.check_schedule(schedule)
  g0 = schedule.gamma(jnp.zeros((), x.dtype))
  return 0.5 * x.size * (jnp.log(2.0 * jnp.pi).astype(x.dtype) + g0 + 1.0)


def elbo_from_errors(errors: ArrayLike, x: ArrayLike, schedule: Schedule) -> jax.Array:
  """ELBO estimates ``[...]`` from ``weighting="elbo", loss="l2"`` errors
  ``[..., num_t]`` of one example ``x``: ``-(KL + recon + mean_t errors)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> diffusion.elbo_from_errors(jnp.zeros((3, 4)), jnp.zeros(2),
    ...                            diffusion.linear_schedule()).shape
    (3,)
  """
  errors = jnp.asarray(errors)
  return -(prior_kl(x, schedule) + reconstruction(x, schedule)
           + jnp.mean(errors, axis=-1))


def class_log_likelihoods(key: jax.Array, denoiser: Denoiser, params: Any,
                          x: ArrayLike, num_classes: int, *, schedule: Schedule,
                          num_t: int, timesteps: str = "stratified",
                          classes: ArrayLike | None = None,
                          chunk_size: int | None = None,
                          antithetic: bool = False) -> jax.Array:
  """Monte Carlo ELBO, an estimate of a lower bound on ``log p(x | y=k)``, in nats.

  Unbiased for the ELBO (``stratified``/``iid`` timesteps); every class uses the same
  ``(t, eps)``. Feed the result to [`jgen.log_posterior`][jgen.log_posterior].

  Returns:
    ``[C]`` ELBOs (``C = num_classes`` unless ``classes`` is given).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, p = diffusion.gaussian_oracle(jnp.zeros((3, 2)), jnp.ones((3, 2)))
    >>> diffusion.class_log_likelihoods(jax.random.key(0), den, p, jnp.zeros(2), 3,
    ...     schedule=diffusion.linear_schedule(), num_t=8).shape
    (3,)
  """
  x = jnp.asarray(x)
  errors = class_errors(key, denoiser, params, x, num_classes, num_t=num_t,
                        schedule=schedule, timesteps=timesteps, weighting="elbo",
                        loss="l2", classes=classes, chunk_size=chunk_size,
                        antithetic=antithetic)
  return elbo_from_errors(errors, x, schedule)


def batch_class_log_likelihoods(key: jax.Array, denoiser: Denoiser, params: Any,
                                x: ArrayLike, num_classes: int, *, schedule: Schedule,
                                num_t: int, timesteps: str = "stratified",
                                classes: ArrayLike | None = None,
                                chunk_size: int | None = None,
                                antithetic: bool = False) -> jax.Array:
  """[`class_log_likelihoods`][jgen.diffusion.class_log_likelihoods] for a batch
  ``x [N, ...]`` -> ``[N, C]``
  (independent draws per example, one vmapped call; row ``n`` uses
  ``jax.random.split(key, N)[n]``).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, p = diffusion.gaussian_oracle(jnp.zeros((3, 2)), jnp.ones((3, 2)))
    >>> diffusion.batch_class_log_likelihoods(jax.random.key(0), den, p,
    ...     jnp.zeros((5, 2)), 3, schedule=diffusion.linear_schedule(), num_t=8).shape
    (5, 3)
  """
  checks.check_key(key)
  validate.check_schedule(schedule)
  x = validate.check_x(denoiser, params, x, batched=True)
  num_classes = validate.check_num_classes_fit(denoiser, num_classes)
  num_t = validate.check_static_int(num_t, "num_t")
  validate.check_options("elbo", "l2", timesteps)
  validate.check_antithetic(antithetic, num_t)
  ids = validate.class_ids(classes, num_classes)
  keys = jax.random.split(key, x.shape[0])
  n = max(x.shape[0], 1)
  if chunk_size is None:  # the budget covers the whole batch (vmap multiplies it)
    chunk_size = max(1, pairs_per_call(denoiser, params, x.shape[1:], x.dtype,
                                       n * ids.shape[0] * num_t) // n)

  def one(k, xi):
    t, eps = draw(k, num_t, xi, schedule, timesteps, antithetic)
    errors = class_errors_at(denoiser, params, xi, t, eps, ids, schedule=schedule,
                             chunk_size=chunk_size)
    return elbo_from_errors(errors, xi, schedule)

  return jax.vmap(one)(keys, x)


def bits_per_dim(log_lik: ArrayLike, num_dims: int) -> jax.Array:
  """Converts log-likelihoods in nats to bits per dimension: ``-log_lik / (D ln 2)``.

  Examples:
    >>> from jgen import diffusion
    >>> round(float(diffusion.bits_per_dim(-10.0, 5)), 4)
    2.8854
  """
  num_dims = checks.check_int(num_dims, "num_dims", 1)
  return -jnp.asarray(log_lik) / (num_dims * np.log(2.0))
