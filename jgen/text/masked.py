r"""Masked-LM label scoring (ModernBERT-Large-Instruct, arXiv 2502.03793).

The prompt ends with a mask (ModernBERT-Instruct: ``"... Answer: [unused0] [MASK]"``);
one bidirectional forward pass gives the vocabulary distribution at the last mask, and
each label's probability is summed over its surface variants (``"A"`` and ``" A"``), as
in AnswerDotAI/ModernBERT-Instruct-mini-cookbook's ``eval.py``. Labels must be single
tokens in every variant.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from jgen.core.contract import Classifier
from jgen.text import scoring, tokenize
from jgen.text.loader import PretrainedLM
from jgen.text.params import (LMScorerParams, corrected, fit_prompted, planned_scorer,
                              scorer_classifier)

__all__ = ["masked_lm_classifier", "encode_masked_prompts", "variant_ids"]

DEFAULT_TEMPLATE = "{}\nAnswer: [unused0] [MASK]"


def variant_ids(tokenizer, labels: Sequence[str], prefixes: Sequence[str] = ("", " ")
                ) -> np.ndarray:
  """Single-token ids ``int32 [K, S]`` of each label's surface variants (``-1`` padded).

  A variant ``prefix + label`` that the tokenizer splits into several tokens cannot be
  the one token at the mask, so it is left out; a label needs at least one single-token
  variant. (ModernBERT's vocabulary has both ``"A"`` and ``" A"``; a small vocabulary
  may have only ``"A"``.)

  Raises:
    ValueError: naming a label none of whose variants is exactly one token.

  Examples:
    >>> from jgen.text import load_pretrained
    >>> tok = load_pretrained("tests/data/text/modernbert").tokenizer
    >>> variant_ids(tok, ["A", "B"], prefixes=("",)).shape
    (2, 1)
    >>> variant_ids(tok, ["A", "B"]).shape   # " A" is two tokens here: left out
    (2, 1)
  """
  if isinstance(prefixes, str) or len(prefixes) == 0:
    raise ValueError(f"prefixes must be a non-empty sequence of strings, got {prefixes!r}.")
  rows = []
  for label in labels:
    ids, lengths = [], []
    for pre in prefixes:
      enc = tokenizer.encode(pre + label, add_special_tokens=False).ids
      lengths.append(len(enc))
      if len(enc) == 1 and enc[0] not in ids:
        ids.append(enc[0])
    if not ids:
      forms = ", ".join(f"{pre + label!r} is {n} tokens" for pre, n in zip(prefixes, lengths))
      raise ValueError(f"label {label!r}: no variant is a single token ({forms}); the"
                       " masked-LM path scores single-token labels only.")
    rows.append(ids)
  return tokenize.pad(rows)


def encode_masked_prompts(lm: PretrainedLM, texts: Sequence[str], template: str,
                          mask_token: str) -> np.ndarray:
  """Prompt ids ``int32 [N, P]`` (with the tokenizer's special tokens, e.g. CLS/SEP).

  Raises:
    ValueError: naming a prompt that contains no mask token.

  Examples:
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/modernbert")
    >>> encode_masked_prompts(lm, ["great"], DEFAULT_TEMPLATE, "[MASK]").shape[0]
    1
  """
  mask_id = lm.tokenizer.token_to_id(mask_token)
  if mask_id is None:
    raise ValueError(f"mask_token {mask_token!r} is not in the tokenizer's vocabulary.")
  rows = []
  for i, t in enumerate(texts):
    ids = lm.tokenizer.encode(template.format(t)).ids
    if mask_id not in ids:
      raise ValueError(f"prompt {i} ({template.format(t)[-40:]!r}) has no mask token"
                       f" {mask_token!r}: the masked-LM path scores the label at the mask.")
    rows.append(ids)
  return tokenize.pad(rows)


@functools.lru_cache(maxsize=64)
def _masked_scores(graphdef, mask_id: int, batch_size: int | None):
  """The jitted masked scorer of one architecture (shared by its classifiers)."""
  lm = PretrainedLM("masked", graphdef, None, None, {})
  return planned_scorer(lambda params, xi: corrected(params, scoring.masked_label_logprobs(
      lm, params.weights, xi, mask_id, params.label_ids, params.label_mask)), batch_size)


def masked_lm_classifier(lm: PretrainedLM, labels: Sequence[str], *,
                         template: str = DEFAULT_TEMPLATE, mask_token: str = "[MASK]",
                         prefixes: Sequence[str] = ("", " "), pmi_premise: str | None = None,
                         content_free: Sequence[str] | None = None,
                         temperature: float | str = 1.0, batch_size: int | None = None) -> Classifier:
  """Label scores at the mask of a masked LM: ``log sum_v p(variant_v(label_k))``.

  Args:
    lm: masked [`PretrainedLM`][jgen.text.PretrainedLM] (ModernBERT).
    labels: ``K`` single-token labels (``"A"``, ``"positive"``).
    template: prompt with ``{}`` for the input; must contain ``mask_token``.
    mask_token: the tokenizer's mask token.
    prefixes: surface variants are ``prefix + label``; those that are not a single
      token of the vocabulary are left out (see ``variant_ids``).
    pmi_premise: a content-free prompt (with the mask) whose label scores are
      subtracted (domain-conditional PMI).
    content_free: content-free inputs for contextual calibration.
    temperature: a positive number or ``"fit"``.
    batch_size: prompts scored in parallel; ``None``: from the execution plan
      (``jgen.core.plan``).

  Returns:
    A conditional [`Classifier`][jgen.Classifier].

  Examples:
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/modernbert")
    >>> clf = masked_lm_classifier(lm, ["A", "B"])   # tiny vocabulary: "A" only
    >>> params = clf.fit(None, None, num_classes=2)
    >>> from jgen.text import encode_inputs
    >>> clf.log_likelihood(params, encode_inputs(clf, ["good", "bad"])).shape
    (2, 2)
  """
  name = "masked_lm_classifier"
  if not isinstance(lm, PretrainedLM) or lm.kind != "masked" or lm.tokenizer is None:
    raise TypeError(f"{name}: lm must be a masked PretrainedLM with a tokenizer.")
  if isinstance(labels, str) or len(labels) < 2:
    raise ValueError(f"{name}: labels must be at least 2 strings, got {labels!r}.")
  if mask_token not in template:
    raise ValueError(f"{name}: template {template!r} has no mask token {mask_token!r}.")
  hp = dict(lm=lm, labels=labels, template=template, mask_token=mask_token,
            prefixes=prefixes, pmi_premise=pmi_premise, content_free=content_free,
            temperature=temperature, batch_size=batch_size)
  ids = variant_ids(lm.tokenizer, labels, prefixes)
  if (ids >= lm.vocab_size).any():
    raise ValueError(f"{name}: label ids exceed the model's vocabulary of {lm.vocab_size}.")
  mask_id = lm.tokenizer.token_to_id(mask_token)

  scores = _masked_scores(lm.graphdef, mask_id, batch_size)

  def fit(x, y, *, num_classes, sample_weight=None):
    if num_classes != ids.shape[0]:
      raise ValueError(f"{name}: num_classes={num_classes} but {ids.shape[0]} labels.")
    k = num_classes
    p = LMScorerParams(lm.weights, jnp.asarray(ids), jnp.asarray(ids >= 0),
                       jnp.ones(k, jnp.float32), jnp.zeros(k, jnp.float32),
                       jnp.ones((), jnp.float32), jnp.full(k, -np.log(k), jnp.float32))
    enc = lambda texts, fmt: encode_masked_prompts(lm, texts, fmt, mask_token)
    return fit_prompted(p, scores, enc, pmi_premise=pmi_premise,
                        content_free=content_free, template=template,
                        temperature=temperature, x=x, y=y, sample_weight=sample_weight)

  return scorer_classifier(name, hp, fit, scores, conditional=True)
