"""jgen: generative classifiers in JAX.

Classify by Bayes' rule, ``argmax_k log p(x | y=k) + log p(y=k)``, with class-conditional
log-likelihoods from Gaussian models (naive Bayes, LDA, QDA), from conditional diffusion
models (Monte Carlo ELBO) or from any user density; plus the discriminative baseline
(multiclass logistic regression) and the theory used to compare them.

The public API is re-exported here, one name per line; modules starting with an
underscore are private.
"""

# --- Bayes rule, metrics, calibration (jgen.bayes) ---
from jgen.bayes import accuracy
from jgen.bayes import empirical_log_prior
from jgen.bayes import expected_calibration_error
from jgen.bayes import fit_temperature
from jgen.bayes import log_posterior
from jgen.bayes import negative_log_likelihood
from jgen.bayes import predict
from jgen.bayes import temperature_scale
from jgen.bayes import validate_log_prior

# --- Gaussian class-conditionals (jgen.gaussian) ---
from jgen.gaussian import gaussian_nb
from jgen.gaussian import lda
from jgen.gaussian import qda
from jgen.gaussian import sufficient_stats


# --- Discriminative baseline (jgen.logistic) ---
from jgen.logistic import LogisticParams
from jgen.logistic import logistic_regression


# --- Submodules ---
from jgen import bayes
from jgen import diffusion
from jgen import datasets
from jgen import gaussian
from jgen import logistic
from jgen import simulate
from jgen import checkpoint


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


    # logistic
    "LogisticParams",
    "logistic_regression",


    # submodules
    "bayes",
    "diffusion",
    "datasets",
    "gaussian",
    "logistic",
    "simulate",
    "checkpoint",
)
