r"""Maximum-likelihood training of a causal LM on token sequences, with optax.

The loss is the mean next-token cross-entropy over the positions a mask selects
(``-log p(t_j | t_{<j})`` for ``j >= 1``), on minibatches drawn with replacement from
the first ``num_examples`` rows. ``num_examples`` is traced, so data padded to one
shape trains every training-set size with one compile. The weights are an argument of
the jitted step (never closed over): one compile per architecture.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jgen.text.loader import PretrainedLM

__all__ = ["sequence_nll", "train_causal_lm"]


def sequence_nll(lm: PretrainedLM, weights: Any, tokens: jax.Array, mask: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
  """Summed next-token NLL of one sequence and its number of scored tokens.

  Args:
    lm: causal LM.
    weights: its weights.
    tokens: ``int [T]`` (padding, if any, must be ``>= 0`` and excluded by ``mask``).
    mask: ``bool [T]``; position ``j >= 1`` is scored where ``mask[j]`` (``mask[0]`` is
      ignored: no token predicts the first one).

  Returns:
    ``(nll [], count [])``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/gpt2")
    >>> nll, n = sequence_nll(lm, lm.weights, jnp.array([5, 9, 7]), jnp.array([True] * 3))
    >>> int(n)
    2
  """
  logits, _ = lm.apply(weights, tokens, jnp.arange(tokens.shape[0]))
  lp = jax.nn.log_softmax(logits[:-1])
  tok = jnp.take_along_axis(lp, tokens[1:, None], axis=1)[:, 0]
  m = mask[1:]
  return -jnp.sum(jnp.where(m, tok, 0.0)), jnp.sum(m)


@functools.partial(jax.jit, static_argnums=(0, 1, 6, 7))
def _train(graphdef, opt, key, weights, tokens, mask, num_steps, batch_size, num_examples):
  lm = PretrainedLM("causal", graphdef, None, None, {})  # only the graph is used

  def loss_fn(w, idx):
    nll, cnt = jax.vmap(sequence_nll, in_axes=(None, None, 0, 0))(lm, w, tokens[idx],
                                                                   mask[idx])
    return nll.sum() / jnp.maximum(cnt.sum(), 1)

  def step(carry, k):
    w, state = carry
    idx = jax.random.randint(k, (batch_size,), 0, num_examples)
    loss, grad = jax.value_and_grad(loss_fn)(w, idx)
    updates, state = opt.update(grad, state, w)
    return (optax.apply_updates(w, updates), state), loss

  (weights, _), losses = jax.lax.scan(step, (weights, opt.init(weights)),
                                      jax.random.split(key, num_steps))
  return weights, losses


def train_causal_lm(key: jax.Array, lm: PretrainedLM, tokens: ArrayLike, *,
                    mask: ArrayLike | None = None, num_examples: int | None = None,
                    num_steps: int = 300, batch_size: int = 32,
                    optimizer: optax.GradientTransformation | None = None
                    ) -> tuple[Any, jax.Array]:
  """Fit ``lm`` by minibatch maximum likelihood; returns ``(weights, losses [num_steps])``.

  Args:
    key: PRNG key for the minibatch draws.
    lm: causal [`PretrainedLM`][jgen.text.PretrainedLM] (its ``weights`` are the start).
    tokens: ``int [N, T]`` sequences; ``-1`` entries are padding (not scored, fed as 0).
    mask: ``bool [N, T]`` positions to score (default ``tokens >= 0``); e.g. exclude a
      class-token prefix. Position 0 is never scored.
    num_examples: draw minibatches from rows ``[0, num_examples)`` only (default ``N``);
      traced, so padded data of one shape trains every size with one compile.
    num_steps: optimiser steps.
    batch_size: sequences per step (drawn with replacement).
    optimizer: an optax transformation (default ``optax.adam(3e-3)``); it is a static
      argument, so pass the same object to reuse the compiled step.

  Raises:
    ValueError: non-integer tokens, a mask of another shape, or ``num_examples``
      outside ``[1, N]``.

  Examples:
    >>> import jax, numpy as np
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/gpt2")
    >>> x = np.tile(np.arange(8, dtype=np.int32), (4, 1))
    >>> w, losses = train_causal_lm(jax.random.key(0), lm, x, num_steps=30, batch_size=4)
    >>> bool(losses[-1] < losses[0])
    True
  """
  if not isinstance(lm, PretrainedLM) or lm.kind != "causal":
    raise TypeError(f"lm must be a causal PretrainedLM, got {type(lm).__name__}.")
  tokens = np.asarray(tokens)
  if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
    raise ValueError(f"tokens must be integer ids [N, T], got {tokens.dtype} {tokens.shape}.")
  mask = tokens >= 0 if mask is None else np.asarray(mask, bool)
  if mask.shape != tokens.shape:
    raise ValueError(f"mask has shape {mask.shape}, tokens {tokens.shape}.")
  n = tokens.shape[0] if num_examples is None else int(num_examples)
  if not 1 <= n <= tokens.shape[0]:
    raise ValueError(f"num_examples={num_examples} is outside [1, {tokens.shape[0]}].")
  opt = optax.adam(3e-3) if optimizer is None else optimizer
  return _train(lm.graphdef, opt, key, lm.weights, jnp.asarray(np.maximum(tokens, 0), jnp.int32),
                jnp.asarray(mask & (tokens >= 0)), int(num_steps), int(batch_size),
                jnp.asarray(n, jnp.int32))
