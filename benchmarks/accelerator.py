"""What jgen does on one accelerator: one table, at most 8 minutes on one GPU.

    python -m benchmarks.accelerator            # the prepared run (GPU/TPU)
    python -m benchmarks.accelerator --smoke    # tiny configurations, any CPU

Rows (every size from the execution plan, ``jgen.core.plan``, unless a row says so):

1. DiT-XL/2 (Peebles & Xie 2023; random weights, bfloat16, 32x32x4 latents)
   evaluations per second at several batch sizes and the planned one; FLOPs per forward
   counted from the architecture (``dit_flops``); peer: batch 1, what the CPU cache
   budget gave before the plan existed.
2. Seconds per 1,000-class classification of one latent: the staged elimination
   (stages (8, 48, 256, 1024) draws keeping (100, 12, 3, 1) classes, the schedule that
   came within 0.5 points of Bayes on the 1,000-class oracle) through
   ``jgen.diffusion.classify(strategy="adaptive")``; peer: the Diffusion Classifier's
   reference protocol (every class at every 5th DDPM timestep, 200,000 evaluations),
   extrapolated from a measured slice when running it would exceed the budget (the
   row says so).
3. Gaussian naive Bayes and QDA ``log_likelihood`` at N = 10^6, D = 512, K = 1,000
   (rows chunked by the plan).
4. One NB-vs-LR simulation grid cell: the vmapped repetitions solver against a loop
   (``benchmarks.simulation.ratio_bench``).
5. Label scoring with a Llama-3.2-1B-shaped random decoder (bfloat16): one prompt
   prefill shared by K = 32 label continuations, against re-running prompt + label per
   class (lm-evaluation-harness's structure).
6. Class-sharded ε-errors over every local device (``sharded_class_errors``) against
   the one-device ``class_errors``.

The fraction of peak uses ``PEAK_TFLOPS`` (the vendor's dense figure for the device
kind; "unknown" otherwise) and the measured matmul rate of this device in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.common import best_time, fmt_table, matmul_flops_per_s
from jgen import diffusion
from jgen.core import plan as plan_lib
from jgen.diffusion import pretrained as pt

# Dense (no structured sparsity) peak TFLOP/s per chip: (bfloat16, float32).
# NVIDIA H100 Tensor Core GPU datasheet (SXM5: BF16 989.4, FP32 66.9; PCIe: 756, 51);
# NVIDIA H200 datasheet (SXM: the H100 SXM's compute, 989 and 67); NVIDIA A100 datasheet
# (BF16 312, FP32 19.5); Google Cloud TPU system architecture pages (v4: 275 BF16 per
# chip; v5e: 197 BF16 per chip). float32 on TPU runs as bfloat16 passes: unknown.
PEAK_TFLOPS = {
    "H100 PCIe": (756.0, 51.0),
    "H100": (989.4, 66.9),
    "H200": (989.0, 67.0),
    "A100": (312.0, 19.5),
    "TPU v4": (275.0, None),
    "TPU v5 lite": (197.0, None),
    "TPU v5e": (197.0, None),
}

XL2 = pt.DiTConfig()   # DiT-XL/2 on 32x32x4 latents
STAGES, KEEP = (8, 48, 256, 1024), (100, 12, 3, 1)
LLAMA_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                head_dim=64, rms_norm_eps=1e-5, rope_theta=500000.0,
                tie_word_embeddings=True)
FULL = dict(dit=XL2, batches=(1, 32, 128), max_batch=4096, classes=1000, stages=STAGES, keep=KEEP,
            t_interval=5, ref_slice=4, gauss=(1_000_000, 512, 1000), sim=(7, 100, 1000),
            llama=LLAMA_1B, prompt=128, num_labels=32, label_len=4, prompts=16)
SMOKE = dict(dit=pt.DiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=1,
                              sample_size=4, out_channels=8, num_embeds_ada_norm=10),
             batches=(1, 4), max_batch=16, classes=10, stages=(2, 4), keep=(3, 1), t_interval=250,
             ref_slice=2, gauss=(2000, 8, 10), sim=(2, 4, 64),
             llama=dict(LLAMA_1B, vocab_size=64, hidden_size=16, intermediate_size=32,
                        num_hidden_layers=1, num_attention_heads=2,
                        num_key_value_heads=1, head_dim=8),
             prompt=8, num_labels=4, label_len=2, prompts=4)


def peak_tflops(device) -> tuple[float | None, float | None]:
  """(bfloat16, float32) dense peak of ``device.device_kind``; ``(None, None)`` if
  the kind is not in ``PEAK_TFLOPS``."""
  kind = str(getattr(device, "device_kind", ""))
  for name, peak in PEAK_TFLOPS.items():   # "H100 PCIe" before "H100"
    if name.lower() in kind.lower():
      return peak
  return None, None


def dit_flops(cfg: pt.DiTConfig) -> float:
  """Matmul FLOPs of one DiT forward (2 per multiply-add): per block the q, k, v and
  output projections (8 d^2 per token), the 4x MLP (16 d^2), ``QK^T`` and ``AV``
  (4 T d) and the adaLN modulation (12 d^2 per example); plus the patch embedding,
  the final modulation and the output projection. DiT-XL/2: 237 GFLOPs, the paper's
  118.6 G multiply-adds (Peebles & Xie 2023, Table 4)."""
  d, p, c = cfg.dim, cfg.patch_size, cfg.in_channels
  t = (cfg.sample_size // p) ** 2
  block = t * (24 * d * d + 4 * t * d) + 12 * d * d
  return float(cfg.num_layers * block + 2 * t * p * p * c * d + 4 * d * d
               + 2 * t * d * p * p * cfg.output_channels)


def _frac(flops_per_s, peak):
  return "unknown" if peak is None else f"{flops_per_s / (peak * 1e12):.1%}"


def dit_rows(cfg, o, peak_bf16, mm_bf16):
  den = pt.dit_denoiser(cfg)
  params = pt.init_dit(jax.random.key(0), cfg, jnp.bfloat16)
  shape = den.data_shape
  per = diffusion.chunking.activation_bytes(den, params, shape, jnp.float32)
  planned = plan_lib.items_per_call(per, o["max_batch"])
  fwd = jax.jit(jax.vmap(lambda z, g, y: den.apply(params, z, g, y)))
  flops = dit_flops(cfg)
  rows, base = [], None
  for b in sorted(set(o["batches"]) | {planned}):
    z = jax.random.normal(jax.random.key(b), (b,) + shape, jnp.float32)
    g = jnp.linspace(-5.0, 5.0, b, dtype=jnp.float32)
    y = jnp.arange(b, dtype=jnp.int32) % den.num_classes
    s = best_time(lambda: fwd(z, g, y), repeats=3)
    rate = b / s
    base = rate if base is None else base
    rows.append(dict(item="DiT forward, bf16", config=f"batch {b}"
                     + (" (planned)" if b == planned else ""),
                     value=f"{rate:.4g} evals/s", peer="batch 1",
                     ratio=f"{rate / base:.3g}x",
                     peak=_frac(rate * flops, peak_bf16),
                     measured=f"{rate * flops / mm_bf16:.1%}"))
  return rows, den, params, planned


def classify_rows(cfg, o, den, params, eval_rate):
  k = o["classes"]
  latent = jax.random.normal(jax.random.key(1), den.data_shape, jnp.float32)
  sched = pt.DDPMSchedule().schedule()
  run = lambda: diffusion.classify(jax.random.key(2), den, params, latent, k,
                                   strategy="adaptive", n_samples=o["stages"],
                                   to_keep=o["keep"], schedule=sched)
  s_staged = best_time(run, repeats=2)
  evals = int(run().num_evals)
  gammas = pt.reference_gammas(o["t_interval"])
  full = int(gammas.shape[0]) * k
  noise = jax.random.normal(jax.random.key(3), den.data_shape, jnp.float32)
  cut = gammas[:o["ref_slice"]]
  ref = lambda g: pt.class_eps_errors(den, params, latent, noise, g, jnp.arange(k))
  s_slice = best_time(lambda: ref(cut), repeats=2)
  if o["ref_slice"] >= gammas.shape[0]:
    s_ref, how = s_slice, "measured"
  else:
    s_ref, how = s_slice * gammas.shape[0] / o["ref_slice"], (
        f"extrapolated from {o['ref_slice']} of {gammas.shape[0]} timesteps")
  return [dict(item=f"{k}-class classification", config=f"staged {o['stages']} /"
               f" {o['keep']}, {evals} evals", value=f"{s_staged:.3g} s",
               peer=f"reference, {full} evals ({how}): {s_ref:.3g} s",
               ratio=f"{s_ref / s_staged:.3g}x", peak="", measured="")]


def gaussian_rows(o, mm_f32, peak_f32):
  import jgen
  n, d, k = o["gauss"]
  rng = np.random.default_rng(0)
  means = jnp.asarray(rng.normal(size=(k, d)), jnp.float32)
  x = jax.random.normal(jax.random.key(4), (n, d), jnp.float32)
  log_prior = jnp.full((k,), -np.log(k), jnp.float32)
  nb = jgen.gaussian_nb()
  nbp = jgen.gaussian.GaussianNBParams(means, jnp.ones((k, d), jnp.float32), log_prior)
  qda = jgen.qda()
  qp = jgen.gaussian.QDAParams(means, jnp.broadcast_to(jnp.eye(d, dtype=jnp.float32),
                                                       (k, d, d)), log_prior)
  rows = []
  for name, model, params, flops in (("Gaussian NB", nb, nbp, 4.0 * n * d * k),
                                     ("QDA", qda, qp, 2.0 * n * d * d * k)):
    s = best_time(lambda: model.log_likelihood(params, x), repeats=2)
    rows.append(dict(item=f"{name} log_likelihood", config=f"N={n}, D={d}, K={k}",
                     value=f"{s:.3g} s", peer="", ratio="",
                     peak=_frac(flops / s, peak_f32), measured=f"{flops / s / mm_f32:.1%}"))
  return rows


def simulation_rows(o):
  from benchmarks.simulation import ratio_bench
  k, n, m = o["sim"]
  r = ratio_bench(k, n, m, reps=5, chunk=4, repeats=1)
  return [dict(item="NB-vs-LR grid cell", config=f"K={k}, n={n}, m={m}, 5 reps",
               value=f"{r['engine_vmap_s']:.3g} s", peer=f"loop {r['engine_loop_s']:.3g} s",
               ratio=f"{r['engine_vmap_over_loop']:.3g}x", peak="", measured="")]


def text_rows(o, peak_bf16, mm_bf16):
  from jgen.text import llama, loader, scoring
  cfg = llama.llama_config(o["llama"])
  module = llama.Llama(cfg, rngs=nnx.Rngs(0), dtype=jnp.bfloat16)
  lm = loader.from_module(module, "causal", config={"vocab_size": cfg.vocab_size})
  rng = np.random.default_rng(0)
  k, length, p, b = o["num_labels"], o["label_len"], o["prompt"], o["prompts"]
  labels = jnp.asarray(rng.integers(1, cfg.vocab_size, (k, length)), jnp.int32)
  mask = jnp.ones((k, length), bool)
  prompts = jnp.asarray(rng.integers(1, cfg.vocab_size, (b, p)), jnp.int32)
  per = plan_lib.largest_intermediate(
      lambda w, pr: scoring.token_logprobs(lm, w, pr, labels, mask), lm.weights, prompts[0])
  rows_per_call = plan_lib.items_per_call(per, b)
  pre = jax.jit(lambda w, x: jax.lax.map(lambda pr: scoring.token_logprobs(
      lm, w, pr, labels, mask).sum(-1), x, batch_size=rows_per_call))
  rer = jax.jit(lambda w, x: jax.lax.map(lambda pr: scoring.rerun_token_logprobs(
      lm, w, pr, labels, mask).sum(-1), x, batch_size=rows_per_call))
  s_pre = best_time(lambda: pre(lm.weights, prompts), repeats=2)
  s_rer = best_time(lambda: rer(lm.weights, prompts), repeats=2)
  h, f, layers, v = cfg.hidden, cfg.intermediate, cfg.n_layer, cfg.vocab_size
  kv = cfg.n_kv_head * cfg.head_dim
  dense = 2 * layers * (2 * h * h + 2 * h * kv + 3 * h * f) + 2 * h * v
  flops = b * (p + k * length) * dense
  return [dict(item="label scoring, bf16 Llama-1B shape" if v > 100_000 else
               "label scoring, bf16 Llama (tiny)",
               config=f"{b} prompts x {p} tokens, K={k}, {rows_per_call}/call",
               value=f"{b / s_pre:.4g} prompts/s", peer=f"re-run {b / s_rer:.4g}/s",
               ratio=f"{s_rer / s_pre:.3g}x", peak=_frac(flops / s_pre, peak_bf16),
               measured=f"{flops / s_pre / mm_bf16:.1%}")]


def sharding_rows(den, params, o):
  import jgen
  mesh = jgen.parallel.make_mesh()
  k = o["classes"]
  latent = jax.random.normal(jax.random.key(5), den.data_shape, jnp.float32)
  sched = pt.DDPMSchedule().schedule()
  num_t = 8
  one = lambda: diffusion.class_errors(jax.random.key(6), den, params, latent, k,
                                       num_t=num_t, schedule=sched)
  many = lambda: diffusion.sharded_class_errors(jax.random.key(6), den, params, latent,
                                                k, mesh, num_t=num_t, schedule=sched)
  s_one, s_many = best_time(one, repeats=2), best_time(many, repeats=2)
  devices = mesh.devices.size
  return [dict(item="class sharding", config=f"{k} classes x {num_t} draws,"
               f" {devices} device(s)", value=f"{s_many:.3g} s",
               peer=f"one device {s_one:.3g} s", ratio=f"{s_one / s_many:.3g}x",
               peak="", measured="")]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--smoke", action="store_true", help="tiny configurations (CPU)")
  p.add_argument("--out", default="results/benchmarks/accelerator.json")
  args = p.parse_args(argv)
  o = SMOKE if args.smoke else FULL
  t0 = time.perf_counter()
  device = jax.devices()[0]
  plan = plan_lib.current_plan()
  peak_bf16, peak_f32 = peak_tflops(device)
  n_mm = 512 if args.smoke else 8192
  mm_bf16 = matmul_flops_per_s(n_mm, jnp.bfloat16, repeats=3)
  mm_f32 = matmul_flops_per_s(n_mm // 2, jnp.float32, repeats=3)
  print(f"device: {device.device_kind} ({device.platform}), {jax.local_device_count()}"
        f" local; plan: {plan.kind} budget {plan.budget_bytes / 2**20:.0f} MiB;"
        f" peak bf16/f32 TFLOP/s: {peak_bf16 or 'unknown'}/{peak_f32 or 'unknown'};"
        f" measured matmul bf16 {mm_bf16 / 1e12:.3g}, f32 {mm_f32 / 1e12:.3g} TFLOP/s")
  rows, den, params, planned = dit_rows(o["dit"], o, peak_bf16, mm_bf16)
  rows += classify_rows(o["dit"], o, den, params, None)
  rows += gaussian_rows(o, mm_f32, peak_f32)
  rows += simulation_rows(o)
  rows += text_rows(o, peak_bf16, mm_bf16)
  rows += sharding_rows(den, params, o)
  seconds = time.perf_counter() - t0
  cols = ["item", "config", "value", "peer", "ratio", "peak", "measured"]
  print(fmt_table(rows, cols))
  print(f"peak: fraction of the device kind's dense peak; measured: of this device's"
        f" measured matmul rate (bf16 rows: bf16; Gaussian rows: f32). {seconds:.0f} s")
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(dict(device=str(device.device_kind), platform=device.platform,
                   plan=plan._asdict(), rows=rows, seconds=seconds, smoke=args.smoke),
              f, indent=1)
  print(f"wrote {args.out}")
  return rows


if __name__ == "__main__":
  main()
