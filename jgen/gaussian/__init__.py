"""Gaussian class-conditional densities: naive Bayes (two variants), LDA and QDA, with
additive sufficient statistics and their data-parallel and class-sharded paths.
"""

from jgen.gaussian.stats import GaussianStats
from jgen.gaussian.stats import sufficient_stats
from jgen.gaussian.stats import merge_stats
from jgen.gaussian.families import GaussianNBParams
from jgen.gaussian.families import LDAParams
from jgen.gaussian.families import QDAParams
from jgen.gaussian.families import GaussianClassifier
from jgen.gaussian.families import gaussian_nb
from jgen.gaussian.families import lda
from jgen.gaussian.families import qda
from jgen.gaussian.families import valid_classes
from jgen.gaussian.families import covariance_ok
from jgen.gaussian.sharded import fit_data_parallel
from jgen.gaussian.sharded import sufficient_stats_data_parallel
from jgen.gaussian.sharded import class_sharded_log_likelihood
from jgen.gaussian.sharded import classify_class_sharded

__all__ = (
    "GaussianStats",
    "sufficient_stats",
    "merge_stats",
    "GaussianNBParams",
    "LDAParams",
    "QDAParams",
    "GaussianClassifier",
    "gaussian_nb",
    "lda",
    "qda",
    "valid_classes",
    "covariance_ok",
    "fit_data_parallel",
    "sufficient_stats_data_parallel",
    "class_sharded_log_likelihood",
    "classify_class_sharded",
)
