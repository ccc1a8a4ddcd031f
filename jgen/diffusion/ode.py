r"""Exact likelihoods through the probability-flow ODE, solved with diffrax.

The VP process ``z = alpha x + sigma eps`` (``alpha^2 = sigmoid(-gamma)``) has the
probability-flow ODE (Song et al., ICLR 2021) whose marginals are the diffusion's. With
``gamma`` itself as the time variable (the ODE is invariant to the schedule; only its
end points ``gamma_0 = gamma(0)`` and ``gamma_1 = gamma(1)`` matter):

$$
\frac{dz}{d\gamma} = \tfrac12 \sigma\,(\hat\epsilon(z, \gamma) - \sigma z), \qquad
\log p_0(z_0) = \log N(z_1; 0, I) + \int_{\gamma_0}^{\gamma_1} \tfrac12 \sigma
(\operatorname{tr} \partial_z \hat\epsilon - \sigma D)\, d\gamma .
$$

(``f = d log alpha / dt = -sigma^2 gamma' / 2``, ``g^2 = sigma^2 gamma'`` and the score
is ``-eps_hat / sigma``.) The trace is exact (``D`` Jacobian-vector products) or
Hutchinson's estimate ``v^T (d eps_hat / dz) v`` with Rademacher or Gaussian probes
``v``; the probes are drawn once and SHARED by every class (the matched-noise trick of
the Diffusion Classifier, so class differences keep little probe noise). All classes
are ONE solve: the state is ``[K, *data_shape]`` plus ``[K]`` log-density changes, the
denoiser is vmapped over classes inside the vector field, and the adaptive step
(Tsit5, PID controller, ``rtol``/``atol`` on the RMS error over all classes) is shared.
How many classes one vectorised vector-field call takes comes from the execution plan
(``jgen.core.plan``); the trace is accumulated in float32 at least.

Cost against the ELBO: one solve takes ``6 * num_steps + 1`` vector-field calls, each
``D`` (exact) or ``num_probes`` Jacobian-vector products per class; at ``rtol = atol =
1e-5`` on 8-dimensional Gaussians that is ~100-200 steps (see
``benchmarks/diffusion_ode.py``), against ``num_t`` plain evaluations for the MC ELBO.

A solve that stops at ``max_steps`` is never returned as a number:
[`pf_log_likelihoods`][jgen.diffusion.pf_log_likelihoods] raises
[`ODESolveError`][jgen.diffusion.ODESolveError] when called eagerly; jitted callers get
``success=False`` and NaN log-likelihoods.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import checks
from jgen.core import compilation
from jgen.core.plan import items_per_call
from jgen.core.contract import Classifier, check_params_type
from jgen.diffusion import validate
from jgen.diffusion.chunking import activation_bytes
from jgen.diffusion.family import DiffusionParams
from jgen.diffusion.parametrizations import Denoiser, eps_prediction
from jgen.diffusion.schedules import Schedule, alpha_sigma, linear_schedule

__all__ = ["ODEConfig", "ODEResult", "ODESolveError", "DIVERGENCES", "PROBES",
           "ode_config", "pf_log_likelihoods", "log_likelihoods_at",
           "dequantized_bits_per_dim", "ode_classifier"]

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")


class ODESolveError(RuntimeError):
  """The probability-flow solve hit ``max_steps`` (or failed otherwise).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> den, p = jgen.diffusion.gaussian_oracle(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    >>> try:
    ...   jgen.diffusion.pf_log_likelihoods(None, den, p, jnp.zeros(3), 2,
    ...       config=jgen.diffusion.ode_config(max_steps=1))
    ... except jgen.diffusion.ODESolveError as e:
    ...   print("raise max_steps" in str(e))
    True
  """


class ODEConfig(NamedTuple):
  """Static solver settings (hashable: part of the compile key); build with
  [`ode_config`][jgen.diffusion.ode_config].

  Attributes:
    rtol: relative tolerance of the adaptive step (Tsit5, PID controller).
    atol: absolute tolerance.
    max_steps: solver steps before the solve counts as failed.
    divergence: ``"exact"`` (``D`` Jacobian-vector products) or ``"hutchinson"``.
    num_probes: Hutchinson probes, shared by all classes.
    probe: ``"rademacher"`` or ``"gaussian"`` probes.

  Examples:
    >>> import jgen
    >>> cfg = jgen.diffusion.ode_config(rtol=1e-3, atol=1e-3, divergence="hutchinson")
    >>> isinstance(cfg, jgen.diffusion.ODEConfig), cfg.probe, hash(cfg) == hash(cfg)
    (True, 'rademacher', True)
  """
  rtol: float = 1e-5
  atol: float = 1e-5
  max_steps: int = 4096
  divergence: str = "exact"
  num_probes: int = 1
  probe: str = "rademacher"


class ODEResult(NamedTuple):
  """Result of a probability-flow solve for one example.

  Attributes:
    log_likelihood: ``[C]`` log-densities in nats (NaN where ``success`` is False).
    num_steps: solver steps taken (accepted and rejected), ``int32 []``.
    num_evals: denoiser evaluations (Jacobian-vector products) per class, ``int32 []``.
    success: ``bool []``, False if the solver stopped early (e.g. ``max_steps``).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> den, p = jgen.diffusion.gaussian_oracle(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    >>> res = jgen.diffusion.pf_log_likelihoods(None, den, p, jnp.zeros(3), 2)
    >>> bool(res.success), round(float(res.log_likelihood[0]), 2)  # exact: -2.76
    (True, -2.76)
  """
  log_likelihood: jax.Array
  num_steps: jax.Array
  num_evals: jax.Array
  success: jax.Array


def ode_config(*, rtol: float = 1e-5, atol: float = 1e-5, max_steps: int = 4096,
               divergence: str = "exact", num_probes: int = 1,
               probe: str = "rademacher") -> ODEConfig:
  """Checked [`ODEConfig`][jgen.diffusion.ODEConfig] (defaults: score_sde's
  ``rtol = atol = 1e-5``).

  Raises:
    ValueError: tolerances ``<= 0`` or non-finite, ``num_probes < 1``, unknown
      ``divergence`` / ``probe``, ``max_steps < 1``.

  Examples:
    >>> from jgen.diffusion import ode_config
    >>> ode_config(divergence="hutchinson", num_probes=4).num_probes
    4
  """
  for name, v in (("rtol", rtol), ("atol", atol)):
    if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
      raise ValueError(f"{name} must be a finite float > 0, got {v!r}.")
  max_steps = validate.check_static_int(max_steps, "max_steps")
  num_probes = validate.check_static_int(num_probes, "num_probes")
  if divergence not in DIVERGENCES:
    raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}.")
  if probe not in PROBES:
    raise ValueError(f"probe must be one of {PROBES}, got {probe!r}.")
  return ODEConfig(float(rtol), float(atol), max_steps, divergence, num_probes, probe)


def _probes(key, shape, cfg: ODEConfig, dtype):
  if cfg.divergence == "exact":
    d = int(np.prod(shape))
    return jnp.eye(d, dtype=dtype).reshape((d,) + tuple(shape))
  if key is None:
    raise ValueError("key is required for divergence='hutchinson' (random probes).")
  full = (cfg.num_probes,) + tuple(shape)
  if cfg.probe == "rademacher":
    return jax.random.rademacher(key, full, dtype)
  return jax.random.normal(key, full, dtype)


def _vector_field(denoiser, params, ids, probes, scale, g, state, lanes=None):
  """``(dz/dgamma [C, ...], d logp / dgamma [C])`` at ``gamma = g``; ``lanes`` classes
  per vectorised call (``None``: all), padded to whole chunks."""
  z, _ = state
  _, sigma = alpha_sigma(g)
  num_dims = z[0].size

  def one(zk, k):
    fn = lambda zz: eps_prediction(denoiser, params, zz, g, k)  # noqa: E731
    eps_hat, tangents = jax.vmap(lambda v: jax.jvp(fn, (zk,), (v,)))(probes)
    acc = jnp.promote_types(tangents.dtype, jnp.float32)  # the trace's sum: >= float32
    tr = scale * jnp.sum(probes.astype(acc) * tangents.astype(acc))
    return eps_hat[0], tr.astype(z.dtype)

  num_c = ids.shape[0]
  if lanes is None or lanes >= num_c:
    eps_hat, tr = jax.vmap(one)(z, ids)
  else:  # lax.map's batch_size pads the last chunk itself
    eps_hat, tr = jax.lax.map(lambda a: one(*a), (z, ids), batch_size=lanes)
  dz = 0.5 * sigma * (eps_hat - sigma * z)
  return dz, 0.5 * sigma * (tr - sigma * num_dims)


def _lanes(denoiser, params, shape, dtype, cfg: ODEConfig, num_classes: int) -> int:
  # Classes per vector-field call: a class is D (exact) or num_probes JVPs, each a
  # primal and a tangent of the denoiser's largest intermediate.
  probes = int(np.prod(shape)) if cfg.divergence == "exact" else cfg.num_probes
  per = 2 * probes * activation_bytes(denoiser, params, shape, dtype)
  return items_per_call(per, num_classes)


@functools.partial(compilation.jit, static_argnames=("denoiser", "cfg", "lanes"))
def _solve(key, params, z0, ids, gammas, *, denoiser: Denoiser, cfg: ODEConfig,
           lanes=None):
  import diffrax  # diffrax loads on first use
  probes = _probes(key, z0.shape, cfg, z0.dtype)
  scale = 1.0 if cfg.divergence == "exact" else 1.0 / cfg.num_probes
  num_c = ids.shape[0]
  y0 = (jnp.broadcast_to(z0, (num_c,) + z0.shape), jnp.zeros((num_c,), z0.dtype))
  term = diffrax.ODETerm(lambda g, y, p: _vector_field(denoiser, p, ids, probes, scale, g,
                                                         y, lanes))
  sol = diffrax.diffeqsolve(
      term, diffrax.Tsit5(), gammas[0], gammas[1], None, y0, params,
      stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol),
      max_steps=cfg.max_steps, throw=False, saveat=diffrax.SaveAt(t1=True))
  z1, delta = sol.ys[0][0], sol.ys[1][0]
  flat = z1.reshape(num_c, -1)
  prior = -0.5 * jnp.sum(flat * flat + jnp.log(2.0 * jnp.pi).astype(z0.dtype), axis=1)
  ok = sol.result == diffrax.RESULTS.successful
  ll = jnp.where(ok, prior + delta, jnp.nan)
  steps = sol.stats["num_steps"].astype(jnp.int32)
  evals = (6 * steps + 1) * probes.shape[0]
  return ODEResult(ll, steps, evals.astype(jnp.int32), ok)


def _raise_if_failed(res: ODEResult, cfg: ODEConfig) -> ODEResult:
  if checks.is_concrete(res.success) and not bool(np.all(jax.device_get(res.success))):
    raise ODESolveError(
        f"the probability-flow solve did not finish within max_steps={cfg.max_steps}"
        f" (rtol={cfg.rtol}, atol={cfg.atol}); raise max_steps or loosen tolerances.")
  return res


def log_likelihoods_at(key: jax.Array | None, denoiser: Denoiser, params: Any,
                       z: ArrayLike, num_classes: int, *, schedule: Schedule | None = None,
                       config: ODEConfig | None = None,
                       classes: ArrayLike | None = None) -> ODEResult:
  """``log p_0(z | y=k)``: the model's density of the latent ``z`` at ``t = 0``.

  Args:
    key: PRNG key for Hutchinson probes (shared by all classes); ``None`` is allowed
      with the exact trace.
    denoiser: a [`Denoiser`][jgen.diffusion.Denoiser] of any parametrization.
    params: its parameters (traced).
    z: one latent ``[*data_shape]`` at ``gamma_0 = schedule.gamma(0)``.
    num_classes: static ``K``.
    schedule: supplies ``gamma_0`` and ``gamma_1`` (default VDM linear).
    config: [`ode_config`][jgen.diffusion.ode_config] (default exact trace,
      ``rtol = atol = 1e-5``).
    classes: optional keep-list ``[C]``.

  Returns:
    [`ODEResult`][jgen.diffusion.ODEResult] with ``log_likelihood [C]``.

  Raises:
    ODESolveError: eagerly, if the solve stopped at ``max_steps``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, p = diffusion.gaussian_oracle(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    >>> diffusion.ode.log_likelihoods_at(None, den, p, jnp.zeros(3), 2
    ...                                  ).log_likelihood.shape
    (2,)
  """
  cfg = ode_config() if config is None else config
  if not isinstance(cfg, ODEConfig):
    raise TypeError(f"config must be an ODEConfig (ode_config()), got"
                    f" {type(cfg).__name__}.")
  num_classes = validate.check_num_classes_fit(validate.check_denoiser(denoiser),
                                               num_classes)
  z = validate.check_x(denoiser, params, z, name="z")
  ids = validate.class_ids(classes, num_classes)
  schedule = linear_schedule() if schedule is None else schedule
  gammas = schedule.gamma(jnp.asarray([0.0, 1.0], z.dtype))
  if cfg.divergence == "hutchinson" and key is None:
    raise ValueError("key is required for divergence='hutchinson' (random probes).")
  key = jax.random.key(0) if key is None else key
  lanes = _lanes(denoiser, params, z.shape, z.dtype, cfg, ids.shape[0])
  res = _solve(key, params, z, ids, gammas, denoiser=denoiser, cfg=cfg, lanes=lanes)
  return _raise_if_failed(res, cfg)


def pf_log_likelihoods(key: jax.Array | None, denoiser: Denoiser, params: Any,
                       x: ArrayLike, num_classes: int, *, schedule: Schedule | None = None,
                       config: ODEConfig | None = None,
                       classes: ArrayLike | None = None) -> ODEResult:
  """Probability-flow ``log p(x | y=k)`` of data ``x`` in nats.

  ``z_0 = alpha_0 x`` and ``log p(x) = log p_0(alpha_0 x) + D log alpha_0`` (the
  density of ``z_0 / alpha_0``; exact as ``sigma_0 -> 0``, as in score_sde's
  likelihood at ``t = eps``). Arguments as ``log_likelihoods_at``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, p = diffusion.gaussian_oracle(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    >>> res = diffusion.pf_log_likelihoods(None, den, p, jnp.zeros(3), 2)
    >>> bool(res.success), res.log_likelihood.shape
    (True, (2,))
  """
  x = jnp.asarray(x)
  checks.check_float(x, "x")
  schedule = linear_schedule() if schedule is None else schedule
  g0 = schedule.gamma(jnp.zeros((), x.dtype))
  log_alpha0 = -0.5 * jax.nn.softplus(g0)
  res = log_likelihoods_at(key, denoiser, params, jnp.exp(log_alpha0) * x, num_classes,
                           schedule=schedule, config=config, classes=classes)
  return res._replace(log_likelihood=res.log_likelihood + x.size * log_alpha0)


def dequantized_bits_per_dim(log_lik: ArrayLike, num_dims: int, *,
                             num_bins: int = 256, data_range: float = 2.0) -> jax.Array:
  """Bits/dim of data on ``num_bins`` levels spanning ``data_range``, from a continuous
  log-density (uniform dequantisation): ``-log_lik / (D ln 2) + log2(num_bins /
  data_range)``; ``+7`` for 8-bit data in ``[-1, 1]``, ``+8`` in ``[0, 1]`` (score_sde's
  offset).

  Examples:
    >>> from jgen.diffusion import dequantized_bits_per_dim
    >>> float(dequantized_bits_per_dim(0.0, 4))
    7.0
  """
  num_dims = validate.check_static_int(num_dims, "num_dims")
  num_bins = validate.check_static_int(num_bins, "num_bins", 2)
  if not data_range > 0:
    raise ValueError(f"data_range must be > 0, got {data_range}.")
  return (-jnp.asarray(log_lik) / (num_dims * np.log(2.0))
          + np.log2(num_bins / data_range))


@functools.partial(compilation.jit, static_argnames=("denoiser", "cfg", "lanes"))
def _batch(key, net, x, ids, gammas, *, denoiser, cfg, lanes=None):
  log_alpha0 = -0.5 * jax.nn.softplus(gammas[0])

  def one(xi):
    res = _solve(key, net, jnp.exp(log_alpha0) * xi, ids, gammas, denoiser=denoiser,
                 cfg=cfg, lanes=lanes)
    return res._replace(log_likelihood=res.log_likelihood + xi.size * log_alpha0)

  return jax.lax.map(one, x)   # a loop: a vmapped while_loop runs every lane to the end


def ode_classifier(denoiser: Denoiser, *, schedule: Schedule | None = None,
                   config: ODEConfig | None = None):
  """A denoiser scored by its probability-flow likelihood, as a
  [`Classifier`][jgen.Classifier] (parameters
  [`DiffusionParams`][jgen.diffusion.DiffusionParams]; ``fit`` is not provided: train with
  [`diffusion_classifier`][jgen.diffusion.diffusion_classifier]'s ``fit`` and reuse its
  params).

  ``log_likelihood(params, x[..., *data_shape], *, key=None) -> [..., K]`` raises
  [`ODESolveError`][jgen.diffusion.ODESolveError] if a solve hit ``max_steps``;
  ``stochastic`` is True with Hutchinson probes (one probe set per call, shared by
  classes and examples).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, net = diffusion.gaussian_oracle(jnp.eye(2), jnp.ones((2, 2)))
    >>> model = diffusion.ode.ode_classifier(den)
    >>> params = diffusion.DiffusionParams(net, jnp.arange(2), jnp.log(jnp.ones(2) / 2))
    >>> model.log_likelihood(params, jnp.eye(2)).shape
    (2, 2)
  """
  validate.check_denoiser(denoiser)
  if denoiser.data_shape is None:
    raise ValueError("denoiser must declare data_shape.")
  cfg = ode_config() if config is None else config
  schedule = linear_schedule() if schedule is None else schedule
  shape = denoiser.data_shape

  def log_likelihood(params, x, *, key=None):
    check_params_type(params, DiffusionParams, "ode_classifier")
    if cfg.divergence == "hutchinson" and key is None:
      raise ValueError("key is required for divergence='hutchinson' (random probes).")
    x = jnp.asarray(x)
    checks.check_float(x, "x")
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape):]) != shape:
      raise ValueError(f"x must have shape [..., *{shape}], got {tuple(x.shape)}.")
    checks.check_finite(x, "x")
    lead = x.shape[:x.ndim - len(shape)]
    gammas = schedule.gamma(jnp.asarray([0.0, 1.0], x.dtype))
    lanes = _lanes(denoiser, params.net, shape, x.dtype, cfg,
                   params.class_ids.shape[0])
    res = _batch(jax.random.key(0) if key is None else key, params.net,
                 x.reshape((-1,) + shape), params.class_ids, gammas,
                 denoiser=denoiser, cfg=cfg, lanes=lanes)
    _raise_if_failed(res, cfg)
    return res.log_likelihood.reshape(lead + (params.class_ids.shape[0],))

  return Classifier(
      fit=_no_fit, log_likelihood=log_likelihood,
      log_prior=lambda params: params.log_prior,
      class_axes=lambda params: DiffusionParams(
          jax.tree.map(lambda _: None, params.net), 0, 0),
      name="ode_classifier", hyperparams=dict(denoiser=denoiser, schedule=schedule,
                                              config=cfg),
      params_type=DiffusionParams, conditional=False,
      stochastic=cfg.divergence == "hutchinson")


def _no_fit(x, y, *, num_classes, sample_weight=None):
  raise TypeError("ode_classifier has no fit: train with diffusion_classifier(...).fit"
                  " and pass its DiffusionParams.")
