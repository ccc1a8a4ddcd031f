"""Multiclass logistic regression, the discriminative baseline (L-BFGS and minibatch),
with its data-parallel fit.
"""

from jgen.logistic.model import ConvergenceWarning
from jgen.logistic.model import FitInfo
from jgen.logistic.model import LogisticParams
from jgen.logistic.model import LogisticRegression
from jgen.logistic.model import logistic_regression
from jgen.logistic.sharded import fit_logistic_data_parallel

__all__ = (
    "ConvergenceWarning",
    "FitInfo",
    "LogisticParams",
    "LogisticRegression",
    "logistic_regression",
    "fit_logistic_data_parallel",
)
