"""Class-conditional diffusion models as classifiers (Monte Carlo ELBO).

Conventions (VDM parameterisation): ``gamma(t) = -log SNR(t)``, ``z_t = alpha_t x +
sigma_t eps`` with ``alpha^2 = sigmoid(-gamma)``, ``sigma^2 = sigmoid(gamma)``; a denoiser
is ``eps_fn(z, gamma, y) -> eps_hat`` for ONE example.
"""

# --- schedules ---
from jgen.diffusion.schedules import Schedule
from jgen.diffusion.schedules import alpha_sigma
from jgen.diffusion.schedules import cosine_schedule
from jgen.diffusion.schedules import ddpm_eps_fn
from jgen.diffusion.schedules import ddpm_schedule
from jgen.diffusion.schedules import ddpm_timestep
from jgen.diffusion.schedules import discretize
from jgen.diffusion.schedules import gamma_prime
from jgen.diffusion.schedules import grid
from jgen.diffusion.schedules import linear_schedule

# --- ELBO estimation ---
from jgen.diffusion.elbo import batch_class_log_likelihoods
from jgen.diffusion.elbo import bits_per_dim
from jgen.diffusion.elbo import class_errors
from jgen.diffusion.elbo import class_errors_at
from jgen.diffusion.elbo import class_log_likelihoods
from jgen.diffusion.elbo import diffusion_term
from jgen.diffusion.elbo import draw
from jgen.diffusion.elbo import draw_timesteps
from jgen.diffusion.elbo import elbo_from_errors
from jgen.diffusion.elbo import prior_kl
from jgen.diffusion.elbo import reconstruction

# --- classification ---
from jgen.diffusion.strategies import DEFAULT_SCHEDULE
from jgen.diffusion.strategies import ClassifyResult
from jgen.diffusion.strategies import adaptive_plan
from jgen.diffusion.strategies import batch_classify
from jgen.diffusion.strategies import classify

# --- exact Gaussian reference ---
from jgen.diffusion.oracle import gaussian_log_likelihoods
from jgen.diffusion.oracle import gaussian_oracle

__all__ = (
    # schedules
    "Schedule",
    "alpha_sigma",
    "cosine_schedule",
    "ddpm_eps_fn",
    "ddpm_schedule",
    "ddpm_timestep",
    "discretize",
    "gamma_prime",
    "grid",
    "linear_schedule",
    # elbo
    "batch_class_log_likelihoods",
    "bits_per_dim",
    "class_errors",
    "class_errors_at",
    "class_log_likelihoods",
    "diffusion_term",
    "draw",
    "draw_timesteps",
    "elbo_from_errors",
    "prior_kl",
    "reconstruction",
    # classify
    "DEFAULT_SCHEDULE",
    "ClassifyResult",
    "adaptive_plan",
    "batch_classify",
    "classify",
    # oracle
    "gaussian_log_likelihoods",
    "gaussian_oracle",
)

# --- Denoisers and training (jgen.diffusion.nets, jgen.diffusion.train) ---
from jgen.diffusion import nets
from jgen.diffusion.nets import MLPDenoiser
from jgen.diffusion.nets import UNetDenoiser
from jgen.diffusion.nets import as_eps_fn
from jgen.diffusion.nets import drop_labels
from jgen.diffusion import train
from jgen.diffusion.train import NonFiniteLossError
from jgen.diffusion.train import TrainConfig
from jgen.diffusion.train import TrainState

# --- Sharded over a device mesh, and checkpoints ---
from jgen.diffusion.sharded import sharded_batch_classify
from jgen.diffusion.sharded import sharded_class_errors
from jgen.diffusion.sharded import sharded_classify
from jgen.diffusion.sharded_train import data_parallel_train_step
from jgen.diffusion.checkpoint import load_model
from jgen.diffusion.checkpoint import save_model

__all__ = __all__ + (
    "nets",
    "MLPDenoiser",
    "UNetDenoiser",
    "as_eps_fn",
    "drop_labels",
    "train",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainState",
    "sharded_batch_classify",
    "sharded_class_errors",
    "sharded_classify",
    "data_parallel_train_step",
    "load_model",
    "save_model",
)
