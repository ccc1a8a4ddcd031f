"""Scoring corrections against their definitions.

References: lm-evaluation-harness ``acc_norm`` (divide by the label's character count)
and its pair encoding (trailing context spaces move into the continuation); Holtzman et
al. 2021 eq. for domain-conditional PMI; Zhao et al. 2021, ``q = softmax(W p)`` with
``W = diag(p_cf)^-1``; temperature scaling's NLL minimised by scipy.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from jgen import text
from jgen.text import scoring

DATA = pathlib.Path(__file__).parent / "data" / "text"
LABELS = [" good", " bad film"]


@pytest.fixture(scope="module")
def lm():
  return text.load_pretrained(DATA / "gpt2")


def _token_scores(lm, prompts, params):
  """``sum_j log p(label_k[j] | ...)`` straight from ``token_logprobs``, per prompt."""
  f = jax.jit(jax.vmap(lambda w, p: scoring.token_logprobs(
      lm, w, p, params.label_ids, params.label_mask).sum(-1), in_axes=(None, 0)))
  return np.asarray(f(lm.weights, jnp.asarray(prompts)))


def _raw(lm, clf, texts):
  return _token_scores(lm, text.encode_inputs(clf, texts), clf.fit(None, None, num_classes=2))


def test_pair_encoding_moves_trailing_space(lm):
  ctx, cont = text.split_pair(lm.tokenizer, "Verdict: ", "good")
  assert lm.tokenizer.decode(ctx) == "Verdict:" and lm.tokenizer.decode(cont) == " good"


def test_length_normalisation_and_pmi_and_calibration(lm):
  texts = ["I loved it", "awful"]
  base = text.causal_lm_classifier(lm, LABELS, template="{} Verdict:")
  raw = _raw(lm, base, texts)
  chars = np.array([len(s) for s in LABELS], np.float32)
  clf = text.causal_lm_classifier(lm, LABELS, template="{} Verdict:", normalize="char")
  got = clf.log_likelihood(clf.fit(None, None, num_classes=2), text.encode_inputs(clf, texts))
  np.testing.assert_allclose(got, raw / chars[None], rtol=1e-5)
  # PMI: subtract the labels' scores after the domain premise alone.
  pmi = text.causal_lm_classifier(lm, LABELS, template="{} Verdict:", pmi_premise="Verdict:")
  premise = np.asarray(_raw_premise(lm, base, "Verdict:"))
  got = pmi.log_likelihood(pmi.fit(None, None, num_classes=2), text.encode_inputs(pmi, texts))
  np.testing.assert_allclose(got, raw - premise[None], atol=1e-5)
  # Contextual calibration: softmax(scores) = normalised diag(p_cf)^-1 softmax(raw).
  cf = ["N/A", "", "[MASK]"]
  cc = text.causal_lm_classifier(lm, LABELS, template="{} Verdict:", content_free=cf)
  cf_raw = _raw(lm, base, cf)
  p_cf = np.mean(np.exp(cf_raw) / np.exp(cf_raw).sum(-1, keepdims=True), axis=0)
  p = np.exp(raw) / np.exp(raw).sum(-1, keepdims=True)
  q = (p / p_cf[None]) / (p / p_cf[None]).sum(-1, keepdims=True)
  got = cc.log_likelihood(cc.fit(None, None, num_classes=2), text.encode_inputs(cc, texts))
  np.testing.assert_allclose(jax.nn.softmax(got, axis=-1), q, atol=1e-5)


def _raw_premise(lm, clf, premise):
  ids = text.encode_pairs(lm.tokenizer, [premise], LABELS)[0]
  return _token_scores(lm, ids, clf.fit(None, None, num_classes=2))[0]


def test_fitted_temperature_minimises_nll():
  rng = np.random.default_rng(0)
  s = rng.normal(size=(40, 3)) * 3.0
  y = rng.integers(0, 3, size=40)
  beta = float(text.fit_inv_temperature(jnp.asarray(s), jnp.asarray(y)))

  def nll(b):
    z = b * s
    return np.mean(np.log(np.exp(z).sum(-1)) - z[np.arange(40), y])

  ref = scipy.optimize.minimize_scalar(nll, bounds=(1e-4, 10), method="bounded",
                                       options={"xatol": 1e-8}).x
  assert abs(beta - ref) < 1e-3 * max(1.0, ref)


def test_temperature_fit_in_classifier_and_errors(lm):
  clf = text.causal_lm_classifier(lm, LABELS, template="{} Verdict:", temperature="fit")
  x = text.encode_inputs(clf, ["I loved it", "awful", "great", "bad"])
  params = clf.fit(x, np.array([0, 1, 0, 1]), num_classes=2)
  assert float(params.inv_temperature) > 0 and float(params.inv_temperature) != 1.0
  with pytest.raises(ValueError, match="temperature='fit' needs labelled"):
    clf.fit(None, None, num_classes=2)
  with pytest.raises(ValueError, match="normalize must be one of"):
    text.causal_lm_classifier(lm, LABELS, normalize="words")
  with pytest.raises(ValueError, match="tokenises differently"):
    text.encode_pairs(lm.tokenizer, ["a.", "the fil"], ["m"])
