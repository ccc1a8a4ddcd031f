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
from jgen.simulate.learning_curve import MODELS
from jgen.simulate.learning_curve import CurveResult
from jgen.simulate.learning_curve import bucket_size
from jgen.simulate.learning_curve import evaluate_sizes
from jgen.simulate.learning_curve import find_m_star
from jgen.simulate.learning_curve import size_grid
from jgen.simulate.learning_curve import pad_mixture
from jgen.simulate.learning_curve import resolve_model
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
    "MODELS",
    "CurveResult",
    "bucket_size",
    "evaluate_sizes",
    "find_m_star",
    "size_grid",
    "pad_mixture",
    "resolve_model",
    "CurveProgram",
    "curve_program",
    "buckets_for",
    "GDAResult",
    "gda_mixture",
    "augmentation_gaps",
    "engine",
    "gda",
)
