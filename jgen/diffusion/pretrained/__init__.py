"""Pretrained diffusion models read from diffusers-format safetensors folders.

Flax NNX ports of DiT (``DiTTransformer2DModel``) and the ``AutoencoderKL`` encoder,
loaded without PyTorch; the DDPM timestep grid of the Diffusion Classifier's DiT
protocol as gammas; and the per-class ε-errors it scores.
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
from jgen.diffusion.pretrained.scoring import class_eps_errors
from jgen.diffusion.pretrained.scoring import class_mean_errors
from jgen.diffusion.pretrained.scoring import reference_gammas
from jgen.diffusion.pretrained.scoring import reference_times
from jgen.diffusion.pretrained.scoring import reference_timesteps
from jgen.diffusion.pretrained.vae import VAEConfig
from jgen.diffusion.pretrained.vae import VAEEncoder
from jgen.diffusion.pretrained.vae import encode
from jgen.diffusion.pretrained.vae import init_vae_encoder
from jgen.diffusion.pretrained.vae import load_vae_encoder
from jgen.diffusion.pretrained.vae import vae_config

__all__ = (
    "DDPMSchedule",
    "DiT",
    "DiTConfig",
    "DiTDenoiser",
    "VAEConfig",
    "VAEEncoder",
    "class_eps_errors",
    "class_mean_errors",
    "dit_config",
    "dit_denoiser",
    "dit_param_shapes",
    "encode",
    "init_dit",
    "init_vae_encoder",
    "load_dit",
    "load_vae_encoder",
    "reference_gammas",
    "reference_times",
    "reference_timesteps",
    "vae_config",
)
