"""How much work one vectorised call takes: one execution plan per backend.

Every vectorised path of jgen (the diffusion strategies' (class, draw) pairs, the
pretrained class errors' (class, timestep) pairs, ODE solves, prompts of the text
scorers, rows of Gaussian scoring) sizes its calls as ``budget_bytes / bytes_per_item``
from one [`ExecutionPlan`][jgen.core.plan.ExecutionPlan]:

- on CPU, a *cache* budget (``CPU_CACHE_BYTES``): past the per-core cache a vmapped call
  is slower than a loop of smaller ones, but not wrong, so at least one item always
  runs;
- on GPU and TPU, a *memory* budget from ``device.memory_stats()``: ``bytes_limit``
  minus ``bytes_in_use``, less ``MEMORY_HEADROOM`` of it for XLA's temporaries and
  fragmentation. Running out of device memory is an error, so an item that does not
  fit raises a ``ValueError`` naming the budget.

A call overrides the device's plan with ``with use_plan(plan):`` (a context manager)
or, where an entry point takes it, an explicit ``budget_bytes`` argument.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, NamedTuple

import jax
import numpy as np
from jax.extend import core as jax_core

__all__ = ["CPU_CACHE_BYTES", "LIVE_FACTOR", "MEMORY_HEADROOM", "ExecutionPlan",
           "device_plan", "current_plan", "use_plan", "items_per_call",
           "largest_intermediate"]

# About the per-core L2 of current CPUs (1-2 MiB), still large enough to amortise a
# call's overhead. On the 2-core reference machine, batch_classify of 32 digits (MLP
# 256x4, 10 classes x 64 draws) ran at 1.08-1.22x the per-class loop with 2 MiB and
# 0.79-0.96x with 4 MiB (benchmarks/diffusion_train.py, benchmarks/RESULTS.md).
CPU_CACHE_BYTES = 2 << 20
# Fraction of a device's free memory left unplanned: XLA's own temporaries, fusion
# buffers and allocator fragmentation.
MEMORY_HEADROOM = 0.25
# Under a memory budget, an item costs this many times its largest intermediate: the
# layer's input, its output, the residual stream and the largest temporary are alive
# together in a forward pass without gradients.
LIVE_FACTOR = 4

_KINDS = ("cache", "memory")
_override: contextvars.ContextVar = contextvars.ContextVar("jgen_plan", default=None)


class ExecutionPlan(NamedTuple):
  """The working-set budget of one vectorised call on one backend.

  Attributes:
    platform: ``"cpu"``, ``"gpu"`` or ``"tpu"`` (the device's ``platform``).
    budget_bytes: bytes one call may use.
    kind: ``"cache"`` (soft: exceeding it is slower, so at least one item runs) or
      ``"memory"`` (hard: an item that does not fit raises).

  Examples:
    >>> plan = ExecutionPlan("gpu", 80 * 10**9, "memory")
    >>> plan.per_call(4 * 2**20, 10_000)   # power of two <= 80e9 / (4 * 4 MiB)
    4096
  """
  platform: str
  budget_bytes: int
  kind: str = "cache"

  def per_call(self, bytes_per_item: int, num_items: int) -> int:
    """Items per call: ``budget_bytes // cost``, a power of two below ``num_items``
    (regular chunks), or ``num_items`` when all fit; ``cost`` is ``bytes_per_item``
    for a cache budget and ``LIVE_FACTOR * bytes_per_item`` for a memory budget."""
    return items_per_call(bytes_per_item, num_items, plan=self)


def _check_plan(plan: ExecutionPlan) -> ExecutionPlan:
  if not isinstance(plan, ExecutionPlan):
    raise TypeError(f"plan must be an ExecutionPlan, got {type(plan).__name__}.")
  if plan.kind not in _KINDS:
    raise ValueError(f"plan.kind must be one of {_KINDS}, got {plan.kind!r}.")
  if isinstance(plan.budget_bytes, bool) or not isinstance(plan.budget_bytes, int) \
      or plan.budget_bytes <= 0:
    raise ValueError(f"plan.budget_bytes must be a positive int, got"
                     f" {plan.budget_bytes!r}.")
  return plan


def device_plan(device: Any = None, *, headroom: float = MEMORY_HEADROOM
                ) -> ExecutionPlan:
  """The plan of one device: its cache budget on CPU, free memory on GPU/TPU.

  Args:
    device: a ``jax.Device`` (default ``jax.devices()[0]``) or any object with
      ``platform`` and ``memory_stats()``.
    headroom: fraction of the free memory left unplanned, in ``[0, 1)``.

  Returns:
    [`ExecutionPlan`][jgen.core.plan.ExecutionPlan]: ``("cpu", CPU_CACHE_BYTES,
    "cache")`` on CPU; ``(platform, floor((bytes_limit - bytes_in_use) * (1 -
    headroom)), "memory")`` on a device reporting ``memory_stats()``; the cache plan on
    a device that reports none.

  Examples:
    >>> device_plan(jax.devices("cpu")[0])
    ExecutionPlan(platform='cpu', budget_bytes=2097152, kind='cache')
  """
  if not 0.0 <= float(headroom) < 1.0:
    raise ValueError(f"headroom must be in [0, 1), got {headroom!r}.")
  device = jax.devices()[0] if device is None else device
  platform = str(getattr(device, "platform", "cpu"))
  if platform == "cpu":
    return ExecutionPlan("cpu", CPU_CACHE_BYTES, "cache")
  try:
    stats = device.memory_stats()
  except (AttributeError, NotImplementedError, RuntimeError):
    stats = None
  if not stats or "bytes_limit" not in stats:
    return ExecutionPlan(platform, CPU_CACHE_BYTES, "cache")
  free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  budget = int(free * (1.0 - float(headroom)))
  if budget <= 0:
    raise ValueError(f"device {device}: no free memory to plan with (bytes_limit"
                     f" {stats['bytes_limit']}, bytes_in_use"
                     f" {stats.get('bytes_in_use', 0)}).")
  return ExecutionPlan(platform, budget, "memory")


def current_plan() -> ExecutionPlan:
  """The plan in force: the innermost ``use_plan``, else the default device's.

  Examples:
    >>> with use_plan(ExecutionPlan("gpu", 10**9, "memory")):
    ...   current_plan().budget_bytes
    1000000000
  """
  plan = _override.get()
  return device_plan() if plan is None else plan


@contextlib.contextmanager
def use_plan(plan: ExecutionPlan | None = None, *, budget_bytes: int | None = None,
             kind: str | None = None) -> Iterator[ExecutionPlan]:
  """Overrides the plan of every vectorised call inside the block.

  Args:
    plan: the plan to use; default: the device's plan with the fields below replaced.
    budget_bytes: a budget in bytes (replaces the plan's).
    kind: ``"cache"`` or ``"memory"`` (replaces the plan's).

  Yields:
    The plan in force inside the block.

  Examples:
    >>> with use_plan(budget_bytes=1 << 30, kind="memory") as plan:
    ...   plan.kind, plan.budget_bytes
    ('memory', 1073741824)
  """
  plan = current_plan() if plan is None else plan
  if budget_bytes is not None:
    plan = plan._replace(budget_bytes=budget_bytes)
  if kind is not None:
    plan = plan._replace(kind=kind)
  token = _override.set(_check_plan(plan))
  try:
    yield plan
  finally:
    _override.reset(token)


def items_per_call(bytes_per_item: int, num_items: int, *,
                   plan: ExecutionPlan | None = None) -> int:
  """How many items one vectorised call takes under ``plan`` (default: in force).

  Args:
    bytes_per_item: the largest intermediate of one item, in bytes.
    num_items: items to process in all.
    plan: the plan; default ``current_plan()``.

  Returns:
    ``num_items`` when all fit, else the largest power of two that fits (regular
    chunks); at least 1 under a cache budget.

  Raises:
    ValueError: naming the budget when one item does not fit a memory budget.

  Examples:
    >>> items_per_call(1 << 20, 1000, plan=ExecutionPlan("cpu", 2 << 20))
    2
    >>> items_per_call(1 << 20, 1000, plan=ExecutionPlan("cpu", 1 << 10))
    1
  """
  plan = _check_plan(current_plan() if plan is None else plan)
  per = max(int(bytes_per_item), 1)
  num_items = max(int(num_items), 1)
  cost = per * (LIVE_FACTOR if plan.kind == "memory" else 1)
  n = plan.budget_bytes // cost
  if n < 1:
    if plan.kind == "memory":
      raise ValueError(f"budget_bytes={plan.budget_bytes} of the {plan.platform}"
                       f" memory plan is too small for one item of {cost} bytes"
                       f" ({LIVE_FACTOR} x {per} bytes of its largest intermediate).")
    n = 1
  if n >= num_items:
    return num_items
  return 1 << (int(n).bit_length() - 1)


def largest_intermediate(fn, *args: Any, argnum: int = -1) -> int:
  """Bytes of the largest value ``fn(*args)`` computes from ``args[argnum]``.

  Only intermediates that depend on that argument grow with the number of items per
  call; work on the others alone (e.g. the parameters) is shared by every item. Read
  from the jaxpr (``args`` may be ``jax.ShapeDtypeStruct``: no memory, no FLOPs).

  Args:
    fn: a function of one item.
    *args: its arguments (arrays, pytrees or ``ShapeDtypeStruct``).
    argnum: which argument is the item (default the last).

  Returns:
    The size in bytes, at least that of the item itself.

  Examples:
    >>> import jax.numpy as jnp
    >>> w = jax.ShapeDtypeStruct((8, 1000), jnp.float32)
    >>> x = jax.ShapeDtypeStruct((8,), jnp.float32)
    >>> largest_intermediate(lambda w, x: jnp.tanh(x @ w), w, x)   # 1000 float32
    4000
  """
  jaxpr = jax.make_jaxpr(fn)(*args)
  argnum = argnum % len(args)
  first = sum(len(jax.tree.leaves(a)) for a in args[:argnum])
  n_item = len(jax.tree.leaves(args[argnum]))
  item_vars = jaxpr.jaxpr.invars[first:first + n_item]
  biggest = max([_nbytes(v) for v in item_vars] + [0])

  def visit(jpr, live: set) -> None:
    nonlocal biggest
    for eqn in jpr.eqns:
      if not any(not isinstance(v, jax_core.Literal) and v in live for v in eqn.invars):
        continue
      for v in eqn.outvars:
        live.add(v)
        biggest = max(biggest, _nbytes(v))
      for sub in jax_core.jaxprs_in_params(eqn.params):
        visit(sub, set(sub.invars))   # conservative: every input of a sub-call

  visit(jaxpr.jaxpr, set(item_vars))
  return int(biggest)


def _nbytes(v) -> int:
  aval = getattr(v, "aval", None)
  if hasattr(aval, "shape") and hasattr(aval, "dtype"):
    return int(np.prod(aval.shape, dtype=np.int64)) * aval.dtype.itemsize
  return 0
