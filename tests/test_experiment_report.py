"""experiments/report.py (the experiments' summary table and list of written files), and
the summaries of the experiments that have no smoke run, on their documented results.

References: Python's format specification (``.3g``: three significant digits, exponent
below 1e-4) and GitHub-flavoured markdown tables (``\\|`` escapes a pipe in a cell);
the stored results files under docs/figures/ are the documented runs' own output.
"""

import doctest
import json
import re
from pathlib import Path

import numpy as np
import pytest

from experiments import report

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def test_cells_are_rounded_and_readable():
  cells = [0.964444, np.float32(0.5), 96.44, 124500.0, 1.2345e-7, 7, np.int64(3), None,
           True, np.bool_(False), "lda", float("nan"), (3, 4)]
  assert [report.format_cell(v) for v in cells] == [
      "0.964", "0.5", "96.4", "124500", "1.23e-07", "7", "3", "-", "yes", "no", "lda",
      "nan", "(3, 4)"]
  assert report.format_cell(0.123456, digits=2) == "0.12"


def test_table_layout_escapes_pipes_and_checks_row_length():
  text = report.format_table(["a", "max |x| (nats)"], [[1, 0.25], ["p|q", None]])
  assert text.splitlines() == ["| a | max \\|x\\| (nats) |", "|---|---|", "| 1 | 0.25 |",
                               "| p\\|q | - |"]
  with pytest.raises(ValueError, match=r"rows\[1\] has 1 cells; header has 2"):
    report.format_table(["a", "b"], [[1, 2], [3]])


def test_written_paths_one_per_line(capsys, tmp_path):
  report.print_written([tmp_path / "results.json", "out/fig.png"])
  assert capsys.readouterr().out == f"wrote:\n  {tmp_path / 'results.json'}\n  out/fig.png\n"
  report.print_written([])
  assert capsys.readouterr().out == "wrote: nothing\n"


def test_docstring_examples():
  result = doctest.testmod(report, optionflags=doctest.NORMALIZE_WHITESPACE)
  assert result.attempted == 4 and result.failed == 0


def _check_tables(text):
  """Every markdown table keeps its header's column count; no raw floats."""
  lines = text.splitlines()
  for i, line in enumerate(lines):
    if not line.startswith("|"):
      continue
    n = len(re.findall(r"(?<!\\)\|", line))
    if i + 1 < len(lines) and lines[i + 1].startswith("|---"):
      columns = n                                     # a header starts a new table
    assert n == columns, line
  # A raw float has many significant digits (0.8139999955892563); rounded ones <= 4.
  assert not re.search(r"\d\.0*[1-9]\d{4,}", text), text


def _load(name):
  return json.loads((FIGURES / name / "results.json").read_text())


def test_summaries_of_documented_runs(capsys):
  # Experiments whose main() is too slow for a smoke run: their summary code against the
  # stored output of the documented run (so a renamed key fails here, not after hours).
  from experiments import diffusion_oracle, gda, hconsistency, nb_vs_lr_real
  from experiments import sharded_classes
  diffusion_oracle.print_summary(_load("diffusion_oracle"))
  gda.print_rates(_load("gda"))
  hconsistency.print_summary(_load("hconsistency"), "ab")
  nb_vs_lr_real.print_summary(_load("nb_vs_lr_real"))
  sharded = _load("sharded_classes")
  sharded_classes.print_summary(sharded)
  out = capsys.readouterr().out
  _check_tables(out)
  bayes = _load("diffusion_oracle")["mixture"]["bayes_accuracy"]
  assert f"| exact Bayes | {100 * bayes:.1f} |" in out
  assert "| labels equal one device | {} |".format(
      "yes" if sharded[0]["labels_equal_single_device"] else "no") in out
  assert "| score block per device (examples, classes) | {} x {} |".format(
      *sharded[0]["score_block_per_device"]) in out
  first = _load("nb_vs_lr_real")["records"][0]
  assert f"| {first['dataset']} | {first['num_classes']} | {first['dim']} |" in out
  assert "| models | above the bound |" in out
