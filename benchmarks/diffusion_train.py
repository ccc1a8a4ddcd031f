"""Denoiser training steps/s and Diffusion Classifier images/s on digits-sized data.

Training: jgen's jitted ``train_step`` against a hand-written batched step of the same
model and objective (plain ``optax.adam``, no EMA) — the peer a user would write — in
the same process on the same data, configured to do the same work (constant-rate Adam,
``grad_clip=None``, ``ema_decay=None``). Two peers: one that draws its minibatch on
device from the whole training set as ``train_step`` does (the same work), and one fed a
fixed pre-sliced batch (no draw at all). Then jgen with clipping, with EMA, and with the
defaults, so their costs show separately. The machine may be shared: every variant runs
``--chunk`` steps per repeat, the variants alternate for ``--repeats`` rounds, and the
table shows medians. Classification (medians of alternating repeats against the
per-class loop): ``batch_classify`` (``full``, all 10 classes
x ``num_t`` draws per image) in images/s and denoiser evaluations/s. FLOP/s are from
the MLP's matmul count (forward ``2 * sum(kernel sizes)`` per example, backward 2x)
as a fraction of this machine's measured float32 matmul rate.

  python benchmarks/diffusion_train.py [--width 256] [--depth 4] [--repeats 25]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

if __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import fmt_table, matmul_flops_per_s  # noqa: E402
import jgen  # noqa: E402
from jgen.diffusion import nets, train as dtrain  # noqa: E402
from jgen.diffusion.schedules import alpha_sigma  # noqa: E402


def mlp_flops(params) -> float:
  """Forward matmul FLOPs per example: 2 x (entries of every 2-D kernel)."""
  return 2.0 * sum(int(np.prod(l.shape)) for l in jax.tree.leaves(params) if l.ndim == 2
                   and l.shape[0] > 10)  # skip the label embedding (a gather)


def peer_step_fn(graphdef, schedule, opt, batch_size=None):
  """A plain batched eps-prediction step: the module called on the whole batch.

  With ``batch_size``, the step draws its minibatch from the whole set on device
  (``randint`` + gather), as ``train_step`` does; without, ``x``/``y`` are the batch.
  """
  def loss(params, x, y, key):
    t_key, e_key = jax.random.split(key)
    b = x.shape[0]
    t = jnp.mod(jax.random.uniform(t_key, ()) + jnp.arange(b) / b, 1.0)
    g = schedule.gamma(t)
    a, s = alpha_sigma(g)
    eps = jax.random.normal(e_key, x.shape, x.dtype)
    z = a[:, None] * x + s[:, None] * eps
    return jnp.mean((nnx.merge(graphdef, params)(z, g, y) - eps) ** 2)

  @jax.jit
  def step(params, opt_state, x, y, key):
    if batch_size is not None:
      key, b_key = jax.random.split(key)
      idx = jax.random.randint(b_key, (batch_size,), 0, x.shape[0])
      x, y = x[idx], y[idx]
    l, grads = jax.value_and_grad(loss)(params, x, y, key)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, l
  return step


def interleaved_medians(fns: dict, repeats: int) -> dict:
  """Median wall time of each ``fns[k]()`` over ``repeats`` alternating rounds."""
  for f in fns.values():  # compile and warm up
    jax.block_until_ready(f())
  times = {k: [] for k in fns}
  for _ in range(repeats):
    for k, f in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(f())
      times[k].append(time.perf_counter() - t0)
  return {k: float(np.median(v)) for k, v in times.items()}


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--width", type=int, default=256)
  p.add_argument("--depth", type=int, default=4)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--num-t", type=int, default=64)
  p.add_argument("--images", type=int, default=32)
  p.add_argument("--repeats", type=int, default=25)
  p.add_argument("--chunk", type=int, default=10, help="steps per timed repeat")
  args = p.parse_args(argv)
  data = jgen.datasets.load_digits()
  x = jnp.asarray(data.x_train * 2 - 1)
  y = jnp.asarray(data.y_train)
  schedule = jgen.diffusion.linear_schedule()
  model = nets.MLPDenoiser((64,), 10, width=args.width, depth=args.depth,
                           rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  params = nnx.to_pure_dict(params)
  fwd = mlp_flops(params)
  roof = matmul_flops_per_s()
  den, _ = jgen.diffusion.nnx_denoiser(model)
  # The same work as the peer: constant-rate Adam, no EMA, no clipping, no decay.
  plain = dtrain.TrainConfig(batch_size=args.batch, warmup_steps=0, end_lr_ratio=1.0,
                             weight_decay=0.0, grad_clip=None, ema_decay=None,
                             learning_rate=1e-3)
  configs = {"same work (no EMA, no clip)": plain,
             "+ clipping": plain._replace(grad_clip=1.0),
             "+ EMA": plain._replace(ema_decay=0.999),
             "default (clip, EMA, decay)": dtrain.TrainConfig(batch_size=args.batch)}

  n = args.chunk

  # Each timed repeat starts from a state built once, as the peer starts from
  # parameters split once (building it splits the NNX module, which is not a step).
  starts = {cfg: dtrain.init_state(model, cfg) for cfg in configs.values()}

  def jgen_steps(cfg):
    s = starts[cfg]
    for _ in range(n):
      s, loss, _ = dtrain.train_step(s, x, y, denoiser=den, schedule=schedule,
                                     config=cfg, num_classes=10)
    return loss

  opt = optax.adam(1e-3)

  def peer_steps(step, xs, ys):
    def run():
      p_, o_ = params, opt.init(params)
      for i in range(n):
        p_, o_, loss = step(p_, o_, xs, ys, jax.random.key(i))
      return loss
    return run

  fns = {"peer (draws its minibatch)":
             peer_steps(peer_step_fn(graphdef, schedule, opt, args.batch), x, y),
         "peer (fixed batch)": peer_steps(peer_step_fn(graphdef, schedule, opt),
                                          x[:args.batch], y[:args.batch])}
  fns.update({what: functools.partial(jgen_steps, cfg) for what, cfg in configs.items()})
  med = {k: v / n for k, v in interleaved_medians(fns, args.repeats).items()}
  step_flops = 3 * fwd * args.batch
  same = med["peer (draws its minibatch)"]
  plain_t = med["same work (no EMA, no clip)"]
  rows = [{"what": f"peer {k[5:]}", "steps/s": 1 / med[k],
           "jgen/peer speed": med[k] / plain_t, "roofline": step_flops / med[k] / roof}
          for k in ("peer (draws its minibatch)", "peer (fixed batch)")]
  for what in configs:
    rows.append({"what": f"jgen train_step {what}", "steps/s": 1 / med[what],
                 "vs peer (same work)": same / med[what],
                 "cost vs jgen same work": med[what] / plain_t - 1.0,
                 "roofline": step_flops / med[what] / roof})
  print(f"train steps: MLP {args.width}x{args.depth}, batch {args.batch}; medians of"
        f" {args.repeats} alternating repeats of {n} steps")
  print(fmt_table(rows, ["what", "steps/s", "jgen/peer speed", "vs peer (same work)",
                         "cost vs jgen same work", "roofline"]))
  train_rows, rows = rows, []
  den, dparams = jgen.diffusion.nnx_denoiser(model)
  eps_fn = lambda z, g, c: den.apply(dparams, z, g, c)  # noqa: E731
  xs = x[:args.images]
  run = lambda: jgen.diffusion.batch_classify(jax.random.key(0), den, dparams, xs, 10,
                                              schedule=schedule, num_t=args.num_t,
                                              weighting="uniform").label
  evals = args.images * 10 * args.num_t
  loop_eps = jax.jit(jax.vmap(eps_fn))

  def per_class_loop():  # the reference implementation's structure: batch per class
    out = []
    for c in range(10):
      z = jnp.broadcast_to(xs[:, None], (args.images, args.num_t, 64)).reshape(-1, 64)
      g = jnp.zeros(z.shape[0])
      out.append(loop_eps(z, g, jnp.full(z.shape[0], c)))
    return out

  # Alternating medians, as for the steps: robust to other load on the machine.
  cls_med = interleaved_medians({"jgen": run, "loop": per_class_loop}, args.repeats)
  t_cls, t_loop = cls_med["jgen"], cls_med["loop"]
  rows.append({"what": f"classify full (10 classes x {args.num_t} t)",
               "jgen": f"{args.images / t_cls:.1f} img/s ({evals / t_cls:.3g} evals/s)",
               "peer": f"{args.images / t_loop:.1f} img/s (per-class loop)",
               "jgen/peer speed": t_loop / t_cls, "roofline": fwd * evals / t_cls / roof})
  cols = ["what", "jgen", "peer", "jgen/peer speed", "roofline"]
  print(f"matmul roofline: {roof / 1e9:.1f} GFLOP/s; MLP forward {fwd / 1e6:.2f}"
        " MFLOP/example")
  print(fmt_table(rows, cols))
  os.makedirs(os.path.join("results", "benchmarks"), exist_ok=True)
  with open(os.path.join("results", "benchmarks", "diffusion_train.json"), "w") as f:
    json.dump({"train_rows": train_rows, "rows": rows, "roofline_flops": roof,
               "forward_flops": fwd, "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
  main()
