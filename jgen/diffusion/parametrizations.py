r"""Denoisers as ``(apply, params)`` pairs, and exact conversions between parametrizations.

A [`Denoiser`][jgen.diffusion.Denoiser] is ``apply(params, z, gamma, y) -> prediction``
for ONE example (``z`` of the data shape, scalar ``gamma = -log SNR``, scalar integer
label ``y``) with a declared parametrization. ``params`` is a pytree passed as **data**:
every jitted path in [`jgen.diffusion`][jgen.diffusion] takes it as a traced argument,
so many parameter sets of one architecture (EMA weights, checkpoints, seeds) share one
compiled program. ``apply`` is part of the compilation key: build it once
([`nnx_denoiser`][jgen.diffusion.nnx_denoiser] makes it equal for every module of one
graph definition).

With ``z = alpha x + sigma eps`` and ``alpha^2 + sigma^2 = 1`` (VDM), the predictions
convert exactly (Salimans & Ho 2022 for ``v``):

$$
\hat\epsilon = \frac{z - \alpha \hat x}{\sigma} \;(x), \qquad
\hat\epsilon = \sigma z + \alpha \hat v \;(v = \alpha\epsilon - \sigma x), \qquad
\hat\epsilon = \frac{z + \alpha \hat u}{\alpha + \sigma} \;(u = \epsilon - x).
$$

Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023; SD 3, Esser et al.
2024) uses ``x_s = (1 - s) x + s eps`` and the velocity ``u = eps - x``. Its state is a
VP state rescaled: ``x_s = z / (alpha + sigma)`` at ``s = sigma / (alpha + sigma) =
sigmoid(gamma / 2)`` (since ``1 / (alpha + sigma) = sqrt((1 - s)^2 + s^2)``).
A ``"flow"`` denoiser receives the VP ``z`` and ``gamma`` like every other;
[`from_flow_fn`][jgen.diffusion.from_flow_fn] wraps a model written for ``(x_s, s)``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jgen.diffusion.schedules import alpha_sigma

__all__ = ["Denoiser", "PARAMETRIZATIONS", "check_parametrization", "to_eps",
           "from_eps", "convert", "eps_prediction", "from_eps_fn", "from_flow_fn",
           "flow_time", "nnx_denoiser"]

PARAMETRIZATIONS = ("eps", "x", "v", "flow")


def check_parametrization(parametrization) -> str:
  """``parametrization`` must be one of
  [`PARAMETRIZATIONS`][jgen.diffusion.PARAMETRIZATIONS] (else ValueError)."""
  if not isinstance(parametrization, str) or parametrization not in PARAMETRIZATIONS:
    raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got"
                     f" {parametrization!r}.")
  return parametrization


def _check_pred_shape(prediction, z, parametrization: str) -> None:
  if tuple(jnp.shape(prediction)) != tuple(jnp.shape(z)):
    raise ValueError(f"a {parametrization!r} denoiser must return a prediction of z's"
                     f" shape {tuple(jnp.shape(z))}, got {tuple(jnp.shape(prediction))}.")


class Denoiser(NamedTuple):
  """A per-example denoiser and what callers need to know about it.

  Attributes:
    apply: ``apply(params, z[*data_shape], gamma[], y[] int) -> prediction`` of ``z``'s
      shape; hashable (it keys compiled programs).
    parametrization: ``"eps"`` (noise), ``"x"`` (clean data), ``"v"`` or
      ``"flow"`` (velocity ``eps - x``); see the module docstring.
    data_shape: shape of one example, or ``None`` if not declared.
    num_classes: number of class labels it was built for, or ``None``.

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> def apply(params, z, gamma, y):  # predicts the clean data: the class mean
    ...   return params[y]
    >>> den = jgen.diffusion.Denoiser(apply, parametrization="x", data_shape=(2,),
    ...                               num_classes=2)
    >>> means = jnp.array([[0.0, 0.0], [3.0, 3.0]])
    >>> jgen.diffusion.classify(jax.random.key(0), den, means, jnp.array([2.9, 3.2]),
    ...                         2, num_t=8).label
    Array(1, dtype=int32)
  """
  apply: Callable[..., jax.Array]
  parametrization: str = "eps"
  data_shape: tuple[int, ...] | None = None
  num_classes: int | None = None


def to_eps(prediction: jax.Array, z: jax.Array, gamma: jax.Array,
           parametrization: str) -> jax.Array:
  """Converts a prediction to ``eps_hat`` exactly (module docstring).

  Args:
    prediction: ``[*data_shape]`` output of a denoiser.
    z: ``[*data_shape]`` the noisy VP input.
    gamma: scalar ``-log SNR``.
    parametrization: one of [`PARAMETRIZATIONS`][jgen.diffusion.PARAMETRIZATIONS].

  Returns:
    ``[*data_shape]`` noise prediction.

  Raises:
    ValueError: unknown ``parametrization``, or ``prediction``'s shape is not ``z``'s.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import to_eps
    >>> to_eps(jnp.zeros(2), jnp.ones(2), jnp.asarray(0.0), "x")  # sigma = sqrt(1/2)
    Array([1.4142135, 1.4142135], dtype=float32)
  """
  check_parametrization(parametrization)
  _check_pred_shape(prediction, z, parametrization)
  if parametrization == "eps":
    return prediction
  alpha, sigma = alpha_sigma(jnp.asarray(gamma, z.dtype))
  if parametrization == "x":
    return (z - alpha * prediction) / sigma
  if parametrization == "v":
    return sigma * z + alpha * prediction
  return (z + alpha * prediction) / (alpha + sigma)


def from_eps(eps_hat: jax.Array, z: jax.Array, gamma: jax.Array,
             parametrization: str) -> jax.Array:
  """The inverse of [`to_eps`][jgen.diffusion.to_eps]: ``eps_hat`` expressed in
  ``parametrization``.

  ``x_hat = (z - sigma eps) / alpha``, ``v = alpha eps - sigma x_hat``, ``u = eps -
  x_hat``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import from_eps, to_eps
    >>> z, g = jnp.asarray([0.3, -1.0]), jnp.asarray(0.5)
    >>> e = jnp.asarray([1.0, 2.0])
    >>> bool(jnp.allclose(to_eps(from_eps(e, z, g, "flow"), z, g, "flow"), e))
    True
  """
  check_parametrization(parametrization)
  _check_pred_shape(eps_hat, z, "eps")
  if parametrization == "eps":
    return eps_hat
  alpha, sigma = alpha_sigma(jnp.asarray(gamma, z.dtype))
  x_hat = (z - sigma * eps_hat) / alpha
  if parametrization == "x":
    return x_hat
  if parametrization == "v":
    return alpha * eps_hat - sigma * x_hat
  return eps_hat - x_hat


def convert(prediction: jax.Array, z: jax.Array, gamma: jax.Array, source: str,
            target: str) -> jax.Array:
  """A ``source`` prediction re-expressed as a ``target`` one (through ``eps``).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import convert
    >>> convert(jnp.ones(2), jnp.zeros(2), jnp.asarray(0.0), "v", "v").tolist()
    [1.0, 1.0]
  """
  if check_parametrization(source) == check_parametrization(target):
    _check_pred_shape(prediction, z, source)
    return prediction
  return from_eps(to_eps(prediction, z, gamma, source), z, gamma, target)


def flow_time(gamma: jax.Array) -> jax.Array:
  """Rectified-flow time ``s = sigma / (alpha + sigma) = sigmoid(gamma / 2)``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import flow_time
    >>> float(flow_time(jnp.asarray(0.0)))
    0.5
  """
  return jax.nn.sigmoid(0.5 * jnp.asarray(gamma))


def eps_prediction(denoiser: Denoiser, params: Any, z: jax.Array, gamma: jax.Array,
                   y: jax.Array) -> jax.Array:
  """``eps_hat(z, gamma, y)`` of one example, whatever the denoiser predicts.

  Args:
    denoiser: a [`Denoiser`][jgen.diffusion.Denoiser] of any parametrization.
    params: its parameters.
    z: ``[*data_shape]`` the noisy VP input.
    gamma: scalar ``-log SNR``.
    y: scalar integer label.

  Returns:
    ``[*data_shape]`` noise prediction ([`to_eps`][jgen.diffusion.to_eps] of the
    denoiser's output).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> den = jgen.diffusion.Denoiser(lambda p, z, g, y: jnp.zeros_like(z), "x")
    >>> eps = jgen.diffusion.eps_prediction(den, (), jnp.ones(2), jnp.asarray(0.0), 0)
    >>> [round(float(e), 4) for e in eps]  # (z - alpha x_hat) / sigma = sqrt(2)
    [1.4142, 1.4142]
  """
  out = denoiser.apply(params, z, gamma, y)
  return to_eps(out, z, gamma, denoiser.parametrization)


class _FlowApply:
  """``apply(params, z, gamma, y) = flow_fn(params, z / (alpha + sigma), s, y)``."""

  def __init__(self, flow_fn: Callable):
    self.flow_fn = flow_fn

  def __call__(self, params, z, gamma, y):
    alpha, sigma = alpha_sigma(jnp.asarray(gamma, z.dtype))
    return self.flow_fn(params, z / (alpha + sigma), flow_time(gamma), y)

  def __eq__(self, other):
    return isinstance(other, _FlowApply) and other.flow_fn is self.flow_fn

  def __hash__(self):
    return hash((_FlowApply, id(self.flow_fn)))


def from_flow_fn(flow_fn: Callable, *, data_shape=None,
                 num_classes: int | None = None) -> Denoiser:
  """A flow-matching model ``flow_fn(params, x_s, s, y) -> u_hat`` as a ``"flow"``
  [`Denoiser`][jgen.diffusion.Denoiser].

  ``x_s = (1 - s) x + s eps`` and ``u = eps - x`` (rectified flow); jgen feeds it the
  VP state rescaled, ``x_s = z / (alpha + sigma)`` at ``s = sigmoid(gamma / 2)``, so the
  ELBO, the classifier and the ODE likelihood see the same model exactly.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import from_flow_fn
    >>> den = from_flow_fn(lambda p, xs, s, y: xs * 0.0)
    >>> den.parametrization
    'flow'
  """
  if not callable(flow_fn):
    raise TypeError(f"flow_fn must be callable, got {type(flow_fn).__name__}.")
  shape = None if data_shape is None else tuple(int(d) for d in data_shape)
  return Denoiser(_FlowApply(flow_fn), "flow", shape, num_classes)


class _EpsFnApply:
  """``apply(params, z, gamma, y) = eps_fn(z, gamma, y)``; equal iff same ``eps_fn``."""

  def __init__(self, eps_fn: Callable):
    self.eps_fn = eps_fn

  def __call__(self, params, z, gamma, y):
    del params
    return self.eps_fn(z, gamma, y)

  def __eq__(self, other):
    return isinstance(other, _EpsFnApply) and other.eps_fn is self.eps_fn

  def __hash__(self):
    return hash((_EpsFnApply, id(self.eps_fn)))


def from_eps_fn(eps_fn: Callable, *, parametrization: str = "eps",
                data_shape=None, num_classes: int | None = None
                ) -> tuple[Denoiser, tuple]:
  """Wraps a plain per-example ``eps_fn(z, gamma, y)`` (parameters closed over).

  Whatever ``eps_fn`` closes over is a compile-time constant: prefer a
  [`Denoiser`][jgen.diffusion.Denoiser] with traced ``params`` for trained networks.

  Returns:
    ``(denoiser, params)`` with ``params = ()``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, params = diffusion.from_eps_fn(lambda z, g, y: 0.5 * z)
    >>> diffusion.class_log_likelihoods(jax.random.key(0), den, params, jnp.zeros(3),
    ...                                 2, num_t=4, schedule=diffusion.linear_schedule()).shape
    (2,)
  """
  if not callable(eps_fn):
    raise TypeError(f"eps_fn must be callable, got {type(eps_fn).__name__}.")
  check_parametrization(parametrization)
  shape = None if data_shape is None else tuple(int(d) for d in data_shape)
  return Denoiser(_EpsFnApply(eps_fn), parametrization, shape, num_classes), ()


class _NNXApply:
  """``apply(params, ...) = nnx.merge(graphdef, params)(...)``; equal by graphdef."""

  def __init__(self, graphdef):
    self.graphdef = graphdef
    # A graphdef is immutable, and hashing one walks the whole module graph (0.4 ms for
    # the U-Net): done once here, not at every jitted call that takes the denoiser.
    self._hash = hash((_NNXApply, graphdef))

  def __call__(self, params, z, gamma, y):
    return nnx.merge(self.graphdef, params)(z, gamma, y)

  def __eq__(self, other):
    return other is self or (isinstance(other, _NNXApply) and other._hash == self._hash
                             and other.graphdef == self.graphdef)

  def __hash__(self):
    return self._hash


def nnx_denoiser(module: nnx.Module, *, parametrization: str = "eps"
                 ) -> tuple[Denoiser, Any]:
  """Splits a flax NNX denoiser into ``(Denoiser, params)``.

  Every module with the same graph definition (architecture and static config) gives
  an equal ``Denoiser``, so their parameter pytrees share compiled programs.

  Args:
    module: an NNX module called as ``module(z, gamma, y)``; jgen's nets
      ([`MLPDenoiser`][jgen.diffusion.MLPDenoiser], ...) also declare ``data_shape`` and
      ``num_classes``.
    parametrization: what the module predicts.

  Returns:
    ``(denoiser, params)``: ``params`` is the pure-dict state (the form
    [`TrainState`][jgen.diffusion.TrainState] holds).

  Examples:
    >>> from flax import nnx
    >>> from jgen.diffusion import nets, nnx_denoiser
    >>> den, params = nnx_denoiser(nets.MLPDenoiser((4,), 3, width=16, depth=1,
    ...                                              rngs=nnx.Rngs(0)))
    >>> den.data_shape, den.num_classes
    ((4,), 3)
  """
  if not isinstance(module, nnx.Module):
    raise TypeError(f"module must be an nnx.Module, got {type(module).__name__}.")
  check_parametrization(parametrization)
  graphdef, state = nnx.split(module)
  shape = getattr(module, "data_shape", None)
  return (Denoiser(_NNXApply(graphdef), parametrization,
                   None if shape is None else tuple(shape),
                   getattr(module, "num_classes", None)),
          nnx.to_pure_dict(state))
