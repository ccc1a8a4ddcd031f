"""Timing helpers shared by the benchmarks: wall time and this machine's matmul rate."""

from __future__ import annotations

import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def block(x: Any) -> Any:
  return jax.tree_util.tree_map(
      lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, x)


def best_time(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> float:
  """Best wall time in seconds of ``fn()`` over ``repeats`` runs (after warm-up)."""
  for _ in range(warmup):
    block(fn())
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    block(fn())
    times.append(time.perf_counter() - t0)
  return min(times)


def matmul_flops_per_s(n: int = 2048, dtype=jnp.float32, repeats: int = 5) -> float:
  """Measured float32 matmul rate of the default device (the roofline), FLOP/s."""
  ka, kb = jax.random.split(jax.random.key(0))
  a = jax.random.normal(ka, (n, n), dtype)
  b = jax.random.normal(kb, (n, n), dtype)
  mm = jax.jit(jnp.matmul)
  seconds = best_time(lambda: mm(a, b), repeats=repeats)
  return 2.0 * n**3 / seconds


def numpy_matmul_flops_per_s(n: int = 2048, repeats: int = 5) -> float:
  """Same measurement through NumPy's BLAS (the peer libraries' roofline)."""
  rng = np.random.default_rng(0)
  a = rng.standard_normal((n, n), dtype=np.float32)
  b = rng.standard_normal((n, n), dtype=np.float32)
  seconds = best_time(lambda: a @ b, repeats=repeats)
  return 2.0 * n**3 / seconds


def fmt_table(rows: list[dict], columns: list[str]) -> str:
  """A markdown table of ``rows`` restricted to ``columns``."""
  def cell(v):
    if isinstance(v, float):
      return f"{v:.4g}"
    return str(v)
  lines = ["| " + " | ".join(columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
  for r in rows:
    lines.append("| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |")
  return "\n".join(lines)
