"""Thin orbax wrapper: save/restore pytrees and trained denoisers with their config.

* :func:`save_pytree` / :func:`restore_pytree` — any pytree of arrays; the restore
  target may be concrete arrays or ``jax.ShapeDtypeStruct`` s carrying shardings, so a
  checkpoint restores straight into a new device layout (resharded restore).
* :func:`save_model` / :func:`load_model` — a jgen denoiser with its architecture,
  classes, data shape and diffusion schedule in one directory; ``load_model`` rebuilds
  the module without running its initialisers. A checkpoint from a different
  architecture or config raises ``ValueError`` naming every mismatch.

Layout of a model directory: ``params/`` (orbax) and ``config.json``.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

__all__ = [
    "save_pytree",
    "restore_pytree",
    "checkpoint_shapes",
    "save_model",
    "load_model",
    "restore_params",
    "LoadedModel",
    "schedule_from_spec",
    "CheckpointError",
]

_FORMAT = "jgen.denoiser/1"


class CheckpointError(ValueError):
  """A checkpoint is missing, unreadable, or does not match what is restored into."""


def _abs(path: str | os.PathLike) -> str:
  return os.path.abspath(os.fspath(path))


def _key_str(path) -> str:
  parts = []
  for k in path:
    parts.append(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))))
  return "/".join(parts)


def _shape_map(tree) -> dict[str, tuple[tuple[int, ...], str]]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {_key_str(p): (tuple(v.shape), str(np.dtype(v.dtype))) for p, v in flat}


def save_pytree(path: str | os.PathLike, tree: Any, *, overwrite: bool = True) -> None:
  """Saves a pytree of arrays to ``path`` (a directory; written atomically)."""
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(_abs(path), tree, force=overwrite)
  ckpt.wait_until_finished()


def checkpoint_shapes(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
  """``{"a/b/kernel": (shape, dtype)}`` of a saved pytree, read from its metadata."""
  path = _abs(path)
  if not os.path.isdir(path):
    raise CheckpointError(f"no checkpoint directory at {path}.")
  try:
    meta = ocp.StandardCheckpointer().metadata(path).item_metadata.tree
  except Exception as e:  # orbax raises several types for unreadable metadata
    raise CheckpointError(f"unreadable checkpoint at {path}: {e}") from e
  return _shape_map(meta)


def restore_pytree(path: str | os.PathLike, target: Any = None) -> Any:
  """Restores a pytree saved by :func:`save_pytree`.

  Args:
    path: checkpoint directory.
    target: a pytree of arrays or ``jax.ShapeDtypeStruct`` (optionally with
      ``sharding=``) giving the structure, dtypes and device layout to restore into;
      ``None`` restores the saved structure (dict keys become strings) on the default
      device.

  Returns:
    The restored pytree, structured like ``target``.

  Raises:
    CheckpointError: missing/corrupted checkpoint, or leaves whose paths or shapes
      differ from ``target`` (every mismatch is named).
  """
  path = _abs(path)
  saved = checkpoint_shapes(path)
  if target is not None:
    want = _shape_map(target)
    problems = [f"{k}: missing in checkpoint" for k in want if k not in saved]
    problems += [f"{k}: in checkpoint but not in target" for k in saved if k not in want]
    problems += [f"{k}: checkpoint shape {saved[k][0]}, target shape {want[k][0]}"
                 for k in want if k in saved and saved[k][0] != want[k][0]]
    if problems:
      raise CheckpointError(f"checkpoint at {path} does not match the target pytree:\n  "
                            + "\n  ".join(problems[:20]))
    target = jax.tree.map(
        lambda x: x if isinstance(x, jax.ShapeDtypeStruct)
        else jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        target)
  try:
    return ocp.StandardCheckpointer().restore(path, target)
  except Exception as e:
    raise CheckpointError(f"could not restore the checkpoint at {path}: {e}") from e


class LoadedModel(NamedTuple):
  """What :func:`load_model` returns.

  Attributes:
    module: the denoiser with restored parameters.
    config: the saved ``config.json`` (``denoiser``, ``schedule``, ``extra``).
    schedule: the diffusion schedule rebuilt from its spec, or ``None``.
  """
  module: nnx.Module
  config: dict
  schedule: Any


def schedule_from_spec(spec: dict | None):
  """Rebuilds a schedule from ``{"name": "linear", **kwargs}`` (``<name>_schedule``)."""
  if spec is None:
    return None
  from jgen.diffusion import schedules  # lazy: keeps jgen.checkpoint import light
  spec = dict(spec)
  name = spec.pop("name")
  fn = getattr(schedules, f"{name}_schedule", None)
  if fn is None:
    raise CheckpointError(f"unknown schedule {name!r} in checkpoint config.")
  return fn(**spec)


def save_model(path: str | os.PathLike, module: nnx.Module, *,
               schedule: dict | None = None, extra: dict | None = None,
               params: Any = None) -> None:
  """Saves a jgen denoiser with its config to the directory ``path``.

  Args:
    path: target directory (created; an existing model there is overwritten).
    module: an :class:`~jgen.diffusion.nets.MLPDenoiser` or ``UNetDenoiser`` (its
      architecture and constructor arguments are recorded).
    schedule: schedule spec, e.g. ``{"name": "linear", "gamma_min": -13.3,
      "gamma_max": 5.0}`` (rebuilt by ``load_model`` through
      ``jgen.diffusion.schedules.<name>_schedule``).
    extra: any JSON-serialisable metadata (class names, training config, metrics).
    params: parameters to save instead of the module's own (e.g. the EMA copy).
  """
  from jgen.diffusion.nets import denoiser_config
  cfg = {"format": _FORMAT, "denoiser": denoiser_config(module),
         "schedule": schedule, "extra": extra or {}}
  text = json.dumps(cfg, indent=1, sort_keys=True)  # fail before writing anything
  if params is None:
    params = nnx.split(module)[1]
  if isinstance(params, nnx.State):
    params = nnx.to_pure_dict(params)
  path = _abs(path)
  os.makedirs(path, exist_ok=True)
  save_pytree(os.path.join(path, "params"), params)
  with open(os.path.join(path, "config.json"), "w") as f:
    f.write(text)


def _read_config(path: str) -> dict:
  cfg_path = os.path.join(path, "config.json")
  if not os.path.isfile(cfg_path):
    raise CheckpointError(f"{path} is not a jgen model directory (no config.json).")
  with open(cfg_path) as f:
    cfg = json.load(f)
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
    path: a directory written by :func:`save_model`.
    expect: optional constructor values the caller relies on, e.g.
      ``{"num_classes": 10, "data_shape": [8, 8]}``; any difference raises.

  Returns:
    :class:`LoadedModel` ``(module, config, schedule)``.

  Raises:
    CheckpointError: not a model directory, unknown architecture, an ``expect``
      mismatch (each differing key is named), or corrupted parameters.
  """
  from jgen.diffusion.nets import ARCHITECTURES
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

  Raises:
    CheckpointError: the saved architecture/config differs from ``module``'s (every
      differing constructor argument is named), or parameter shapes differ.
  """
  from jgen.diffusion.nets import denoiser_config
  path = _abs(path)
  cfg = _read_config(path)
  bad = _mismatches(cfg["denoiser"], denoiser_config(module))
  if bad:
    raise CheckpointError(f"model at {path} was saved from a different architecture or"
                          " config:\n  " + "\n  ".join(bad))
  return _restore_into(path, module)
