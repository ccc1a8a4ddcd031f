r"""Causal-LM label scorers on the classifier contract: direct and noisy channel.

* [`causal_lm_classifier`][jgen.text.causal_lm_classifier]:
  ``log p(label_k | prompt(x))`` (GenCLS-style perplexity scoring, arXiv 2504.19898);
  one prompt prefill, labels scored from the shared cache. Conditional scores
  (``conditional=True``): the prior is not applied.
* [`noisy_channel_classifier`][jgen.text.noisy_channel_classifier]:
  ``log p(x | label_k)`` (Min et al. 2022, arXiv 2108.04106): each class's label prompt
  is prefilled once per batch and the input is scored as its continuation; Bayes' rule
  with the fitted (or uniform) class prior.

Inputs ``x`` are token ids from [`encode_inputs`][jgen.text.encode_inputs].
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jgen.core.contract import Classifier
from jgen.text import corrections, masked, scoring, tokenize
from jgen.text.loader import PretrainedLM
from jgen.text.params import (LMScorerParams, corrected, fit_corrections, fit_prompted,
                              planned_scorer, scorer_classifier)

__all__ = ["causal_lm_classifier", "noisy_channel_classifier", "encode_inputs"]


def _bos(lm: PretrainedLM, bos) -> int | None:
  if bos is None:  # Llama-family tokenizers expect BOS; GPT-2's lm-eval default is none
    return lm.config.get("bos_token_id") if lm.config.get("model_type") in ("llama", "mistral") else None
  return None if bos is False else int(bos)


def _check_lm(lm, kind: str, labels, name: str) -> None:
  if not isinstance(lm, PretrainedLM) or lm.kind != kind:
    raise TypeError(f"{name}: lm must be a {kind} PretrainedLM, got"
                    f" {getattr(lm, 'kind', type(lm).__name__)!r}.")
  if isinstance(labels, (str, bytes)) or len(labels) < 2:
    raise ValueError(f"{name}: labels must be a sequence of at least 2 labels, got {labels!r}.")
  if not isinstance(labels[0], str) and np.asarray(labels).ndim != 2:
    raise ValueError(f"{name}: pre-tokenised labels must be an int array [K, L].")
  if isinstance(labels[0], str) and lm.tokenizer is None:
    raise ValueError(f"{name}: string labels need a tokenizer (tokenizer.json in the folder).")


def _check_vocab(ids: np.ndarray, lm: PretrainedLM, what: str) -> None:
  bad = ids >= lm.vocab_size
  if bad.any():
    raise ValueError(f"{what}: token id {int(ids[bad].max())} is outside the model's"
                     f" vocabulary of {lm.vocab_size}: tokenizer and model do not match.")


@functools.lru_cache(maxsize=64)
def _direct_scores(graphdef, batch_size: int | None):
  """The jitted direct scorer of one architecture: every classifier over it shares the
  compiled programs (the weights and label ids are traced ``params``)."""
  lm = PretrainedLM("causal", graphdef, None, None, {})  # only the graph is used

  def raw(params, x):
    return scoring.token_logprobs(lm, params.weights, x, params.label_ids,
                                  params.label_mask).sum(-1)

  return planned_scorer(lambda p, x: corrected(p, raw(p, x)), batch_size)


def _label_ids(lm, labels, template, bos):
  if isinstance(labels[0], str):
    ctx = template.format("x")  # a stand-in input: the split depends on the template's tail
    return tokenize.encode_pairs(lm.tokenizer, [ctx], list(labels), bos_id=bos)[1]
  return np.asarray(labels, np.int32)


def causal_lm_classifier(lm: PretrainedLM, labels: Sequence[str], *, template: str = "{}",
                         normalize: str = "none", pmi_premise: str | None = None,
                         content_free: Sequence[str] | None = None,
                         temperature: float | str = 1.0, bos: int | bool | None = None,
                         batch_size: int | None = None) -> Classifier:
  """Direct label scoring under a causal LM: scores ``[..., K]`` from one prefill.

  Args:
    lm: causal [`PretrainedLM`][jgen.text.PretrainedLM].
    labels: ``K`` label strings (continuations of the prompt), or ``int [K, L]`` ids
      padded with ``-1``.
    template: prompt with one ``{}`` for the input text.
    normalize: ``"none"``, ``"token"``, ``"char"`` or ``"byte"`` length normalisation.
    pmi_premise: domain premise for domain-conditional PMI (Holtzman et al. 2021).
    content_free: content-free inputs for contextual calibration (Zhao et al. 2021),
      e.g. ``("N/A", "", "[MASK]")``, rendered through ``template``.
    temperature: a positive number, or ``"fit"`` to fit ``T`` on ``fit``'s data.
    bos: BOS id to prepend; ``None`` = the Llama family's ``bos_token_id``; ``False``.
    batch_size: prompts scored in parallel; ``None``: from the execution plan
      (``jgen.core.plan``).

  Returns:
    A conditional [`Classifier`][jgen.Classifier]; ``fit(x, y, num_classes=K)``
    computes the corrections (``x``/``y`` may be ``None`` unless ``temperature='fit'``).

  Examples:
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/gpt2")
    >>> clf = causal_lm_classifier(lm, [" good", " bad"], template="{} Verdict:")
    >>> params = clf.fit(None, None, num_classes=2)
    >>> clf.log_likelihood(params, encode_inputs(clf, ["I loved it", "awful"])).shape
    (2, 2)
  """
  name = "causal_lm_classifier"
  _check_lm(lm, "causal", labels, name)
  hp = dict(lm=lm, labels=labels, template=template, normalize=normalize,
            pmi_premise=pmi_premise, content_free=content_free, temperature=temperature,
            bos=bos, batch_size=batch_size)
  if normalize not in corrections.NORMALIZATIONS:
    raise ValueError(f"{name}: normalize must be one of {corrections.NORMALIZATIONS},"
                     f" got {normalize!r}.")
  bos_id = _bos(lm, bos)
  label_ids = _label_ids(lm, labels, template, bos_id)
  _check_vocab(label_ids, lm, f"{name}: labels")
  mask = label_ids >= 0
  norms = corrections.label_norms(normalize, labels if isinstance(labels[0], str)
                                  else [""] * len(labels), mask)
  if normalize in ("char", "byte") and not isinstance(labels[0], str):
    raise ValueError(f"{name}: normalize={normalize!r} needs string labels.")

  scores = _direct_scores(lm.graphdef, batch_size)

  def fit(x, y, *, num_classes, sample_weight=None):
    if num_classes != label_ids.shape[0]:
      raise ValueError(f"{name}: num_classes={num_classes} but {label_ids.shape[0]} labels.")
    p = LMScorerParams(lm.weights, jnp.asarray(label_ids), jnp.asarray(mask),
                       jnp.asarray(norms), jnp.zeros(num_classes, jnp.float32),
                       jnp.ones((), jnp.float32), jnp.full(num_classes, -np.log(num_classes), jnp.float32))
    enc = lambda texts, fmt: encode_inputs_with(lm, texts, fmt, labels, bos_id)
    return fit_prompted(p, scores, enc, pmi_premise=pmi_premise,
                        content_free=content_free, template=template,
                        temperature=temperature, x=x, y=y, sample_weight=sample_weight)

  return scorer_classifier(name, hp, fit, scores, conditional=True)


def encode_inputs_with(lm, texts, template, labels, bos_id) -> np.ndarray:
  """Prompt ids ``[N, P]`` for the direct scorer (checked against the label split)."""
  if not isinstance(labels[0], str):
    ids = [([] if bos_id is None else [bos_id]) +
           lm.tokenizer.encode(template.format(t).rstrip(), add_special_tokens=False).ids
           for t in texts]
    return tokenize.pad(ids)
  return tokenize.encode_pairs(lm.tokenizer, [template.format(t) for t in texts],
                               list(labels), bos_id=bos_id)[0]


def encode_inputs(classifier: Classifier, texts: Sequence[str]) -> np.ndarray:
  """Token ids ``int32 [N, P]`` of ``texts`` for an LM classifier built here.

  Direct and masked scorers: prompts (checked so that every label tokenises the same
  after each prompt); noisy channel: the inputs as continuations of the label prompts.

  Examples:
    >>> from jgen.text import load_pretrained
    >>> clf = causal_lm_classifier(load_pretrained("tests/data/text/gpt2"), [" a", " b"])
    >>> encode_inputs(clf, ["hi there", "x"]).shape[0]
    2
  """
  hp = classifier.hyperparams
  lm = hp["lm"]
  if isinstance(texts, str):
    raise TypeError("texts must be a sequence of strings, got one string.")
  if classifier.name == "causal_lm_classifier":
    ids = encode_inputs_with(lm, texts, hp["template"], hp["labels"], _bos(lm, hp["bos"]))
  elif classifier.name == "noisy_channel_classifier":
    prompts = hp["label_prompts"]
    ctx = list(prompts) if isinstance(prompts[0], str) else [""]
    conts = [hp["template"].format(t) for t in texts]
    ids = tokenize.encode_pairs(lm.tokenizer, ctx, conts, check=isinstance(prompts[0], str))[1]
  elif classifier.name == "masked_lm_classifier":
    ids = masked.encode_masked_prompts(lm, texts, hp["template"], hp["mask_token"])
  else:
    raise ValueError(f"classifier {classifier.name!r} is not an LM classifier from jgen.text.")
  _check_vocab(ids, lm, "encode_inputs")
  return ids


@functools.lru_cache(maxsize=64)
def _channel_scores(graphdef, batch_size: int | None):
  """The jitted channel scorer of one architecture (shared by its classifiers)."""
  lm = PretrainedLM("causal", graphdef, None, None, {})
  pre_all = jax.vmap(scoring.prefill, in_axes=(None, None, 0))
  cont = jax.vmap(scoring.continuation_logprobs, in_axes=(None, None, 0, 0, 0, 0, None, None))

  def one(params, pre, xi):
    raw = cont(lm, params.weights, *pre, xi, xi >= 0).sum(-1)
    return corrected(params, jnp.where(pre[3] > 0, raw, -jnp.inf))

  # Each label prompt is prefilled once per call, outside the map over inputs.
  return planned_scorer(one, batch_size,
                        lambda p: pre_all(lm, p.weights, p.label_ids))


def noisy_channel_classifier(lm: PretrainedLM, label_prompts, *, template: str = " {}",
                             temperature: float | str = 1.0, bos: int | bool | None = None,
                             batch_size: int | None = None) -> Classifier:
  """Channel scoring ``log p(x | label_k)``: each input scored after each label prompt.

  Args:
    lm: causal LM.
    label_prompts: ``K`` strings (e.g. ``"A positive review:"``), or ``int [K, P]``
      ids padded with ``-1``.
    template: how the input continues a label prompt (``" {}"``).
    temperature: a positive number or ``"fit"``.
    bos: as in [`causal_lm_classifier`][jgen.text.causal_lm_classifier].
    batch_size: inputs scored in parallel; ``None``: from the execution plan.

  Returns:
    A generative [`Classifier`][jgen.Classifier] (``log_prior`` from ``fit``'s
    label counts, uniform when ``y`` is ``None``).

  Examples:
    >>> from jgen.text import load_pretrained
    >>> lm = load_pretrained("tests/data/text/gpt2")
    >>> clf = noisy_channel_classifier(lm, ["Good film:", "Bad film:"])
    >>> params = clf.fit(None, None, num_classes=2)
    >>> clf.log_likelihood(params, encode_inputs(clf, ["I loved it"])).shape
    (1, 2)
  """
  name = "noisy_channel_classifier"
  _check_lm(lm, "causal", label_prompts, name)
  hp = dict(lm=lm, label_prompts=label_prompts, template=template, temperature=temperature,
            bos=bos, batch_size=batch_size)
  bos_id = _bos(lm, bos)
  if isinstance(label_prompts[0], str):
    ids = tokenize.encode_pairs(lm.tokenizer, list(label_prompts), [template.format("x")],
                                bos_id=bos_id, check=False)[0]
  else:
    ids = np.asarray(label_prompts, np.int32)
  _check_vocab(ids, lm, f"{name}: label_prompts")

  scores = _channel_scores(lm.graphdef, batch_size)

  def fit(x, y, *, num_classes, sample_weight=None):
    if num_classes != ids.shape[0]:
      raise ValueError(f"{name}: num_classes={num_classes} but {ids.shape[0]} label prompts.")
    p = LMScorerParams(lm.weights, jnp.asarray(ids), jnp.asarray(ids >= 0),
                       jnp.ones(num_classes, jnp.float32), jnp.zeros(num_classes, jnp.float32),
                       jnp.ones((), jnp.float32),
                       jnp.full(num_classes, -np.log(num_classes), jnp.float32))
    return fit_corrections(p, lambda q, xx: np.asarray(
        scores(q, jnp.asarray(xx)) + q.log_prior), temperature=temperature, x=x, y=y,
        sample_weight=sample_weight)

  return scorer_classifier(name, hp, fit, scores, conditional=False)
