"""Theory-validation simulations: Gaussian mixtures with exact Bayes errors, the
learning-curve engine and m* search of Zheng et al. (ICML 2023), and the generative data
augmentation simulation of Zheng et al. (NeurIPS 2023).
"""

from jgen.simulate.mixtures import GaussianMixture
from jgen.simulate.mixtures import zheng_mixture
from jgen.simulate.mixtures import sample
from jgen.simulate.mixtures import class_log_likelihood
from jgen.simulate.mixtures import true_log_posterior
from jgen.simulate.mixtures import bayes_error
from jgen.simulate.mixtures import bayes_error_mc
from jgen.simulate.mixtures import precision_times
from jgen.simulate.mixtures import line_error
from jgen.simulate.difficulty import fixed_difficulty_mixture
from jgen.simulate.difficulty import ar1_cholesky
from jgen.simulate.difficulty import nb_asymptotic_error
from jgen.simulate.difficulty import nb_population_mixture
from jgen.simulate.difficulty import separation_for_error
from jgen.simulate.learning_curve import MODELS
from jgen.simulate.learning_curve import CurveResult
from jgen.simulate.learning_curve import bucket_size
from jgen.simulate.learning_curve import evaluate_sizes
from jgen.simulate.learning_curve import find_m_star
from jgen.simulate.learning_curve import size_grid
from jgen.simulate.learning_curve import pad_mixture
from jgen.simulate.learning_curve import resolve_model
from jgen.simulate.resolved import MStar
from jgen.simulate.resolved import resolved_grid
from jgen.simulate.resolved import rule_error
from jgen.simulate.resolved import boot_indices
from jgen.simulate.resolved import bootstrap_m_star
from jgen.simulate.resolved import growth_fit
from jgen.simulate.resolved import scan_until
from jgen.simulate.engine import CurveProgram
from jgen.simulate.engine import curve_program
from jgen.simulate.engine import buckets_for
from jgen.simulate.gda import GDAResult
from jgen.simulate.gda import gda_mixture
from jgen.simulate.gda import augmentation_gaps
from jgen.simulate import engine
from jgen.simulate import gda

__all__ = (
    "GaussianMixture",
    "zheng_mixture",
    "sample",
    "class_log_likelihood",
    "true_log_posterior",
    "bayes_error",
    "bayes_error_mc",
    "precision_times",
    "line_error",
    "fixed_difficulty_mixture",
    "ar1_cholesky",
    "nb_asymptotic_error",
    "nb_population_mixture",
    "separation_for_error",
    "MODELS",
    "CurveResult",
    "bucket_size",
    "evaluate_sizes",
    "find_m_star",
    "size_grid",
    "pad_mixture",
    "resolve_model",
    "MStar",
    "resolved_grid",
    "rule_error",
    "boot_indices",
    "bootstrap_m_star",
    "growth_fit",
    "scan_until",
    "CurveProgram",
    "curve_program",
    "buckets_for",
    "GDAResult",
    "gda_mixture",
    "augmentation_gaps",
    "engine",
    "gda",
)
