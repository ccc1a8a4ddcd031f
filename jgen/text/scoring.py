r"""Label log-likelihoods from one prompt prefill and a cached, class-vmapped continuation.

A prompt ``[P]`` (token ids, right-padded with ``-1``) runs through the causal LM once;
its keys and values form a cache shared by the ``K`` label continuations
``[K, L]`` (padded, with a mask), which are scored as one batch: ``vmap`` over classes
with the cache broadcast, never copied per class. The first label token is predicted by
the prompt's last logits, token ``j > 0`` by the continuation's position ``j - 1``.
This is GenCLS-style label scoring (arXiv 2504.19898) without the per-pair prompt
re-runs of lm-evaluation-harness, whose cost
[`rerun_token_logprobs`][jgen.text.rerun_token_logprobs] reproduces as the baseline.
Masked LMs score the label at the prompt's last mask position
(ModernBERT-Large-Instruct, arXiv 2502.03793):
[`masked_label_logprobs`][jgen.text.masked_label_logprobs].

Invalid inputs under ``jit`` (an empty prompt, no mask token) give ``-inf`` scores.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jgen.text.loader import PretrainedLM

__all__ = ["prefill", "continuation_logprobs", "token_logprobs", "rerun_token_logprobs",
           "masked_label_logprobs"]


def prefill(lm: PretrainedLM, weights: Any, prompt: jax.Array):
  """Run the prompt once.

  Args:
    lm: a causal [`PretrainedLM`][jgen.text.PretrainedLM] (``graphdef`` is used).
    weights: its weights pytree.
    prompt: ``int [P]`` token ids right-padded with ``-1``.

  Returns:
    ``(first [V], cache, valid [P], n [])``: log-probabilities of the token after the
    prompt, the prompt's ``KVCache``, which cache positions are
    real, and the prompt length.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/gpt2")
    >>> first, cache, valid, n = prefill(lm, lm.weights, jnp.array([5, 9, 7, -1]))
    >>> first.shape, int(n)
    ((308,), 3)
  """
  valid = prompt >= 0
  n = jnp.sum(valid)
  logits, cache = lm.apply(weights, jnp.where(valid, prompt, 0), jnp.arange(prompt.shape[0]))
  first = jax.nn.log_softmax(logits[jnp.maximum(n - 1, 0)])
  return first, cache, valid, n


def continuation_logprobs(lm, weights, first, cache, valid, n, cont, mask) -> jax.Array:
  """Per-token log-probabilities ``[L]`` of one continuation after a prefilled prompt.

  ``cont [L]`` is placed at positions ``n, ..., n + L - 1`` and attends to the valid
  cache positions and causally to itself; masked tokens (``mask [L]`` False, which must
  come after the real ones) contribute ``0``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/gpt2")
    >>> state = prefill(lm, lm.weights, jnp.array([5, 9, 7]))
    >>> continuation_logprobs(lm, lm.weights, *state, jnp.array([4, 8]),
    ...                       jnp.array([True, False])).shape
    (2,)
  """
  tokens = jnp.where(mask, cont, 0)
  logits, _ = lm.apply(weights, tokens, n + jnp.arange(cont.shape[0]), cache, valid)
  pred = jnp.concatenate([first[None], jax.nn.log_softmax(logits[:-1])], axis=0)
  lp = jnp.take_along_axis(pred, tokens[:, None], axis=1)[:, 0]
  return jnp.where(mask, lp, 0.0)


def token_logprobs(lm: PretrainedLM, weights: Any, prompt: jax.Array, conts: jax.Array,
                   masks: jax.Array) -> jax.Array:
  """``log p(cont_k[j] | prompt, cont_k[:j])`` for all classes: ``[K, L]``.

  One prompt forward pass; the ``K`` continuations are a vmapped batch over the shared
  cache. An empty prompt gives ``-inf`` (no token predicts the first label token).

  Args:
    lm: causal LM.
    weights: its weights.
    prompt: ``int [P]``, right-padded with ``-1``.
    conts: ``int [K, L]`` label tokens.
    masks: ``bool [K, L]``, True on real label tokens (a prefix of each row).

  Returns:
    ``[K, L]`` float32, ``0`` at masked positions.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/gpt2")
    >>> token_logprobs(lm, lm.weights, jnp.array([5, 9, -1]), jnp.array([[4, 8], [6, 0]]),
    ...                jnp.array([[True, True], [True, False]])).shape
    (2, 2)
  """
  first, cache, valid, n = prefill(lm, weights, prompt)
  per_class = jax.vmap(continuation_logprobs, in_axes=(None, None, None, None, None, None, 0, 0))
  out = per_class(lm, weights, first, cache, valid, n, conts, masks)
  return jnp.where(n > 0, out, -jnp.inf)


def rerun_token_logprobs(lm: PretrainedLM, weights: Any, prompt: jax.Array,
                         conts: jax.Array, masks: jax.Array) -> jax.Array:
  """The baseline: each class runs the whole ``prompt + label`` sequence, ``[K, L]``.

  What lm-evaluation-harness does per (context, continuation) pair: ``K`` forward
  passes of length ``P + L`` instead of one of ``P`` and ``K`` of ``L``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/gpt2")
    >>> rerun_token_logprobs(lm, lm.weights, jnp.array([5, 9, -1]),
    ...     jnp.array([[4, 8]]), jnp.array([[True, True]])).shape
    (1, 2)
  """
  p, l = prompt.shape[0], conts.shape[1]
  n = jnp.sum(prompt >= 0)
  idx = jnp.arange(p + l)

  def one(cont, mask):
    seq = jnp.where(idx < n, prompt[jnp.minimum(idx, p - 1)], cont[jnp.clip(idx - n, 0, l - 1)])
    logits, _ = lm.apply(weights, jnp.maximum(seq, 0), idx)
    lp = jax.nn.log_softmax(logits)
    rows = lp[jnp.clip(n - 1 + jnp.arange(l), 0, p + l - 1)]
    tok = jnp.take_along_axis(rows, jnp.where(mask, cont, 0)[:, None], axis=1)[:, 0]
    return jnp.where(mask, tok, 0.0)

  return jnp.where(n > 0, jax.vmap(one)(conts, masks), -jnp.inf)


def masked_label_logprobs(lm: PretrainedLM, weights: Any, prompt: jax.Array, mask_id: int,
                          variant_ids: jax.Array, variant_mask: jax.Array) -> jax.Array:
  """``log sum_v p(variant_v of label k at the last mask | prompt)``: ``[K]``.

  One bidirectional forward pass; the log-softmax over the vocabulary at the last
  ``mask_id`` position, summed (in probability) over each label's surface variants
  (ModernBERT-Instruct's ``"A"`` and ``" A"``). A prompt without the mask token gives
  ``-inf``.

  Args:
    lm: masked LM.
    weights: its weights.
    prompt: ``int [P]`` right-padded with ``-1``.
    mask_id: the mask token id (static).
    variant_ids: ``int [K, S]`` single-token ids of each label's variants.
    variant_mask: ``bool [K, S]``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/modernbert")
    >>> masked_label_logprobs(lm, lm.weights, jnp.array([9, 11, 5, -1]), 5,
    ...     jnp.array([[40, 41], [42, 0]]), jnp.array([[True, True], [True, False]])).shape
    (2,)
  """
  valid = prompt >= 0
  is_mask = prompt == mask_id
  pos = prompt.shape[0] - 1 - jnp.argmax(is_mask[::-1])
  logits = lm.apply(weights, jnp.where(valid, prompt, 0), valid)
  lp = jax.nn.log_softmax(logits[pos])
  per = jnp.where(variant_mask, lp[variant_ids], -jnp.inf)
  return jnp.where(jnp.any(is_mask), jax.nn.logsumexp(per, axis=-1), -jnp.inf)
