"""H-consistency bounds: surrogate losses, conditional regrets, transforms, calibration.

See ``docs/bounds.md`` for the definitions, the sources of each bound and what is
verified numerically.
"""

from jgen.bounds.calibration import CalibrationResult
from jgen.bounds.calibration import calibration_function
from jgen.bounds.gaps import ExcessRisks
from jgen.bounds.gaps import GapEstimate
from jgen.bounds.gaps import expected_excess_risks
from jgen.bounds.gaps import linear_minimizability_gap
from jgen.bounds.losses import LOSS_NAMES
from jgen.bounds.losses import comp_sum_loss
from jgen.bounds.losses import constrained_exponential_loss
from jgen.bounds.losses import crammer_singer_loss
from jgen.bounds.losses import get_loss
from jgen.bounds.losses import hinge_loss
from jgen.bounds.losses import logistic_loss
from jgen.bounds.losses import squared_hinge_loss
from jgen.bounds.losses import zero_one_loss
from jgen.bounds.regret import best_conditional_risk
from jgen.bounds.regret import conditional_regret
from jgen.bounds.regret import conditional_risk
from jgen.bounds.regret import zero_one_regret
from jgen.bounds.transforms import inverse_psi
from jgen.bounds.transforms import psi
from jgen.bounds.transforms import zero_one_bound

__all__ = (
    "LOSS_NAMES",
    "CalibrationResult",
    "ExcessRisks",
    "GapEstimate",
    "best_conditional_risk",
    "calibration_function",
    "comp_sum_loss",
    "conditional_regret",
    "conditional_risk",
    "constrained_exponential_loss",
    "crammer_singer_loss",
    "expected_excess_risks",
    "get_loss",
    "hinge_loss",
    "inverse_psi",
    "linear_minimizability_gap",
    "logistic_loss",
    "psi",
    "squared_hinge_loss",
    "zero_one_bound",
    "zero_one_loss",
    "zero_one_regret",
)
