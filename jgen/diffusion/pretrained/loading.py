"""Reading diffusers-format folders (``config.json`` + ``*.safetensors``) into NNX state.

A diffusers model folder holds ``config.json`` (the constructor arguments, with
``_class_name``) and one or more ``*.safetensors`` files of PyTorch-layout tensors. This
module reads them with safetensors' NumPy reader (no PyTorch at run time) and fills an
abstract flax NNX state whose attribute paths mirror the diffusers module names, so the
tensor for the NNX leaf ``transformer_blocks/0/attn1/to_q/kernel`` is
``transformer_blocks.0.attn1.to_q.weight``, transposed to flax's layout.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import safe_open

__all__ = ["read_config", "read_tensors", "fill_state", "torch_name", "random_state"]

# flax leaf name -> diffusers (PyTorch) tensor name.
_LEAF_NAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight",
               "bias": "bias"}


def read_config(folder: str, class_names: tuple[str, ...]) -> dict:
  """The parsed ``config.json`` of a diffusers model folder.

  Args:
    folder: the model folder.
    class_names: accepted values of ``_class_name`` (the diffusers class).

  Returns:
    The config as a ``dict``.

  Raises:
    ValueError: naming the folder or file when ``config.json`` is missing or is not a
      config of one of ``class_names``.

  Examples:
    >>> read_config("dit_folder", ("DiTTransformer2DModel",))  # doctest: +SKIP
  """
  path = os.path.join(folder, "config.json")
  if not os.path.isdir(folder):
    raise ValueError(f"model folder {folder!r} does not exist.")
  if not os.path.isfile(path):
    raise ValueError(f"model folder {folder!r} has no config.json.")
  with open(path) as f:
    try:
      config = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON: {e}.") from e
  name = config.get("_class_name") if isinstance(config, dict) else None
  if name not in class_names:
    raise ValueError(f"{path} has _class_name={name!r}; expected one of"
                     f" {list(class_names)}.")
  return config


def read_tensors(folder: str) -> dict[str, tuple[np.ndarray, str]]:
  """All tensors of the ``*.safetensors`` files in ``folder``, as NumPy arrays.

  Args:
    folder: the model folder.

  Returns:
    ``{name: (array, file name)}`` in PyTorch layout.

  Raises:
    ValueError: when there is no ``*.safetensors`` file, or a tensor name repeats.

  Examples:
    >>> tensors = read_tensors("dit_folder")  # doctest: +SKIP
  """
  files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
  if not files:
    raise ValueError(f"model folder {folder!r} has no *.safetensors file.")
  tensors = {}
  for fname in files:
    with safe_open(os.path.join(folder, fname), framework="numpy") as f:
      for name in f.keys():
        if name in tensors:
          raise ValueError(f"tensor {name!r} appears in both {tensors[name][1]!r}"
                           f" and {fname!r} of {folder!r}.")
        tensors[name] = (f.get_tensor(name), fname)
  return tensors


def torch_name(path: tuple[Any, ...]) -> str:
  """The diffusers tensor name of an NNX state path, e.g. ``(..., 'kernel')``."""
  *modules, leaf = (str(p) for p in path)
  return ".".join(modules + [_LEAF_NAMES.get(leaf, leaf)])


def _to_flax(array: np.ndarray, leaf: str) -> np.ndarray:
  if leaf == "kernel" and array.ndim == 2:   # Linear: [out, in] -> [in, out]
    return array.T
  if leaf == "kernel" and array.ndim == 4:   # Conv: [O, I, kh, kw] -> [kh, kw, I, O]
    return array.transpose(2, 3, 1, 0)
  return array


def fill_state(abstract: nnx.State, tensors: dict, folder: str, dtype) -> nnx.State:
  """Fills an abstract NNX state with the matching tensors, cast to ``dtype``.

  Args:
    abstract: ``nnx.State`` of ``jax.ShapeDtypeStruct`` leaves (from ``nnx.eval_shape``).
    tensors: output of ``read_tensors``.
    folder: the folder, for error messages.
    dtype: parameter dtype (``jnp.float32`` or ``jnp.bfloat16``).

  Returns:
    The state with ``jax.Array`` leaves of ``dtype``.

  Raises:
    ValueError: naming the tensor (and file) that is missing, mis-shaped or
      unexpected (a checkpoint of another architecture has unused tensors).

  Examples:
    >>> state = fill_state(abstract, read_tensors("dit_folder"), "dit_folder",
    ...                    jnp.float32)  # doctest: +SKIP
  """
  used = set()

  def fill(path, leaf):
    name = torch_name(path)
    if name not in tensors:
      raise ValueError(f"tensor {name!r} is missing from the safetensors files of"
                       f" {folder!r}.")
    array, fname = tensors[name]
    array = _to_flax(array, str(path[-1]))
    if tuple(array.shape) != tuple(leaf.get_value().shape):
      raise ValueError(f"tensor {name!r} in {fname!r} of {folder!r} has shape"
                       f" {tuple(tensors[name][0].shape)}; the config needs"
                       f" {_torch_shape(leaf.get_value().shape, str(path[-1]))}.")
    used.add(name)
    return leaf.replace(jnp.asarray(np.asarray(array, np.float32), dtype))

  state = jax.tree_util.tree_map_with_path(
      lambda p, leaf: fill(tuple(_key(k) for k in p), leaf), abstract,
      is_leaf=lambda x: isinstance(x, nnx.Variable))
  extra = sorted(set(tensors) - used)
  if extra:
    raise ValueError(f"{len(extra)} tensors of {folder!r} are not used by the config's"
                     f" architecture (another architecture's checkpoint?), e.g."
                     f" {extra[:3]}.")
  return state


def _key(k) -> Any:
  for attr in ("key", "idx", "name"):
    if hasattr(k, attr):
      return getattr(k, attr)
  return k


def _torch_shape(shape: tuple[int, ...], leaf: str) -> tuple[int, ...]:
  if leaf == "kernel" and len(shape) == 2:
    return (shape[1], shape[0])
  if leaf == "kernel" and len(shape) == 4:
    return (shape[3], shape[2], shape[0], shape[1])
  return tuple(shape)


def random_state(key: jax.Array, abstract: nnx.State) -> nnx.State:
  """Random parameters of an abstract NNX state, drawn on the host (no compile).

  Kernels ``N(0, 1 / fan_in)``, embeddings ``N(0, 1)``, biases ``N(0, 0.02^2)``,
  norm scales ones; for tests and smoke runs only.

  Args:
    key: a JAX PRNG key (seeds NumPy's generator, so results are reproducible).
    abstract: ``nnx.State`` of ``jax.ShapeDtypeStruct`` leaves.

  Returns:
    The state with ``jax.Array`` leaves of the abstract dtypes.

  Examples:
    >>> state = random_state(jax.random.key(0), abstract)  # doctest: +SKIP
  """
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())

  def draw(path, leaf):
    name = str(_key(path[-1]))
    shape, dtype = leaf.get_value().shape, leaf.get_value().dtype
    if name == "scale":
      value = np.ones(shape)
    elif name == "kernel":
      value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
    elif name == "embedding":
      value = rng.standard_normal(shape)
    else:
      value = 0.02 * rng.standard_normal(shape)
    return leaf.replace(jnp.asarray(value.astype(np.float32), dtype))

  return jax.tree_util.tree_map_with_path(
      draw, abstract, is_leaf=lambda x: isinstance(x, nnx.Variable))
