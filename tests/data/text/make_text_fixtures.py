"""Generate the tiny Hugging Face-format folders and PyTorch logits the text tests use.

Each folder (``gpt2/``, ``llama/``, ``modernbert/``) holds what ``save_pretrained``
writes (``config.json``, ``model.safetensors``) plus a ``tokenizer.json`` trained here
with the ``tokenizers`` library, ``input_ids.npy`` (``int32 [2, T]``) and PyTorch's
``logits.npy`` (``float32 [2, T, V]``) from the transformers reference implementation.
Random weights, fixed seeds; every file stays far below 1 MB.

Run from the repository root (needs torch and transformers):

    python tests/data/text/make_text_fixtures.py
"""

from __future__ import annotations

import pathlib

import numpy as np
import tokenizers
import torch
import transformers

HERE = pathlib.Path(__file__).resolve().parent
SPECIAL = ["<|endoftext|>", "<s>", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[unused0]"]
CORPUS = [
    "the film is a fresh delight", "a rotten mess of a movie", "Review: great acting.",
    "Sentiment: positive", "Sentiment: negative", "Answer: A B C D", "bad plot, good cast",
    "an utterly boring film", "the best movie of the year", "I loved it", "I hated it",
]


def make_tokenizer(vocab_size: int = 300) -> tokenizers.Tokenizer:
  """Byte-level BPE trained in-process on :data:`CORPUS` (deterministic)."""
  tok = tokenizers.Tokenizer(tokenizers.models.BPE())
  tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = tokenizers.decoders.ByteLevel()
  trainer = tokenizers.trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
      initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(CORPUS * 4, trainer=trainer)
  return tok


def configs(vocab: int) -> dict:
  common = dict(vocab_size=vocab + 8)  # a padded embedding table, as ModernBERT ships
  return {
      "gpt2": transformers.GPT2Config(
          n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=0,
          eos_token_id=0, **common),
      "llama": transformers.LlamaConfig(
          hidden_size=32, intermediate_size=48, num_hidden_layers=2,
          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
          rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=0, tie_word_embeddings=False,
          rope_parameters={"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0,
                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 16},
          **common),
      "modernbert": transformers.ModernBertConfig(
          hidden_size=32, intermediate_size=48, num_hidden_layers=3,
          num_attention_heads=4, max_position_embeddings=64, local_attention=4,
          global_rope_theta=160.0, local_rope_theta=10.0, pad_token_id=4,
          bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3, **common),
  }


MODEL_CLASSES = {"gpt2": transformers.GPT2LMHeadModel,
                 "llama": transformers.LlamaForCausalLM,
                 "modernbert": transformers.ModernBertForMaskedLM}


def main() -> None:
  tok = make_tokenizer()
  vocab = tok.get_vocab_size()
  for i, (name, cfg) in enumerate(configs(vocab).items()):
    torch.manual_seed(i)
    cfg._attn_implementation = "eager"
    model = MODEL_CLASSES[name](cfg).eval()
    with torch.no_grad():  # non-trivial norm weights and biases, so their layout is tested
      for pname, p in model.named_parameters():
        if pname.endswith("bias") or "norm" in pname or "ln_" in pname:
          p.add_(0.1 * torch.randn_like(p))
    out = HERE / name
    model.save_pretrained(out)
    tok.save(str(out / "tokenizer.json"))
    rng = np.random.default_rng(i)
    ids = rng.integers(0, vocab, size=(2, 12)).astype(np.int32)
    with torch.no_grad():
      logits = model(torch.from_numpy(ids.astype(np.int64))).logits.numpy()
    np.save(out / "input_ids.npy", ids)
    np.save(out / "logits.npy", logits.astype(np.float32))
    print(name, {p.name: p.stat().st_size for p in sorted(out.iterdir())})


if __name__ == "__main__":
  main()
