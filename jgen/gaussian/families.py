"""Gaussian class-conditional densities: naive Bayes, LDA and QDA on the classifier contract.

Each factory (:func:`gaussian_nb`, :func:`lda`, :func:`qda`) returns a
:class:`jgen.Classifier`:

* ``fit(x[N, D], y[N], *, num_classes, sample_weight=None, priors=None) -> params``
* ``log_likelihood(params, x[..., D], *, key=None) -> [..., K]``, the exact
  ``log p(x | y=k)`` in nats (``key`` is ignored: the scores are deterministic).

:func:`fit_stats` fits any of them from additive :class:`GaussianStats`, so data larger
than memory, or sharded over devices, is fitted by summing the statistics of its chunks
(``merge_stats``, ``lax.psum``).

Invalid classes. Eager calls raise ``ValueError`` for an empty class, a QDA class with
one sample, or a covariance that is not positive definite (decided by
:func:`jgen.gaussian.covariance_ok`, a relative criterion). Under ``jit`` such a class
(and, for out-of-range labels, every class) gets NaN means; ``log_likelihood`` returns
``-inf`` for it, never NaN. :func:`valid_classes` reports which classes are valid.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import bayes
from jgen.core import checks as _checks
from jgen.core.contract import Classifier
from jgen.core.contract import check_params_type
from jgen.gaussian.params import GaussianNBParams
from jgen.gaussian.params import LDAParams
from jgen.gaussian.params import QDAParams
from jgen.gaussian.params import precision_cholesky
from jgen.gaussian.params import valid_classes_jit
from jgen.gaussian.scoring import lda_log_likelihood
from jgen.gaussian.scoring import nb_log_likelihood
from jgen.gaussian.scoring import prepare_x
from jgen.gaussian.scoring import qda_log_likelihood
from jgen.gaussian.stats import GaussianStats
from jgen.gaussian.stats import check_stats
from jgen.gaussian.stats import fit_stats_of
from jgen.gaussian.stats import moments

__all__ = ["gaussian_nb", "lda", "qda", "fit_stats"]


def _log_prior(stats: GaussianStats, priors, num_classes: int) -> jax.Array:
  if priors is None:
    return _empirical_log_prior(stats.count)
  priors = jnp.asarray(priors)
  _checks.check_float(priors, "priors")
  if _checks.is_concrete(priors) and np.any(np.asarray(priors) < 0):
    raise ValueError(f"priors must be non-negative probabilities, got {priors}.")
  return bayes.validate_log_prior(jnp.log(priors.astype(stats.count.dtype)),
                                  num_classes)


@jax.jit
def _empirical_log_prior(count: jax.Array) -> jax.Array:
  return jnp.log(count) - jnp.log(jnp.sum(count))


def _mask_invalid(means: jax.Array, valid: jax.Array) -> jax.Array:
  return jnp.where(valid[:, None], means, jnp.nan)


def _raise_if_invalid(stats: GaussianStats, params, min_count: int, family: str,
                      remedy: str) -> None:
  """Eager counterpart of the -inf sentinel: name the first bad class and why."""
  if not (_checks.is_concrete(stats.count) and _checks.is_concrete(params.means)):
    return
  # One transfer for both: each device-to-host copy waits for the device.
  count, ok = jax.device_get((stats.count, valid_classes_jit(params)))
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


def _qda_core(stats: GaussianStats, log_prior: jax.Array, reg_param: float) -> QDAParams:
  means, scatter = moments(stats)
  n = stats.count
  d = means.shape[-1]
  cov = scatter / jnp.where(n > 0, n, 1)[:, None, None]
  # scikit-learn QuadraticDiscriminantAnalysis: (1 - r) S^2 / n_k + r on the singular
  # values of the centred class data, i.e. (1 - r) C_k + r I with C_k the MLE (ddof 0).
  cov = (1.0 - reg_param) * cov + reg_param * jnp.eye(d, dtype=cov.dtype)[None]
  return QDAParams(_mask_invalid(means, n >= 2),
                   jax.vmap(precision_cholesky)(cov, means * means), log_prior)


# Hyperparameters are traced scalars: one compilation serves every setting.
_nb_core_jit = jax.jit(_nb_core, static_argnums=(3,))
_lda_core_jit = jax.jit(_lda_core)
_qda_core_jit = jax.jit(_qda_core)


def _params_log_prior(params) -> jax.Array:
  """Every Gaussian family stores its class log-priors ``[K]`` in ``params``."""
  return params.log_prior


def _nb_axes(params: GaussianNBParams) -> GaussianNBParams:
  del params
  return GaussianNBParams(means=0, variances=0, log_prior=0)


def _lda_axes(params: LDAParams) -> LDAParams:
  del params
  return LDAParams(means=0, prec_chol=None, log_prior=0)   # one shared covariance


def _qda_axes(params: QDAParams) -> QDAParams:
  del params
  return QDAParams(means=0, prec_chol=0, log_prior=0)


def _classifier(name: str, hyperparams: dict, params_type: type, from_stats,
                full_covariance: bool, pooled: bool, score, class_axes) -> Classifier:
  """The contract around one family's statistics-to-params map and scoring kernel."""

  def fit(x: ArrayLike, y: ArrayLike, *, num_classes: int,
          sample_weight: ArrayLike | None = None, priors: ArrayLike | None = None):
    """Fits from ``x [N, D]``, labels ``y [N]`` and optional weights ``[N]``."""
    stats = fit_stats_of(x, y, num_classes, full_covariance, pooled, sample_weight)
    return from_stats(stats, priors)

  def log_likelihood(params, x: ArrayLike, *, key: jax.Array | None = None) -> jax.Array:
    """``log p(x | y=k)`` ``[..., K]`` for ``x [..., D]``; ``key`` is ignored."""
    del key
    check_params_type(params, params_type, name)
    x2, lead = prepare_x(params, x)
    return score(params, x2).reshape(lead + params.log_prior.shape)

  return Classifier(fit=fit, log_likelihood=log_likelihood, log_prior=_params_log_prior,
                    class_axes=class_axes, name=name, hyperparams=hyperparams,
                    params_type=params_type)


def _nb_from_stats(var_smoothing: float, pooled: bool):
  family = f"gaussian_nb(pooled={pooled})"

  def from_stats(stats: GaussianStats, priors):
    k, _ = check_stats(stats, need_full=False, need_per_class=not pooled, family=family)
    params = _nb_core_jit(stats, _log_prior(stats, priors, k), var_smoothing, pooled)
    _raise_if_invalid(stats, params, 1, family, "use var_smoothing > 0")
    return params
  return from_stats


def _full_from_stats(core, reg: float, pooled: bool, min_count: int, family: str,
                     remedy: str):

  def from_stats(stats: GaussianStats, priors):
    k, _ = check_stats(stats, need_full=True, need_per_class=not pooled, family=family)
    params = core(stats, _log_prior(stats, priors, k), reg)
    _raise_if_invalid(stats, params, min_count, family, remedy)
    return params
  return from_stats


def _from_stats_of(model: Classifier):
  """The statistics-to-params map of a Gaussian family, rebuilt from its name and
  hyperparameters (so it works for a model loaded from disk as well)."""
  h = dict(model.hyperparams)
  if model.name == "gaussian_nb":
    return _nb_from_stats(float(h["var_smoothing"]), bool(h["pooled"]))
  if model.name == "lda":
    s = float(h["shrinkage"])
    return _full_from_stats(_lda_core_jit, s, True, 1, f"lda(shrinkage={s})",
                            "use shrinkage > 0")
  if model.name == "qda":
    r = float(h["reg_param"])
    return _full_from_stats(_qda_core_jit, r, False, 2, f"qda(reg_param={r})",
                            "use reg_param > 0")
  raise TypeError(f"model must be a Gaussian family (gaussian_nb, lda or qda), got"
                  f" {model.name!r}.")


def fit_stats(model: Classifier, stats: GaussianStats, *,
              priors: ArrayLike | None = None) -> Any:
  """Fits a Gaussian family from additive sufficient statistics.

  Args:
    model: ``jgen.gaussian_nb(...)``, ``jgen.lda(...)`` or ``jgen.qda(...)``.
    stats: :class:`GaussianStats` from :func:`jgen.gaussian.sufficient_stats` (about
      any fixed shift, summed over chunks), with the second moments the family needs:
      diagonal suffices for naive Bayes, pooled for LDA and pooled naive Bayes.
    priors: optional class priors ``[K]``; ``None`` uses the (weighted) class counts.

  Returns:
    The family's params, equal to ``model.fit`` on the concatenated chunks.

  Example:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> a = jgen.gaussian.sufficient_stats(x[:2], y[:2], 2, full_covariance=False)
    >>> b = jgen.gaussian.sufficient_stats(x[2:], y[2:], 2, full_covariance=False)
    >>> model = jgen.gaussian_nb()
    >>> params = jgen.gaussian.fit_stats(model, jgen.gaussian.merge_stats(a, b))
    >>> tuple(round(float(m), 2) for m in params.means[:, 0])
    (0.1, 2.2)
  """
  return _from_stats_of(model)(stats, priors)


def gaussian_nb(var_smoothing: float = 1e-9, pooled: bool = False) -> Classifier:
  r"""Gaussian naive Bayes: ``p(x | y=k) = prod_d N(x_d; mu_kd, v_kd)``.

  Two variants:

  * ``pooled=False`` (scikit-learn ``GaussianNB``): per-class MLE variances
    ``v_kd`` (ddof 0) plus ``var_smoothing * max_d Var(x_d)``, the largest per-feature
    variance of all training data.
  * ``pooled=True`` (Zheng et al., 2023): one diagonal variance for all classes, the
    pooled within-class MLE ``v_d = sum_k pi_k v_kd`` (``pi_k`` the class frequencies),
    plus ``var_smoothing`` as an *absolute* epsilon. The model is linear in ``x``.

  Args:
    var_smoothing: ``>= 0``; relative (``pooled=False``) or absolute (``pooled=True``).
    pooled: share one diagonal variance across classes.

  Returns:
    A :class:`jgen.Classifier` named ``"gaussian_nb"`` whose params are
    :class:`GaussianNBParams`.

  Example:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> nb = jgen.gaussian_nb()
    >>> params = nb.fit(x, y, num_classes=2)
    >>> log_lik = nb.log_likelihood(params, jnp.array([[0.1], [2.1]]))
    >>> jgen.predict(log_lik, params.log_prior)
    Array([0, 1], dtype=int32)

  References:
    Zheng, Xu, Zhang, Sun, Lu. Revisiting Discriminative vs. Generative Classifiers:
    Theory and Implications. ICML 2023.
  """
  if not var_smoothing >= 0:
    raise ValueError(f"var_smoothing must be >= 0, got {var_smoothing!r}.")
  var_smoothing, pooled = float(var_smoothing), bool(pooled)
  return _classifier("gaussian_nb", {"var_smoothing": var_smoothing, "pooled": pooled},
                     GaussianNBParams, _nb_from_stats(var_smoothing, pooled), False,
                     pooled, nb_log_likelihood, _nb_axes)


def lda(shrinkage: float = 0.0) -> Classifier:
  r"""Linear discriminant analysis: ``p(x | y=k) = N(x; mu_k, Sigma)``, shared ``Sigma``.

  ``Sigma`` is the pooled within-class MLE covariance ``sum_k pi_k C_k`` (ddof 0),
  shrunk toward the scaled identity, ``(1 - s) Sigma + s tr(Sigma)/D I``: the model of
  scikit-learn's ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage=s)``. Scoring
  whitens with the inverse Cholesky factor and expands the squared distance into one
  ``[M, D] @ [D, K]`` matmul.

  Args:
    shrinkage: ``s`` in ``[0, 1]``.

  Example:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.3, 0.7], [2.0, 2.2], [2.4, 1.9]])
    >>> model = jgen.lda(shrinkage=0.1)
    >>> params = model.fit(x, jnp.array([0, 0, 1, 1]), num_classes=2)
    >>> jgen.predict(model, params, jnp.array([[0.1, 0.9], [2.2, 2.0]]))
    Array([0, 1], dtype=int32)

  Returns:
    A :class:`jgen.Classifier` named ``"lda"`` whose params are :class:`LDAParams`.
  """
  if not 0.0 <= shrinkage <= 1.0:
    raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage!r}.")
  s = float(shrinkage)
  return _classifier("lda", {"shrinkage": s}, LDAParams,
                     _full_from_stats(_lda_core_jit, s, True, 1, f"lda(shrinkage={s})",
                                      "use shrinkage > 0"),
                     True, True, lda_log_likelihood, _lda_axes)


def qda(reg_param: float = 0.0) -> Classifier:
  r"""Quadratic discriminant analysis: ``p(x | y=k) = N(x; mu_k, Sigma_k)``.

  ``Sigma_k = (1 - r) C_k + r I`` with ``C_k`` the class MLE covariance (ddof 0): the
  model of scikit-learn's ``QuadraticDiscriminantAnalysis(reg_param=r)``. Every class
  needs at least two samples.

  Args:
    reg_param: ``r`` in ``[0, 1]``.

  Example:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.4], [0.1], [2.0], [3.0], [2.6]])
    >>> model = jgen.qda(reg_param=0.1)
    >>> params = model.fit(x, jnp.array([0, 0, 0, 1, 1, 1]), num_classes=2)
    >>> model.log_likelihood(params, jnp.array([[0.2]])).shape
    (1, 2)

  Returns:
    A :class:`jgen.Classifier` named ``"qda"`` whose params are :class:`QDAParams`.
  """
  if not 0.0 <= reg_param <= 1.0:
    raise ValueError(f"reg_param must lie in [0, 1], got {reg_param!r}.")
  r = float(reg_param)
  return _classifier("qda", {"reg_param": r}, QDAParams,
                     _full_from_stats(_qda_core_jit, r, False, 2, f"qda(reg_param={r})",
                                      "use reg_param > 0"),
                     True, False, qda_log_likelihood, _qda_axes)
