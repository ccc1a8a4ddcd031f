"""Gaussian class-conditional densities: naive Bayes, LDA and QDA on the classifier contract.

Each factory ([`gaussian_nb`][jgen.gaussian_nb], [`lda`][jgen.lda], [`qda`][jgen.qda])
returns a [`jgen.Classifier`][jgen.Classifier]:

* ``fit(x[N, D], y[N], *, num_classes, sample_weight=None, priors=None) -> params``
* ``log_likelihood(params, x[..., D], *, key=None) -> [..., K]``, the exact
  ``log p(x | y=k)`` in nats (``key`` is ignored: the scores are deterministic).

[`fit_stats`][jgen.gaussian.fit_stats] fits any of them from additive
[`GaussianStats`][jgen.gaussian.GaussianStats], so data larger than memory, or sharded
over devices, is fitted by summing the statistics of its chunks (``merge_stats``,
``lax.psum``).

Invalid classes. Eager calls raise ``ValueError`` for an empty class, a QDA class with
one sample, or a covariance that is not positive definite (decided by
[`jgen.gaussian.covariance_ok`][jgen.gaussian.covariance_ok], a relative criterion).
Under ``jit`` such a class (and, for out-of-range labels, every class) gets NaN means;
``log_likelihood`` returns ``-inf`` for it, never NaN.
[`valid_classes`][jgen.gaussian.valid_classes] reports which classes are valid.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.core.contract import Classifier
from jgen.core.contract import check_params_type
from jgen.gaussian.estimate import Family
from jgen.gaussian.estimate import family_of
from jgen.gaussian.estimate import fit as fit_family
from jgen.gaussian.estimate import from_stats
from jgen.gaussian.estimate import lda_family
from jgen.gaussian.estimate import nb_family
from jgen.gaussian.estimate import qda_family
from jgen.gaussian.missing import observed_log_likelihood
from jgen.gaussian.missing import prepare_observed
from jgen.gaussian.missing_fit import fit_missing
from jgen.gaussian.params import GaussianNBParams
from jgen.gaussian.params import LDAParams
from jgen.gaussian.params import QDAParams
from jgen.gaussian.scoring import lda_log_likelihood
from jgen.gaussian.scoring import nb_log_likelihood
from jgen.gaussian.scoring import prepare_x
from jgen.gaussian.scoring import qda_log_likelihood
from jgen.gaussian.stats import GaussianStats

__all__ = ["gaussian_nb", "lda", "qda", "fit_stats"]


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


def _classifier(name: str, hyperparams: dict, params_type: type, spec: Family, score,
                class_axes) -> Classifier:
  """The contract around one family's statistics-to-params map and scoring kernel."""

  def fit(x: ArrayLike, y: ArrayLike, *, num_classes: int,
          sample_weight: ArrayLike | None = None, priors: ArrayLike | None = None,
          observed: ArrayLike | None = None):
    """Fits from ``x [N, D]``, labels ``y [N]`` and optional weights ``[N]``; with a
    boolean ``observed [N, D]``, from the observed entries only (``fit_missing``)."""
    if observed is not None:
      return fit_missing(model, x, y, observed, num_classes=num_classes,
                         sample_weight=sample_weight, priors=priors).params
    return fit_family(spec, x, y, num_classes, sample_weight, priors)

  def log_likelihood(params, x: ArrayLike, *, key: jax.Array | None = None,
                     observed: ArrayLike | None = None) -> jax.Array:
    """``log p(x | y=k)`` ``[..., K]`` for ``x [..., D]``; ``key`` is ignored. With a
    boolean ``observed [..., D]``, ``log p(x_o | y=k)``, the exact marginal of the
    observed entries (unobserved ones may hold NaN)."""
    del key
    check_params_type(params, params_type, name)
    if observed is not None:
      x2, o2, lead = prepare_observed(x, observed, params.means.shape[-1],
                                      params.means.dtype)
      return observed_log_likelihood(params, x2, o2).reshape(lead + params.log_prior.shape)
    x2, lead = prepare_x(params, x)
    return score(params, x2).reshape(lead + params.log_prior.shape)

  model = Classifier(fit=fit, log_likelihood=log_likelihood, log_prior=_params_log_prior,
                    class_axes=class_axes, name=name, hyperparams=hyperparams,
                    params_type=params_type)
  return model


def fit_stats(model: Classifier, stats: GaussianStats, *,
              priors: ArrayLike | None = None) -> Any:
  """Fits a Gaussian family from additive sufficient statistics.

  Args:
    model: ``jgen.gaussian_nb(...)``, ``jgen.lda(...)`` or ``jgen.qda(...)``.
    stats: [`GaussianStats`][jgen.gaussian.GaussianStats] from
      [`jgen.gaussian.sufficient_stats`][jgen.sufficient_stats] (about any fixed shift,
      summed over chunks), with the second moments the family needs: diagonal suffices
      for naive Bayes, pooled for LDA and pooled naive Bayes.
    priors: optional class priors ``[K]``; ``None`` uses the (weighted) class counts.

  Returns:
    The family's params, equal to ``model.fit`` on the concatenated chunks.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> a = jgen.gaussian.sufficient_stats(x[:2], y[:2], 2, full_covariance=False)
    >>> b = jgen.gaussian.sufficient_stats(x[2:], y[2:], 2, full_covariance=False)
    >>> model = jgen.gaussian_nb()
    >>> params = jgen.gaussian.fit_stats(model, jgen.gaussian.merge_stats(a, b))
    >>> tuple(round(float(m), 2) for m in params.means[:, 0])
    (0.1, 2.2)
  """
  return from_stats(family_of(model), stats, priors)


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
    A [`jgen.Classifier`][jgen.Classifier] named ``"gaussian_nb"`` whose params are
    [`GaussianNBParams`][jgen.gaussian.GaussianNBParams].

  Examples:
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
  _checks.check_number(var_smoothing, "var_smoothing")   # finite (inf: all classes tie)
  if not var_smoothing >= 0:
    raise ValueError(f"var_smoothing must be >= 0, got {var_smoothing!r}.")
  var_smoothing, pooled = float(var_smoothing), bool(pooled)
  return _classifier("gaussian_nb", {"var_smoothing": var_smoothing, "pooled": pooled},
                     GaussianNBParams, nb_family(var_smoothing, pooled),
                     nb_log_likelihood, _nb_axes)


def _check_shrinkage(shrinkage) -> float | str:
  """``shrinkage`` as a float in ``[0, 1]`` or ``"auto"``; ``ValueError`` otherwise."""
  if isinstance(shrinkage, str):
    if shrinkage != "auto":
      raise ValueError(f"shrinkage must be a float in [0, 1] or 'auto', got"
                       f" {shrinkage!r}.")
    return "auto"
  if not 0.0 <= _checks.check_number(shrinkage, "shrinkage") <= 1.0:
    raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage!r}.")
  return float(shrinkage)


def lda(shrinkage: float | str = 0.0, solver: str = "lsqr",
        tol: float = 1e-4) -> Classifier:
  r"""Linear discriminant analysis: ``p(x | y=k) = N(x; mu_k, Sigma)``, shared ``Sigma``.

  ``solver="lsqr"`` (the default; ``"eigen"`` is the same model): ``Sigma`` is the
  pooled within-class MLE covariance ``sum_k pi_k C_k`` (ddof 0, ``pi_k`` the class
  frequencies), shrunk toward the scaled identity, ``(1 - s) Sigma + s tr(Sigma)/D I``:
  the model of scikit-learn's ``LinearDiscriminantAnalysis(solver="lsqr",
  shrinkage=s)``. ``shrinkage="auto"`` shrinks each class covariance by its own
  Ledoit-Wolf estimate ([`ledoit_wolf_shrinkage`][jgen.gaussian.ledoit_wolf_shrinkage])
  and pools them with the class priors, as scikit-learn does.

  ``solver="svd"`` is rank-aware (scikit-learn's default solver): it whitens the
  within-class covariance in the subspace the data span and keeps the directions the
  class centres span ([`discriminant_subspace`][jgen.gaussian.discriminant_subspace]),
  so constant or collinear features need no shrinkage. Its posteriors are
  scikit-learn's; ``params.means`` then hold the class centres projected onto the
  kept directions, and ``log_likelihood`` is the density of that model with the
  discarded directions given unit standardised variance (the same for every class).

  Scoring whitens with the inverse Cholesky factor and expands the squared distance
  into one ``[M, D] @ [D, K]`` matmul.

  Args:
    shrinkage: ``s`` in ``[0, 1]``, or ``"auto"`` (Ledoit-Wolf); ``0`` with
      ``solver="svd"``.
    solver: ``"lsqr"``, ``"eigen"`` (the same fit) or ``"svd"``.
    tol: the svd solver's threshold on standardised singular values (scikit-learn's
      ``tol``).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0, 1.0], [0.3, 0.7], [2.0, 2.2], [2.4, 1.9]])
    >>> model = jgen.lda(shrinkage=0.1)
    >>> params = model.fit(x, jnp.array([0, 0, 1, 1]), num_classes=2)
    >>> jgen.predict(model, params, jnp.array([[0.1, 0.9], [2.2, 2.0]]))
    Array([0, 1], dtype=int32)
    >>> x3 = jnp.concatenate([x, jnp.ones((4, 1))], axis=1)  # a constant feature
    >>> svd = jgen.lda(solver="svd")
    >>> params = svd.fit(x3, jnp.array([0, 0, 1, 1]), num_classes=2)
    >>> jgen.predict(svd, params, jnp.array([[0.1, 0.9, 1.0], [2.2, 2.0, 1.0]]))
    Array([0, 1], dtype=int32)

  Returns:
    A [`jgen.Classifier`][jgen.Classifier] named ``"lda"`` whose params are
    [`LDAParams`][jgen.gaussian.LDAParams].
  """
  if solver not in ("lsqr", "eigen", "svd"):
    raise ValueError(f"solver must be 'lsqr', 'eigen' or 'svd', got {solver!r}.")
  if not tol >= 0:
    raise ValueError(f"tol must be >= 0, got {tol!r}.")
  s = _check_shrinkage(shrinkage)
  if solver == "svd" and s != 0.0:
    raise ValueError(f"shrinkage is not supported with solver='svd' (got {shrinkage!r});"
                     " use solver='lsqr' or 'eigen'.")
  solver = "lsqr" if solver == "eigen" else solver
  hyper = {"shrinkage": s} if solver == "lsqr" else {"shrinkage": s, "solver": solver,
                                                     "tol": float(tol)}
  return _classifier("lda", hyper, LDAParams, lda_family(s, solver, float(tol)),
                     lda_log_likelihood, _lda_axes)


def qda(reg_param: float = 0.0, shrinkage: float | str = 0.0) -> Classifier:
  r"""Quadratic discriminant analysis: ``p(x | y=k) = N(x; mu_k, Sigma_k)``.

  ``Sigma_k = (1 - r) S_k + r I``, where ``S_k`` is the class MLE covariance ``C_k``
  (ddof 0) shrunk as scikit-learn's ``shrunk_covariance`` does,
  ``(1 - s) C_k + s tr(C_k)/D I``, or with ``shrinkage="auto"`` by the class's
  Ledoit-Wolf estimate towards its standardised target. ``reg_param=r`` alone is the
  model of scikit-learn's ``QuadraticDiscriminantAnalysis(reg_param=r)`` (its svd
  solver), ``shrinkage=s`` alone that of ``solver="eigen", shrinkage=s``. Every class
  needs at least two samples.

  Args:
    reg_param: ``r`` in ``[0, 1]``.
    shrinkage: ``s`` in ``[0, 1]``, or ``"auto"``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.4], [0.1], [2.0], [3.0], [2.6]])
    >>> model = jgen.qda(reg_param=0.1)
    >>> params = model.fit(x, jnp.array([0, 0, 0, 1, 1, 1]), num_classes=2)
    >>> model.log_likelihood(params, jnp.array([[0.2]])).shape
    (1, 2)

  Returns:
    A [`jgen.Classifier`][jgen.Classifier] named ``"qda"`` whose params are
    [`QDAParams`][jgen.gaussian.QDAParams].
  """
  _checks.check_number(reg_param, "reg_param")
  if not 0.0 <= reg_param <= 1.0:
    raise ValueError(f"reg_param must lie in [0, 1], got {reg_param!r}.")
  s = _check_shrinkage(shrinkage)
  r = float(reg_param)
  hyper = {"reg_param": r} if s == 0.0 else {"reg_param": r, "shrinkage": s}
  return _classifier("qda", hyper, QDAParams, qda_family(r, s),
                     qda_log_likelihood, _qda_axes)
