"""The diffusion classifier as a [`jgen.core.contract.Classifier`][jgen.Classifier]
family.

``params = DiffusionParams(net, class_ids, log_prior)``: the denoiser's parameters
(shared by all classes), the class ids ``[K]`` it scores and the log prior ``[K]``.
``class_axes`` marks ``class_ids`` and ``log_prior`` as class-indexed, so a generic
class-sharded scorer slices the ids and every device scores its own classes.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jgen.core import checks
from jgen.core import compilation
from jgen.core.contract import Classifier, check_params_type
from jgen.diffusion import validate
from jgen.diffusion.chunking import pairs_per_call
from jgen.diffusion.elbo import class_errors_at, elbo_from_errors
from jgen.diffusion.losses import draw
from jgen.diffusion.parametrizations import Denoiser
from jgen.diffusion.schedules import Schedule, linear_schedule
from jgen.diffusion.train import TrainConfig, train

__all__ = ["DiffusionParams", "diffusion_classifier"]

_FAMILY = "diffusion_classifier"


class DiffusionParams(NamedTuple):
  """Parameters of [`diffusion_classifier`][jgen.diffusion.diffusion_classifier].

  Attributes:
    net: the denoiser's parameter pytree (no class axis).
    class_ids: ``int32 [K]`` labels passed to the denoiser.
    log_prior: ``[K]`` log class priors.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> den, net = jgen.diffusion.gaussian_oracle(jnp.eye(2), jnp.ones((2, 2)))
    >>> params = jgen.diffusion.DiffusionParams(
    ...     net=net, class_ids=jnp.arange(2), log_prior=jnp.log(jnp.array([0.5, 0.5])))
    >>> model = jgen.diffusion.diffusion_classifier(den, num_t=16)
    >>> jgen.predict(model, params, 4 * jnp.eye(2), key=jax.random.key(0))
    Array([0, 1], dtype=int32)
  """
  net: Any
  class_ids: jax.Array
  log_prior: jax.Array


@functools.partial(compilation.jit, static_argnames=("denoiser", "schedule", "num_t",
                                             "timesteps", "antithetic", "chunk"))
def _elbos(key, net, x, ids, *, denoiser, schedule, num_t, timesteps, antithetic,
           chunk):
  def one(k, xi):
    t, eps = draw(k, num_t, xi, schedule, timesteps, antithetic)
    err = class_errors_at(denoiser, net, xi, t, eps, ids, schedule=schedule,
                          chunk_size=chunk)
    ll = elbo_from_errors(err, xi, schedule)
    return jnp.where(jnp.isnan(ll), -jnp.inf, ll)  # the documented sentinel

  return jax.vmap(one)(jax.random.split(key, x.shape[0]), x)


def diffusion_classifier(denoiser: Denoiser, *, schedule: Schedule | None = None,
                         num_t: int = 64, timesteps: str = "stratified",
                         antithetic: bool = False, chunk_size: int | None = None,
                         cache_bytes: int | None = None,
                         train_config: TrainConfig | None = None,
                         init_params: Any = None) -> Classifier:
  """A denoiser as a [`Classifier`][jgen.Classifier] (shared-noise MC ELBO).

  Args:
    denoiser: a [`Denoiser`][jgen.diffusion.Denoiser] declaring ``data_shape``.
    schedule: noise schedule (default VDM linear).
    num_t: ``(t, eps)`` draws per example, shared by all classes.
    timesteps: ``"stratified"``, ``"grid"`` or ``"iid"``.
    antithetic: pair draws ``(t, eps)``, ``(t, -eps)``.
    chunk_size: (class, draw) pairs per vectorised call; default from the shapes.
    cache_bytes: a cache budget in bytes for that default; ``None``: the execution
      plan in force (``jgen.core.plan``).
    train_config: [`TrainConfig`][jgen.diffusion.TrainConfig] used by ``fit``.
    init_params: initial parameters of an [`nnx_denoiser`][jgen.diffusion.nnx_denoiser]
      (needed by ``fit``).

  Returns:
    ``Classifier`` with ``log_likelihood(params, x[..., *data_shape], *, key) ->
    [..., K]`` (NaN estimates become ``-inf``) and ``fit(x, y, *, num_classes,
    sample_weight=None)`` training the denoiser (``sample_weight`` makes the
    minibatch draw proportional to it) and the weighted empirical log prior.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, net = diffusion.gaussian_oracle(jnp.eye(2), jnp.ones((2, 2)))
    >>> model = diffusion.diffusion_classifier(den, num_t=16)
    >>> params = diffusion.DiffusionParams(net, jnp.arange(2), jnp.log(jnp.ones(2) / 2))
    >>> model.log_likelihood(params, jnp.eye(2), key=jax.random.key(0)).shape
    (2, 2)
  """
  validate.check_denoiser(denoiser)
  if denoiser.data_shape is None:
    raise ValueError("denoiser must declare data_shape (nnx_denoiser of a jgen net,"
                     " from_eps_fn(..., data_shape=...), gaussian_oracle).")
  num_t = validate.check_static_int(num_t, "num_t")
  validate.check_options("elbo", "l2", timesteps)
  validate.check_antithetic(antithetic, num_t)
  schedule = linear_schedule() if schedule is None else schedule
  shape = denoiser.data_shape
  hyper = dict(denoiser=denoiser, schedule=schedule, num_t=num_t, timesteps=timesteps,
               antithetic=antithetic, chunk_size=chunk_size, cache_bytes=cache_bytes,
               train_config=train_config, init_params=init_params)

  def log_likelihood(params, x, *, key=None):
    check_params_type(params, DiffusionParams, _FAMILY)
    if key is None:
      raise ValueError("key is required: diffusion log-likelihoods are Monte Carlo"
                       " estimates (stochastic=True).")
    x = jnp.asarray(x)
    checks.check_float(x, "x")
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
      raise ValueError(f"x must have shape [..., *{shape}] (the denoiser's data_shape),"
                       f" got {tuple(x.shape)}.")
    checks.check_finite(x, "x")
    lead = x.shape[:x.ndim - len(shape)]
    flat = x.reshape((-1,) + shape)
    k = params.class_ids.shape[0]
    n = max(flat.shape[0], 1)
    chunk = chunk_size or max(1, pairs_per_call(denoiser, params.net, shape, x.dtype,
                                                n * k * num_t, cache_bytes) // n)
    ll = _elbos(key, params.net, flat, params.class_ids, denoiser=denoiser,
                schedule=schedule, num_t=num_t, timesteps=timesteps,
                antithetic=antithetic, chunk=chunk)
    return ll.reshape(lead + (k,))

  def fit(x, y, *, num_classes, sample_weight=None):
    return _fit(denoiser, init_params, train_config, schedule, x, y, num_classes,
                sample_weight)

  return Classifier(
      fit=fit, log_likelihood=log_likelihood,
      log_prior=lambda params: check_params_type(params, DiffusionParams, _FAMILY)
      or params.log_prior,
      class_axes=lambda params: DiffusionParams(
          jax.tree.map(lambda _: None, params.net), 0, 0),
      name=_FAMILY, hyperparams=hyper, params_type=DiffusionParams,
      conditional=False, stochastic=True)


def _fit(denoiser, init_params, config, schedule, x, y, num_classes, sample_weight):
  graphdef = getattr(denoiser.apply, "graphdef", None)
  if graphdef is None or init_params is None:
    raise TypeError("fit needs an nnx_denoiser and its init_params (given to"
                    " diffusion_classifier).")
  num_classes = validate.check_num_classes_fit(denoiser, num_classes)
  x, y = jnp.asarray(x), jnp.asarray(y)
  checks.check_ndim(y, 1, "y")
  checks.check_labels(y, num_classes, "y")
  w = None
  if sample_weight is not None:
    w = jnp.asarray(sample_weight)
    checks.check_ndim(w, 1, "sample_weight")
    checks.check_same_leading(x, w, "x", "sample_weight")
    checks.check_finite(w, "sample_weight")
    if checks.is_concrete(w) and not (bool(jnp.all(w >= 0)) and float(jnp.sum(w)) > 0):
      raise ValueError("sample_weight must be >= 0 with a positive sum.")
  module = nnx.merge(graphdef, init_params)
  res = train(module, x, y, schedule=schedule, config=config or TrainConfig(),
              progress=False, sample_weight=w)
  net = res.state.ema if res.state.ema is not None else res.state.params
  weights = jnp.ones(y.shape[0], x.dtype) if w is None else w.astype(x.dtype)
  counts = jnp.zeros(num_classes, x.dtype).at[y].add(weights)
  return DiffusionParams(net, jnp.arange(num_classes, dtype=jnp.int32),
                         jnp.log(counts / jnp.sum(counts)))

