"""Every ``>>>`` example in a docstring under ``jgen/`` runs and prints what it shows.

One test per docstring with examples (module, class, function or method), found with
the standard library's ``doctest.DocTestFinder`` over every module of the package, so
the examples the API reference renders are checked the way a user would paste them:
JAX's default numerics (float32, rank promotion allowed), the suite's strict settings
restored afterwards. ``# doctest: +SKIP`` marks the few that need files a test cannot
create (a downloaded checkpoint folder); ``+ELLIPSIS`` and ``+NORMALIZE_WHITESPACE`` are
on for every example.
"""

import doctest
import importlib
import pathlib
import pkgutil

import pytest

import jgen

ROOT = pathlib.Path(__file__).resolve().parents[1]
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules():
  names = ["jgen"]
  for info in pkgutil.walk_packages(jgen.__path__, prefix="jgen."):
    names.append(info.name)
  return sorted(names)


def _doctests():
  finder = doctest.DocTestFinder(exclude_empty=True)
  seen, out = set(), []
  for name in _modules():
    module = importlib.import_module(name)
    for test in finder.find(module, name):
      # A re-exported object is found again from its package's face; run it once,
      # under the module that defines it.
      ident = (test.filename, test.lineno)
      if not test.examples or ident in seen:
        continue
      seen.add(ident)
      out.append(pytest.param(test, id=test.name))
  return out


@pytest.mark.usefixtures("user_jax_config")
@pytest.mark.parametrize("test", _doctests())
def test_docstring_example(test, monkeypatch):
  monkeypatch.chdir(ROOT)
  runner = doctest.DocTestRunner(optionflags=_FLAGS)
  # As doctest.testmod runs it: a fresh copy of the defining module's globals.
  test.globs = dict(test.globs)
  report = _Collector()
  result = runner.run(test, out=report)
  assert result.failed == 0, f"{test.name}:\n{report.text}"


class _Collector:
  """Gathers the runner's report so the assertion shows the failing example."""

  def __init__(self):
    self.parts = []

  def __call__(self, s):
    self.parts.append(s)

  @property
  def text(self):
    return "".join(self.parts)
