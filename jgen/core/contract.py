r"""The classifier contract: one NamedTuple of pure functions for every family.

Every model family in jgen (Gaussian naive Bayes, LDA, QDA, logistic regression, the
diffusion classifier, language-model label scorers, a user's density) is returned by a
small factory as a [`Classifier`][jgen.Classifier], in the style of optax's
``GradientTransformation`` and blackjax's ``SamplingAlgorithm``:

.. code-block:: python

   model = jgen.qda(reg_param=0.1)
   params = model.fit(x, y, num_classes=10)            # x [N, D], y [N] -> pytree
   scores = model.log_likelihood(params, x_test)        # [..., K]

``params`` is a pytree passed as **data**: jitted paths take it as a traced argument,
so many parameter sets of one architecture (EMA weights, checkpoints, seeds, a vmap
over fits) share one compiled program. The family states, per ``params`` leaf, which
axis (if any) indexes the classes (``Classifier.class_axes``). From that alone the
generic tools work for every family: posteriors and predictions
(``jgen.core.inference``), class-sharded scoring and data-parallel fitting
([`jgen.parallel`][jgen.parallel]), learning curves ([`jgen.simulate`][jgen.simulate]),
save/load.

Discriminative models fill the same slot with logits and set ``conditional=True``: their
scores are already ``log p(y | x)`` up to a per-example constant, so the generic tools
apply no prior.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Protocol

import jax
from jax.typing import ArrayLike

__all__ = [
    "Classifier",
    "FitFn",
    "LogLikelihoodFn",
    "LogPriorFn",
    "ClassAxesFn",
    "check_params_type",
]


class FitFn(Protocol):
  """``fit(x[N, D...], y[N], *, num_classes, sample_weight=None) -> params``.

  ``sample_weight[N]`` (non-negative) weights each example; an example with weight
  zero has no effect on the fit (so padding to a bucket size is a weight of zero).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4], [9.0]]); y = jnp.array([0, 0, 1, 1, 1])
    >>> w = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])  # the last row is padding
    >>> params = jgen.gaussian_nb().fit(x, y, num_classes=2, sample_weight=w)
    >>> round(float(params.means[1, 0]), 2)
    2.2
  """

  def __call__(self, x: ArrayLike, y: ArrayLike, *, num_classes: int,
               sample_weight: ArrayLike | None = None) -> Any:
    ...


class LogLikelihoodFn(Protocol):
  """``log_likelihood(params, x[..., D...], *, key=None) -> [..., K]``.

  ``log p(x | y=k)`` in nats for generative families (an estimate for stochastic
  ones, which need ``key``), logits for ``conditional`` families. Deterministic
  families accept and ignore ``key``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> model = jgen.lda(); params = model.fit(x, y, num_classes=2)
    >>> model.log_likelihood(params, jnp.zeros((3, 5, 1))).shape  # any leading shape
    (3, 5, 2)
  """

  def __call__(self, params: Any, x: ArrayLike, *,
               key: jax.Array | None = None) -> jax.Array:
    ...


class LogPriorFn(Protocol):
  """``log_prior(params) -> [K]`` log class priors, or ``None`` (conditional scores).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 1, 1, 1])
    >>> model = jgen.gaussian_nb(); params = model.fit(x, y, num_classes=2)
    >>> tuple(round(float(p), 2) for p in jnp.exp(model.log_prior(params)))
    (0.25, 0.75)
    >>> jgen.logistic_regression().conditional  # its log_prior returns None
    True
  """

  def __call__(self, params: Any) -> jax.Array | None:
    ...


class ClassAxesFn(Protocol):
  """``class_axes(params) -> pytree`` of ``int | None`` with ``params``' structure.

  Each leaf is the axis of that ``params`` leaf that indexes the classes (``0`` for
  ``means [K, D]``, ``1`` for logistic ``weights [D, K]``), or ``None`` for a leaf
  shared by all classes (LDA's ``prec_chol``, a denoiser's weights).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> model = jgen.lda(); params = model.fit(x, y, num_classes=2)
    >>> model.class_axes(params)  # the shared precision factor has no class axis
    LDAParams(means=0, prec_chol=None, log_prior=0)
  """

  def __call__(self, params: Any) -> Any:
    ...


class Classifier(NamedTuple):
  """A classifier family: pure functions plus what generic tools need to know.

  Attributes:
    fit: [`FitFn`][jgen.core.FitFn].
    log_likelihood: [`LogLikelihoodFn`][jgen.core.LogLikelihoodFn].
    log_prior: [`LogPriorFn`][jgen.core.LogPriorFn].
    class_axes: [`ClassAxesFn`][jgen.core.ClassAxesFn].
    name: family name, e.g. ``"qda"``.
    hyperparams: the factory's keyword arguments, e.g. ``{"reg_param": 0.1}``;
      ``factory(**hyperparams)`` rebuilds the family (used by save/load).
    params_type: the type ``fit`` returns (checked by ``log_likelihood``).
    conditional: scores are logits, ``log p(y | x)`` up to a constant; no prior.
    stochastic: ``log_likelihood`` needs ``key`` (Monte Carlo estimates).

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> def fit(x, y, *, num_classes, sample_weight=None):  # class means, unit variance
    ...   w = jnp.ones(y.shape) if sample_weight is None else sample_weight
    ...   onehot = jax.nn.one_hot(y, num_classes) * w[:, None]
    ...   return (onehot.T @ x) / onehot.sum(0)[:, None]
    >>> def log_likelihood(means, x, *, key=None):
    ...   return -0.5 * jnp.sum((x[..., None, :] - means) ** 2, axis=-1)
    >>> model = jgen.Classifier(
    ...     fit=fit, log_likelihood=log_likelihood,
    ...     log_prior=lambda means: jnp.zeros(means.shape[0]) - jnp.log(means.shape[0]),
    ...     class_axes=lambda means: 0, name="centroids", hyperparams={},
    ...     params_type=jax.Array)
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> jgen.predict(model, model.fit(x, y, num_classes=2), jnp.array([[0.3], [1.9]]))
    Array([0, 1], dtype=int32)
  """
  fit: FitFn
  log_likelihood: LogLikelihoodFn
  log_prior: LogPriorFn
  class_axes: ClassAxesFn
  name: str
  hyperparams: Mapping[str, Any]
  params_type: type
  conditional: bool = False
  stochastic: bool = False


def check_params_type(params: Any, params_type: type, family: str) -> None:
  """Raise ``TypeError`` naming the family when ``params`` came from another one.

  Args:
    params: a params pytree, e.g. what a family's ``fit`` returned.
    params_type: the type the family's ``fit`` returns (``Classifier.params_type``).
    family: the family's name, used in the message.

  Raises:
    TypeError: ``params`` is not an instance of ``params_type``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> params = jgen.gaussian_nb().fit(x, y, num_classes=2)
    >>> jgen.core.check_params_type(params, jgen.gaussian.GaussianNBParams, "gaussian_nb")
    >>> jgen.core.check_params_type(params, jgen.gaussian.QDAParams, "qda")
    Traceback (most recent call last):
        ...
    TypeError: params must be QDAParams (from qda's fit), got GaussianNBParams.
  """
  if not isinstance(params, params_type):
    raise TypeError(
        f"params must be {params_type.__name__} (from {family}'s fit), got"
        f" {type(params).__name__}.")
