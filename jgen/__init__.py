r"""jgen: generative classifiers in JAX.

Classify by Bayes' rule, $\operatorname{argmax}_k \log p(x \mid y=k) + \log p(y=k)$, with class-conditional
log-likelihoods from Gaussian models (naive Bayes, LDA, QDA), from conditional diffusion
models (Monte Carlo ELBO) or from any user density; plus the discriminative baseline
(multiclass logistic regression) and the theory used to compare them.

The public API is re-exported here, one name per line. ``import jgen`` loads only jax,
numpy and [`jgen.core`][jgen.core]; the families and their names
([`jgen.qda`][jgen.qda], [`jgen.diffusion`][jgen.diffusion], ...) are imported on first
access (PEP 562 module ``__getattr__``), so flax, optax, orbax, diffrax and scipy load
only when a feature that needs them is used.

Packages: [`jgen.core`][jgen.core] (the contract, Bayes' rule, metrics, calibration),
[`jgen.parallel`][jgen.parallel] (meshes, collectives, multi-host), the families
[`jgen.gaussian`][jgen.gaussian], [`jgen.logistic`][jgen.logistic],
[`jgen.diffusion`][jgen.diffusion], [`jgen.text`][jgen.text], and
[`jgen.simulate`][jgen.simulate], [`jgen.bounds`][jgen.bounds],
[`jgen.datasets`][jgen.datasets], [`jgen.checkpoint`][jgen.checkpoint],
[`jgen.io`][jgen.io], [`jgen.sklearn`][jgen.sklearn].
"""

# --- Bayes rule, metrics, calibration (jgen.core) ---
from jgen.core.metrics import accuracy
from jgen.core.bayes import empirical_log_prior
from jgen.core.metrics import expected_calibration_error
from jgen.core.calibration import fit_temperature
from jgen.core.metrics import negative_log_likelihood
from jgen.core.calibration import temperature_scale
from jgen.core.bayes import validate_log_prior

# --- The classifier contract and its generic Bayes rule (jgen.core) ---
from jgen.core.contract import Classifier
from jgen.core.checks import checked
from jgen.core.inference import log_posterior
from jgen.core.inference import predict
from jgen.core.inference import predict_proba

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what __getattr__ returns, for type checkers and the docs site
  from jgen.gaussian import gaussian_nb
  from jgen.gaussian import lda
  from jgen.gaussian import qda
  from jgen.gaussian import sufficient_stats
  from jgen.io import load
  from jgen.io import save
  from jgen.logistic import LogisticParams
  from jgen.logistic import logistic_regression

# --- Loaded on first access ---
# Gaussian class-conditionals (jgen.gaussian), the discriminative baseline
# (jgen.logistic), save/load (jgen.io) and the subpackages. One plain import per
# branch, so the source says which module each name comes from.


def __getattr__(name: str):
  """Imports a family the first time one of its names is used (PEP 562)."""
  if name in ("gaussian_nb", "lda", "qda", "sufficient_stats"):
    import jgen.gaussian as module
  elif name in ("LogisticParams", "logistic_regression"):
    import jgen.logistic as module
  elif name in ("load", "save"):
    import jgen.io as module
  elif name == "bounds":
    import jgen.bounds as module
  elif name == "checkpoint":
    import jgen.checkpoint as module
  elif name == "datasets":
    import jgen.datasets as module
  elif name == "diffusion":
    import jgen.diffusion as module
  elif name == "gaussian":
    import jgen.gaussian as module
  elif name == "io":
    import jgen.io as module
  elif name == "logistic":
    import jgen.logistic as module
  elif name == "parallel":
    import jgen.parallel as module
  elif name == "simulate":
    import jgen.simulate as module
  elif name == "sklearn":
    import jgen.sklearn as module
  elif name == "text":
    import jgen.text as module
  else:
    raise AttributeError(f"module 'jgen' has no attribute {name!r}")
  value = module if name in _SUBPACKAGES else getattr(module, name)
  globals()[name] = value
  return value


_SUBPACKAGES = ("bounds", "checkpoint", "datasets", "diffusion", "gaussian", "io",
                "logistic", "parallel", "simulate", "sklearn", "text")


def __dir__():
  # ``sklearn`` stays out of ``__all__``: it needs the optional scikit-learn extra, and
  # ``from jgen import *`` must work without it.
  return sorted(set(globals()) | set(__all__) | set(_SUBPACKAGES))


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
