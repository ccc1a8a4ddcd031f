r"""Multiclass surrogate losses and the 0-1 loss as pure functions of scores.

Every loss takes scores ``h [..., K]`` (class axis last) and integer labels ``y [...]``
and returns the per-example loss ``[...]``; any leading shape works and every function
composes with ``jit``, ``vmap`` and ``grad`` (in ``h``). The prediction of ``h`` is
``argmax_y h_y``.

Families (Awasthi, Mao, Mohri and Zhong, NeurIPS 2022; Mao, Mohri and Zhong, ICML 2023):

* comp-sum losses of the softmax ``s = softmax(h)``:
  $\ell_\tau(h, y) = (s_y^{\tau - 1} - 1) / (1 - \tau)$ for ``tau != 1`` and
  $-\log s_y$ for ``tau = 1`` (logistic / cross-entropy);
  ``tau = 0`` is the sum-exponential loss $\sum_{y' \ne y} e^{h_{y'} - h_y}$,
  ``tau`` in ``(1, 2)`` generalised cross-entropy $(1 - s_y^q)/q$, ``q = tau - 1``,
  and ``tau = 2`` the mean absolute error $1 - s_y$.
* constrained losses $\sum_{y' \ne y} \Phi(-h_{y'})$ under the constraint
  $\sum_y h_y = 0$; ``Phi`` exponential, squared hinge or hinge.
* the Crammer-Singer max-hinge loss $\max(0, 1 - h_y + \max_{y' \ne y} h_{y'})$.

Constrained losses: jgen does not require ``sum(h) == 0``; it evaluates the loss at the
centred scores ``h - mean(h)``, the orthogonal projection onto the constraint set, which
keeps the prediction ``argmax h`` unchanged. Unconstrained scores therefore
parametrise exactly the constrained hypothesis set, and scores that already sum to zero
are used as they are.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jgen.core import checks as _checks
from jgen.bounds import common as _common

__all__ = [
    "LOSS_NAMES",
    "logistic_loss",
    "comp_sum_loss",
    "constrained_exponential_loss",
    "squared_hinge_loss",
    "hinge_loss",
    "crammer_singer_loss",
    "zero_one_loss",
    "get_loss",
]

LOSS_NAMES = ("logistic", "comp_sum", "constrained_exponential", "squared_hinge",
              "hinge", "crammer_singer")


def _prepare(h: ArrayLike, y: ArrayLike) -> tuple[jax.Array, jax.Array]:
  h = _common.as_scores(h, "h")
  y = jnp.asarray(y)
  _checks.check_labels(y, h.shape[-1], "y")
  if y.shape != h.shape[:-1]:
    raise ValueError(
        f"y must have shape {tuple(h.shape[:-1])} (the leading shape of h), got"
        f" {tuple(y.shape)}.")
  return h, y


def _is_label(v: jax.Array, y: jax.Array) -> jax.Array:
  """``[..., K]`` mask of the label's class (a compare, not a gather: cheap under vmap)."""
  return _checks.as_trailing(jnp.arange(v.shape[-1]), v.ndim) == y[..., None]


def _pick(v: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.sum(jnp.where(_is_label(v, y), v, 0.0), axis=-1)


def _neg_log_softmax(h: jax.Array, y: jax.Array) -> jax.Array:
  """``-log softmax(h)_y >= 0`` computed stably."""
  return jax.nn.logsumexp(h, axis=-1) - _pick(h, y)


def logistic_loss(h: ArrayLike, y: ArrayLike) -> jax.Array:
  """Logistic (cross-entropy) loss ``-log softmax(h)_y`` (comp-sum with ``tau = 1``).

  Args:
    h: scores ``[..., K]``.
    y: integer labels ``[...]`` in ``[0, K)``.

  Returns:
    Losses ``[...]``, ``>= 0``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> h = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]); y = jnp.array([0, 2])
    >>> tuple(round(float(v), 3) for v in jgen.bounds.logistic_loss(h, y))
    (0.17, 1.551)
  """
  h, y = _prepare(h, y)
  return _neg_log_softmax(h, y)


def comp_sum_loss(h: ArrayLike, y: ArrayLike, tau: float) -> jax.Array:
  r"""Comp-sum loss $\ell_\tau(h, y) = (s_y^{\tau-1} - 1)/(1 - \tau)$, ``s = softmax(h)``.

  Computed as ``expm1((1 - tau) L) / (1 - tau)`` with ``L = -log s_y``, which is exact
  for ``tau`` near 1 and equals ``L`` at ``tau = 1``.

  Args:
    h: scores ``[..., K]``.
    y: integer labels ``[...]`` in ``[0, K)``.
    tau: static number in ``[0, 2]``: 0 sum-exponential, 1 logistic, ``(1, 2)``
      generalised cross-entropy, 2 mean absolute error.

  Returns:
    Losses ``[...]``, ``>= 0`` (``inf`` where ``tau < 1`` and ``s_y`` underflows).

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> h = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]); y = jnp.array([0, 2])
    >>> tuple(round(float(v), 3) for v in jgen.bounds.comp_sum_loss(h, y, tau=0.0))
    (0.185, 3.718)
    >>> tuple(round(float(v), 3) for v in jgen.bounds.comp_sum_loss(h, y, tau=2.0))
    (0.156, 0.788)
  """
  tau = _common.check_tau(tau)
  h, y = _prepare(h, y)
  neg_log_s = _neg_log_softmax(h, y)
  if tau == 1.0:
    return neg_log_s
  return jnp.expm1((1.0 - tau) * neg_log_s) / (1.0 - tau)


def _constrained(h: ArrayLike, y: ArrayLike,
                 phi_neg: Callable[[jax.Array], jax.Array]) -> jax.Array:
  """``sum_{y' != y} Phi(-c_{y'})`` with centred scores ``c = h - mean(h)``."""
  h, y = _prepare(h, y)
  c = h - jnp.mean(h, axis=-1, keepdims=True)
  others = ~_is_label(h, y)
  return jnp.sum(jnp.where(others, phi_neg(c), 0.0), axis=-1)


def constrained_exponential_loss(h: ArrayLike, y: ArrayLike) -> jax.Array:
  r"""Constrained exponential loss $\sum_{y' \ne y} e^{c_{y'}}$, ``c = h - mean(h)``.

  Args:
    h: scores ``[..., K]`` (centred internally; see the module docstring).
    y: integer labels ``[...]``.

  Returns:
    Losses ``[...]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> h = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]); y = jnp.array([0, 2])
    >>> tuple(round(float(v), 3) for v in jgen.bounds.constrained_exponential_loss(h, y))
    (0.98, 2.664)
  """
  return _constrained(h, y, jnp.exp)


def squared_hinge_loss(h: ArrayLike, y: ArrayLike) -> jax.Array:
  r"""Constrained squared hinge loss $\sum_{y' \ne y} \max(0, 1 + c_{y'})^2$.

  Args:
    h: scores ``[..., K]`` (centred internally: ``c = h - mean(h)``).
    y: integer labels ``[...]``.

  Returns:
    Losses ``[...]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> h = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]); y = jnp.array([0, 2])
    >>> tuple(round(float(v), 3) for v in jgen.bounds.squared_hinge_loss(h, y))
    (0.444, 3.222)
  """
  return _constrained(h, y, lambda c: jnp.square(jax.nn.relu(1.0 + c)))


def hinge_loss(h: ArrayLike, y: ArrayLike) -> jax.Array:
  r"""Constrained hinge loss $\sum_{y' \ne y} \max(0, 1 + c_{y'})$ (Lee, Lin, Wahba).

  Args:
    h: scores ``[..., K]`` (centred internally: ``c = h - mean(h)``).
    y: integer labels ``[...]``.

  Returns:
    Losses ``[...]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> h = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]); y = jnp.array([0, 2])
    >>> tuple(round(float(v), 3) for v in jgen.bounds.hinge_loss(h, y))
    (0.667, 2.333)
  """
  return _constrained(h, y, lambda c: jax.nn.relu(1.0 + c))


def crammer_singer_loss(h: ArrayLike, y: ArrayLike) -> jax.Array:
  r"""Crammer-Singer max-hinge loss $\max(0, 1 - h_y + \max_{y' \ne y} h_{y'})$.

  Args:
    h: scores ``[..., K]`` (unconstrained).
    y: integer labels ``[...]``.

  Returns:
    Losses ``[...]``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> h = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]); y = jnp.array([0, 2])
    >>> jgen.bounds.crammer_singer_loss(h, y)
    Array([0., 2.], dtype=float32)
  """
  h, y = _prepare(h, y)
  others = ~_is_label(h, y)
  runner_up = jnp.max(jnp.where(others, h, -jnp.inf), axis=-1)
  return jax.nn.relu(1.0 - _pick(h, y) + runner_up)


def zero_one_loss(h: ArrayLike, y: ArrayLike) -> jax.Array:
  """0-1 loss ``1[argmax h != y]``.

  Tie rule: ``argmax`` returns the first (lowest-index) maximal class, as
  ``jnp.argmax`` does; [`jgen.bounds.zero_one_regret`][jgen.bounds.zero_one_regret] uses
  the same rule.

  Args:
    h: scores ``[..., K]``.
    y: integer labels ``[...]``.

  Returns:
    ``[...]`` zeros and ones in the dtype of ``h``.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> h = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]); y = jnp.array([0, 2])
    >>> jgen.bounds.zero_one_loss(h, y)
    Array([0., 1.], dtype=float32)
  """
  h, y = _prepare(h, y)
  return (jnp.argmax(h, axis=-1) != y).astype(h.dtype)


@functools.lru_cache(maxsize=None)
def _comp_sum_fixed(tau: float) -> Callable[[ArrayLike, ArrayLike], jax.Array]:
  # Cached so repeated calls return the same object: jit caches key on it.
  return functools.partial(comp_sum_loss, tau=tau)


_BY_NAME = {
    "logistic": logistic_loss,
    "constrained_exponential": constrained_exponential_loss,
    "squared_hinge": squared_hinge_loss,
    "hinge": hinge_loss,
    "crammer_singer": crammer_singer_loss,
    "zero_one": zero_one_loss,
}


def check_loss_name(loss_name: str, tau: float | None) -> float | None:
  """Validates a loss name and its ``tau`` (needed for ``comp_sum`` only)."""
  if loss_name != "comp_sum" and loss_name not in _BY_NAME:
    raise ValueError(
        f"loss_name must be one of {LOSS_NAMES + ('zero_one',)}, got {loss_name!r}.")
  if loss_name == "comp_sum":
    return _common.check_tau(tau)
  if tau is not None:
    raise ValueError(f"tau applies to the comp_sum loss only, got tau={tau} for"
                     f" {loss_name!r}.")
  return None


def get_loss(loss_name: str, *, tau: float | None = None
             ) -> Callable[[ArrayLike, ArrayLike], jax.Array]:
  """The loss function ``loss_fn(h, y)`` for a name in
  [`LOSS_NAMES`][jgen.bounds.LOSS_NAMES] (or "zero_one").

  Args:
    loss_name: one of [`LOSS_NAMES`][jgen.bounds.LOSS_NAMES] or ``"zero_one"``.
    tau: the comp-sum parameter in ``[0, 2]`` (``loss_name="comp_sum"`` only).

  Returns:
    A callable ``(h [..., K], y [...]) -> [...]``; the same object for the same
    arguments, so ``jit`` caches on it.

  Examples:
    >>> import jax.numpy as jnp, jgen
    >>> loss_fn = jgen.bounds.get_loss("comp_sum", tau=0.5)
    >>> loss_fn is jgen.bounds.get_loss("comp_sum", tau=0.5)
    True
    >>> round(float(loss_fn(jnp.array([2.0, 0.0, -1.0]), jnp.array(0))), 3)
    0.177
  """
  tau = check_loss_name(loss_name, tau)
  if loss_name == "comp_sum":
    return _comp_sum_fixed(tau)
  return _BY_NAME[loss_name]


def identify(loss_fn) -> tuple[str, float | None] | None:
  """``(name, tau)`` when ``loss_fn`` is one of the library's losses, else ``None``."""
  for name, fn in _BY_NAME.items():
    if loss_fn is fn:
      return name, None
  if (isinstance(loss_fn, functools.partial) and loss_fn.func is comp_sum_loss
      and not loss_fn.args and set(loss_fn.keywords) == {"tau"}):
    return "comp_sum", _common.check_tau(loss_fn.keywords["tau"])
  return None
