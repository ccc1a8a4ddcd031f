"""What the scikit-learn estimators share: input checks, label encoding, Bayes' rule.

Every estimator validates its input with scikit-learn's own helpers (``validate_data``,
``check_classification_targets``, ``_check_sample_weight``), so bad input raises
scikit-learn's errors with scikit-learn's messages; it then maps the labels to
``0 .. K-1`` and hands the arrays to a jgen [`Classifier`][jgen.Classifier].

Precision: the estimators compute in float64 when JAX's x64 mode is enabled
(``jax.config.update("jax_enable_x64", True)``) and in float32 otherwise; fitted
attributes are NumPy arrays of that dtype.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator

import jax
import numpy as np
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight
from sklearn.utils.validation import check_is_fitted
from sklearn.utils.validation import validate_data

from jgen.core import checks as _checks
from jgen.core import plan as _plan
from jgen.core.contract import Classifier
from jgen.core.inference import log_joint

__all__ = ["JgenClassifier", "compute_dtype", "bucket_size", "block_rows", "host_bytes"]


def host_bytes() -> int:
  """Inputs of at most this many bytes are computed with NumPy by estimators whose
  kernels have a NumPy form (``_host_kernel``: naive Bayes, QDA): data that fits one row
  block (the execution plan's cache budget on CPU; ``CPU_CACHE_BYTES`` under a memory
  plan), for which a compiled program costs more (0.1 to 0.3 s to compile) than the
  whole fit takes.

  Examples:
    >>> from jgen.core.plan import use_plan
    >>> from jgen.sklearn import host_bytes
    >>> with use_plan(budget_bytes=1 << 20, kind="cache"):
    ...   host_bytes()
    1048576
  """
  plan = _plan.current_plan()
  return plan.budget_bytes if plan.kind == "cache" else _plan.CPU_CACHE_BYTES


def bucket_size(n: int) -> int:
  """Rows after padding: the next power of two, at least 16.

  jgen compiles one program per input shape; padding the examples of every call to a
  few bucket sizes (with sample weight zero in ``fit``, which the contract guarantees
  changes nothing) lets a grid search or cross-validation reuse the compiled fit.

  Examples:
    >>> from jgen.sklearn import bucket_size
    >>> tuple(bucket_size(n) for n in (1, 16, 17, 300))
    (16, 16, 32, 512)
  """
  return max(16, 1 << (int(n) - 1).bit_length())


def block_rows(n: int, row_bytes: int) -> int:
  """Rows of each block when ``n`` rows of ``row_bytes`` bytes are streamed.

  Up to a budget, one block of ``bucket_size(n)`` rows (one call, shared by every
  fold of a cross-validation). Past it, blocks of a fixed power of two rows, the last
  one padded: on CPU those of the execution plan's cache budget
  (``jgen.core.plan``), so each block's temporaries stay in cache and no ``[N, D]``
  temporary is allocated (200,000 x 256 float32 naive Bayes scoring runs about 6x
  faster in 2 MiB blocks than in one call, and pads 2% instead of 31% rows); on an
  accelerator the memory plan's, and at most an eighth of the bucket, which bounds
  the padding to an eighth of the rows.

  Examples:
    >>> from jgen.core.plan import use_plan
    >>> from jgen.sklearn import block_rows
    >>> with use_plan(budget_bytes=2 << 20, kind="cache"):
    ...   block_rows(1149, 256), block_rows(200_000, 1024)
    (2048, 2048)
  """
  bucket = bucket_size(n)
  row_bytes = max(int(row_bytes), 1)
  plan = _plan.current_plan()
  if plan.kind == "cache":
    cap = plan.budget_bytes // row_bytes
  else:
    cap = min(_plan.items_per_call(row_bytes, bucket, plan=plan), max(bucket >> 3, 16))
  cap = max(16, 1 << (max(int(cap), 1).bit_length() - 1))
  return min(bucket, cap)


def row_blocks(a: np.ndarray, rows: int) -> Iterator[np.ndarray]:
  """``a`` in blocks of ``rows`` rows, the last one padded with zero rows."""
  for start in range(0, max(a.shape[0], 1), rows):
    block = a[start:start + rows]
    yield block if block.shape[0] == rows else pad_rows(block, rows)


@functools.partial(jax.jit, static_argnums=0)
def _block_scores(score, params, x):
  """``score(params, x) + log_prior`` ``[B, K]`` and its log-softmax ``[B, K]``."""
  x = x.astype(params.log_prior.dtype)
  joint = score(params, x) + params.log_prior[None, :]
  return joint, jax.nn.log_softmax(joint, axis=-1)


def check_scores(joint: np.ndarray, X: np.ndarray) -> None:
  """Raises unless every class's column of ``joint`` is finite or entirely ``-inf``.

  ``X`` has passed scikit-learn's finiteness check, so a NaN, a ``+inf`` or a ``-inf``
  in a class that scores finite elsewhere comes from overflow: the check of ``X``'s
  scale names it (``-inf`` columns are classes with prior zero or no valid density).
  Reading the ``[N, K]`` scores on the host costs a small fraction of a pass over
  ``X``.
  """
  finite = np.isfinite(joint)
  if finite.all():
    return
  dead = np.all(joint == -np.inf, axis=0)
  if (finite | dead[None, :]).all():
    return
  _checks.check_values(X, "x", X.shape[1], underflow=False)
  rows = np.flatnonzero(~(finite | dead[None, :]).all(axis=1))
  raise ValueError(f"x: the class scores of {len(rows)} row(s) (first: row {rows[0]})"
                   " are not finite; rescale x (e.g. standardise it) or use float64.")


def pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
  """``a`` with zero rows appended up to ``rows``."""
  pad = [(0, rows - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
  return np.pad(a, pad)


def to_device(a, dtype=None) -> jax.Array:
  """``a`` (host data) as a JAX array of ``dtype``, converted on the host.

  ``jnp.asarray`` of a NumPy array compiles a small program per shape in this JAX (and
  one more for a dtype change); ``jax.device_put`` of the converted array compiles
  nothing, so a search's folds and hyperparameter values add no programs.
  """
  if isinstance(a, jax.Array):
    return a if dtype is None or a.dtype == dtype else a.astype(dtype)
  return jax.device_put(np.asarray(a, dtype))


def padded_device(*arrays: np.ndarray) -> tuple[jax.Array, ...]:
  """Host arrays with rows padded (zeros) to ``bucket_size`` of the first, on the
  device: a fit's inputs for one compiled program per bucket."""
  rows = bucket_size(arrays[0].shape[0])
  return tuple(to_device(pad_rows(np.asarray(a), rows)) for a in arrays)


def log_to_device(p, dtype=None) -> jax.Array:
  """``log(p)`` computed on the host (``-inf`` for zeros), as a JAX array."""
  with np.errstate(divide="ignore"):
    return to_device(np.log(np.asarray(p, np.float64)), dtype)


def compute_dtype() -> type:
  """``np.float64`` when JAX's x64 mode is on, else ``np.float32``.

  Examples:
    >>> import jax, numpy as np
    >>> from jgen.sklearn import compute_dtype
    >>> compute_dtype() == (np.float64 if jax.config.jax_enable_x64 else np.float32)
    True
  """
  return np.float64 if jax.config.jax_enable_x64 else np.float32


def check_priors(priors: Any, num_classes: int, dtype) -> np.ndarray | None:
  """scikit-learn's checks (and messages) for user class priors ``[K]``."""
  if priors is None:
    return None
  priors = np.asarray(priors, dtype=dtype)
  if priors.ndim != 1 or len(priors) != num_classes:
    raise ValueError("Number of priors must match number of classes.")
  if not np.isclose(priors.sum(), 1.0):
    raise ValueError("The sum of the priors should be 1.")
  if (priors < 0).any():
    raise ValueError("Priors must be non-negative.")
  return priors


class JgenClassifier(ClassifierMixin, BaseEstimator):
  """Base of the jgen estimators: ``fit`` / ``predict*`` / ``score`` over a jgen family.

  Subclasses implement ``_model()`` (the jgen family for the current
  hyperparameters), ``_fit_params(x, y, num_classes, sample_weight)`` and
  ``_set_fitted(params)`` (the scikit-learn fitted attributes).

  Examples:
    >>> import numpy as np, jgen
    >>> class PooledNB(jgen.sklearn.JgenClassifier):  # a jgen family as an estimator
    ...   def _model(self):
    ...     return jgen.gaussian_nb(pooled=True)
    ...   def _fit_params(self, x, y, num_classes, sample_weight):
    ...     return self._model().fit(x, y, num_classes=num_classes,
    ...                              sample_weight=sample_weight)
    ...   def _set_fitted(self, params):
    ...     self.params_ = params
    >>> X = np.array([[0.0], [0.2], [2.0], [2.4]]); y = np.array(["a", "a", "b", "b"])
    >>> clf = PooledNB().fit(X, y)
    >>> tuple(clf.predict(np.array([[0.1], [2.1]])).tolist()), clf.score(X, y)
    (('a', 'b'), 1.0)
  """

  def _model(self) -> Classifier:
    raise NotImplementedError

  def _validate_fit(self, X, y, sample_weight, *, reset: bool = True):
    dtype = compute_dtype()
    X, y = validate_data(self, X, y, dtype=dtype, reset=reset)
    check_classification_targets(y)
    if sample_weight is not None:
      sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype)
    return X, y, sample_weight

  def _encode(self, y: np.ndarray) -> np.ndarray:
    """Sets ``classes_`` (sorted unique labels of any type); returns ``int32`` codes."""
    self.classes_, codes = np.unique(y, return_inverse=True)
    if len(self.classes_) < 2:
      raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in"
                       f" the data, but the data contains only one class:"
                       f" {self.classes_[0]!r}.")
    return codes.astype(np.int32)

  def fit(self, X, y, sample_weight=None):
    """Fits the model to ``X [n_samples, n_features]`` and labels ``y [n_samples]``.

    Args:
      X: training features.
      y: labels of any type scikit-learn accepts for classification.
      sample_weight: optional non-negative weights ``[n_samples]``.

    Returns:
      ``self``.
    """
    X, y, sample_weight = self._validate_fit(X, y, sample_weight)
    codes = self._encode(y)
    params = self._fit_padded(self._fit_params, X, codes, sample_weight)
    self._set_fitted(params)
    return self

  # True where ``_fit_params`` works from host moments: it then gets the NumPy arrays
  # as they are and moves to the device (``padded_device``) only what needs it.
  _host_fit = False

  def _fit_padded(self, fit, X: np.ndarray, codes: np.ndarray, sample_weight):
    """``fit(x, y, num_classes, sample_weight)`` on rows padded to ``bucket_size``.

    The padding rows have features 0, label 0 and sample weight 0, which the contract's
    weighted fit ignores; the folds of a cross-validation (sizes differing by a row or
    two) then share one compiled fit.
    """
    if sample_weight is None:
      sample_weight = np.ones(X.shape[0], X.dtype)
    if self._host_fit:
      return fit(X, codes, len(self.classes_), sample_weight)
    x, y, w = padded_device(X, codes, sample_weight)
    return fit(x, y, len(self.classes_), w)

  def _host_kernel(self):
    """``kernel(x [n, D]) -> log p(x, y=k) [n, K]`` with NumPy for small validated
    inputs (``host_bytes``), or ``None`` (the default: the device kernels)."""

  def _score_kernel(self):
    """``kernel(params, x [B, D]) -> log p(x | y=k) [B, K]`` for inputs already
    validated, or ``None`` (the default: ``_joint`` goes through ``log_joint``)."""

  def _joint(self, X) -> np.ndarray:
    """``log p(x, y=k)`` (logits for logistic regression) ``[n_samples, K]``."""
    return self._scores(X)[0]

  def _log_proba(self, X) -> np.ndarray:
    """Log class probabilities ``[n_samples, K]``; subclasses that override ``_joint``
    override this too."""
    return self._scores(X)[1]

  def _scores(self, X) -> tuple[np.ndarray, np.ndarray]:
    """``(log p(x, y=k), log p(y=k | x))``, both ``[n_samples, K]``."""
    check_is_fitted(self)
    X = validate_data(self, X, dtype=compute_dtype(), reset=False)
    host = self._host_kernel() if X.nbytes <= host_bytes() else None
    if host is not None:   # small input: the family's kernel with NumPy
      joint = host(X)
      check_scores(joint, X)
      return joint, log_softmax(joint, axis=-1)
    kernel = self._score_kernel()
    if kernel is None:
      x = to_device(pad_rows(X, bucket_size(X.shape[0])))
      joint = np.asarray(log_joint(self._model(), self.params_, x))[:X.shape[0]]
      return joint, log_softmax(joint, axis=-1)   # on the host: no program to compile
    # Row blocks of one shape: one compiled program (returning the log-probabilities
    # too), and every call is dispatched before the first result is read back, so
    # copies and compute overlap. NumPy blocks go straight to the compiled call, whose
    # C++ dispatch copies them: a jax.device_put first costs more than the copy on
    # small inputs.
    rows = block_rows(X.shape[0], X.shape[1] * X.dtype.itemsize)
    out = jax.device_get([_block_scores(kernel, self.params_, b)
                          for b in row_blocks(X, rows)])
    joint = np.concatenate([j for j, _ in out])[:X.shape[0]]
    check_scores(joint, X)
    return joint, np.concatenate([p for _, p in out])[:X.shape[0]]

  def predict_log_proba(self, X) -> np.ndarray:
    """Log class probabilities ``[n_samples, K]`` (columns follow ``classes_``)."""
    return self._log_proba(X)

  def predict_proba(self, X) -> np.ndarray:
    """Class probabilities ``[n_samples, K]`` (columns follow ``classes_``)."""
    return np.exp(self.predict_log_proba(X))

  def predict(self, X) -> np.ndarray:
    """Bayes-rule labels ``[n_samples]``, values from ``classes_``."""
    scores = self._joint(X)   # first: raises NotFittedError before classes_ is read
    return self.classes_[np.argmax(scores, axis=-1)]

  def __sklearn_tags__(self):
    tags = super().__sklearn_tags__()
    tags.input_tags.allow_nan = False
    tags.input_tags.sparse = False
    return tags
