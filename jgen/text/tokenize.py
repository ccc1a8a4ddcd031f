r"""Token ids for prompts and label continuations, lm-evaluation-harness style.

Pair encoding (lm-evaluation-harness ``_encode_pair``): trailing whitespace of the
context moves to the front of the continuation, the concatenation is encoded, and the
continuation's ids are what follows the context's own encoding. jgen shares one
``[L]`` row of label ids across all prompts (that is what lets the prompt's cache serve
every class), so [`encode_pairs`][jgen.text.encode_pairs] checks, for every (context,
continuation) pair, that this split gives the shared ids, and raises naming the pair
otherwise. Sequences are right-padded with ``-1``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tokenizers

__all__ = ["split_pair", "encode_pairs", "pad", "train_bpe_tokenizer"]


def split_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
  """lm-evaluation-harness pair encoding: ``(context_ids, continuation_ids)``.

  Examples:
    >>> from jgen.text import load_pretrained
    >>> tok = load_pretrained("tests/data/text/gpt2").tokenizer
    >>> ctx, cont = split_pair(tok, "Sentiment: ", "positive")
    >>> tok.decode(cont)
    ' positive'
  """
  n_spaces = len(context) - len(context.rstrip())
  if n_spaces:
    continuation = context[-n_spaces:] + continuation
    context = context[:-n_spaces]
  whole = tokenizer.encode(context + continuation, add_special_tokens=False).ids
  ctx = tokenizer.encode(context, add_special_tokens=False).ids
  return ctx, whole[len(ctx):]


def pad(rows: Sequence[Sequence[int]], length: int | None = None) -> np.ndarray:
  """Right-pad rows of ids with ``-1`` to ``int32 [N, length]``.

  Examples:
    >>> pad([[1, 2], [3]]).tolist()
    [[1, 2], [3, -1]]
  """
  length = max(len(r) for r in rows) if length is None else length
  out = np.full((len(rows), length), -1, np.int32)
  for i, r in enumerate(rows):
    if len(r) > length:
      raise ValueError(f"sequence {i} has {len(r)} tokens, more than length={length}.")
    out[i, :len(r)] = r
  return out


def encode_pairs(tokenizer, contexts: Sequence[str], continuations: Sequence[str], *,
                 bos_id: int | None = None, check: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Contexts ``[C, P]`` and continuations ``[M, L]`` as padded ids, one split for all.

  Args:
    tokenizer: a ``tokenizers.Tokenizer``.
    contexts: ``C`` context strings (prompts; or label prompts for the noisy channel).
    continuations: ``M`` continuation strings (labels; or inputs for the noisy channel).
    bos_id: prepended to every context when given.
    check: verify every (context, continuation) pair splits into the shared ids.

  Returns:
    ``(int32 [C, P], int32 [M, L])``, right-padded with ``-1``.

  Raises:
    ValueError: a continuation that tokenises to nothing, an empty context without
      ``bos_id``, or a pair whose encoding differs from the shared split (named).

  Examples:
    >>> from jgen.text import load_pretrained
    >>> tok = load_pretrained("tests/data/text/gpt2").tokenizer
    >>> ctx, labels = encode_pairs(tok, ["I loved it. Sentiment:"], ["positive", "negative"])
    >>> labels.shape[0]
    2
  """
  if not contexts or not continuations:
    raise ValueError("contexts and continuations must be non-empty.")
  head = [bos_id] if bos_id is not None else []
  cont_ids = []
  for c in continuations:
    ids = split_pair(tokenizer, contexts[0], c)[1]
    if not ids:
      raise ValueError(f"continuation {c!r} tokenises to nothing after context"
                       f" {contexts[0][-30:]!r}.")
    cont_ids.append(ids)
  ctx_ids = []
  for i, ctx in enumerate(contexts):
    ids = head + split_pair(tokenizer, ctx, continuations[0])[0]
    if not ids:
      raise ValueError(f"context {i} ({ctx!r}) tokenises to nothing and no bos_id was"
                       " given: no token would predict the first continuation token.")
    ctx_ids.append(ids)
    if check:
      _check_split(tokenizer, i, ctx, continuations, cont_ids)
  return pad(ctx_ids), pad(cont_ids)


def _check_split(tokenizer, i, ctx, continuations, cont_ids) -> None:
  for c, want in zip(continuations, cont_ids):
    got = split_pair(tokenizer, ctx, c)[1]
    if got != want:
      raise ValueError(
          f"continuation {c!r} tokenises differently after context {i} ({ctx[-30:]!r}):"
          f" {got} vs the shared {want}. End the template with a separator (a space or"
          " newline before the label) so the label's tokens do not merge with the input.")


def train_bpe_tokenizer(corpus: Sequence[str], vocab_size: int = 512,
                        special_tokens: Sequence[str] = ("<|endoftext|>", "[MASK]", "[unused0]")
                        ) -> tokenizers.Tokenizer:
  """A byte-level BPE tokenizer trained in-process (for offline smoke runs and tests).

  Examples:
    >>> tok = train_bpe_tokenizer(["a good film", "a bad film"] * 5, vocab_size=270)
    >>> tok.decode(tok.encode("a good film").ids)
    'a good film'
  """
  tok = tokenizers.Tokenizer(tokenizers.models.BPE())
  tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = tokenizers.decoders.ByteLevel()
  trainer = tokenizers.trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=list(special_tokens), show_progress=False,
      initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(list(corpus), trainer=trainer)
  return tok
