"""Multiclass logistic regression, the discriminative baseline (L-BFGS and minibatch),
on the classifier contract (``conditional=True``: its scores are logits).
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
)
