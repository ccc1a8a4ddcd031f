"""U-Net training step on the CPU: jgen against a PyTorch step of the same network.

For each data shape (MNIST-1D signals, digits images, 16x16 and 28x28 images) and the
U-Net of ``experiments/diffusion_classifier.py`` (channels (32, 64), batch 128):

* ``jgen``: :func:`jgen.diffusion.train.train_step` (minibatch draw, stratified times,
  AdamW with clipping and EMA), compiled with :mod:`jgen.core.compilation`'s CPU options;
* ``jgen, XLA defaults``: the same step compiled with XLA's default CPU options (what
  version 1 compiled; convolutions through YNNPACK);
* ``peer``: PyTorch (``torch`` CPU build), the same architecture (group norm, SiLU,
  additive label/time conditioning, stride-2 down, nearest-neighbour up + skip
  concatenation), ``AdamW``, same batch, random minibatch from a tensor;

measured in one process by alternating repeats (medians), with each step's FLOPs from
XLA's cost analysis against the machine's measured matmul rate (the roofline), and the
compile time of the first step. ``--profile`` adds where jgen's step spends its time: the
XLA operations of 10 steps traced with ``jax.profiler``, summed by kind.

  python benchmarks/unet_train.py                 # all shapes (about 4 min on 2 cores)
  python benchmarks/unet_train.py --shapes 40 --profile
"""

from __future__ import annotations

import argparse
import collections
import functools
import glob
import importlib.util
import os
import re
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

if __package__ in (None, ""):  # allow `python benchmarks/unet_train.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jgen  # noqa: E402
from jgen.diffusion import nets, train  # noqa: E402
from benchmarks import common  # noqa: E402

CHANNELS = (32, 64)
COLUMNS = ["data shape", "what", "steps/s", "ms/step", "first call s", "GFLOP/s",
           "roofline", "vs XLA defaults", "jgen/peer speed"]


def jgen_steps(shape, batch, n_train=1000):
  """``{name: (run k steps -> seconds, first-call seconds)}`` and the step's FLOPs."""
  model = nets.UNetDenoiser(shape, 10, channels=CHANNELS, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (n_train,) + shape)
  y = jnp.arange(n_train) % 10
  cfg = train.TrainConfig(num_steps=10_000, batch_size=batch)
  den, _ = jgen.diffusion.nnx_denoiser(model)
  state0 = train.init_state(model, cfg)
  sched = jgen.diffusion.linear_schedule()
  public = functools.partial(train.train_step, denoiser=den, schedule=sched, config=cfg,
                             num_classes=10)
  plain = jax.jit(functools.partial(train._step.__wrapped__, denoiser=den, schedule=sched,
                                    config=cfg, num_classes=10, mesh=None,
                                    weights=None))
  variants = {"jgen": lambda s: public(s, x, y),
              "jgen, XLA defaults": lambda s: plain(s, x, y)}
  out = {}
  for name, step in variants.items():
    t0 = time.perf_counter()
    state, loss, _ = step(state0)
    float(loss)
    first = time.perf_counter() - t0

    def run(k, step=step, state=state):
      t0 = time.perf_counter()
      s = state
      for _ in range(k):
        s, loss, _ = step(s)
        float(loss)  # the training loop reads every loss (finiteness check)
      return time.perf_counter() - t0
    out[name] = (run, first)
  cost = plain.lower(state0, x, y).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return out, float(cost.get("flops", float("nan"))), (public, state0, x, y)


def torch_step(shape, batch, n_train=1000):
  """A PyTorch training step of the same U-Net; ``(run k steps -> seconds, first)``."""
  import torch
  from torch import nn

  nd = len(shape)
  conv = nn.Conv1d if nd == 1 else nn.Conv2d

  def groups(c):
    return int(np.gcd(c, 8))

  class Res(nn.Module):
    def __init__(self, cin, cout, cond):
      super().__init__()
      self.n1, self.c1 = nn.GroupNorm(groups(cin), cin), conv(cin, cout, 3, padding=1)
      self.cond = nn.Linear(cond, cout)
      self.n2, self.c2 = nn.GroupNorm(groups(cout), cout), conv(cout, cout, 3, padding=1)
      self.skip = conv(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, c):
      h = self.c1(nn.functional.silu(self.n1(x)))
      h = h + self.cond(c).reshape(c.shape[0], -1, *([1] * nd))
      return self.c2(nn.functional.silu(self.n2(h))) + self.skip(x)

  class UNet(nn.Module):
    def __init__(self, ch=CHANNELS, cond=64, fourier=16, labels=10):
      super().__init__()
      self.fourier = fourier
      self.embed, self.gin = nn.Embedding(labels, cond), nn.Linear(2 * fourier + 1, cond)
      self.cout = nn.Linear(cond, cond)
      self.conv_in = conv(1, ch[0], 3, padding=1)
      self.down = nn.ModuleList([Res(c, c, cond) for c in ch])
      self.pool = nn.ModuleList([conv(a, b, 3, stride=2, padding=1)
                                 for a, b in zip(ch[:-1], ch[1:])])
      self.mid = Res(ch[-1], ch[-1], cond)
      self.unpool = nn.ModuleList([conv(b, a, 3, padding=1)
                                   for a, b in zip(ch[:-1], ch[1:])])
      self.up = nn.ModuleList([Res(2 * c, c, cond) for c in ch[:-1]])
      self.norm = nn.GroupNorm(groups(ch[0]), ch[0])
      self.conv_out = conv(ch[0], 1, 3, padding=1)

    def forward(self, z, gamma, y):
      freqs = torch.exp(torch.linspace(np.log(1 / 32), np.log(4.0), self.fourier))
      arg = gamma[:, None] * freqs[None]
      feats = torch.cat([torch.sin(arg), torch.cos(arg), gamma[:, None] / 10], -1)
      c = nn.functional.silu(self.cout(nn.functional.silu(self.embed(y)
                                                           + self.gin(feats))))
      h, skips = self.conv_in(z[:, None]), []
      for i, block in enumerate(self.down):
        h = block(h, c)
        if i < len(self.pool):
          skips.append(h)
          h = self.pool[i](h)
      h = self.mid(h, c)
      for i in reversed(range(len(self.up))):
        h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
        h = self.up[i](torch.cat([self.unpool[i](h), skips[i]], 1), c)
      return self.conv_out(nn.functional.silu(self.norm(h)))[:, 0]

  torch.manual_seed(0)
  net = UNet()
  opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
  x = torch.randn((n_train,) + shape)
  y = torch.arange(n_train) % 10

  def step():
    idx = torch.randint(0, n_train, (batch,))
    xb, yb = x[idx], y[idx]
    t = (torch.rand(()) + torch.arange(batch) / batch) % 1.0  # stratified times
    gamma = -13.3 + 18.3 * t                                   # linear schedule
    alpha2 = torch.sigmoid(-gamma).reshape(-1, *([1] * nd))
    eps = torch.randn_like(xb)
    z = alpha2.sqrt() * xb + (1 - alpha2).sqrt() * eps
    loss = ((net(z, gamma, yb) - eps) ** 2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss)

  t0 = time.perf_counter()
  step()
  first = time.perf_counter() - t0

  def run(k):
    t0 = time.perf_counter()
    for _ in range(k):
      step()
    return time.perf_counter() - t0
  return run, first


def alternating_medians(runs: dict, repeats: int, chunk: int) -> dict:
  """Median seconds per step of each ``run(chunk)``, the runs taken in turn."""
  times = {k: [] for k in runs}
  for _ in range(repeats):
    for k, run in runs.items():
      times[k].append(run(chunk) / chunk)
  return {k: float(np.median(v)) for k, v in times.items()}


def profile_by_kind(step, state, x, y, steps=10):
  """Milliseconds per step of the traced XLA operations, summed over threads by kind."""
  from jax.profiler import ProfileData
  s = state
  for _ in range(2):
    s, loss, _ = step(s, x, y)
  float(loss)
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d):
      for _ in range(steps):
        s, loss, _ = step(s, x, y)
      float(loss)
    path = sorted(glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True))[-1]
    data = ProfileData.from_file(path)
  kinds = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      if "XLAEigen" not in line.name:  # the compute threads
        continue
      for ev in line.events:
        if not ev.name.startswith(("ThunkExecutor", "end:")):
          kinds[re.sub(r"\.\d+$", "", ev.name)] += ev.duration_ns
  return {k: v / 1e6 / steps for k, v in kinds.most_common()}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--shapes", default="40,8x8,16x16,28x28",
                 help="comma-separated data shapes: 40 (a signal) or HxW")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--chunk", type=int, default=5, help="steps per timed repeat")
  p.add_argument("--no-torch", action="store_true")
  p.add_argument("--profile", action="store_true")
  args = p.parse_args(argv)
  torch_ok = not args.no_torch and importlib.util.find_spec("torch") is not None
  roof = common.matmul_flops_per_s()
  print(f"matmul roofline: {roof / 1e9:.1f} GFLOP/s; {jax.device_count()} CPU device(s);"
        f" batch {args.batch}; U-Net channels {CHANNELS}", flush=True)
  rows = []
  for spec in args.shapes.split(","):
    shape = tuple(int(s) for s in spec.split("x"))
    runs, flops, (public, state, x, y) = jgen_steps(shape, args.batch)
    timed = {k: r for k, (r, _) in runs.items()}
    firsts = {k: f for k, (_, f) in runs.items()}
    if torch_ok:
      timed["peer (PyTorch)"], firsts["peer (PyTorch)"] = torch_step(shape, args.batch)
    sec = alternating_medians(timed, args.repeats, args.chunk)
    for name, s in sec.items():
      row = {"data shape": "x".join(map(str, shape)), "what": name,
             "steps/s": 1 / s, "ms/step": 1e3 * s, "first call s": firsts[name]}
      if name.startswith("jgen"):
        row["GFLOP/s"] = flops / s / 1e9
        row["roofline"] = flops / s / roof
        row["vs XLA defaults"] = sec["jgen, XLA defaults"] / s
      if "peer (PyTorch)" in sec and name.startswith("jgen"):
        row["jgen/peer speed"] = sec["peer (PyTorch)"] / s
      rows.append(row)
    print(common.fmt_table(rows[-len(sec):], COLUMNS), flush=True)
    print(f"  step FLOPs (XLA cost analysis): {flops / 1e9:.3f} GFLOP", flush=True)
    if args.profile:
      kinds = profile_by_kind(public, state, x, y)
      total = sum(kinds.values())
      print(f"  jgen step, XLA operations by kind (ms per step summed over compute"
            f" threads; total {total:.1f}):")
      for k, v in list(kinds.items())[:10]:
        print(f"    {v:7.2f}  {100 * v / total:5.1f}%  {k}")
  print("\n" + common.fmt_table(rows, COLUMNS))
  return rows


if __name__ == "__main__":
  main()
