r"""An exact oracle: one Markov chain per class, and a toy LM that is those chains.

Class ``k`` emits ``x_1 ~ pi_k``, ``x_t ~ P_k[x_{t-1}]`` over ``m`` symbols, so
``log p(x | k) = log pi_k(x_1) + sum_t log P_k[x_{t-1}, x_t]`` and the Bayes posterior
are closed forms. ``MarkovLM`` is a causal LM with the scorers' call signature
over the vocabulary ``[K class tokens, m symbols]``: its logits at a position are the
log transition row of the class named by the visible class tokens (their normalised
count, so a padding token leaking into the visible context, id ``0`` = class 0, changes
the result). Scoring ``x`` after the label prompt ``[k]`` through the noisy-channel path
must reproduce ``log p(x | k)`` exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import ArrayLike

from jgen.text import layers

__all__ = ["MarkovChains", "random_chains", "sample_sequences", "chain_log_likelihood",
           "transition_counts", "MarkovLM"]

_IMPOSSIBLE = -1e30  # finite log 0, so one-hot mixing never forms 0 * inf


class MarkovChains(NamedTuple):
  """``log_init [K, m]`` and ``log_trans [K, m, m]`` (rows sum to one in probability)."""
  log_init: jax.Array
  log_trans: jax.Array


def random_chains(key: jax.Array, num_classes: int, num_symbols: int,
                  concentration: float = 1.0, dtype=jnp.float32) -> MarkovChains:
  """Dirichlet(``concentration``) initial distributions and transition rows.

  Examples:
    >>> import jax
    >>> c = random_chains(jax.random.key(0), 3, 4)
    >>> c.log_trans.shape
    (3, 4, 4)
  """
  k_init, k_trans = jax.random.split(key)
  alpha = jnp.full((num_symbols,), concentration, dtype)
  init = jax.random.dirichlet(k_init, alpha, (num_classes,), dtype)
  trans = jax.random.dirichlet(k_trans, alpha, (num_classes, num_symbols), dtype)
  return MarkovChains(jnp.log(init), jnp.log(trans))


def sample_sequences(key: jax.Array, chains: MarkovChains, y: ArrayLike, length: int
                     ) -> jax.Array:
  """Symbols ``int32 [N, length]`` with sequence ``i`` drawn from chain ``y[i]``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> c = random_chains(jax.random.key(0), 2, 3)
    >>> sample_sequences(jax.random.key(1), c, jnp.array([0, 1]), 5).shape
    (2, 5)
  """
  y = jnp.asarray(y)

  def one(k, c):
    keys = jax.random.split(k, length)
    first = jax.random.categorical(keys[0], chains.log_init[c])

    def step(prev, kk):
      nxt = jax.random.categorical(kk, chains.log_trans[c, prev])
      return nxt, nxt

    _, rest = jax.lax.scan(step, first, keys[1:])
    return jnp.concatenate([first[None], rest]).astype(jnp.int32)

  return jax.vmap(one)(jax.random.split(key, y.shape[0]), y)


def chain_log_likelihood(chains: MarkovChains, x: ArrayLike) -> jax.Array:
  """Closed-form ``log p(x | k)``: ``[..., K]`` for symbols ``x [..., T]`` (``-1`` pads).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> c = random_chains(jax.random.key(0), 2, 3)
    >>> chain_log_likelihood(c, jnp.array([0, 2, 1, -1])).shape
    (2,)
  """
  x = jnp.asarray(x)
  valid = x >= 0
  s = jnp.maximum(x, 0)
  init = jnp.moveaxis(chains.log_init[:, s[..., 0]], 0, -1)
  trans = chains.log_trans[:, s[..., :-1], s[..., 1:]]  # [K, ..., T-1]
  trans = jnp.where(valid[..., 1:, None], jnp.moveaxis(trans, 0, -1), 0.0)  # [..., T-1, K]
  return init + trans.sum(-2)


def transition_counts(x: ArrayLike, num_symbols: int) -> jax.Array:
  """Sufficient statistics ``float32 [..., m + m*m]``: one-hot ``x_1``, bigram counts.

  ``log p(x | k)`` is the inner product of these features with
  ``[log_init[k], log_trans[k].ravel()]``, so the Bayes classifier of the chains is a
  linear (multinomial logistic) model of them: the well-specified discriminative model.

  Examples:
    >>> import jax.numpy as jnp
    >>> transition_counts(jnp.array([0, 1, 1, -1]), 2).tolist()
    [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
  """
  x = jnp.asarray(x)
  m = num_symbols
  first = jax.nn.one_hot(x[..., 0], m, dtype=jnp.float32)
  pair = jnp.where((x[..., :-1] >= 0) & (x[..., 1:] >= 0), x[..., :-1] * m + x[..., 1:], -1)
  counts = jax.nn.one_hot(pair, m * m, dtype=jnp.float32).sum(-2)
  return jnp.concatenate([first, counts], axis=-1)


class MarkovLM(nnx.Module):
  """The chains as a causal LM over ``[K class tokens, m symbols]``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> lm = MarkovLM(random_chains(jax.random.key(0), 2, 3))
    >>> logits, cache = lm(jnp.array([1, 2, 4]), jnp.arange(3))
    >>> logits.shape
    (3, 5)
  """

  def __init__(self, chains: MarkovChains):
    k, m = chains.log_init.shape
    v = k + m
    table = jnp.full((k, v, v), _IMPOSSIBLE, chains.log_init.dtype)
    table = table.at[:, :k, k:].set(jnp.broadcast_to(chains.log_init[:, None], (k, k, m)))
    table = table.at[:, k:, k:].set(chains.log_trans)
    self.log_table = nnx.Param(table)
    self.num_classes = k

  def __call__(self, tokens, positions, cache=None, cache_valid=None):
    del positions
    onehot = jax.nn.one_hot(tokens, self.num_classes, dtype=self.log_table.dtype)  # [T, K]
    counts = jnp.cumsum(onehot, axis=0)
    if cache is not None:
      seen = jnp.where(cache_valid[:, None], cache.k[0, :, 0, :], 0.0).sum(0)
      counts = counts + seen[None, :]
    cvec = counts / jnp.maximum(counts.sum(-1, keepdims=True), 1.0)
    rows = self.log_table[...][:, tokens, :]  # [K, T, V]
    logits = jnp.einsum("tk,ktv->tv", cvec, rows)
    kv = onehot[None, :, None, :]
    return logits, layers.KVCache(kv, kv)
