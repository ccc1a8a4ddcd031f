"""How many (class, draw) pairs one vectorised denoiser call evaluates.

Evaluating every pair in one ``vmap`` keeps the denoiser's activations for all of them
alive at once; past the cache this is slower than a loop of smaller calls (measured in
``benchmarks/diffusion.py``). ``pairs_per_call`` sizes the calls so the largest
activation of one call fits the execution plan's budget (``jgen.core.plan``: the cache
on CPU, free device memory on GPU/TPU), from the shapes alone.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jgen.core import plan as plan_lib
from jgen.diffusion.parametrizations import Denoiser, eps_prediction

__all__ = ["CACHE_BYTES", "activation_bytes", "pairs_per_call"]

# The CPU plan's cache budget (``jgen.core.plan.CPU_CACHE_BYTES``), kept under its old
# name; on GPU/TPU the budget comes from the device's memory (``jgen.core.plan``).
CACHE_BYTES = plan_lib.CPU_CACHE_BYTES


@functools.lru_cache(maxsize=256)
def _activation_bytes(denoiser, params_struct, shape, dtype) -> int:
  params = jax.tree.unflatten(params_struct[0], [jax.ShapeDtypeStruct(s, d)
                                                 for s, d in params_struct[1]])
  z = jax.ShapeDtypeStruct(shape, dtype)
  return plan_lib.largest_intermediate(lambda p, zz: eps_prediction(
      denoiser, p, zz, jnp.zeros((), dtype), jnp.zeros((), jnp.int32)), params, z)


def activation_bytes(denoiser: Denoiser, params: Any, shape, dtype) -> int:
  """Bytes of the largest intermediate of one denoiser call on one example."""
  leaves, treedef = jax.tree.flatten(params)
  struct = (treedef, tuple((tuple(np.shape(l)), jnp.result_type(l)) for l in leaves))
  return _activation_bytes(denoiser, struct, tuple(shape), jnp.dtype(dtype))


def pairs_per_call(denoiser: Denoiser, params: Any, shape, dtype, num_pairs: int,
                   cache_bytes: int | None = None) -> int:
  """Pairs per vectorised call under the execution plan in force
  (``jgen.core.plan.current_plan``): ``budget / activation_bytes``, a power of two
  below ``num_pairs`` (so chunks are regular) or ``num_pairs``.

  ``cache_bytes`` overrides the budget with a cache budget of that many bytes (the
  CPU plan's, at least one pair). Under a memory plan (GPU/TPU) a pair costs
  ``LIVE_FACTOR`` times its largest intermediate, and a budget too small for one
  pair raises a ``ValueError`` naming it.
  """
  per = activation_bytes(denoiser, params, shape, dtype)
  plan = None if cache_bytes is None else plan_lib.ExecutionPlan(
      "cpu", int(cache_bytes), "cache")
  return plan_lib.items_per_call(per, num_pairs, plan=plan)
