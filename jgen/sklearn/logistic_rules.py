"""scikit-learn 1.9's rules for ``LogisticRegression``'s parameters, as
``jgen.sklearn.LogisticRegression`` applies them: the penalty its deprecated and new
keywords select, the solver / penalty / ``dual`` combinations it refuses, and its
``ConvergenceWarning`` text per solver (the same messages as scikit-learn's).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["effective_penalty", "check_solver", "convergence_message"]


def effective_penalty(penalty, C, l1_ratio) -> str | None:
  """The penalty scikit-learn 1.9 fits for these parameters (``penalty`` deprecated in
  1.8: ``l1_ratio`` and ``C=np.inf`` say it), with scikit-learn's deprecation warnings."""
  if penalty == "deprecated":
    if l1_ratio is None or l1_ratio == 0:
      if l1_ratio is None:
        warnings.warn("'l1_ratio=None' was deprecated in version 1.8 and will trigger"
                      " an error in 1.10. Use 0<=l1_ratio<=1 instead.", FutureWarning)
      out = "l2"
    else:
      out = "l1" if l1_ratio == 1 else "elasticnet"
    return None if C == np.inf else out
  warnings.warn("'penalty' was deprecated in version 1.8 and will be removed in 1.10."
                " To avoid this warning, leave 'penalty' set to its default value and"
                " use 'l1_ratio' or 'C' instead. Use l1_ratio=0 instead of"
                " penalty='l2', l1_ratio=1 instead of penalty='l1', l1_ratio set to a"
                " float between 0 and 1 instead of penalty='elasticnet', and C=np.inf"
                " instead of penalty=None.", FutureWarning)
  return penalty


def check_solver(solver, penalty, dual) -> None:
  """scikit-learn 1.9's solver / penalty / dual checks, with its messages."""
  if solver not in ("liblinear", "saga") and penalty not in ("l2", None):
    raise ValueError(f"Solver {solver} supports only 'l2' or None penalties, got"
                     f" {penalty} penalty.")
  if solver != "liblinear" and dual:
    raise ValueError(f"Solver {solver} supports only dual=False, got dual={dual}")
  if penalty == "elasticnet" and solver != "saga":
    raise ValueError(f"Only 'saga' solver supports elasticnet penalty, got"
                     f" solver={solver}.")
  if solver == "liblinear" and penalty is None:
    raise ValueError("C=np.inf as well as penalty=None is not supported for the"
                     " liblinear solver")


def convergence_message(solver: str, n_iter: int) -> str:
  """scikit-learn's ConvergenceWarning text for ``solver``."""
  if solver == "newton-cg":
    return (f"newton-cg failed to converge after {n_iter} iteration(s). Increase the"
            " number of iterations.")
  if solver == "newton-cholesky":
    return f"Newton solver did not converge after {n_iter} iterations."
  if solver in ("sag", "saga"):
    return "The max_iter was reached which means the coef_ did not converge"
  if solver == "liblinear":
    return "Liblinear failed to converge, increase the number of iterations."
  return f"lbfgs failed to converge after {n_iter} iteration(s)"
