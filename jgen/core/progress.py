"""Optional progress reporting for the library's long host-side loops.

Functions that loop on the host (training, ``batch_classify`` in batches, learning
curves, calibration functions in chunks) take ``progress``: ``False``/``None`` (off:
tqdm is not imported and the computation is unchanged), ``True`` (a tqdm bar the
function opens and closes) or a callable ``update(n)`` called with the number of
items finished after each step (e.g. an existing tqdm bar's ``update``).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np

__all__ = ["check_progress", "bar", "report"]


def check_progress(progress, name: str = "progress"):
  """``progress`` once checked: a bool (NumPy bools become Python ones), ``None`` or a
  callable.

  Raises:
    TypeError: anything else (naming ``name``).

  Examples:
    >>> from jgen.core.progress import check_progress
    >>> check_progress(True), check_progress(None)
    (True, None)
  """
  if isinstance(progress, np.bool_):
    return bool(progress)
  if progress is None or isinstance(progress, bool) or callable(progress):
    return progress
  raise TypeError(f"{name} must be a bool or a callable update(n), got"
                  f" {type(progress).__name__} ({progress!r}).")


def bar(total: int, *, initial: int = 0, unit: str = "it", desc: str | None = None):
  """A tqdm bar (``tqdm.auto``: a widget in notebooks, text on stderr elsewhere).

  Args:
    total: the number of items.
    initial: items already done (a resumed run).
    unit, desc: tqdm's unit and description.

  Returns:
    The ``tqdm`` object; the caller closes it.

  Examples:
    >>> from jgen.core.progress import bar
    >>> b = bar(3, unit="size", desc="demo")
    >>> b.total
    3
    >>> b.close()
  """
  from tqdm.auto import tqdm  # imported only when a bar is asked for
  return tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True)


@contextlib.contextmanager
def report(progress, total: int, *, unit: str = "it", desc: str | None = None,
           bound: bool = False) -> Iterator[Callable[[int], None] | None]:
  """The ``update(n)`` callable of a ``progress`` option, for a ``with`` block.

  Args:
    progress: ``False``/``None`` (yields ``None``), ``True`` (a ``bar``, closed
      when the block ends) or a callable (yielded as is).
    total: the number of items, or an upper bound on it when ``bound``.
    unit, desc: the bar's unit and description.
    bound: ``total`` is an upper bound (a search that may stop early): when the block
      ends normally the bar's total shrinks to the count reached, so it ends full.

  Yields:
    ``None`` when off, else a callable taking the number of items just finished.

  Raises:
    TypeError: ``progress`` is not a bool, ``None`` or a callable.

  Examples:
    >>> from jgen.core.progress import report
    >>> seen = []
    >>> with report(seen.append, 4) as update:
    ...   for _ in range(2):
    ...     update(2)
    >>> seen
    [2, 2]
  """
  progress = check_progress(progress)
  if progress is None or progress is False:
    yield None
    return
  if progress is not True:
    yield progress
    return
  b = bar(total, unit=unit, desc=desc)
  try:
    yield b.update
    if bound and b.n < b.total:
      b.total = b.n
      b.refresh()
  finally:
    b.close()
