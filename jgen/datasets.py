"""Offline real datasets with deterministic train/test splits.

Every loader returns a [`Split`][jgen.datasets.Split]
``(x_train, y_train, x_test, y_test)`` of NumPy arrays: features ``[N, D]`` in ``dtype``
(float32 by default), labels ``[N]`` int32 in ``[0, K)``. Nothing is downloaded:
scikit-learn's bundled copies (digits, iris, wine, breast_cancer), the CSV bundled with
``palmerpenguins``, and MNIST-1D generated locally with ``mnist1d.data.make_dataset``.
These packages are optional and imported only inside the loaders.

Split protocol (all but MNIST-1D): 80/20 stratified, seed 0, i.e. scikit-learn's
``train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)``.
"""

from __future__ import annotations

import functools
import random
from typing import Callable, NamedTuple

import numpy as np

__all__ = [
    "Split",
    "NAMES",
    "load",
    "load_digits",
    "load_iris",
    "load_wine",
    "load_breast_cancer",
    "load_penguins",
    "load_mnist1d",
]


class Split(NamedTuple):
  """A train/test split: ``x_* [N, D]`` features, ``y_* [N]`` int32 labels.

  Examples:
    >>> import jgen
    >>> x_train, y_train, x_test, y_test = jgen.datasets.load("wine")
    >>> x_train.shape, x_test.shape, y_train.dtype
    ((142, 13), (36, 13), dtype('int32'))
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray


def _require(module: str, extra: str = "datasets"):
  try:
    return __import__(module, fromlist=["_"])
  except ImportError as err:
    raise ImportError(
        f"This loader needs the optional package {module.split('.')[0]!r}; install it"
        f" with `pip install jgen[{extra}]` (or `pip install"
        f" {module.split('.')[0].replace('sklearn', 'scikit-learn')}`).") from err


def _float_dtype(dtype) -> np.dtype:
  """The requested feature dtype; only floating dtypes keep scaled features intact."""
  try:
    dt = np.dtype(dtype)
  except TypeError as e:
    raise TypeError(f"dtype must be a NumPy floating dtype, got {dtype!r}.") from e
  if not np.issubdtype(dt, np.floating):
    raise TypeError(f"dtype must be a floating dtype (features are scaled, e.g. pixels"
                    f" / 16), got {dt}; an integer dtype would truncate them.")
  return dt


def _split(x: np.ndarray, y: np.ndarray, dtype) -> Split:
  dtype = _float_dtype(dtype)
  model_selection = _require("sklearn.model_selection")
  x_tr, x_te, y_tr, y_te = model_selection.train_test_split(
      x, y, test_size=0.2, stratify=y, random_state=0)
  return Split(np.asarray(x_tr, dtype), np.asarray(y_tr, np.int32),
               np.asarray(x_te, dtype), np.asarray(y_te, np.int32))


def _sklearn_loader(name: str, scale: float = 1.0) -> Callable[..., Split]:
  def loader(dtype=np.float32) -> Split:
    datasets = _require("sklearn.datasets")
    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return _split(np.asarray(x, np.float64) / scale, y, dtype)
  return loader


def load_digits(dtype=np.float32) -> Split:
  """8x8 handwritten digits: ``D = 64`` pixels scaled to ``[0, 1]`` (``/16``), ``K = 10``.

  1,437 train / 360 test examples (80/20 stratified, seed 0).

  Args:
    dtype: floating NumPy dtype of the features.

  Returns:
    [`Split`][jgen.datasets.Split] ``(x_train [1437, 64], y_train [1437],
    x_test [360, 64], y_test [360])``.

  Examples:
    >>> import jgen
    >>> split = jgen.datasets.load_digits()
    >>> split.x_train.shape, split.x_test.shape, float(split.x_train.max())
    ((1437, 64), (360, 64), 1.0)
  """
  return _sklearn_loader("digits", 16.0)(dtype)


def load_iris(dtype=np.float32) -> Split:
  """Iris: ``D = 4`` raw measurements (cm), ``K = 3``; 120 train / 30 test.

  Args:
    dtype: floating NumPy dtype of the features.

  Returns:
    [`Split`][jgen.datasets.Split] ``(x_train [120, 4], y_train [120],
    x_test [30, 4], y_test [30])``.

  Examples:
    >>> import jgen
    >>> x_train, y_train, x_test, y_test = jgen.datasets.load_iris()
    >>> model = jgen.lda(); params = model.fit(x_train, y_train, num_classes=3)
    >>> int((jgen.predict(model, params, x_test) == y_test).sum()), len(y_test)
    (30, 30)
  """
  return _sklearn_loader("iris")(dtype)


def load_wine(dtype=np.float32) -> Split:
  """Wine: ``D = 13`` raw chemical measurements, ``K = 3``; 142 train / 36 test.

  Args:
    dtype: floating NumPy dtype of the features.

  Returns:
    [`Split`][jgen.datasets.Split] ``(x_train [142, 13], y_train [142],
    x_test [36, 13], y_test [36])``.

  Examples:
    >>> import numpy as np, jgen
    >>> split = jgen.datasets.load_wine()
    >>> tuple(np.bincount(split.y_train).tolist())  # class sizes, stratified
    (47, 57, 38)
  """
  return _sklearn_loader("wine")(dtype)


def load_breast_cancer(dtype=np.float32) -> Split:
  """Breast cancer Wisconsin: ``D = 30`` raw features, ``K = 2``; 455 train / 114 test.

  Args:
    dtype: floating NumPy dtype of the features.

  Returns:
    [`Split`][jgen.datasets.Split] ``(x_train [455, 30], y_train [455],
    x_test [114, 30], y_test [114])``.

  Examples:
    >>> import numpy as np, jgen
    >>> split = jgen.datasets.load_breast_cancer()
    >>> split.x_train.shape, tuple(np.bincount(split.y_train).tolist())
    ((455, 30), (170, 285))
  """
  return _sklearn_loader("breast_cancer")(dtype)


PENGUIN_COLUMNS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
PENGUIN_SPECIES = ("Adelie", "Chinstrap", "Gentoo")


def load_penguins(dtype=np.float32) -> Split:
  """Palmer penguins: the 4 numeric measurements, species as labels (``K = 3``).

  Columns ``PENGUIN_COLUMNS`` (raw units: mm and g); labels index
  ``PENGUIN_SPECIES`` (Adelie 0, Chinstrap 1, Gentoo 2). The 2 of 344 rows with a
  missing measurement are dropped (342 remain; the ``sex`` column is not used), then
  split 80/20 stratified with seed 0: 273 train / 69 test.

  Args:
    dtype: floating NumPy dtype of the features.

  Returns:
    [`Split`][jgen.datasets.Split] ``(x_train [273, 4], y_train [273],
    x_test [69, 4], y_test [69])``.

  Examples:
    >>> import numpy as np, jgen
    >>> split = jgen.datasets.load_penguins()
    >>> split.x_train.shape, tuple(np.bincount(split.y_train).tolist())
    ((273, 4), (121, 54, 98))
  """
  penguins = _require("palmerpenguins")
  frame = penguins.load_penguins()
  frame = frame.dropna(subset=list(PENGUIN_COLUMNS))
  x = frame[list(PENGUIN_COLUMNS)].to_numpy(np.float64)
  species = frame["species"].to_numpy()
  y = np.searchsorted(np.asarray(PENGUIN_SPECIES), species)
  if not np.all(np.asarray(PENGUIN_SPECIES)[y] == species):
    raise ValueError(f"unexpected species in palmerpenguins: {set(species)}")
  return _split(x, y, dtype)


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays():
  data = _require("mnist1d.data")
  # make_dataset seeds the global `random` and NumPy generators; restore them so that
  # loading data never changes a caller's random stream.
  np_state, py_state = np.random.get_state(), random.getstate()
  try:
    ds = data.make_dataset(data.get_dataset_args())
  finally:
    np.random.set_state(np_state)
    random.setstate(py_state)
  return ds["x"], ds["y"], ds["x_test"], ds["y_test"]


def load_mnist1d(dtype=np.float32) -> Split:
  """MNIST-1D generated locally: ``D = 40``, ``K = 10``; 4,000 train / 1,000 test.

  ``mnist1d.data.make_dataset`` with the default ``get_dataset_args()`` (5,000
  examples, seed 42, globally standardised), split as it returns it (first 80% train).
  The download path of ``mnist1d`` is never used. Generated once per process (about a
  second) and cached.

  Args:
    dtype: floating NumPy dtype of the features.

  Returns:
    [`Split`][jgen.datasets.Split] ``(x_train [4000, 40], y_train [4000],
    x_test [1000, 40], y_test [1000])``.

  Examples:
    >>> import jgen
    >>> split = jgen.datasets.load_mnist1d()
    >>> split.x_train.shape, split.x_test.shape, int(split.y_train.max()) + 1
    ((4000, 40), (1000, 40), 10)
  """
  x_tr, y_tr, x_te, y_te = _mnist1d_arrays()
  dtype = _float_dtype(dtype)
  return Split(np.array(x_tr, dtype), np.array(y_tr, np.int32),
               np.array(x_te, dtype), np.array(y_te, np.int32))


_LOADERS = {
    "digits": load_digits,
    "iris": load_iris,
    "wine": load_wine,
    "breast_cancer": load_breast_cancer,
    "penguins": load_penguins,
    "mnist1d": load_mnist1d,
}
NAMES = tuple(_LOADERS)


def load(name: str, dtype=np.float32) -> Split:
  """Loads a dataset by name, one of [`NAMES`][jgen.datasets.NAMES].

  Args:
    name: ``"digits"``, ``"iris"``, ``"wine"``, ``"breast_cancer"``, ``"penguins"`` or
      ``"mnist1d"``.
    dtype: floating dtype of the features.

  Returns:
    [`Split`][jgen.datasets.Split] ``(x_train [N, D], y_train [N],
    x_test [M, D], y_test [M])``.

  Examples:
    >>> import numpy as np, jgen
    >>> split = jgen.datasets.load("iris", dtype=np.float64)
    >>> split.x_train.shape, split.x_train.dtype
    ((120, 4), dtype('float64'))
  """
  if name not in _LOADERS:
    raise ValueError(f"name must be one of {NAMES}, got {name!r}.")
  if not np.issubdtype(np.dtype(dtype), np.floating):
    raise TypeError(f"dtype must be a floating dtype, got {np.dtype(dtype)}.")
  return _LOADERS[name](dtype)
