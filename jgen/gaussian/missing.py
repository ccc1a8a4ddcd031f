"""Exact scores of examples with missing features: the Gaussian marginal of what is seen.

A Gaussian class density marginalises in closed form: with ``o`` the observed features
of an example, ``p(x_o | y=k) = N(x_o; mu_{k,o}, Sigma_{k,oo})``. The kernels here take
a boolean mask ``observed [M, D]`` beside ``x [M, D]`` and compute that density for any
mix of patterns in one compiled program:

* naive Bayes sums the per-feature terms of the observed features only: the
  complete-data kernel itself (``scoring.nb_scores``) with the mask folded in;
* LDA and QDA factor, per example, the covariance with every unobserved row and column
  replaced by the identity's, ``A = [Sigma_oo, 0; 0, I]`` (up to the order of the
  features). Its Cholesky factor is ``chol(Sigma_oo)`` on the observed block and the
  identity elsewhere, so with the residual set to zero on the unobserved features the
  Mahalanobis term and ``log det`` are exactly those of ``Sigma_oo``.

An example with no observed feature scores 0 for every valid class, so its posterior is
the prior. Invalid classes score ``-inf`` as in the complete-data kernels.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.gaussian.params import GaussianNBParams
from jgen.gaussian.params import LDAParams
from jgen.gaussian.params import QDAParams
from jgen.gaussian.params import chol_ok
from jgen.gaussian.params import valid_classes
from jgen.gaussian.scoring import nb_scores
from jgen.gaussian.stats import as_features

__all__ = ["check_observed", "prepare_observed", "covariance_from_prec_chol",
           "observed_log_likelihood", "row_block", "solve_lower"]

_HIGHEST = lax.Precision.HIGHEST
_LOG_2PI = math.log(2.0 * math.pi)
_BLOCK_ELEMENTS = 1 << 21   # rows per lax.map step: about 2M elements of [B, D, D]


def check_observed(observed: ArrayLike, shape: tuple[int, ...]) -> jax.Array:
  """``observed`` as a boolean array of ``shape`` (``x``'s); ``TypeError`` otherwise."""
  o = observed if isinstance(observed, jax.Array) else jnp.asarray(observed)
  if o.dtype != jnp.bool_:
    raise TypeError(f"observed must be a boolean mask (True = observed), got dtype"
                    f" {o.dtype}.")
  if tuple(o.shape) != tuple(shape):
    raise ValueError(f"observed must have the shape of x, {tuple(shape)}, got"
                     f" {tuple(o.shape)}.")
  return o


@jax.jit
def _zero_unobserved(x: jax.Array, o: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``x`` with unobserved entries set to 0, and the number of observed non-finite
  entries, counted (a float32 ``max`` on the CPU can drop a NaN in large arrays)."""
  return jnp.where(o, x, 0), jnp.sum(o & ~jnp.isfinite(x))


def prepare_observed(x: ArrayLike, observed: ArrayLike, d: int, dtype
                     ) -> tuple[jax.Array, jax.Array, tuple[int, ...]]:
  """``(x [M, D] with unobserved entries set to 0, observed [M, D], leading shape)``.

  Unobserved entries may hold anything (NaN included); an observed non-finite entry
  raises ``ValueError`` when called eagerly, as a complete ``x`` does.
  """
  x = as_features(x)
  _checks.check_min_ndim(x, 1, "x")
  _checks.check_last_dim(x, d, "x", "the number of features the model was fitted on")
  o = check_observed(observed, x.shape)
  x0, bad = _zero_unobserved(x, o)
  if _checks.is_concrete(bad):
    if int(bad):
      raise ValueError(f"x contains {int(bad)} non-finite value(s) (NaN or Inf) among"
                       " its observed entries (mark missing entries False in observed).")
    _checks.check_scale(x0, "x", count=d, underflow=False)
  return (x0.reshape(-1, d).astype(dtype), o.reshape(-1, d), x.shape[:-1])


def covariance_from_prec_chol(u: jax.Array) -> jax.Array:
  """``Sigma = (U U^T)^{-1} = U^{-T} U^{-1}`` from upper-triangular factor(s) ``U``."""
  eye = jnp.broadcast_to(jnp.eye(u.shape[-1], dtype=u.dtype), u.shape)
  u_inv = solve_triangular(u, eye, lower=False)
  return jnp.matmul(jnp.swapaxes(u_inv, -1, -2), u_inv, precision=_HIGHEST)


def row_block(m: int, d: int, k: int = 1) -> int:
  """Rows per step of the per-example kernels, keeping ``[B, D, D]`` near 2M elements."""
  return max(1, min(m, _BLOCK_ELEMENTS // max(d * d + k * d, 1)))


def solve_lower(chol: jax.Array, b: jax.Array) -> jax.Array:
  """``chol^{-1} b`` ``[D, R]`` for one lower-triangular ``chol [D, D]``, by forward
  substitution in XLA operations (one row per step).

  Vmapped over examples this is a batched product per step. The LAPACK triangular
  solve that ``solve_triangular`` calls on the CPU took 700 ms for 504 ``64 x 64``
  systems with 65 right-hand sides (forward substitution: 42 ms), and it once hung
  inside a loop (a wait in its parallel batch map that never returned)."""
  def step(i, v):
    row = lax.dynamic_index_in_dim(chol, i, axis=0, keepdims=False)        # [D]
    s = jnp.matmul(row, v, precision=_HIGHEST)          # rows >= i of v are still 0
    new = (lax.dynamic_index_in_dim(b, i, axis=0, keepdims=False) - s) / row[i]
    return lax.dynamic_update_index_in_dim(v, new, i, axis=0)
  return lax.fori_loop(0, chol.shape[0], step, jnp.zeros_like(b))


def _nb_observed(params: GaussianNBParams, x: jax.Array, o: jax.Array) -> jax.Array:
  return nb_scores(params, x, o)


def _marginal_row(sigma: jax.Array, means: jax.Array, x: jax.Array,
                  o: jax.Array) -> jax.Array:
  """``log N(x_o; mu_{k,o}, Sigma_oo)`` ``[K]`` for one example and means ``[K, D]``."""
  d = x.shape[0]
  both = o[:, None] & o[None, :]
  a = jnp.where(both, sigma, jnp.eye(d, dtype=sigma.dtype))
  chol = jnp.linalg.cholesky(a)
  r = jnp.where(o[None, :], x[None, :] - means, 0)                       # [K, D]
  z = solve_lower(chol, r.T)                                             # [D, K]
  half_logdet = jnp.sum(jnp.log(jnp.diagonal(chol)))
  n_obs = jnp.sum(o).astype(x.dtype)
  return -0.5 * jnp.sum(z * z, axis=0) - half_logdet - 0.5 * n_obs * _LOG_2PI


def _lda_observed(params: LDAParams, x: jax.Array, o: jax.Array) -> jax.Array:
  valid = valid_classes(params)
  m, d = x.shape
  k = params.means.shape[0]
  eye = jnp.eye(d, dtype=x.dtype)
  ok = chol_ok(params.prec_chol)
  sigma = covariance_from_prec_chol(jnp.where(ok, params.prec_chol, eye))
  means = jnp.where(valid[:, None], params.means, 0)
  ll = lax.map(lambda args: _marginal_row(sigma, means, *args), (x, o),
               batch_size=row_block(m, d, k))
  return jnp.where(valid[None, :], ll, -jnp.inf)


def _qda_observed(params: QDAParams, x: jax.Array, o: jax.Array) -> jax.Array:
  valid = valid_classes(params)
  m, d = x.shape
  eye = jnp.eye(d, dtype=x.dtype)
  u = jnp.where(valid[:, None, None], params.prec_chol, eye[None])
  sigma = covariance_from_prec_chol(u)                                   # [K, D, D]
  means = jnp.where(valid[:, None], params.means, 0)

  def one_class(args):
    sigma_k, mu_k = args
    row = lambda a: _marginal_row(sigma_k, mu_k[None, :], *a)[0]
    return lax.map(row, (x, o), batch_size=row_block(m, d))

  ll = lax.map(one_class, (sigma, means)).T                               # [M, K]
  return jnp.where(valid[None, :], ll, -jnp.inf)


_KERNELS = {GaussianNBParams: jax.jit(_nb_observed), LDAParams: jax.jit(_lda_observed),
            QDAParams: jax.jit(_qda_observed)}


def observed_log_likelihood(params, x: jax.Array, o: jax.Array) -> jax.Array:
  """``log p(x_o | y=k)`` ``[M, K]`` for prepared ``x [M, D]`` and ``observed [M, D]``."""
  return _KERNELS[type(params)](params, x, o)
