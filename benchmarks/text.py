"""LM label scoring: one prompt prefill + K cached label continuations vs K full re-runs.

jgen scores the ``K`` labels of a prompt with one forward pass over the prompt and one
vmapped batch of ``K`` label continuations attending to the shared KV cache
(``jgen.text.scoring.token_logprobs``). The peer is lm-evaluation-harness's structure:
every (context, continuation) pair runs the whole ``prompt + label`` sequence
(``jgen.text.scoring.rerun_token_logprobs``, same model, same ids). Both are jitted and
``vmap``\\ ed over a batch of prompts, timed warm (compiled, best of ``--repeats``); the
benchmark checks that they give the same log-probabilities.

The model is a random GPT-2-like decoder (no download). FLOPs are counted analytically
(matmuls: projections, MLP, LM head, and attention's ``QK^T`` and ``AV``) and divided by
this machine's float32 matmul rate, measured in the same run.

Run: ``python -m benchmarks.text`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
from flax import nnx

from benchmarks.common import best_time, fmt_table, matmul_flops_per_s
from jgen import text
from jgen.text import scoring
from jgen.text.gpt2 import GPT2, GPT2Config


def _flops(c: GPT2Config, queries: int, keys_per_query: float) -> float:
  """Matmul FLOPs of ``queries`` token positions, each attending ``keys_per_query``."""
  d, f = c.n_embd, c.n_inner
  dense = c.n_layer * (2 * d * 3 * d + 2 * d * d + 2 * 2 * d * f) + 2 * d * c.vocab_size
  attn = c.n_layer * 2 * 2 * d * keys_per_query
  return queries * (dense + attn)


def path_flops(c: GPT2Config, batch: int, p: int, k: int, l: int) -> tuple[float, float]:
  """(prefilled, re-run) FLOPs of a batch of prompts of ``p`` tokens and ``k`` labels."""
  prefilled = _flops(c, p, (p + 1) / 2) + _flops(c, k * l, p + (l + 1) / 2)
  rerun = _flops(c, k * (p + l), (p + l + 1) / 2)
  return batch * prefilled, batch * rerun


def _data(key, batch, p, k, l, vocab):
  kp, kn, kl, kc = jax.random.split(key, 4)
  prompts = jax.random.randint(kp, (batch, p), 0, vocab, jnp.int32)
  lengths = jax.random.randint(kn, (batch,), p - 8, p + 1)
  prompts = jnp.where(jnp.arange(p)[None] < lengths[:, None], prompts, -1)
  label_len = jax.random.randint(kl, (k,), 1, l + 1)
  masks = jnp.arange(l)[None] < label_len[:, None]
  conts = jnp.where(masks, jax.random.randint(kc, (k, l), 0, vocab, jnp.int32), 0)
  return prompts, conts, masks


def run(cfg: GPT2Config, ks, *, batch, p, l, repeats) -> list[dict]:
  lm = text.from_module(GPT2(cfg, rngs=nnx.Rngs(0)), "causal")
  over_batch = lambda fn: jax.jit(jax.vmap(lambda w, pr, c, m: fn(lm, w, pr, c, m),
                                           in_axes=(None, 0, None, None)))
  prefilled, rerun = over_batch(scoring.token_logprobs), over_batch(scoring.rerun_token_logprobs)
  rows = []
  for k in ks:
    prompts, conts, masks = _data(jax.random.key(k), batch, p, k, l, cfg.vocab_size)
    a = prefilled(lm.weights, prompts, conts, masks)
    b = rerun(lm.weights, prompts, conts, masks)
    diff = float(jnp.max(jnp.abs(a - b)))
    roof = matmul_flops_per_s()  # the shared machine drifts: measure next to each row
    t_pre = best_time(lambda: prefilled(lm.weights, prompts, conts, masks), repeats=repeats)
    t_re = best_time(lambda: rerun(lm.weights, prompts, conts, masks), repeats=repeats)
    f_pre, f_re = path_flops(cfg, batch, p, k, l)
    rows.append(dict(K=k, prefilled_ms=1e3 * t_pre, rerun_ms=1e3 * t_re,
                     speedup=t_re / t_pre, flop_ratio=f_re / f_pre,
                     prefilled_roofline=f_pre / t_pre / roof, rerun_roofline=f_re / t_re / roof,
                     matmul_gflops=roof / 1e9, max_abs_diff=diff))
  return rows


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny model and K in {2, 4}")
  parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8, 16, 32],
                      help="numbers of labels (default 2 4 8 16 32)")
  parser.add_argument("--prompt-len", type=int, default=128, help="prompt tokens (padded"
                      " length; real lengths are drawn in [P-8, P])")
  parser.add_argument("--label-len", type=int, default=4, help="longest label (1..L tokens)")
  parser.add_argument("--batch", type=int, default=4, help="prompts per call")
  parser.add_argument("--repeats", type=int, default=3, help="timed runs (best is kept)")
  parser.add_argument("--out", default="results/benchmarks/text.json")
  args = parser.parse_args(argv)
  if args.quick:
    cfg, ks, p = GPT2Config(512, 64, 32, 1, 2, 64, 1e-5), [2, 4], 32
  else:
    cfg, ks, p = GPT2Config(8192, 256, 256, 4, 4, 1024, 1e-5), args.ks, args.prompt_len
  t0 = time.perf_counter()
  rows = run(cfg, ks, batch=args.batch, p=p, l=args.label_len, repeats=args.repeats)
  cols = ["K", "prefilled_ms", "rerun_ms", "speedup", "flop_ratio", "prefilled_roofline",
          "rerun_roofline", "matmul_gflops", "max_abs_diff"]
  print(f"GPT-2-like random model {cfg._asdict()}, batch {args.batch}, prompt {p},"
        f" labels 1-{args.label_len} tokens; backend {jax.default_backend()},"
        f" {os.cpu_count()} CPUs")
  print(fmt_table(rows, cols))
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"config": cfg._asdict(), "batch": args.batch, "prompt_len": p,
               "label_len": args.label_len, "rows": rows,
               "seconds": time.perf_counter() - t0}, f, indent=1)
  print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
  return rows


if __name__ == "__main__":
  main()
