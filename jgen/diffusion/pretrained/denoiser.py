"""Loading a DiT checkpoint and exposing it as a
[`jgen.diffusion.Denoiser`][jgen.diffusion.Denoiser].

Its ``apply`` is a frozen dataclass (hashable, equal by configuration), so two denoisers
of one architecture are interchangeable static arguments of ``jax.jit`` and every
parameter pytree of that architecture (checkpoints, dtypes aside) shares one compiled
program: ``params`` is always traced data.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jgen.diffusion.pretrained.dit import DiT, DiTConfig, dit_config
from jgen.diffusion.pretrained.loading import fill_state, random_state, read_config
from jgen.diffusion.pretrained.loading import read_tensors
from jgen.diffusion.parametrizations import Denoiser
from jgen.diffusion.schedules import Schedule, ddpm_schedule, ddpm_timestep

__all__ = ["DDPMSchedule", "DiTDenoiser", "dit_denoiser", "load_dit", "init_dit",
           "dit_param_shapes"]

DIT_CLASS_NAMES = ("DiTTransformer2DModel", "DiTModel")


class DDPMSchedule(NamedTuple):
  """A hashable description of a discrete DDPM beta schedule.

  The DiT default: 1,000 linear betas from ``1e-4`` to ``0.02`` (Ho et al., 2020;
  facebookresearch/DiT ``create_diffusion``).

  Examples:
    >>> s = DDPMSchedule()
    >>> s.schedule().num_steps, s == DDPMSchedule(1000, 1e-4, 0.02, "linear")
    (999, True)
    >>> hash(s) == hash(DDPMSchedule())  # a valid static argument of jax.jit
    True
  """
  num_train_timesteps: int = 1000
  beta_start: float = 1e-4
  beta_end: float = 0.02
  kind: str = "linear"

  def schedule(self) -> Schedule:
    """jgen's [`Schedule`][jgen.diffusion.Schedule] whose grid index ``j`` is DDPM
    timestep ``j``."""
    return ddpm_schedule(self.num_train_timesteps, self.beta_start, self.beta_end,
                         self.kind)


@functools.lru_cache(maxsize=None)
def _graphdef(config: DiTConfig, dtype_name: str):
  model = nnx.eval_shape(lambda: DiT(config, dtype=jnp.dtype(dtype_name),
                                     rngs=nnx.Rngs(0)))
  return nnx.split(model)


@dataclasses.dataclass(frozen=True)
class DiTDenoiser:
  """``apply(params, z, gamma, y) -> eps_hat`` for one example (ε-parametrization).

  Attributes:
    config: the DiT architecture.
    schedule: the DDPM schedule the DiT was trained with; ``gamma`` is mapped to the
      nearest DDPM timestep of its grid (exact for gammas taken from the grid).

  Examples:
    >>> cfg = DiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=1,
    ...                 sample_size=4, num_embeds_ada_norm=3)
    >>> apply = DiTDenoiser(cfg)
    >>> apply == DiTDenoiser(cfg), hash(apply) == hash(DiTDenoiser(cfg))
    (True, True)
    >>> params = init_dit(jax.random.key(0), cfg)
    >>> apply(params, jnp.zeros((4, 4, 4), jnp.float32), 0.0, 3).shape  # 3: null class
    (4, 4, 4)
  """
  config: DiTConfig
  schedule: DDPMSchedule = DDPMSchedule()

  def __call__(self, params: nnx.State, z: jax.Array, gamma: jax.Array,
               y: jax.Array) -> jax.Array:
    """ε prediction ``[H, W, in_channels]`` for ``z[H, W, in_channels]``, scalar
    ``gamma`` (-log SNR) and integer label ``y`` (``num_classes`` = the null class)."""
    cfg = self.config
    want = (cfg.sample_size, cfg.sample_size, cfg.in_channels)
    if tuple(z.shape) != want:
      raise ValueError(f"z must have shape {want} (H, W, C) for this DiT, got"
                       f" {tuple(z.shape)}.")
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    graphdef, _ = _graphdef(cfg, jnp.dtype(dtype).name)
    model = nnx.merge(graphdef, params)
    t = ddpm_timestep(self.schedule.schedule(), jnp.asarray(gamma, jnp.float32))
    out = model(z, t.astype(jnp.float32), jnp.asarray(y, jnp.int32))
    return out[..., :cfg.in_channels].astype(z.dtype)


def dit_denoiser(config: DiTConfig, schedule: DDPMSchedule = DDPMSchedule()
                 ) -> Denoiser:
  """The DiT as a [`jgen.diffusion.Denoiser`][jgen.diffusion.Denoiser]
  (ε-parametrization).

  Every jgen diffusion entry point takes it with the DiT's parameters as traced data,
  e.g. ``jgen.diffusion.classify(key, den, params, latent, 1000, ...)`` or
  [`jgen.diffusion.class_errors_at`][jgen.diffusion.class_errors_at] on
  [`reference_times`][jgen.diffusion.pretrained.reference_times].

  Args:
    config: the architecture, e.g. from [`load_dit`][jgen.diffusion.pretrained.load_dit].
    schedule: the DDPM schedule it was trained with (DiT's default).

  Returns:
    ``Denoiser(apply, "eps", (H, W, C), num_classes)`` with ``apply(params, z[H, W, C],
    gamma, y) -> eps_hat[H, W, C]``, ``H = W = config.sample_size``, ``C =
    config.in_channels`` and ``num_classes = config.num_embeds_ada_norm`` (the label
    ``num_classes`` is the null class of classifier-free guidance).

  Examples:
    >>> cfg = DiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=1,
    ...                 sample_size=4, out_channels=8, num_embeds_ada_norm=3)
    >>> den = dit_denoiser(cfg)
    >>> den.parametrization, den.data_shape, den.num_classes
    ('eps', (4, 4, 4), 3)
    >>> params = init_dit(jax.random.key(0), cfg)
    >>> den.apply(params, jnp.zeros((4, 4, 4), jnp.float32), 0.0, 1).shape
    (4, 4, 4)
  """
  shape = (config.sample_size, config.sample_size, config.in_channels)
  return Denoiser(DiTDenoiser(config, schedule), "eps", shape,
                  config.num_embeds_ada_norm)


def load_dit(folder: str, dtype=jnp.float32) -> tuple[DiTConfig, nnx.State]:
  """A ``DiTTransformer2DModel`` folder (``config.json`` + ``*.safetensors``).

  Args:
    folder: the diffusers folder, e.g. the ``transformer`` subfolder of
      ``facebook/DiT-XL-2-256``.
    dtype: parameter dtype, ``jnp.float32`` or ``jnp.bfloat16``.

  Returns:
    ``(config, params)``; ``params`` is an ``nnx.State`` pytree.

  Raises:
    ValueError: naming the file or tensor that is missing, mis-shaped or foreign.

  Examples:
    >>> config, params = load_dit("DiT-XL-2-256/transformer")  # doctest: +SKIP
  """
  dtype = _check_dtype(dtype)
  config = dit_config(read_config(folder, DIT_CLASS_NAMES))
  _, abstract = _graphdef(config, jnp.dtype(dtype).name)
  return config, fill_state(abstract, read_tensors(folder), folder, dtype)


def init_dit(key: jax.Array, config: DiTConfig, dtype=jnp.float32) -> nnx.State:
  """Random DiT parameters for tests and smoke runs (see ``loading.random_state``).

  Examples:
    >>> cfg = DiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=1,
    ...                 sample_size=4, num_embeds_ada_norm=3)
    >>> len(jax.tree_util.tree_leaves(init_dit(jax.random.key(0), cfg))) > 0
    True
  """
  return random_state(key, _graphdef(config, _check_dtype(dtype).name)[1])


def dit_param_shapes(config: DiTConfig, dtype=jnp.float32) -> nnx.State:
  """The parameter pytree of ``config`` as ``jax.ShapeDtypeStruct`` (no memory).

  Examples:
    >>> cfg = DiTConfig(num_layers=1)
    >>> shapes = dit_param_shapes(cfg)
  """
  return _graphdef(config, jnp.dtype(_check_dtype(dtype)).name)[1]


def _check_dtype(dtype):
  if jnp.dtype(dtype) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)):
    raise ValueError(f"dtype must be float32 or bfloat16, got {jnp.dtype(dtype)}.")
  return jnp.dtype(dtype)
