"""``jax.jit`` with jgen's per-backend compiler options.

On the CPU, XLA hands convolutions to the YNNPACK library by default. For the small
convolutions of jgen's U-Net (8x8 to 28x28 images, 32-64 channels) that path was
1.75-1.86x slower than XLA's own convolution on a 2-core Xeon, forward and backward,
while matrix products were as fast or faster through YNNPACK
(``benchmarks/unet_train.py`` measures both). [`jit`][jgen.core.compilation.jit]
therefore compiles for the CPU with YNNPACK fusion kept for matrix products only
([`CPU_COMPILER_OPTIONS`][jgen.core.compilation.CPU_COMPILER_OPTIONS]); other backends
get no extra options.

The options are chosen at the first call, by ``jax.default_backend()``, never at import
(importing jgen does not start a backend). Set ``CPU_COMPILER_OPTIONS = {}`` before the
first call to compile with XLA's defaults, or call [`jit`][jgen.core.compilation.jit]
with your own ``compiler_options``. Results differ from the defaults only by
floating-point rounding.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import jax

__all__ = ["CPU_COMPILER_OPTIONS", "jit", "backend_compiler_options"]

CPU_COMPILER_OPTIONS: dict[str, Any] = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
}
"""XLA options of [`jit`][jgen.core.compilation.jit]'s CPU compilations: YNNPACK fusion
for matrix products
only (convolutions through XLA's own emitter). ``{}`` restores XLA's defaults."""

_CHECKED: dict[str, dict[str, Any]] = {}


def backend_compiler_options(backend: str | None = None) -> dict[str, Any]:
  """The compiler options [`jit`][jgen.core.compilation.jit] uses on ``backend``
  (default: JAX's default).

  On the CPU the options are tried once on a trivial program; if this jaxlib rejects
  them (a renamed option), a warning says so and the defaults are used.

  Examples:
    >>> from jgen.core import compilation
    >>> sorted(compilation.backend_compiler_options("cpu"))
    ['xla_cpu_experimental_ynn_fusion_type']
    >>> compilation.backend_compiler_options("gpu")
    {}
  """
  backend = backend or jax.default_backend()
  if backend != "cpu" or not CPU_COMPILER_OPTIONS:
    return {}
  key = repr(sorted(CPU_COMPILER_OPTIONS.items()))
  if key not in _CHECKED:
    opts = dict(CPU_COMPILER_OPTIONS)
    try:
      jax.jit(lambda v: v + 1, compiler_options=opts).lower(1.0).compile()
    except Exception as e:  # jaxlib raises its own runtime error type
      warnings.warn(f"jgen: this jaxlib rejects the CPU compiler options {opts}"
                    f" ({type(e).__name__}: {str(e)[:200]}); compiling with XLA's"
                    " defaults.", RuntimeWarning, stacklevel=2)
      opts = {}
    _CHECKED[key] = opts
  return _CHECKED[key]


class _BackendJit:
  """A ``jax.jit`` per default backend, built at its first call with that backend's
  compiler options; attributes (``lower``, ``trace``, cache queries) pass through.

  JAX accepts compiler options only on a top-level jit: called inside another
  transformation's trace (an outer ``jit``, ``scan``, ``vmap``...), the function runs
  through a plain ``jax.jit`` and the outer program's options apply.
  """

  def __init__(self, fun: Callable, kwargs: dict[str, Any]):
    self._fun, self._kwargs, self._jits = fun, kwargs, {}
    functools.update_wrapper(self, fun)

  def _jitted(self, nested: bool = False):
    backend = None if nested else jax.default_backend()
    jitted = self._jits.get(backend)
    if jitted is None:
      opts = backend_compiler_options(backend) if backend else {}
      jitted = jax.jit(self._fun, compiler_options=opts or None, **self._kwargs)
      self._jits[backend] = jitted
    return jitted

  def __call__(self, *args, **kwargs):
    nested = _tracing()
    try:
      return self._jitted(nested)(*args, **kwargs)
    except ValueError as e:  # a trace this check did not see
      if nested or "top-level" not in str(e):
        raise
      return self._jitted(True)(*args, **kwargs)

  def __getattr__(self, name):
    if name.startswith("__"):
      raise AttributeError(name)
    return getattr(self._jitted(), name)

  def __get__(self, obj, objtype=None):  # usable as a method, like jax.jit
    return self if obj is None else functools.partial(self, obj)


def _tracing() -> bool:
  """Whether a JAX transformation is tracing (no public API says so)."""
  try:
    from jax._src import core as _core
    return not _core.trace_state_clean()
  except (ImportError, AttributeError):
    return False


def jit(fun: Callable | None = None, **kwargs) -> Callable:
  """``jax.jit(fun, **kwargs)`` with
  [`backend_compiler_options`][jgen.core.compilation.backend_compiler_options] added.

  Usable as ``@jit``, ``@functools.partial(jit, static_argnames=...)`` or
  ``jit(f, ...)``. An explicit ``compiler_options`` argument is used as given.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.core.compilation import jit
    >>> f = jit(lambda x: jnp.sum(x ** 2))
    >>> float(f(jnp.arange(3.0)))
    5.0
  """
  if fun is None:
    return functools.partial(jit, **kwargs)
  if "compiler_options" in kwargs:
    return jax.jit(fun, **kwargs)
  return _BackendJit(fun, kwargs)
