"""Core: the classifier contract, Bayes' rule, metrics, calibration and input checks.

Imports nothing else from jgen.
"""

from jgen.core.contract import Classifier
from jgen.core.contract import FitFn
from jgen.core.contract import LogLikelihoodFn
from jgen.core.contract import LogPriorFn
from jgen.core.contract import ClassAxesFn
from jgen.core.contract import check_params_type
from jgen.core.checks import checked
from jgen.core.inference import log_joint
from jgen.core.inference import log_posterior
from jgen.core.inference import predict
from jgen.core.inference import predict_proba
from jgen.core.bayes import empirical_log_prior
from jgen.core.bayes import validate_log_prior
from jgen.core.metrics import accuracy
from jgen.core.metrics import expected_calibration_error
from jgen.core.metrics import negative_log_likelihood
from jgen.core.calibration import fit_temperature
from jgen.core.calibration import temperature_scale
from jgen.core import bayes
from jgen.core import calibration
from jgen.core import checks
from jgen.core import compilation
from jgen.core import contract
from jgen.core import inference
from jgen.core import lbfgs
from jgen.core import metrics
from jgen.core import progress
from jgen.core import plan
from jgen.core import precision

__all__ = (
    "Classifier",
    "FitFn",
    "LogLikelihoodFn",
    "LogPriorFn",
    "ClassAxesFn",
    "check_params_type",
    "checked",
    "log_joint",
    "log_posterior",
    "predict",
    "predict_proba",
    "empirical_log_prior",
    "validate_log_prior",
    "accuracy",
    "expected_calibration_error",
    "negative_log_likelihood",
    "fit_temperature",
    "temperature_scale",
    "bayes",
    "calibration",
    "checks",
    "compilation",
    "contract",
    "inference",
    "lbfgs",
    "metrics",
    "progress",
    "plan",
    "precision",
)
