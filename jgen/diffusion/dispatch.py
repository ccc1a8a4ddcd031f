"""Which code runs a classify strategy: ``jgen.diffusion.strategies`` (``full``,
``adaptive``, ``sequential``) or the race of ``jgen.diffusion.racing`` (``race``).

Every classify entry point, on one device or class-sharded, calls
[`run_strategy`][jgen.diffusion.dispatch.run_strategy], so ``strategy="race"`` is
written once, with an optional class-axis name, like the others.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jgen.diffusion.racing import RaceConfig, race
from jgen.diffusion.strategies import ClassifyResult, run

__all__ = ["race_strategy", "run_strategy"]


def race_strategy(key, params, x, ids, *, race_cfg: RaceConfig, num_classes_total: int,
                  axis_name=None, batched: bool = False) -> ClassifyResult:
  """The race as a classify strategy (``strategy="race"``): races the classes ``ids
  [C]`` (``-1`` = padding, never entered) of one example, or of ``x [N, ...]`` with
  keys ``[N]`` (``lax.map``, so the bucket switch skips eliminated classes); with
  ``axis_name``, ``ids`` is this device's slice
  ([`race`][jgen.diffusion.racing.race]).

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> from jgen.diffusion import dispatch
    >>> den, p = diffusion.gaussian_oracle(3 * jnp.eye(3), jnp.ones((3, 3)))
    >>> cfg = diffusion.race_config(den, rule="cs", confidence=0.9)
    >>> res = dispatch.race_strategy(jax.random.key(0), p, 3 * jnp.eye(3)[1],
    ...                              jnp.array([2, 1]), race_cfg=cfg,
    ...                              num_classes_total=2)
    >>> int(res.label)
    1
  """
  fn = lambda kk, xi: race(kk, params, xi, None, cfg=race_cfg, num_classes=ids.shape[0],
                           candidates=ids >= 0, classes=jnp.maximum(ids, 0),
                           axis_name=axis_name, num_classes_total=num_classes_total)
  if not batched:
    return fn(key, x)
  return lax.map(lambda a: fn(*a), (key, x))


def run_strategy(strategy: str, key, params, x, ids, *, cfg, opts: dict, axis_name=None,
                 batched: bool = False) -> ClassifyResult:
  """``strategies.run``, with ``strategy="race"`` added (``race_strategy``, options
  ``race_cfg`` and ``num_classes_total``); the one dispatch of every classify entry
  point, sharded or not.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> from jgen.diffusion import dispatch
    >>> den, p = diffusion.gaussian_oracle(jnp.eye(2), jnp.ones((2, 2)))
    >>> cfg = diffusion.strategies.StrategyConfig(den, diffusion.linear_schedule(),
    ...     "stratified", "elbo", "l2", 64, False)
    >>> dispatch.run_strategy("full", jax.random.key(0), p, jnp.eye(2)[0],
    ...                     jnp.arange(2), cfg=cfg, opts={"num_t": 8}).scores.shape
    (2,)
  """
  if strategy == "race":
    return race_strategy(key, params, x, ids, axis_name=axis_name, batched=batched,
                         **opts)
  return run(strategy, key, params, x, ids, cfg=cfg, opts=opts, axis_name=axis_name,
             batched=batched)
