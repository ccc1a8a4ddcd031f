"""Label log-likelihoods: prefilled cache path = naive per-class loop; Markov oracle;
class sharding; masked-LM scoring; bad input.

References: a per-class Python loop over full sequences (the definition of
``log p(label | prompt)``); the closed-form Markov-chain likelihood written as a loop
here; one-device results for the sharded path.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jgen import text
from jgen.text import oracle, scoring

DATA = pathlib.Path(__file__).parent / "data" / "text"
LABELS = np.array([[5, 9, 11, 40], [7, -1, -1, -1], [20, 30, -1, -1]], np.int32)
PROMPTS = np.array([[50, 60, 70, 80, 90, -1], [12, 13, -1, -1, -1, -1],
                    [100, 101, 102, 103, 104, 105]], np.int32)


def _naive(lm, prompt, labels):
  """Per class: run ``prompt + label`` in full, sum the label tokens' log-probs."""
  fwd = jax.jit(lambda w, t: jax.nn.log_softmax(lm.apply(w, t, jnp.arange(t.shape[0]))[0]))
  p = [t for t in prompt if t >= 0]
  out = []
  for lab in labels:
    lab = [t for t in lab if t >= 0]
    seq = p + lab  # trailing filler keeps one compiled length; causal, so it is never seen
    seq = seq + [0] * (len(prompt) + len(labels[0]) - len(seq))
    lp = np.asarray(fwd(lm.weights, jnp.asarray(seq)))
    out.append(sum(lp[len(p) - 1 + j, t] for j, t in enumerate(lab)))
  return np.array(out)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_prefilled_scores_equal_naive_loop(name):
  lm = text.load_pretrained(DATA / name)
  clf = text.causal_lm_classifier(lm, LABELS, bos=False)
  params = clf.fit(None, None, num_classes=3)
  got = np.asarray(clf.log_likelihood(params, PROMPTS))
  ref = np.stack([_naive(lm, p, LABELS) for p in PROMPTS])
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
  rerun = jax.jit(lambda w, p: scoring.rerun_token_logprobs(
      lm, w, p, jnp.asarray(LABELS), jnp.asarray(LABELS >= 0)).sum(-1))
  np.testing.assert_allclose(rerun(lm.weights, jnp.asarray(PROMPTS[0])), ref[0], atol=1e-5)


def test_empty_prompt_gives_sentinel():
  lm = text.load_pretrained(DATA / "gpt2")
  clf = text.causal_lm_classifier(lm, LABELS, bos=False)
  out = clf.log_likelihood(clf.fit(None, None, num_classes=3), np.full((1, 4), -1, np.int32))
  assert np.all(np.isneginf(np.asarray(out)))


def _markov_setup(dtype):
  chains = oracle.random_chains(jax.random.key(0), 3, 4, dtype=dtype)
  y = np.array([0, 1, 2, 1, 0, 2, 2])
  xs = np.array(oracle.sample_sequences(jax.random.key(1), chains, y, 6))
  xs[1, 4:] = -1  # inputs of different lengths: padding in the continuation
  xs[3, 2:] = -1
  lm = text.from_module(oracle.MarkovLM(chains), "causal")
  # Label prompts of different lengths, so the prefix caches carry padding too.
  clf = text.noisy_channel_classifier(lm, np.array([[0, -1], [1, 1], [2, -1]]))
  return chains, y, xs, clf


def test_markov_oracle_posterior_is_exact_float64():
  chains, y, xs, clf = _markov_setup(jnp.float64)
  params = clf.fit(None, y, num_classes=3)
  scores = clf.log_likelihood(params, np.where(xs >= 0, xs + 3, -1))
  post = np.asarray(jax.nn.softmax(scores + clf.log_prior(params)[None], axis=-1))
  li, lt = np.asarray(chains.log_init), np.asarray(chains.log_trans)
  prior = np.bincount(y, minlength=3) / len(y)
  for i, x in enumerate(xs):
    x = [s for s in x if s >= 0]
    ll = np.array([li[k, x[0]] + sum(lt[k, a, b] for a, b in zip(x, x[1:])) for k in range(3)])
    joint = np.exp(ll) * prior
    np.testing.assert_allclose(post[i], joint / joint.sum(), atol=1e-6, rtol=0)


def test_class_sharded_scoring_equals_one_device():
  lm = text.load_pretrained(DATA / "gpt2")
  labels = np.array([[5, 9], [7, -1], [20, 30], [31, 32], [33, -1]], np.int32)
  clf = text.causal_lm_classifier(lm, labels, bos=False, normalize="token")
  params = clf.fit(None, None, num_classes=5)
  ref = np.asarray(clf.log_likelihood(params, PROMPTS))
  axes = clf.class_axes(params)

  def pad(leaf, axis):  # pad K to 8 with masked classes (norm 1, no tokens)
    if axis is None:
      return leaf
    fill = 1 if leaf.dtype == jnp.float32 and leaf is params.norm else 0
    widths = [(0, 0)] * leaf.ndim
    widths[axis] = (0, 8 - leaf.shape[axis])
    return jnp.pad(leaf, widths, constant_values=fill)

  padded = jax.tree.map(pad, params, axes, is_leaf=lambda a: a is None)
  padded = padded._replace(norm=jnp.pad(params.norm, (0, 3), constant_values=1.0))
  mesh = jax.make_mesh((8,), ("classes",))
  specs = jax.tree.map(lambda a: P() if a is None else P("classes"), axes,
                       is_leaf=lambda a: a is None)
  sharded = jax.shard_map(lambda p, x: clf.log_likelihood(p, x), mesh=mesh,
                          in_specs=(specs, P()), out_specs=P(None, "classes"))
  shardings = jax.tree.map(lambda s: jax.NamedSharding(mesh, s), specs)
  padded = jax.device_put(padded, shardings)
  x = jax.device_put(jnp.asarray(PROMPTS), jax.NamedSharding(mesh, P()))
  got = np.asarray(jax.jit(sharded)(padded, x))[:, :5]
  np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)


def test_masked_scores_sum_variants_at_last_mask():
  lm = text.load_pretrained(DATA / "modernbert")
  prompt = jnp.asarray([2, 40, 5, 41, 42, 5, 3, -1])  # two masks (id 5): the last counts
  ids, mask = jnp.asarray([[60, 61], [70, -1]]), jnp.asarray([[True, True], [True, False]])
  got = scoring.masked_label_logprobs(lm, lm.weights, prompt, 5, ids, mask)
  logits = np.asarray(lm.apply(lm.weights, jnp.maximum(prompt, 0), prompt >= 0))[5]
  lp = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
  ref = [np.log(np.exp(lp[60]) + np.exp(lp[61])), lp[70]]
  np.testing.assert_allclose(got, ref, atol=1e-5)
  no_mask = scoring.masked_label_logprobs(lm, lm.weights, prompt.at[2].set(9).at[5].set(9),
                                          5, ids, mask)
  assert np.all(np.isneginf(np.asarray(no_mask)))


def test_masked_classifier_and_its_errors():
  lm = text.load_pretrained(DATA / "modernbert")
  clf = text.masked_lm_classifier(lm, ["A", "B"], prefixes=("",))
  x = text.encode_inputs(clf, ["good", "bad film"])
  assert clf.log_likelihood(clf.fit(None, None, num_classes=2), x).shape == (2, 2)
  with pytest.raises(ValueError, match="label 'positive'.*tokens"):
    text.masked_lm_classifier(lm, ["A", "positive"], prefixes=("",))
  with pytest.raises(ValueError, match="no mask token"):
    text.masked_lm_classifier(lm, ["A", "B"], template="{} Answer:")
  with pytest.raises(ValueError, match="prompt 1 .*no mask token"):
    text.masked.encode_masked_prompts(lm, ["a [MASK]", "b"], "{}", "[MASK]")


def test_label_that_tokenises_to_nothing_is_named():
  lm = text.load_pretrained(DATA / "gpt2")
  with pytest.raises(ValueError, match="continuation '' tokenises to nothing"):
    text.causal_lm_classifier(lm, [" good", ""])


def test_label_ids_outside_vocabulary_are_rejected():
  lm = text.load_pretrained(DATA / "gpt2")
  with pytest.raises(ValueError, match="outside the model's vocabulary"):
    text.causal_lm_classifier(lm, np.array([[5, 900], [6, -1]]))


def test_transition_counts_are_the_chains_sufficient_statistics():
  # log p(x | k) = <features(x), [log_init_k, vec(log_trans_k)]>: the closed form
  chains = oracle.random_chains(jax.random.key(2), 2, 3, dtype=jnp.float32)
  x = np.array([[0, 2, 2, 1, -1], [1, 1, 0, 2, 2]], np.int32)
  feats = np.asarray(oracle.transition_counts(x, 3))
  weights = np.concatenate([np.asarray(chains.log_init),
                            np.asarray(chains.log_trans).reshape(2, 9)], axis=1)
  np.testing.assert_allclose(feats @ weights.T, oracle.chain_log_likelihood(chains, x),
                             rtol=1e-6)
  assert feats[0].sum() == 1 + 3 and feats[1].sum() == 1 + 4  # x_1 + real bigrams


def test_masked_default_prefixes_keep_the_single_token_variants():
  # The fixture's vocabulary has "A" but not " A" (two tokens: "Ġ", "A"); the default
  # prefixes ("", " ") then score "A" alone, the same as prefixes=("",).
  lm = text.load_pretrained(DATA / "modernbert")
  assert lm.tokenizer.encode(" A", add_special_tokens=False).tokens == ["Ġ", "A"]
  np.testing.assert_array_equal(text.masked.variant_ids(lm.tokenizer, ["A", "B"]),
                                text.masked.variant_ids(lm.tokenizer, ["A", "B"], ("",)))
  default = text.masked_lm_classifier(lm, ["A", "B"])
  only = text.masked_lm_classifier(lm, ["A", "B"], prefixes=("",))
  x = text.encode_inputs(default, ["good", "bad film"])
  np.testing.assert_array_equal(
      default.log_likelihood(default.fit(None, None, num_classes=2), x),
      only.log_likelihood(only.fit(None, None, num_classes=2), x))
  # Where both variants are single tokens ("a" and " a" -> "Ġa"), both are kept.
  tok = lm.tokenizer
  want = [tok.token_to_id("a"), tok.token_to_id("Ġa")]
  assert None not in want and want[0] != want[1]
  np.testing.assert_array_equal(text.masked.variant_ids(tok, ["a"]), [want])
  with pytest.raises(ValueError, match=r"label 'positive': no variant is a single token"):
    text.masked_lm_classifier(lm, ["A", "positive"])
  with pytest.raises(ValueError, match="prefixes"):
    text.masked.variant_ids(lm.tokenizer, ["A"], prefixes=())
