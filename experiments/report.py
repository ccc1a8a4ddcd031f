"""Console output shared by the experiments: a summary table, then the files written.

Every experiment ends its run with :func:`print_table` (rounded numbers, units in the
headers) and :func:`print_written` (one path per line), so a reader sees the result and
where it went without scrolling through raw floats or JSON.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np


def format_cell(value, digits: int = 3) -> str:
  """One table cell: floats rounded, ``None`` as ``-``, booleans as ``yes`` / ``no``.

  Args:
    value: a number, a string (kept as is), ``None`` or any object (``str``).
    digits: significant digits of a float below ``10 ** digits``; larger floats are
      rounded to an integer (no exponent for counts such as evaluations per image).

  Returns:
    The cell's text.

  Example:
    >>> [format_cell(v) for v in (0.96444, 124500.0, 3, None, True, "lda")]
    ['0.964', '124500', '3', '-', 'yes', 'lda']
  """
  if value is None:
    return "-"
  if isinstance(value, (bool, np.bool_)):
    return "yes" if value else "no"
  if isinstance(value, (int, np.integer)):
    return str(int(value))
  if isinstance(value, (float, np.floating)):
    value = float(value)
    if np.isfinite(value) and abs(value) >= 10 ** digits:
      return f"{value:.0f}"
    return f"{value:.{digits}g}"
  return str(value)


def format_table(header: Sequence[str], rows: Iterable[Sequence], digits: int = 3) -> str:
  """A markdown table of ``rows`` under ``header`` (cells by :func:`format_cell`).

  A ``|`` inside a title or cell is escaped (``\\|``), so it cannot split a column.

  Args:
    header: column titles; put units here, e.g. ``"accuracy (%)"``.
    rows: sequences of cells, each as long as ``header``.
    digits: significant digits of float cells.

  Returns:
    The table's lines joined by newlines.

  Raises:
    ValueError: if a row's length differs from ``header``'s.

  Example:
    >>> print(format_table(["model", "accuracy (%)"], [["lda", 96.444]]))
    | model | accuracy (%) |
    |---|---|
    | lda | 96.4 |
  """

  def line(cells):
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

  lines = [line(header), "|" + "---|" * len(header)]
  for i, row in enumerate(rows):
    row = list(row)
    if len(row) != len(header):
      raise ValueError(f"rows[{i}] has {len(row)} cells; header has {len(header)}.")
    lines.append(line([format_cell(v, digits) for v in row]))
  return "\n".join(lines)


def print_table(header: Sequence[str], rows: Iterable[Sequence], *, title: str | None = None,
                digits: int = 3) -> None:
  """Prints :func:`format_table`, after ``title`` when given.

  Example:
    >>> print_table(["K", "error"], [[2, 0.12345]], title="quick run:")
    quick run:
    | K | error |
    |---|---|
    | 2 | 0.123 |
  """
  if title:
    print(title)
  print(format_table(header, rows, digits), flush=True)


def print_written(paths: Iterable[str | os.PathLike]) -> None:
  """Prints ``wrote:`` and then each path on its own line (``wrote: nothing`` if none).

  Example:
    >>> print_written(["out/results.json", "out/accuracy.png"])
    wrote:
      out/results.json
      out/accuracy.png
  """
  paths = [os.fspath(p) for p in paths]
  if not paths:
    print("wrote: nothing", flush=True)
    return
  print("wrote:\n" + "\n".join(f"  {p}" for p in paths), flush=True)
