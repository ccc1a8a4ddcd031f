"""Gaussian class-conditional densities: naive Bayes (two variants), LDA and QDA.

Each factory returns a [`jgen.Classifier`][jgen.Classifier]; additive sufficient
statistics ([`sufficient_stats`][jgen.sufficient_stats],
[`merge_stats`][jgen.gaussian.merge_stats], [`fit_stats`][jgen.gaussian.fit_stats]) fit
data that is chunked or sharded over devices.
"""

from jgen.gaussian.stats import GaussianStats
from jgen.gaussian.stats import sufficient_stats
from jgen.gaussian.stats import merge_stats
from jgen.gaussian.stats import streamed_diag_stats
from jgen.gaussian.params import GaussianNBParams
from jgen.gaussian.params import LDAParams
from jgen.gaussian.params import QDAParams
from jgen.gaussian.params import valid_classes
from jgen.gaussian.params import covariance_ok
from jgen.gaussian.params import precision_cholesky
from jgen.gaussian.scoring import nb_scores
from jgen.gaussian.scoring import qda_scores
from jgen.gaussian.families import gaussian_nb
from jgen.gaussian.families import lda
from jgen.gaussian.families import qda
from jgen.gaussian.families import fit_stats
from jgen.gaussian.sharded import sufficient_stats_data_parallel
from jgen.gaussian.solvers import DiscriminantSubspace
from jgen.gaussian.solvers import discriminant_subspace
from jgen.gaussian.solvers import ledoit_wolf_shrinkage
from jgen.gaussian.solvers import subspace_from_moments
from jgen.gaussian.solvers import svd_lda_from_moments
from jgen.gaussian.missing_fit import MissingFitResult
from jgen.gaussian.missing_fit import fit_missing

__all__ = (
    "GaussianStats",
    "sufficient_stats",
    "merge_stats",
    "streamed_diag_stats",
    "GaussianNBParams",
    "LDAParams",
    "QDAParams",
    "valid_classes",
    "covariance_ok",
    "precision_cholesky",
    "nb_scores",
    "qda_scores",
    "gaussian_nb",
    "lda",
    "qda",
    "fit_stats",
    "sufficient_stats_data_parallel",
    "DiscriminantSubspace",
    "discriminant_subspace",
    "ledoit_wolf_shrinkage",
    "subspace_from_moments",
    "svd_lda_from_moments",
    "MissingFitResult",
    "fit_missing",
)
