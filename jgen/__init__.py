"""jgen: generative classifiers in JAX.

Classify by Bayes' rule, ``argmax_k log p(x | y=k) + log p(y=k)``, with class-conditional
log-likelihoods from Gaussian models (naive Bayes, LDA, QDA), from conditional diffusion
models (Monte Carlo ELBO) or from any user density; plus the discriminative baseline
(multiclass logistic regression) and the theory used to compare them.

The public API is re-exported here, one name per line. Packages: ``jgen.core`` (the
contract, Bayes' rule, metrics, calibration), ``jgen.parallel`` (meshes, collectives,
multi-host), the families ``jgen.gaussian``, ``jgen.logistic``, ``jgen.diffusion``, and
``jgen.simulate``, ``jgen.bounds``, ``jgen.datasets``, ``jgen.checkpoint``.
"""

# --- Bayes rule, metrics, calibration (jgen.bayes) ---
from jgen.core.metrics import accuracy
from jgen.core.bayes import empirical_log_prior
from jgen.core.metrics import expected_calibration_error
from jgen.core.calibration import fit_temperature
from jgen.core.metrics import negative_log_likelihood
from jgen.core.calibration import temperature_scale
from jgen.core.bayes import validate_log_prior

# --- Gaussian class-conditionals (jgen.gaussian) ---
from jgen.gaussian import gaussian_nb
from jgen.gaussian import lda
from jgen.gaussian import qda
from jgen.gaussian import sufficient_stats

# --- The classifier contract and its generic Bayes rule (jgen.core) ---
from jgen.core.contract import Classifier
from jgen.core.checks import checked
from jgen.io import load
from jgen.io import save
from jgen.core.inference import log_posterior
from jgen.core.inference import predict
from jgen.core.inference import predict_proba


# --- Discriminative baseline (jgen.logistic) ---
from jgen.logistic import LogisticParams
from jgen.logistic import logistic_regression


# --- Submodules ---
from jgen import diffusion
from jgen import datasets
from jgen import gaussian
from jgen import checkpoint
from jgen import logistic
from jgen import simulate
from jgen import parallel
from jgen import bounds
from jgen import text
from jgen import io


__version__ = "0.1.0"

__all__ = (
    # bayes
    "accuracy",
    "empirical_log_prior",
    "expected_calibration_error",
    "fit_temperature",
    "log_posterior",
    "negative_log_likelihood",
    "predict",
    "temperature_scale",
    "validate_log_prior",
    # gaussian
    "gaussian_nb",
    "lda",
    "qda",
    "sufficient_stats",
    # contract
    "Classifier",
    "checked",
    "load",
    "save",
    "predict_proba",


    # logistic
    "LogisticParams",
    "logistic_regression",


    # submodules
    "core",
    "diffusion",
    "datasets",
    "gaussian",
    "checkpoint",
    "logistic",
    "simulate",
    "parallel",
    "bounds",
    "text",
    "io",
)
