r"""Generative data augmentation on a two-class Gaussian mixture (Zheng et al., 2023).

The simulation of "Toward Understanding Generative Data Augmentation" (NeurIPS 2023;
``main_simulation_bGMM.py`` in ML-GSAI/Understanding-GDA):

* data: two balanced classes, means $\pm\mu$ with $\mu = d^{-1/2} 1_d$,
  isotropic standard deviation $\sigma = 0.6$; labels $s = 2y - 1$;
* generator: a generative [`jgen.Classifier`][jgen.Classifier] (by default the pooled
  Gaussian naive Bayes, ``jgen.gaussian_nb(pooled=True)``) fitted on the ``m`` real
  examples, from which ``gamma * m`` balanced synthetic examples are drawn;
* learner: $\theta = \frac{1}{N}\sum_i s_i x_i$ over real and synthetic examples;
* measured: the generalisation gap ``|train loss - test loss|`` of the 0-1 loss of
  ``sign(theta . x)`` and of the negative log-likelihood
  $\lVert x - s\theta\rVert^2 / (2\sigma^2)$, the train loss taken on the
  augmented set and the test loss on 10,000 fresh points.

Every ``gamma`` of a sweep uses a prefix of one synthetic pool per repetition (sizes are
masks, not shapes), so a sweep over ``gamma`` is one compiled program per ``(d, m)``;
repetitions are vmapped in batches (``lax.map`` with ``batch_size``).

References:
  Zheng, Wu, Liu, Xu, Lu, Zhu. Toward Understanding Generative Data Augmentation.
  NeurIPS 2023. Code: github.com/ML-GSAI/Understanding-GDA.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen import gaussian
from jgen.core.contract import Classifier
from jgen.simulate import mixtures

__all__ = ["GDAResult", "gda_mixture", "gaussian_sampler", "augmentation_losses",
           "augmentation_gaps", "fit_rate"]


class GDAResult(NamedTuple):
  """Per repetition and ``gamma`` (``[R, G]`` each): train and test losses, and gaps.

  Examples:
    >>> import jax, numpy as np
    >>> from jgen.simulate import gda
    >>> res = gda.augmentation_gaps(jax.random.key(0), dim=2, num_real=10,
    ...                             gammas=[0, 5], num_reps=4, num_test=100)
    >>> bool(np.allclose(res.gap_nll, np.abs(res.train_nll - res.test_nll)))
    True
  """
  train_01: np.ndarray
  test_01: np.ndarray
  train_nll: np.ndarray
  test_nll: np.ndarray
  gap_01: np.ndarray
  gap_nll: np.ndarray


def gda_mixture(dim: int, sigma: float = 0.6, *, dtype=jnp.float32
                ) -> mixtures.GaussianMixture:
  """Means ``-+ 1/sqrt(d)`` (classes 0, 1) in every coordinate, variance ``sigma^2``.

  Examples:
    >>> from jgen.simulate.gda import gda_mixture
    >>> gda_mixture(4).means.tolist()
    [[-0.5, -0.5, -0.5, -0.5], [0.5, 0.5, 0.5, 0.5]]
  """
  if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
    raise ValueError(f"d (dim) must be an int >= 1, got {dim!r}.")
  if not sigma > 0:
    raise ValueError(f"sigma must be > 0, got {sigma!r}.")
  mu = np.full(dim, 1.0 / math.sqrt(dim))
  return mixtures.GaussianMixture(jnp.asarray(np.stack([-mu, mu]), dtype),
                                  jnp.full((dim,), sigma**2, dtype))


def gaussian_sampler(key: jax.Array, params: Any, labels: jax.Array) -> jax.Array:
  """Draws ``x [N, D]`` from a fitted Gaussian naive Bayes (``means``, ``variances``).

  Examples:
    >>> import jax, jax.numpy as jnp, jgen
    >>> from jgen.simulate.gda import gaussian_sampler
    >>> nb = jgen.gaussian_nb(pooled=True)
    >>> p = nb.fit(jnp.array([[0.0], [1.0], [4.0], [5.0]]), jnp.array([0, 0, 1, 1]),
    ...            num_classes=2)
    >>> gaussian_sampler(jax.random.key(0), p, jnp.array([0, 1, 1])).shape
    (3, 1)
  """
  mean, var = params.means[labels], params.variances[labels]
  return mean + jnp.sqrt(var) * jax.random.normal(key, mean.shape, mean.dtype)


def augmentation_losses(x, s, weight, x_test, s_test, sigma):
  """Losses of the mean learner on weighted training data, for each weight column.

  Args:
    x: ``[N, D]`` training inputs; s: ``[N]`` labels in ``{-1, +1}``.
    weight: ``[G, N]`` 0/1 masks (one augmented set per row).
    x_test: ``[T, D]``; s_test: ``[T]``; sigma: noise scale of the NLL.

  Returns:
    ``(train_01, test_01, train_nll, test_nll)``, each ``[G]``. Predictions are
    ``1`` where ``theta . x >= 0`` (the reference's tie rule).

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.simulate.gda import augmentation_losses
    >>> x = jnp.array([[1.0], [-1.0]]); s = jnp.array([1.0, -1.0])
    >>> out = augmentation_losses(x, s, jnp.ones((1, 2)), x, s, 1.0)
    >>> [float(v[0]) for v in out]
    [0.0, 0.0, 0.0, 0.0]
  """
  total = jnp.sum(weight, -1)
  theta = (weight * s[None, :]) @ x / total[:, None]                       # [G, D]

  def losses(xx, ss):
    margin = ss[:, None] * (xx @ theta.T)                                   # [N, G]
    wrong = jnp.where(ss[:, None] > 0, margin < 0, margin <= 0).astype(xx.dtype)
    sq = (jnp.sum(xx * xx, -1)[:, None] - 2 * margin
          + jnp.sum(theta * theta, -1)[None, :]) / (2 * sigma**2)
    return wrong, sq

  wrong, sq = losses(x, s)
  train_01 = jnp.sum(weight * wrong.T, -1) / total
  train_nll = jnp.sum(weight * sq.T, -1) / total
  wrong_t, sq_t = losses(x_test, s_test)
  return train_01, jnp.mean(wrong_t, 0), train_nll, jnp.mean(sq_t, 0)


@functools.partial(jax.jit, static_argnames=("generator", "sampler", "num_real",
                                              "sizes", "num_test", "batch_size"))
def _run(keys, mixture, sigma, *, generator, sampler, num_real, sizes, num_test,
         batch_size):
  pool = max(max(sizes), 1)

  def one(key):
    k_real, k_syn, k_test = jax.random.split(key, 3)
    x, y = mixtures.sample(k_real, mixture, num_real)
    params = generator.fit(x, y, num_classes=2)
    y_syn = (jnp.arange(pool) % 2).astype(jnp.int32)
    x_syn = sampler(k_syn, params, y_syn)
    x_all = jnp.concatenate([x, x_syn])
    s_all = (2 * jnp.concatenate([y, y_syn]) - 1).astype(x.dtype)
    mask = jnp.arange(pool)[None, :] < jnp.asarray(sizes)[:, None]
    weight = jnp.concatenate([jnp.ones((len(sizes), num_real), x.dtype),
                              mask.astype(x.dtype)], axis=1)
    x_test, y_test = mixtures.sample(k_test, mixture, num_test)
    return augmentation_losses(x_all, s_all, weight, x_test,
                               (2 * y_test - 1).astype(x.dtype), sigma)

  return jax.lax.map(one, keys, batch_size=batch_size)


class _Hashable:
  """Wraps a Classifier (whose hyperparams dict is unhashable) as a static argument."""

  def __init__(self, model):
    self.model = model
    self.fit = model.fit

  def __hash__(self):
    return id(self.model)

  def __eq__(self, other):
    return isinstance(other, _Hashable) and other.model is self.model


_DEFAULT_GENERATOR = gaussian.gaussian_nb(var_smoothing=1e-9, pooled=True)


def augmentation_gaps(key: jax.Array, *, dim: int, num_real: int, gammas, num_reps=1000,
                      sigma: float = 0.6, num_test: int = 10_000,
                      generator: Classifier | None = None,
                      sampler: Callable[..., jax.Array] = gaussian_sampler,
                      batch_size: int = 50, dtype=jnp.float32) -> GDAResult:
  """Generalisation gaps of the mean learner with ``gamma * m`` synthetic examples.

  Args:
    key: PRNG key (repetition ``r`` uses the ``r``-th split).
    dim: ``d >= 1``; num_real: ``m >= 2`` real examples.
    gammas: augmentation ratios ``[G]``, each ``>= 0`` (``int(gamma * m)`` synthetic).
    num_reps: repetitions ``>= 1``.
    generator: a generative [`jgen.Classifier`][jgen.Classifier] (default pooled
      Gaussian NB).
    sampler: ``sampler(key, params, labels [N]) -> x [N, D]`` for ``generator``.
    batch_size: repetitions vmapped together.

  Returns:
    [`GDAResult`][jgen.simulate.GDAResult] of ``[R, G]`` NumPy arrays.

  Examples:
    >>> import jax
    >>> from jgen.simulate import gda
    >>> res = gda.augmentation_gaps(jax.random.key(0), dim=2, num_real=10,
    ...                             gammas=[0, 5], num_reps=4, num_test=100)
    >>> res.gap_nll.shape
    (4, 2)
  """
  gammas = np.asarray(gammas, np.float64)
  if gammas.ndim != 1 or gammas.size == 0 or np.any(~np.isfinite(gammas)) or np.any(
      gammas < 0):
    raise ValueError(f"gamma values must be finite and >= 0, got {gammas.tolist()}.")
  for name, v, lo in (("d (dim)", dim, 1), ("num_real (m)", num_real, 2),
                      ("num_reps", num_reps, 1), ("num_test", num_test, 1)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
      raise ValueError(f"{name} must be an int >= {lo}, got {v!r}.")
  if generator is not None and generator.conditional:
    raise TypeError(f"generator must be a generative family, got the conditional"
                    f" {generator.name!r}.")
  mixture = gda_mixture(dim, sigma, dtype=dtype)
  sizes = tuple(int(g * num_real) for g in gammas)
  out = _run(jax.random.split(key, num_reps), mixture, float(sigma),
             generator=_Hashable(generator or _DEFAULT_GENERATOR), sampler=sampler,
             num_real=int(num_real), sizes=sizes, num_test=int(num_test),
             batch_size=int(min(batch_size, num_reps)))
  tr01, te01, trn, ten = (np.asarray(a, np.float64) for a in out)
  return GDAResult(tr01, te01, trn, ten, np.abs(tr01 - te01), np.abs(trn - ten))


def fit_rate(xs, ys) -> dict:
  """Least-squares slope of ``log y`` against ``log x`` (the rate), with ``R^2``.

  Examples:
    >>> from jgen.simulate.gda import fit_rate
    >>> round(fit_rate([1, 4, 16], [1.0, 0.5, 0.25])["slope"], 6)
    -0.5
  """
  lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
  slope, intercept = np.polyfit(lx, ly, 1)
  resid = ly - (slope * lx + intercept)
  ss = float(np.sum((ly - ly.mean()) ** 2))
  return dict(slope=float(slope), intercept=float(intercept),
              r2=float(1 - np.sum(resid**2) / ss) if ss > 0 else None)
