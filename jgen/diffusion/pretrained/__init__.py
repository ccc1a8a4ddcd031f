"""Pretrained diffusion models read from diffusers-format safetensors folders.

Flax NNX ports of DiT (``DiTTransformer2DModel``) and the ``AutoencoderKL`` encoder,
the DDPM timestep grid of the Diffusion Classifier's DiT protocol as gammas, and the
per-class ε-errors it scores.
"""
from jgen.diffusion.pretrained.denoiser import DDPMSchedule
from jgen.diffusion.pretrained.denoiser import DiTDenoiser
from jgen.diffusion.pretrained.denoiser import dit_denoiser
from jgen.diffusion.pretrained.denoiser import dit_param_shapes
from jgen.diffusion.pretrained.denoiser import init_dit
from jgen.diffusion.pretrained.denoiser import load_dit
from jgen.diffusion.pretrained.dit import DiT
from jgen.diffusion.pretrained.dit import DiTConfig
from jgen.diffusion.pretrained.dit import dit_config

__all__ = (
    "DDPMSchedule",
    "DiT",
    "DiTConfig",
    "DiTDenoiser",
    "dit_config",
    "dit_denoiser",
    "dit_param_shapes",
    "init_dit",
    "load_dit",
)
