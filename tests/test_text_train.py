"""Maximum-likelihood LM training: the loss it minimises and the rows it samples.

References: the definition of the next-token NLL (log-softmax of one full forward pass,
summed over the scored positions).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jgen import text
from jgen.text.gpt2 import GPT2, GPT2Config
from jgen.text.train import sequence_nll, train_causal_lm

CFG = GPT2Config(12, 8, 16, 1, 2, 32, 1e-5)


def _lm():
  return text.from_module(GPT2(CFG, rngs=nnx.Rngs(0)), "causal")


def test_trains_only_on_the_first_num_examples_rows():
  lm = _lm()
  seen = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]], np.int32)
  unseen = np.array([[9, 3, 9, 3, 9, 3, 9, 3]], np.int32)
  data = np.concatenate([seen, unseen])
  w, losses = train_causal_lm(jax.random.key(0), lm, data, num_examples=2, num_steps=60,
                              batch_size=4)
  assert losses.shape == (60,) and float(losses[-1]) < 0.5 * float(losses[0])
  nll = lambda row: float(sequence_nll(lm, w, jnp.asarray(row), jnp.ones(8, bool))[0])
  assert nll(seen[0]) < 0.25 * nll(unseen[0])


def test_sequence_nll_is_the_masked_next_token_nll():
  lm = _lm()
  tokens, mask = jnp.array([3, 1, 4, 1, 5]), jnp.array([True, False, True, True, False])
  nll, count = sequence_nll(lm, lm.weights, tokens, mask)
  lp = np.asarray(jax.nn.log_softmax(lm.apply(lm.weights, tokens, jnp.arange(5))[0]))
  ref = -(lp[1, 4] + lp[2, 1])  # positions 2 and 3 are scored, predicted by 1 and 2
  np.testing.assert_allclose(nll, ref, rtol=1e-6)
  assert int(count) == 2


def test_bad_training_inputs_are_named():
  lm = _lm()
  x = np.zeros((3, 4), np.int32)
  with pytest.raises(ValueError, match="num_examples=0"):
    train_causal_lm(jax.random.key(0), lm, x, num_examples=0)
  with pytest.raises(ValueError, match="mask has shape"):
    train_causal_lm(jax.random.key(0), lm, x, mask=np.ones((3, 5), bool))
  with pytest.raises(ValueError, match="integer ids"):
    train_causal_lm(jax.random.key(0), lm, x.astype(np.float32))
