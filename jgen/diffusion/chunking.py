"""How many (class, draw) pairs one vectorised denoiser call evaluates.

Evaluating every pair in one ``vmap`` keeps the denoiser's activations for all of them
alive at once; past the cache this is slower than a loop of smaller calls (measured in
``benchmarks/diffusion.py``). ``pairs_per_call`` sizes the calls so the largest
activation of one call fits a stated cache budget, from the shapes alone.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core

from jgen.diffusion.parametrizations import Denoiser, eps_prediction

__all__ = ["CACHE_BYTES", "activation_bytes", "pairs_per_call"]

# The working set one vectorised call may use: about the per-core L2 of current CPUs
# (1-2 MiB), still large enough to amortise a call's overhead. On the 2-core reference
# machine, batch_classify of 32 digits (MLP 256x4, 10 classes x 64 draws) ran at
# 1.08-1.22x the per-class loop with 2 MiB and 0.79-0.96x with 4 MiB
# (benchmarks/diffusion_train.py, benchmarks/RESULTS.md).
CACHE_BYTES = 2 << 20


@functools.lru_cache(maxsize=256)
def _activation_bytes(denoiser, params_struct, shape, dtype) -> int:
  params = jax.tree.unflatten(params_struct[0], [jax.ShapeDtypeStruct(s, d)
                                                 for s, d in params_struct[1]])
  z = jax.ShapeDtypeStruct(shape, dtype)
  jaxpr = jax.make_jaxpr(lambda p, zz: eps_prediction(
      denoiser, p, zz, jnp.zeros((), dtype), jnp.zeros((), jnp.int32)))(params, z)
  biggest = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize

  # Only intermediates that depend on z grow with the number of pairs per call;
  # work on the parameters alone (e.g. an oracle's [K, D] class table) is shared by
  # every pair and must not shrink the chunks.
  def size(v) -> int:
    aval = getattr(v, "aval", None)
    if hasattr(aval, "shape") and hasattr(aval, "dtype"):
      return int(np.prod(aval.shape, dtype=np.int64)) * aval.dtype.itemsize
    return 0

  def visit(jpr, live: set) -> None:
    nonlocal biggest
    for eqn in jpr.eqns:
      if not any(not isinstance(v, jax_core.Literal) and v in live for v in eqn.invars):
        continue
      for v in eqn.outvars:
        live.add(v)
        biggest = max(biggest, size(v))
      for sub in jax_core.jaxprs_in_params(eqn.params):
        visit(sub, set(sub.invars))   # conservative: every input of a sub-call

  visit(jaxpr.jaxpr, {jaxpr.jaxpr.invars[-1]})
  return biggest


def activation_bytes(denoiser: Denoiser, params: Any, shape, dtype) -> int:
  """Bytes of the largest intermediate of one denoiser call on one example."""
  leaves, treedef = jax.tree.flatten(params)
  struct = (treedef, tuple((tuple(np.shape(l)), jnp.result_type(l)) for l in leaves))
  return _activation_bytes(denoiser, struct, tuple(shape), jnp.dtype(dtype))


def pairs_per_call(denoiser: Denoiser, params: Any, shape, dtype, num_pairs: int,
                   cache_bytes: int = CACHE_BYTES) -> int:
  """Pairs per vectorised call: ``cache_bytes / activation_bytes``, at least 1 and at
  most ``num_pairs`` (a power of two below that, so chunks are regular)."""
  per = activation_bytes(denoiser, params, shape, dtype)
  n = max(1, int(cache_bytes) // max(per, 1))
  if n >= num_pairs:
    return int(num_pairs)
  return 1 << (n.bit_length() - 1)
