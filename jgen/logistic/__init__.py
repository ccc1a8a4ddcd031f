"""Multiclass logistic regression, the discriminative baseline (L-BFGS, Newton and
minibatch fits compiled by JAX; scipy's L-BFGS-B and LIBLINEAR's trust-region Newton
method on the host), on the classifier contract (``conditional=True``: its scores are
logits).
"""

from jgen.logistic.model import ConvergenceWarning
from jgen.logistic.model import FitInfo
from jgen.logistic.model import LogisticParams
from jgen.logistic.model import logistic_regression
from jgen.logistic.model import fit_minibatch
from jgen.logistic.model import objective
from jgen.logistic.batched import batched_logistic_regression
from jgen.logistic.host import fit_host
from jgen.logistic.host import value_and_grad_host
from jgen.logistic.trust_region import fit_trust_region

__all__ = (
    "ConvergenceWarning",
    "FitInfo",
    "LogisticParams",
    "logistic_regression",
    "fit_minibatch",
    "objective",
    "batched_logistic_regression",
    "fit_host",
    "value_and_grad_host",
    "fit_trust_region",
)
