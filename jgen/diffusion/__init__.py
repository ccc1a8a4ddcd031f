"""Class-conditional diffusion models as classifiers (Monte Carlo ELBO).

Conventions (VDM parameterisation): ``gamma(t) = -log SNR(t)``, ``z_t = alpha_t x +
sigma_t eps`` with ``alpha^2 = sigmoid(-gamma)``, ``sigma^2 = sigmoid(gamma)``; a denoiser
is a [`Denoiser`][jgen.diffusion.Denoiser], ``apply(params, z, gamma, y) -> prediction``
for ONE example with a declared parametrization, and ``params`` is traced data
everywhere.
"""

# --- denoisers ---
from jgen.diffusion.parametrizations import Denoiser
from jgen.diffusion.parametrizations import eps_prediction
from jgen.diffusion.parametrizations import from_eps_fn
from jgen.diffusion.parametrizations import nnx_denoiser
from jgen.diffusion.parametrizations import to_eps


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
from jgen.diffusion.losses import diffusion_term
from jgen.diffusion.losses import draw
from jgen.diffusion.losses import draw_timesteps
from jgen.diffusion.elbo import elbo_from_errors
from jgen.diffusion.losses import noisy
from jgen.diffusion.elbo import prior_kl
from jgen.diffusion.elbo import reconstruction

# --- classification ---
from jgen.diffusion.classifier import DEFAULT_SCHEDULE
from jgen.diffusion.classifier import DEFAULTS
from jgen.diffusion.classifier import batch_classify
from jgen.diffusion.classifier import classify
from jgen.diffusion.strategies import ClassifyResult
from jgen.diffusion.strategies import adaptive_plan

# --- exact Gaussian reference ---
from jgen.diffusion.oracle import OracleParams
from jgen.diffusion.oracle import gaussian_log_likelihoods
from jgen.diffusion.oracle import gaussian_oracle

__all__ = (
    # denoisers
    "Denoiser",
    "eps_prediction",
    "from_eps_fn",
    "nnx_denoiser",
    "to_eps",
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
    "noisy",
    "prior_kl",
    "reconstruction",
    # classify
    "DEFAULT_SCHEDULE",
    "DEFAULTS",
    "ClassifyResult",
    "adaptive_plan",
    "batch_classify",
    "classify",
    # oracle
    "OracleParams",
    "gaussian_log_likelihoods",
    "gaussian_oracle",
)

# --- Denoisers and training (jgen.diffusion.nets, jgen.diffusion.train) ---
from jgen.diffusion import nets
from jgen.diffusion.nets import MLPDenoiser
from jgen.diffusion.nets import UNetDenoiser
from jgen.diffusion.nets import drop_labels
from jgen.diffusion import train
from jgen.diffusion.train import NonFiniteLossError
from jgen.diffusion.train import TrainConfig
from jgen.diffusion.train import TrainState

# --- Sharded over a device mesh, and checkpoints ---
from jgen.diffusion.sharded import sharded_batch_classify
from jgen.diffusion.sharded import sharded_class_errors
from jgen.diffusion.sharded import sharded_classify
from jgen.diffusion.family import DiffusionParams
from jgen.diffusion.family import diffusion_classifier
from jgen.diffusion.checkpoint import load_model
from jgen.diffusion.checkpoint import save_model

__all__ = __all__ + (
    "nets",
    "MLPDenoiser",
    "UNetDenoiser",
    "drop_labels",
    "train",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainState",
    "sharded_batch_classify",
    "sharded_class_errors",
    "sharded_classify",
    "DiffusionParams",
    "diffusion_classifier",
    "load_model",
    "save_model",
)

# --- Probability-flow likelihood, racing, importance-sampled timesteps ---
from jgen.diffusion import ode
from jgen.diffusion.ode import ODEConfig
from jgen.diffusion.ode import ODEResult
from jgen.diffusion.ode import ODESolveError
from jgen.diffusion.ode import dequantized_bits_per_dim
from jgen.diffusion.ode import ode_config
from jgen.diffusion.ode import pf_log_likelihoods
from jgen.diffusion.parametrizations import PARAMETRIZATIONS
from jgen.diffusion.parametrizations import convert
from jgen.diffusion.parametrizations import flow_time
from jgen.diffusion.parametrizations import from_eps
from jgen.diffusion.parametrizations import from_flow_fn
from jgen.diffusion.schedules import rectified_flow_schedule

__all__ = __all__ + (
    "ode",
    "ODEConfig",
    "ODEResult",
    "ODESolveError",
    "dequantized_bits_per_dim",
    "ode_config",
    "pf_log_likelihoods",
    "PARAMETRIZATIONS",
    "convert",
    "flow_time",
    "from_eps",
    "from_flow_fn",
    "rectified_flow_schedule",
)

from jgen.diffusion import hierarchy
from jgen.diffusion import importance
from jgen.diffusion import racing
from jgen.diffusion.hierarchy import batch_hierarchical_race
from jgen.diffusion.hierarchy import hierarchy_config
from jgen.diffusion.importance import TimestepProposal
from jgen.diffusion.importance import fit_proposal
from jgen.diffusion.racing import RaceConfig
from jgen.diffusion.racing import batch_race
from jgen.diffusion.racing import race_config

__all__ = __all__ + (
    "hierarchy",
    "importance",
    "racing",
    "batch_hierarchical_race",
    "hierarchy_config",
    "TimestepProposal",
    "fit_proposal",
    "RaceConfig",
    "batch_race",
    "race_config",
)

# --- Mixed precision ---
from jgen.diffusion.precision import BF16_SCORE_TOLERANCE
from jgen.diffusion.precision import mixed_precision

__all__ = __all__ + (
    "BF16_SCORE_TOLERANCE",
    "mixed_precision",
)
