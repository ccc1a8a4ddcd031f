r"""Parameters and fitting shared by the LM label scorers.

Every scorer's ``params`` is a [`LMScorerParams`][jgen.text.LMScorerParams]: the LM
weights (shared by all classes) and per-class arrays whose axis 0 is the class axis, so
class-sharded scoring slices ``label_ids``, ``label_mask``, ``norm``, ``offset`` and
``log_prior``. Scores are

$$
s_k(x) = \beta\,(\ell_k(x) / n_k - o_k)
$$
with ``ell_k`` the raw label log-likelihood, ``n_k`` the length normaliser, ``o_k`` the
PMI and contextual-calibration offsets and ``beta = 1 / T``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jgen.core import plan as plan_lib
from jgen.core.contract import Classifier, check_params_type
from jgen.text import corrections

__all__ = ["LMScorerParams", "lm_class_axes", "corrected", "fit_corrections", "check_inputs"]


class LMScorerParams(NamedTuple):
  """Parameters of an LM label scorer.

  Attributes:
    weights: the LM's weights pytree (no class axis).
    label_ids: ``int32 [K, L]`` label tokens (label prompts for the noisy channel,
      variant ids for the masked LM).
    label_mask: ``bool [K, L]``.
    norm: ``[K]`` length normalisers (ones when not normalising).
    offset: ``[K]`` subtracted offsets (PMI premise scores, ``log p_cf``).
    inv_temperature: ``[]`` ``1 / T``.
    log_prior: ``[K]`` log class priors (used by the noisy channel).

  Examples:
    >>> from jgen.text import causal_lm_classifier, load_pretrained
    >>> clf = causal_lm_classifier(load_pretrained("tests/data/text/gpt2"),
    ...                            [" good", " bad"])
    >>> params = clf.fit(None, None, num_classes=2)
    >>> isinstance(params, LMScorerParams), params.norm.shape, params.log_prior.shape
    (True, (2,), (2,))
    >>> axes = clf.class_axes(params)  # class axis 0 for the per-class leaves
    >>> axes.label_ids, axes.offset, axes.inv_temperature
    (0, 0, None)
  """
  weights: Any
  label_ids: jax.Array
  label_mask: jax.Array
  norm: jax.Array
  offset: jax.Array
  inv_temperature: jax.Array
  log_prior: jax.Array


def lm_class_axes(params: LMScorerParams) -> LMScorerParams:
  """Class axis of each leaf: ``None`` for the weights and ``1/T``, ``0`` otherwise."""
  return LMScorerParams(jax.tree.map(lambda _: None, params.weights), 0, 0, 0, 0, None, 0)


def corrected(params: LMScorerParams, raw: jax.Array) -> jax.Array:
  """``inv_temperature * (raw / norm - offset)``; ``raw [..., K]``."""
  lead = (1,) * (raw.ndim - 1)
  return params.inv_temperature * (raw / params.norm.reshape(lead + params.norm.shape)
                                   - params.offset.reshape(lead + params.offset.shape))


def check_inputs(x, name: str):
  """Eager check that ``x`` is an integer id array ``[..., P]``; returns it.

  Examples:
    >>> check_inputs(np.array([[3, 4, -1]]), "clf").shape
    (1, 3)
  """
  arr = x if isinstance(x, jax.Array) else np.asarray(x)
  if arr.ndim < 1 or not np.issubdtype(arr.dtype, np.integer):
    raise TypeError(f"{name}: x must be integer token ids [..., P] (right-padded with -1),"
                    f" got dtype {arr.dtype} and shape {arr.shape}.")
  return arr


def fit_corrections(params: LMScorerParams, score_fn: Callable, *, premise=None,
                    content_free=None, temperature: float | str = 1.0, x=None, y=None,
                    sample_weight=None) -> LMScorerParams:
  """Fill ``offset``, ``inv_temperature`` and ``log_prior`` of ``params``.

  ``score_fn(params, x [N, P]) -> [N, K]`` corrected scores. The PMI offset is the
  premise's score; contextual calibration then adds ``log p_cf`` of the content-free
  inputs scored with the PMI offset in place; temperature is fitted last.
  """
  k = params.label_ids.shape[0]
  dtype = params.norm.dtype
  if premise is not None:
    params = params._replace(offset=score_fn(params, premise)[0])
  if content_free is not None:
    extra = corrections.contextual_offset(score_fn(params, content_free))
    params = params._replace(offset=params.offset + extra)
  w = None if y is None else (np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight))
  if y is not None:
    counts = np.bincount(np.asarray(y), weights=w, minlength=k)
    with np.errstate(divide="ignore"):
      params = params._replace(log_prior=jnp.asarray(np.log(counts / counts.sum()), dtype))
  if temperature == "fit":
    if x is None or y is None:
      raise ValueError("temperature='fit' needs labelled examples: fit(x, y, ...).")
    s = score_fn(params, x)
    keep = w > 0
    beta = corrections.fit_inv_temperature(s[keep], np.asarray(y)[keep])
    params = params._replace(inv_temperature=jnp.asarray(beta, dtype))
  elif isinstance(temperature, (int, float)) and temperature > 0:
    params = params._replace(inv_temperature=jnp.asarray(1.0 / temperature, dtype))
  else:
    raise ValueError(f"temperature must be a positive number or 'fit', got {temperature!r}.")
  return params


def fit_prompted(params: LMScorerParams, scores, encode, *, pmi_premise, content_free,
                 template, temperature, x, y, sample_weight) -> LMScorerParams:
  """``fit_corrections`` of a prompted scorer, encoding the PMI premise and the
  content-free inputs with ``encode(texts, template) -> ids``."""
  return fit_corrections(
      params, lambda q, xx: np.asarray(scores(q, jnp.asarray(xx))),
      premise=None if pmi_premise is None else encode([pmi_premise], "{}"),
      content_free=None if content_free is None else encode(list(content_free), template),
      temperature=temperature, x=x, y=y, sample_weight=sample_weight)


def scorer_classifier(name: str, hyperparams: dict, fit, scores, *,
                      conditional: bool) -> Classifier:
  """The contract around a label scorer ``scores(params, ids) -> [N, K]``.

  Conditional scorers (``log p(label | prompt)``) add no prior; the noisy channel
  (``log p(x | label)``) adds ``params.log_prior``.
  """

  def log_likelihood(params, x, *, key=None):
    del key
    check_params_type(params, LMScorerParams, name)
    return scores(params, jnp.asarray(check_inputs(x, name)))

  log_prior = (lambda params: None) if conditional else (lambda params: params.log_prior)
  return Classifier(fit, log_likelihood, log_prior, lm_class_axes, name, hyperparams,
                    LMScorerParams, conditional=conditional)


def planned_scorer(one: Callable, batch_size: int | None,
                   setup: Callable | None = None) -> Callable:
  """``scores(params, x[..., P]) -> [..., K]`` from ``one(params, x[P]) -> [K]``
  (or ``one(params, setup(params), x[P])``, ``setup`` run once per call), ``lax.map``
  over prompts in batches of ``batch_size``; ``None`` takes the batch from the
  execution plan in force (``jgen.core.plan``): the budget over the largest
  intermediate of one prompt (e.g. its ``[K, L, V]`` label logits). One compile per
  (shape, batch)."""
  if setup is not None:
    one_with, one = one, lambda p, xi: one_with(p, setup(p), xi)

  @functools.partial(jax.jit, static_argnums=2)
  def run(params, x, rows):
    flat = x.reshape((-1, x.shape[-1]))
    if setup is None:
      out = jax.lax.map(lambda xi: one(params, xi), flat, batch_size=rows)
    else:
      ctx = setup(params)
      out = jax.lax.map(lambda xi: one_with(params, ctx, xi), flat, batch_size=rows)
    return out.reshape(x.shape[:-1] + out.shape[-1:])

  @functools.lru_cache(maxsize=32)
  def per_prompt(struct, length: int, dtype) -> int:
    params = jax.tree.unflatten(struct[0], [jax.ShapeDtypeStruct(s, d)
                                            for s, d in struct[1]])
    return plan_lib.largest_intermediate(one, params,
                                         jax.ShapeDtypeStruct((length,), dtype))

  def scores(params, x):
    rows = max(int(np.prod(x.shape[:-1], dtype=np.int64)), 1)
    if batch_size is None:
      leaves, treedef = jax.tree.flatten(params)
      struct = (treedef, tuple((tuple(np.shape(l)), jnp.result_type(l)) for l in leaves))
      per = per_prompt(struct, int(x.shape[-1]), jnp.dtype(x.dtype))
      return run(params, x, plan_lib.items_per_call(per, rows))
    return run(params, x, min(int(batch_size), rows))

  return scores
