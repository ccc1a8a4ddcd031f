"""Generative classification with language models (causal and masked), on the contract.

Label log-likelihoods under causal LMs from one prompt prefill and a class-vmapped
cached continuation; the noisy channel ``log p(x | label)``; masked-LM scoring at the
mask; the field's corrections (length normalisation, domain-conditional PMI, contextual
calibration, temperature); NNX ports of GPT-2, Llama-family decoders and ModernBERT
loaded from Hugging Face folders; an exact Markov-chain oracle.
"""

from jgen.text.classifiers import causal_lm_classifier
from jgen.text.classifiers import encode_inputs
from jgen.text.classifiers import noisy_channel_classifier
from jgen.text.corrections import contextual_offset
from jgen.text.corrections import fit_inv_temperature
from jgen.text.corrections import label_norms
from jgen.text.loader import PretrainedLM
from jgen.text.loader import from_module
from jgen.text.loader import load_pretrained
from jgen.text.masked import masked_lm_classifier
from jgen.text.params import LMScorerParams
from jgen.text.scoring import masked_label_logprobs
from jgen.text.scoring import rerun_token_logprobs
from jgen.text.scoring import token_logprobs
from jgen.text.tokenize import encode_pairs
from jgen.text.tokenize import split_pair
from jgen.text.tokenize import train_bpe_tokenizer

__all__ = [
    "LMScorerParams", "PretrainedLM", "causal_lm_classifier", "contextual_offset",
    "encode_inputs", "encode_pairs", "fit_inv_temperature", "from_module", "label_norms",
    "load_pretrained", "masked_label_logprobs", "masked_lm_classifier",
    "noisy_channel_classifier", "rerun_token_logprobs", "split_pair", "token_logprobs",
    "train_bpe_tokenizer",
]
