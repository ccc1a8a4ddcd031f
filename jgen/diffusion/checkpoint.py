"""Save and load trained denoisers with their architecture, classes and schedule.

[`save_model`][jgen.diffusion.save_model] / [`load_model`][jgen.diffusion.load_model]: a
jgen denoiser with its architecture, classes, data shape and diffusion schedule in one
directory; ``load_model`` rebuilds the module without running its initialisers. A
checkpoint from a different architecture or config raises ``CheckpointError`` naming
every mismatch.

Layout of a model directory: ``params/`` (orbax) and ``config.json``.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import nnx

from jgen.diffusion import schedules
from jgen.diffusion.nets import ARCHITECTURES
from jgen.diffusion.nets import denoiser_config
from jgen.parallel.checkpoint import CheckpointError
from jgen.parallel.checkpoint import restore_pytree
from jgen.parallel.checkpoint import save_pytree

__all__ = [
    "save_model",
    "load_model",
    "restore_params",
    "LoadedModel",
    "schedule_from_spec",
]

_FORMAT = "jgen.denoiser/1"


def _abs(path: str | os.PathLike) -> str:
  return os.path.abspath(os.fspath(path))


class LoadedModel(NamedTuple):
  """What [`load_model`][jgen.diffusion.load_model] returns.

  Attributes:
    module: the denoiser with restored parameters.
    config: the saved ``config.json`` (``denoiser``, ``schedule``, ``extra``).
    schedule: the diffusion schedule rebuilt from its spec, or ``None``.

  Examples:
    >>> import tempfile, jgen
    >>> from flax import nnx
    >>> net = jgen.diffusion.MLPDenoiser((2,), 2, width=8, depth=1, rngs=nnx.Rngs(0))
    >>> with tempfile.TemporaryDirectory() as d:
    ...   jgen.diffusion.save_model(d, net, schedule={"name": "linear"})
    ...   loaded = jgen.diffusion.load_model(d)
    >>> type(loaded.module).__name__, loaded.schedule.name, loaded.config["extra"]
    ('MLPDenoiser', 'linear[-13.3,5]', {})
  """
  module: nnx.Module
  config: dict
  schedule: Any


def schedule_from_spec(spec: dict | None):
  """Rebuilds a schedule from ``{"name": "linear", **kwargs}`` (``<name>_schedule``).

  Args:
    spec: ``{"name": ..., **kwargs}`` naming
      ``jgen.diffusion.schedules.<name>_schedule``
      and its keyword arguments, or ``None``.

  Returns:
    The [`Schedule`][jgen.diffusion.Schedule], or ``None`` for ``spec=None``.

  Raises:
    CheckpointError: no schedule function of that name.

  Examples:
    >>> import jgen
    >>> spec = {"name": "cosine", "gamma_min": -10.0, "gamma_max": 10.0}
    >>> jgen.checkpoint.schedule_from_spec(spec).name
    'cosine[-10,10]'
  """
  if spec is None:
    return None
  spec = dict(spec)
  name = spec.pop("name")
  fn = getattr(schedules, f"{name}_schedule", None)
  if fn is None:
    raise CheckpointError(f"unknown schedule {name!r} in checkpoint config.")
  return fn(**spec)


def _leaf_shapes(tree) -> dict[str, tuple[tuple[int, ...], str]]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): (tuple(np.shape(v)), str(np.asarray(v).dtype)
                                    if not hasattr(v, "dtype") else str(v.dtype))
          for p, v in flat}


def save_model(path: str | os.PathLike, module: nnx.Module, *,
               schedule: dict | None = None, extra: dict | None = None,
               params: Any = None) -> None:
  """Saves a jgen denoiser with its config to the directory ``path``.

  Args:
    path: target directory (created; an existing model there is overwritten).
    module: an [`MLPDenoiser`][jgen.diffusion.MLPDenoiser] or ``UNetDenoiser`` (its
      architecture and constructor arguments are recorded).
    schedule: schedule spec, e.g. ``{"name": "linear", "gamma_min": -13.3,
      "gamma_max": 5.0}`` (rebuilt by ``load_model`` through
      ``jgen.diffusion.schedules.<name>_schedule``).
    extra: any JSON-serialisable metadata (class names, training config, metrics).
    params: parameters to save instead of the module's own (e.g. the EMA copy).

  Raises:
    ValueError: ``schedule`` cannot be rebuilt by
      [`load_model`][jgen.diffusion.load_model], or ``params`` differ from the module's
      parameters in structure, shape or dtype.
    TypeError: ``module`` is not a jgen denoiser, or ``extra`` is not JSON-serialisable.

  Examples:
    >>> import os, tempfile, jgen
    >>> from flax import nnx
    >>> net = jgen.diffusion.MLPDenoiser((2,), 2, width=8, depth=1, rngs=nnx.Rngs(0))
    >>> with tempfile.TemporaryDirectory() as d:
    ...   jgen.diffusion.save_model(d, net, extra={"classes": ["cat", "dog"]})
    ...   sorted(os.listdir(d))
    ['config.json', 'params']
  """
  cfg = {"format": _FORMAT, "denoiser": denoiser_config(module),
         "schedule": schedule, "extra": extra or {}}
  try:   # fail before writing anything
    text = json.dumps(cfg, indent=1, sort_keys=True)
  except (TypeError, ValueError) as e:
    raise TypeError(f"extra and schedule must be JSON-serialisable (dicts, lists,"
                    f" strings, numbers, bools, None): {e}.") from e
  if schedule is not None:
    # What load_model cannot rebuild must not be written.
    try:
      schedule_from_spec(schedule)
    except (CheckpointError, TypeError, ValueError, KeyError) as e:
      raise ValueError(f"schedule spec {schedule!r} cannot be rebuilt by load_model:"
                       f" {e}") from e
  own = nnx.to_pure_dict(nnx.split(module)[1])
  if params is None:
    params = own
  if isinstance(params, nnx.State):
    params = nnx.to_pure_dict(params)
  want, got = _leaf_shapes(own), _leaf_shapes(params)
  if want != got:
    diff = sorted(set(want.items()) ^ set(got.items()))[:10]
    raise ValueError("params must have the structure, shapes and dtypes of the"
                     f" module's parameters (load_model restores into it); differing"
                     f" leaves: {diff}.")
  path = _abs(path)
  os.makedirs(path, exist_ok=True)
  save_pytree(os.path.join(path, "params"), params)
  with open(os.path.join(path, "config.json"), "w") as f:
    f.write(text)


def _read_config(path: str) -> dict:
  cfg_path = os.path.join(path, "config.json")
  if not os.path.isfile(cfg_path):
    raise CheckpointError(f"{path} is not a jgen model directory (no config.json).")
  try:
    with open(cfg_path) as f:
      cfg = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{cfg_path} is unreadable or not valid JSON ({e}).") from e
  if not isinstance(cfg, dict):
    raise CheckpointError(f"{cfg_path} must hold a JSON object, got"
                          f" {type(cfg).__name__}.")
  for field in ("format", "denoiser"):
    if field not in cfg:
      raise CheckpointError(f"{cfg_path} has no {field!r} field (damaged or foreign).")
  if cfg.get("format") != _FORMAT:
    raise CheckpointError(f"{cfg_path} has format {cfg.get('format')!r}, expected"
                          f" {_FORMAT!r}.")
  return cfg


def _mismatches(saved: dict, want: dict) -> list[str]:
  keys = sorted(set(saved) | set(want))
  return [f"{k}: checkpoint {saved.get(k)!r}, expected {want.get(k)!r}"
          for k in keys if saved.get(k) != want.get(k)]


def _restore_into(path: str, module: nnx.Module) -> nnx.Module:
  graphdef, state = nnx.split(module)
  target = nnx.to_pure_dict(state)
  restored = restore_pytree(os.path.join(path, "params"), target)
  nnx.replace_by_pure_dict(state, restored)
  return nnx.merge(graphdef, state)


def load_model(path: str | os.PathLike, *, expect: dict | None = None) -> LoadedModel:
  """Rebuilds a saved denoiser, its parameters, config and schedule in one call.

  Args:
    path: a directory written by [`save_model`][jgen.diffusion.save_model].
    expect: optional constructor values the caller relies on, e.g.
      ``{"num_classes": 10, "data_shape": [8, 8]}``; any difference raises.

  Returns:
    [`LoadedModel`][jgen.checkpoint.LoadedModel] ``(module, config, schedule)``.

  Raises:
    CheckpointError: not a model directory, unknown architecture, an ``expect``
      mismatch (each differing key is named), or corrupted parameters.

  Examples:
    >>> import tempfile, jax.numpy as jnp, jgen
    >>> from flax import nnx
    >>> net = jgen.diffusion.MLPDenoiser((2,), 2, width=8, depth=1, rngs=nnx.Rngs(0))
    >>> with tempfile.TemporaryDirectory() as d:
    ...   jgen.diffusion.save_model(d, net, schedule={"name": "linear"})
    ...   module, config, schedule = jgen.diffusion.load_model(
    ...       d, expect={"num_classes": 2})
    >>> module(jnp.zeros((4, 2)), jnp.zeros(4), jnp.array([0, 1, 0, 1])).shape
    (4, 2)
  """
  path = _abs(path)
  cfg = _read_config(path)
  den = dict(cfg["denoiser"])
  if expect:
    bad = [m for m in _mismatches(den, {**den, **expect}) if m.split(":")[0] in expect]
    if bad:
      raise CheckpointError(f"model at {path} does not match the expected config:\n  "
                            + "\n  ".join(bad))
  arch = den.pop("architecture")
  if arch not in ARCHITECTURES:
    raise CheckpointError(f"unknown architecture {arch!r} in {path}; known:"
                          f" {sorted(ARCHITECTURES)}.")
  cls = ARCHITECTURES[arch]
  args = (tuple(den.pop("data_shape")), den.pop("num_classes"))
  den = {k: tuple(v) if isinstance(v, list) else v for k, v in den.items()}
  # eval_shape: build the structure without running (slow, eager) initialisers.
  abstract = nnx.eval_shape(lambda: cls(*args, **den, rngs=nnx.Rngs(0)))
  module = _restore_into(path, abstract)
  return LoadedModel(module, cfg, schedule_from_spec(cfg.get("schedule")))


def restore_params(path: str | os.PathLike, module: nnx.Module) -> nnx.Module:
  """Loads saved parameters into an existing denoiser with the same config.

  Args:
    path: a directory written by [`save_model`][jgen.diffusion.save_model].
    module: a denoiser built with the saved constructor arguments (any initial
      parameters).

  Returns:
    ``module``'s architecture with the saved parameters.

  Raises:
    CheckpointError: the saved architecture/config differs from ``module``'s (every
      differing constructor argument is named), or parameter shapes differ.

  Examples:
    >>> import tempfile, jax.numpy as jnp, jgen
    >>> from flax import nnx
    >>> mlp = lambda seed: jgen.diffusion.MLPDenoiser((2,), 2, width=8, depth=1,
    ...                                              rngs=nnx.Rngs(seed))
    >>> saved = mlp(0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...   jgen.diffusion.save_model(d, saved)
    ...   restored = jgen.checkpoint.restore_params(d, mlp(1))
    >>> bool(jnp.array_equal(restored.inp.kernel[...], saved.inp.kernel[...]))
    True
  """
  path = _abs(path)
  cfg = _read_config(path)
  bad = _mismatches(cfg["denoiser"], denoiser_config(module))
  if bad:
    raise CheckpointError(f"model at {path} was saved from a different architecture or"
                          " config:\n  " + "\n  ".join(bad))
  return _restore_into(path, module)
