"""Save and load any fitted jgen model: ``save(path, model, params)`` / ``load(path)``.

One orbax checkpoint
([`jgen.parallel.checkpoint.save_pytree`][jgen.checkpoint.save_pytree]) holds
everything:

* ``params``: the fitted parameters as a tree of arrays (NamedTuples become dicts);
* ``meta``: a JSON document stored as a ``uint8`` array: the format name and version,
  the family name, its hyperparameters, what rebuilds the params' types, and a SHA-256
  digest of every parameter array (name, dtype, shape, bytes).

``load`` rebuilds the family from its name and hyperparameters (``factory(**hyper)``)
and the params with their original types and dtypes, so ``log_likelihood`` is bitwise
identical after a round trip. Families: ``gaussian_nb``, ``lda``, ``qda``,
``logistic_regression`` and ``diffusion_classifier`` (a jgen NNX denoiser: its
architecture is stored with ``jgen.diffusion.nets.denoiser_config``, and a schedule
as a ``{"name": ..., **kwargs}`` spec, as
[`jgen.diffusion.save_model`][jgen.diffusion.save_model] does).

Errors ([`jgen.parallel.checkpoint.CheckpointError`][jgen.io.CheckpointError], a
``ValueError``) name the problem: a missing folder, a folder that is not a jgen model
(foreign), a format version newer than this jgen reads, or damaged contents (unreadable
arrays, or arrays whose digest differs from the one saved).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgen.diffusion.family import DiffusionParams
from jgen.diffusion.family import diffusion_classifier
from jgen.diffusion.nets import ARCHITECTURES
from jgen.diffusion.nets import denoiser_config
from jgen.diffusion.parametrizations import nnx_denoiser
from jgen.diffusion.checkpoint import schedule_from_spec
from jgen.diffusion.train import TrainConfig
from jgen.gaussian.families import gaussian_nb
from jgen.gaussian.families import lda
from jgen.gaussian.families import qda
from jgen.logistic.model import FitInfo
from jgen.logistic.model import LogisticParams
from jgen.logistic.model import logistic_regression
from jgen.parallel.checkpoint import CheckpointError
from jgen.parallel.checkpoint import restore_pytree
from jgen.parallel.checkpoint import save_pytree

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION", "CheckpointError"]

FORMAT = "jgen.model"
FORMAT_VERSION = 1

_GAUSSIAN = {"gaussian_nb": gaussian_nb, "lda": lda, "qda": qda}
_SCHEDULE_NAME = re.compile(r"^(linear|cosine)\[([^,\]]+),([^,\]]+)\]$")


def _digest(tree: Any) -> str:
  """SHA-256 of every leaf's path, dtype, shape and bytes, in a fixed order."""
  h = hashlib.sha256()
  for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(tree)[0],
                           key=lambda pl: jax.tree_util.keystr(pl[0])):
    a = np.asarray(leaf)
    h.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}|".encode())
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()


def _schedule_spec(schedule) -> dict:
  """``{"name": "linear", "gamma_min": ..., "gamma_max": ...}`` read back from a jgen
  schedule, checked by rebuilding it and comparing ``gamma`` on a grid bitwise."""
  m = _SCHEDULE_NAME.match(getattr(schedule, "name", ""))
  if m is not None:
    spec = {"name": m.group(1), "gamma_min": float(m.group(2)),
            "gamma_max": float(m.group(3))}
    t = jnp.linspace(0.0, 1.0, 33)
    if bool(jnp.all(schedule_from_spec(spec).gamma(t) == schedule.gamma(t))):
      return spec
  raise ValueError(f"schedule {getattr(schedule, 'name', schedule)!r} cannot be stored:"
                   " jgen.save stores jgen.diffusion.linear_schedule and"
                   " cosine_schedule (by their name and range) only.")


def _diffusion_meta(model, params: DiffusionParams) -> dict:
  h = model.hyperparams
  den = h["denoiser"]
  graphdef = getattr(den.apply, "graphdef", None)
  if graphdef is None:
    raise ValueError("model: jgen.save stores diffusion classifiers whose denoiser is a"
                     " jgen net wrapped by jgen.diffusion.nnx_denoiser; got a denoiser"
                     f" built from {type(den.apply).__name__}.")
  config = denoiser_config(nnx.merge(graphdef, params.net))
  tc = h["train_config"]
  return {"denoiser": config, "parametrization": den.parametrization,
          "schedule": _schedule_spec(h["schedule"]),
          "train_config": None if tc is None else dict(tc._asdict()),
          **{k: h[k] for k in ("num_t", "timesteps", "antithetic", "chunk_size",
                               "cache_bytes")}}


def _encode(model, params) -> tuple[dict, dict]:
  """(JSON-able hyperparameters, params as a tree of dicts of arrays)."""
  if not isinstance(params, model.params_type):
    raise TypeError(f"params must be {model.params_type.__name__} (from {model.name}'s"
                    f" fit), got {type(params).__name__}.")
  if model.name in _GAUSSIAN:
    return dict(model.hyperparams), dict(params._asdict())
  if model.name == "logistic_regression":
    tree = {"weights": params.weights, "bias": params.bias}
    if params.info is not None:
      tree["info"] = dict(params.info._asdict())
    return dict(model.hyperparams), tree
  if model.name == "diffusion_classifier":
    return (_diffusion_meta(model, params),
            {"net": params.net, "class_ids": params.class_ids,
             "log_prior": params.log_prior})
  raise ValueError(f"model: jgen.save knows the families {sorted(_GAUSSIAN)},"
                   f" 'logistic_regression' and 'diffusion_classifier', got"
                   f" {model.name!r}.")


def save(path: str | os.PathLike, model, params: Any) -> None:
  """Saves a fitted model (family, hyperparameters and params) to the folder ``path``.

  Args:
    path: target directory (an existing checkpoint there is replaced).
    model: the [`jgen.Classifier`][jgen.Classifier] that produced ``params``.
    params: what ``model.fit`` returned (or params of the same type).

  Raises:
    TypeError: ``params`` of another family.
    ValueError: a family, denoiser or schedule that cannot be rebuilt from a
      description.

  Examples:
    >>> import tempfile, jax.numpy as jnp, jgen
    >>> from jgen.io import save, load
    >>> x = jnp.array([[0.0], [0.2], [2.0], [2.4]]); y = jnp.array([0, 0, 1, 1])
    >>> model = jgen.qda(reg_param=0.1); params = model.fit(x, y, num_classes=2)
    >>> folder = tempfile.mkdtemp() + "/qda"
    >>> save(folder, model, params)
    >>> model2, params2 = load(folder)
    >>> model2.hyperparams == model.hyperparams
    True
    >>> bool((model2.log_likelihood(params2, x) == model.log_likelihood(params, x)).all())
    True
  """
  hyper, tree = _encode(model, params)
  meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "family": model.name,
          "hyperparams": hyper, "digest": _digest(tree)}
  text = json.dumps(meta, sort_keys=True)   # fails before anything is written
  save_pytree(path, {"meta": np.frombuffer(text.encode(), np.uint8), "params": tree})


def _read_meta(path: str, tree: dict) -> dict:
  if not isinstance(tree, dict) or "meta" not in tree or "params" not in tree:
    raise CheckpointError(f"{path} is an orbax checkpoint but not a jgen model (no jgen"
                          " metadata); was it written by jgen.save?")
  try:
    meta = json.loads(np.asarray(tree["meta"], np.uint8).tobytes().decode())
  except (UnicodeDecodeError, ValueError) as e:
    raise CheckpointError(f"{path}: the model metadata is damaged ({e}).") from e
  if meta.get("format") != FORMAT:
    raise CheckpointError(f"{path} holds format {meta.get('format')!r}, not a jgen model"
                          f" ({FORMAT!r}).")
  version = meta.get("format_version")
  if not isinstance(version, int) or version > FORMAT_VERSION:
    raise CheckpointError(f"{path} was written with jgen model format version"
                          f" {version!r}, newer than this jgen reads ({FORMAT_VERSION});"
                          " upgrade jgen to load it.")
  return meta


def _abstract_module(config: dict):
  den = dict(config)
  cls = ARCHITECTURES.get(den.pop("architecture"))
  if cls is None:
    raise CheckpointError(f"unknown denoiser architecture in {config!r}; known:"
                          f" {sorted(ARCHITECTURES)}.")
  args = (tuple(den.pop("data_shape")), den.pop("num_classes"))
  den = {k: tuple(v) if isinstance(v, list) else v for k, v in den.items()}
  return nnx.eval_shape(lambda: cls(*args, **den, rngs=nnx.Rngs(0)))


def _decode(path: str, meta: dict, saved: dict):
  """(model, params) from the metadata and the restored (or target) tree."""
  name, hyper, p = meta["family"], meta["hyperparams"], saved["params"]
  if name in _GAUSSIAN:
    model = _GAUSSIAN[name](**hyper)
    return model, model.params_type(**{f: jnp.asarray(p[f])
                                       for f in model.params_type._fields})
  if name == "logistic_regression":
    info = p.get("info")
    info = None if info is None else FitInfo(**{f: jnp.asarray(info[f])
                                                 for f in FitInfo._fields})
    return (logistic_regression(**hyper),
            LogisticParams(jnp.asarray(p["weights"]), jnp.asarray(p["bias"]), info))
  if name == "diffusion_classifier":
    module = _abstract_module(hyper["denoiser"])
    graphdef, state = nnx.split(module)
    target = {"meta": saved["meta"],
              "params": {"net": nnx.to_pure_dict(state),
                         "class_ids": p["class_ids"], "log_prior": p["log_prior"]}}
    p = restore_pytree(path, target)["params"]
    nnx.replace_by_pure_dict(state, p["net"])
    den, net = nnx_denoiser(nnx.merge(graphdef, state),
                            parametrization=hyper["parametrization"])
    tc = hyper["train_config"]
    model = diffusion_classifier(
        den, schedule=schedule_from_spec(hyper["schedule"]),
        train_config=None if tc is None else TrainConfig(**tc),
        **{k: hyper[k] for k in ("num_t", "timesteps", "antithetic", "chunk_size",
                                 "cache_bytes")})
    return model, DiffusionParams(net, jnp.asarray(p["class_ids"]),
                                  jnp.asarray(p["log_prior"]))
  raise CheckpointError(f"{path}: unknown model family {name!r}.")


def load(path: str | os.PathLike) -> tuple[Any, Any]:
  """Loads ``(model, params)`` written by [`save`][jgen.save].

  Args:
    path: a folder written by [`save`][jgen.save].

  Returns:
    ``(model, params)``: the family rebuilt from its name and hyperparameters and the
    params with their saved types and dtypes (bitwise equal to what was saved).

  Raises:
    CheckpointError: no folder at ``path``; a folder that is not a jgen model; a
      format version newer than this jgen reads; damaged contents (unreadable arrays
      or a digest mismatch). Each message names the folder and the problem.

  Examples:
    >>> import tempfile, jax.numpy as jnp, jgen
    >>> from jgen.io import save, load
    >>> x = jnp.array([[0.0], [1.0], [2.0], [3.0]]); y = jnp.array([0, 0, 1, 1])
    >>> lr = jgen.logistic_regression(C=10.0); params = lr.fit(x, y, num_classes=2)
    >>> folder = tempfile.mkdtemp() + "/lr"; save(folder, lr, params)
    >>> model, loaded = load(folder)
    >>> model.name, loaded.weights.shape
    ('logistic_regression', (1, 2))
  """
  path = os.path.abspath(os.fspath(path))
  if not os.path.isdir(path):
    raise CheckpointError(f"no jgen model at {path}: the folder does not exist.")
  try:
    saved = restore_pytree(path)
  except CheckpointError as e:
    raise CheckpointError(f"{path} is not a readable jgen model checkpoint (missing,"
                          f" foreign or damaged orbax files): {e}") from e
  meta = _read_meta(path, saved)
  model, params = _decode(path, meta, saved)
  _, tree = _encode(model, params)
  if _digest(tree) != meta.get("digest"):
    raise CheckpointError(f"{path}: the parameter arrays are damaged (their SHA-256"
                          " digest differs from the one saved).")
  return model, params
