"""Maps from sufficient statistics to each Gaussian family's params, and the eager fit.

A family is described by a ``Family``: its parameter map ``core(stats, log_prior,
reg)`` (a traced hyperparameter ``reg``, so one compilation serves every setting), the
statistics it needs, and the words of its errors. ``fit`` runs the statistics, the
value checks of the data and the map as one compiled program and reads back one small
vector, from which it raises the eager errors (one dispatch and one transfer per fit:
the fixed cost that dominates a 5000 x 32 fit).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.core import bayes
from jgen.core import checks as _checks
from jgen.core.contract import Classifier
from jgen.gaussian.params import GaussianNBParams
from jgen.gaussian.params import LDAParams
from jgen.gaussian.params import QDAParams
from jgen.gaussian.params import precision_cholesky
from jgen.gaussian.params import valid_classes
from jgen.gaussian.solvers import ledoit_wolf_shrinkage
from jgen.gaussian.solvers import standardized_target
from jgen.gaussian.solvers import svd_lda_core
from jgen.gaussian.stats import GaussianStats
from jgen.gaussian.stats import check_stats
from jgen.gaussian.stats import checked_stats
from jgen.gaussian.stats import class_mean_stats
from jgen.gaussian.stats import moments
from jgen.gaussian.stats import prepare_fit

__all__ = ["Family", "nb_family", "lda_family", "qda_family", "family_of", "fit",
           "from_stats", "raise_for_classes"]


def _log_prior(stats: GaussianStats, priors, num_classes: int) -> jax.Array:
  if priors is None:
    return _empirical_log_prior(stats.count)
  return _user_log_prior(priors, num_classes, stats.count.dtype)


def _user_log_prior(priors, num_classes: int, dtype) -> jax.Array:
  priors = jnp.asarray(priors)
  _checks.check_float(priors, "priors")
  if _checks.is_concrete(priors) and np.any(np.asarray(priors) < 0):
    raise ValueError(f"priors must be non-negative probabilities, got {priors}.")
  return bayes.validate_log_prior(jnp.log(priors.astype(dtype)), num_classes)


@jax.jit
def _empirical_log_prior(count: jax.Array) -> jax.Array:
  return jnp.log(count) - jnp.log(jnp.sum(count))


def _mask_invalid(means: jax.Array, valid: jax.Array) -> jax.Array:
  return jnp.where(valid[:, None], means, jnp.nan)


def raise_for_classes(count: np.ndarray, ok: np.ndarray, params, min_count: int,
                      family: str, remedy: str) -> None:
  """The family fits' class errors: too few examples of a class (``count`` below
  ``min_count``), or fitted parameters that are not a proper density (``ok`` false)."""
  for k, c in enumerate(count):
    if not c >= min_count and not (min_count == 1 and c > 0):
      what = "no samples" if c == 0 else f"{int(c)} sample(s)"
      raise ValueError(f"y: class {k} has {what}; {family} needs at least {min_count}"
                       f" per class (num_classes={count.shape[0]}).")
  if not ok.all():
    k = int(np.argmin(ok))
    if isinstance(params, LDAParams):
      what = "the pooled within-class covariance is not positive definite"
    elif isinstance(params, GaussianNBParams):
      what = f"class {k} has a zero (or non-finite) variance"
    else:
      what = f"the covariance of class {k} is not positive definite"
    raise ValueError(f"{family}: {what} (constant or collinear features in x, or"
                     f" non-finite statistics); {remedy}.")


def _nb_core(stats: GaussianStats, log_prior: jax.Array, var_smoothing: float,
             pooled: bool) -> GaussianNBParams:
  means, scatter = moments(stats)
  if scatter.ndim == 3:
    scatter = jnp.diagonal(scatter, axis1=-2, axis2=-1)
  n = stats.count
  total = jnp.sum(n)
  within = jnp.sum(scatter, axis=0)                                   # [D]
  if pooled:
    # Zheng et al. (2023): one diagonal variance for all classes, the pooled
    # within-class MLE sum_k pi_k var_k (ddof 0), plus an absolute epsilon.
    var = jnp.broadcast_to((within / total + var_smoothing)[None, :], means.shape)
  else:
    # scikit-learn GaussianNB: per-class MLE variances plus var_smoothing times the
    # largest per-feature variance of all of x (ddof 0) = (within + between) / N.
    # Classes with non-finite statistics (NaN data under jit) are left out here so
    # that only they, not every class, become invalid.
    ok = jnp.all(jnp.isfinite(means) & jnp.isfinite(scatter), axis=1)
    w = jnp.where(ok, n, 0)
    means_ok = jnp.where(ok[:, None], means, 0)
    total_ok = jnp.sum(w)
    grand = jnp.sum(w[:, None] * means_ok, axis=0) / total_ok
    between = jnp.sum(w[:, None] * (means_ok - grand[None, :]) ** 2, axis=0)
    within_ok = jnp.sum(jnp.where(ok[:, None], scatter, 0), axis=0)
    eps = var_smoothing * jnp.max((within_ok + between) / total_ok)
    # Rounding can leave -1e-17 where a feature is constant within a class.
    var = jnp.maximum(scatter / jnp.where(n > 0, n, 1)[:, None], 0) + eps
  return GaussianNBParams(_mask_invalid(means, n > 0), var, log_prior)


def _lda_core(stats: GaussianStats, log_prior: jax.Array,
              shrinkage: float) -> LDAParams:
  means, scatter = moments(stats)
  d = means.shape[-1]
  cov = jnp.sum(scatter, axis=0) / jnp.sum(stats.count)
  # scikit-learn's shrunk_covariance: (1 - s) C + s tr(C)/D I (linear, so shrinking
  # each class covariance and pooling, as scikit-learn does, gives the same matrix).
  mu = jnp.trace(cov) / d
  cov = (1.0 - shrinkage) * cov + shrinkage * mu * jnp.eye(d, dtype=cov.dtype)
  # Scale of each feature: the count-weighted mean square of the class means.
  w = stats.count / jnp.sum(stats.count)
  mean_sq = jnp.sum(w[:, None] * jnp.where(stats.count[:, None] > 0, means, 0) ** 2,
                    axis=0)
  return LDAParams(_mask_invalid(means, stats.count > 0), precision_cholesky(cov, mean_sq),
                   log_prior)


def _lda_auto_core(stats: GaussianStats, log_prior: jax.Array,
                   shrinkage: jax.Array) -> LDAParams:
  """scikit-learn's ``shrinkage="auto"``: each class covariance shrunk by its own
  Ledoit-Wolf ``shrinkage [K]`` towards its standardised target, pooled with the
  class priors."""
  means, scatter = moments(stats)
  n = stats.count
  cov = scatter / jnp.where(n > 0, n, 1)[:, None, None]               # [K, D, D]
  s = shrinkage[:, None, None]
  cov = (1.0 - s) * cov + s * standardized_target(cov, means * means)
  pi = jnp.exp(log_prior)
  cov = jnp.sum(pi[:, None, None] * jnp.where((n > 0)[:, None, None], cov, 0), axis=0)
  w = n / jnp.sum(n)
  mean_sq = jnp.sum(w[:, None] * jnp.where(n[:, None] > 0, means, 0) ** 2, axis=0)
  return LDAParams(_mask_invalid(means, n > 0), precision_cholesky(cov, mean_sq),
                   log_prior)


def _qda_core(stats: GaussianStats, log_prior: jax.Array, reg) -> QDAParams:
  """``reg = (reg_param, shrinkage)``: a shrinkage ``[]`` towards ``tr(C)/D I`` (a
  float) or ``[K]`` towards the standardised target (Ledoit-Wolf, ``"auto"``)."""
  reg_param, shrinkage = reg
  means, scatter = moments(stats)
  n = stats.count
  d = means.shape[-1]
  cov = scatter / jnp.where(n > 0, n, 1)[:, None, None]
  if jnp.ndim(shrinkage) == 1:
    s = shrinkage[:, None, None]
    cov = (1.0 - s) * cov + s * standardized_target(cov, means * means)
  else:
    mu = jnp.trace(cov, axis1=-2, axis2=-1)[:, None, None] / d
    cov = (1.0 - shrinkage) * cov + shrinkage * mu * jnp.eye(d, dtype=cov.dtype)[None]
  # scikit-learn QuadraticDiscriminantAnalysis: (1 - r) S^2 / n_k + r on the singular
  # values of the centred class data, i.e. (1 - r) C_k + r I with C_k the MLE (ddof 0).
  cov = (1.0 - reg_param) * cov + reg_param * jnp.eye(d, dtype=cov.dtype)[None]
  # One class at a time (lax.map), not one batched LAPACK call (vmap): in a program
  # partitioned over several CPU devices (jit of a fit on sharded data), the batched
  # triangular solve's parallel batch loop waits for XLA CPU threads that the other
  # devices' parts of the same program hold, and the program never returns. The
  # unbatched calls run on the calling thread; at benchmarks/gaussian.py --quick
  # (K=5, D=32) the eager QDA fit time is unchanged (measured both ways).
  prec = jax.lax.map(lambda cm: precision_cholesky(*cm), (cov, means * means))
  return QDAParams(_mask_invalid(means, n >= 2), prec, log_prior)


def _nb_core_per_class(stats: GaussianStats, log_prior: jax.Array,
                       var_smoothing) -> GaussianNBParams:
  return _nb_core(stats, log_prior, var_smoothing, False)


def _nb_core_pooled(stats: GaussianStats, log_prior: jax.Array,
                    var_smoothing) -> GaussianNBParams:
  return _nb_core(stats, log_prior, var_smoothing, True)


class Family(NamedTuple):
  """What turns statistics into one family's params: the parameter map ``core(stats,
  log_prior, reg)`` and what the statistics and the eager errors need."""
  core: Callable
  reg: float
  full_covariance: bool
  pooled: bool
  min_count: int
  family: str
  remedy: str
  # For a regularisation estimated from the data (Ledoit-Wolf): ``(x, y, w,
  # num_classes, reg) -> reg``, run by ``fit`` before the parameter map.
  data_reg: Callable | None = None


# Hyperparameters are traced scalars: one compilation serves every setting.
_core_jit = jax.jit(lambda core, stats, log_prior, reg: core(stats, log_prior, reg),
                    static_argnums=0)


def _fit_program(x, y, w, log_prior, reg, core, num_classes, full_covariance, pooled):
  """The whole eager fit as one program: the params and, packed into one small vector
  so that one transfer reads them, the value summary of the data and what the class
  errors need: ``[xy_summary (3), count[K], valid[K]]``."""
  stats, summary = checked_stats(x, y, w, num_classes, full_covariance, pooled)
  if log_prior is None:
    log_prior = _empirical_log_prior(stats.count)
  params = core(stats, log_prior, reg)
  ok = jnp.broadcast_to(valid_classes(params), stats.count.shape)
  return params, jnp.concatenate([summary, stats.count, ok.astype(x.dtype)])


_fit_program_jit = jax.jit(_fit_program, static_argnums=(5, 6, 7, 8))


def from_stats(spec: Family, stats: GaussianStats, priors):
  if spec.data_reg is not None:
    raise ValueError(f"{spec.family} estimates its shrinkage from the data"
                     " (Ledoit-Wolf), which statistics do not determine: use model.fit.")
  k, _ = check_stats(stats, need_full=spec.full_covariance,
                     need_per_class=not spec.pooled, family=spec.family)
  log_prior = None if priors is None else _user_log_prior(priors, k,
                                                          stats.count.dtype)
  if not all(_checks.is_concrete(a) for a in jax.tree.leaves(stats)):
    if log_prior is None:
      log_prior = _empirical_log_prior(stats.count)
    return _core_jit(spec.core, stats, log_prior, spec.reg)
  # Concrete statistics: the map and what the class errors need as one program (one
  # compilation and one transfer per fit).
  params, count, ok = _from_stats_jit(spec.core, stats, log_prior, spec.reg)
  count, ok = jax.device_get((count, ok))
  raise_for_classes(count, np.asarray(ok), params, spec.min_count, spec.family,
                    spec.remedy)
  return params


def _from_stats(core, stats, log_prior, reg):
  if log_prior is None:
    log_prior = _empirical_log_prior(stats.count)
  params = core(stats, log_prior, reg)
  return params, stats.count, jnp.broadcast_to(valid_classes(params), stats.count.shape)


_from_stats_jit = jax.jit(_from_stats, static_argnums=0)


def fit(spec: Family, x, y, num_classes, sample_weight, priors):
  num_classes, x, y, w, checkable = prepare_fit(x, y, num_classes, sample_weight)
  if spec.data_reg is not None:
    if checkable:   # the estimate needs valid values: check them first
      _checks.check_labels_and_values(x, y, num_classes)
    spec = spec._replace(reg=spec.data_reg(x, y, w, num_classes, spec.reg),
                         data_reg=None)
  if checkable:
    log_prior = None if priors is None else _user_log_prior(priors, num_classes, x.dtype)
    params, packed = _fit_program_jit(x, y, w, log_prior, spec.reg, spec.core,
                                      num_classes, spec.full_covariance, spec.pooled)
    if not isinstance(packed, jax.core.Tracer):
      packed = np.asarray(packed)
      n = _checks.XY_SUMMARY_SIZE
      _checks.raise_for_xy_summary(packed[:n], x, y, num_classes)
      raise_for_classes(packed[n:n + num_classes], packed[n + num_classes:] > 0,
                        params, spec.min_count, spec.family, spec.remedy)
      return params
    _checks.check_labels_and_values(x, y, num_classes)  # concrete inside a trace
  stats = class_mean_stats(x, y, w, num_classes, spec.full_covariance, spec.pooled)
  return from_stats(spec, stats, priors)


def nb_family(var_smoothing: float, pooled: bool) -> Family:
  return Family(_nb_core_pooled if pooled else _nb_core_per_class, var_smoothing,
                 False, pooled, 1, f"gaussian_nb(pooled={pooled})", "use var_smoothing > 0")


def _lw_reg(x, y, w, num_classes, reg):
  return ledoit_wolf_shrinkage(x, y, num_classes, w)


def _qda_lw_reg(x, y, w, num_classes, reg):
  return reg[0], ledoit_wolf_shrinkage(x, y, num_classes, w)


def lda_family(shrinkage, solver: str = "lsqr", tol: float = 1e-4) -> Family:
  if solver == "svd":
    return Family(svd_lda_core, tol, True, True, 1, f"lda(solver='svd', tol={tol})",
                  "check the labels")
  if shrinkage == "auto":
    return Family(_lda_auto_core, None, True, False, 1, "lda(shrinkage='auto')",
                  "use a fixed shrinkage > 0", _lw_reg)
  return Family(_lda_core, shrinkage, True, True, 1, f"lda(shrinkage={shrinkage})",
                "use shrinkage > 0")


def qda_family(reg_param: float, shrinkage=0.0) -> Family:
  name = f"qda(reg_param={reg_param}" + (f", shrinkage={shrinkage!r})" if shrinkage
                                         else ")")
  if shrinkage == "auto":
    return Family(_qda_core, (reg_param, None), True, False, 2, name,
                  "use reg_param > 0", _qda_lw_reg)
  return Family(_qda_core, (reg_param, shrinkage), True, False, 2, name,
                "use reg_param > 0")


def family_of(model: Classifier) -> Family:
  """The statistics-to-params map of a Gaussian family, rebuilt from its name and
  hyperparameters (so it works for a model loaded from disk as well)."""
  h = dict(model.hyperparams)
  if model.name == "gaussian_nb":
    return nb_family(float(h["var_smoothing"]), bool(h["pooled"]))
  if model.name == "lda":
    s = h["shrinkage"]
    return lda_family(s if s == "auto" else float(s), str(h.get("solver", "lsqr")),
                      float(h.get("tol", 1e-4)))
  if model.name == "qda":
    s = h.get("shrinkage", 0.0)
    return qda_family(float(h["reg_param"]), s if s == "auto" else float(s))
  raise TypeError(f"model must be a Gaussian family (gaussian_nb, lda or qda), got"
                  f" {model.name!r}.")
