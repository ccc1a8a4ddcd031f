"""Runs one of scikit-learn's own test modules with its estimator classes swapped for
jgen's: the shared machinery of ``tests/test_sklearn_upstream_*.py``.

``swapped_source`` inserts an import after the module's own imports; the fixtures are
scikit-learn's conftest defaults; ``mark_xfails`` marks named tests (or one
parametrized case, ``name[id]``) ``xfail(strict=True)`` with their reasons.
"""

import ast
import inspect

import numpy as np
import pytest


def swapped_source(module, swap: str) -> str:
  """The module's source with ``swap`` inserted after its last top-level import."""
  source = inspect.getsource(module)
  tree = ast.parse(source)
  last = max(node.end_lineno for node in tree.body
             if isinstance(node, (ast.Import, ast.ImportFrom)))
  lines = source.splitlines()
  return "\n".join(lines[:last] + [swap] + lines[last:]) + "\n"


@pytest.fixture
def global_random_seed():
  """scikit-learn's conftest default (``SKLEARN_TESTS_GLOBAL_RANDOM_SEED`` unset)."""
  return 42


@pytest.fixture
def global_dtype():
  """scikit-learn's conftest default (float32 runs only on request)."""
  return np.float64


def mark_xfails(namespace: dict, xfail: dict) -> None:
  for key, reason in xfail.items():
    name, _, param = key.partition("[")
    func = namespace[name]
    mark = pytest.mark.xfail(strict=True, reason=reason)
    if not param:
      namespace[name] = mark(func)
      continue
    # One parametrized case: rebuild the parametrize mark with this case marked.
    param = param[:-1]
    for m in getattr(func, "pytestmark", []):
      if m.name != "parametrize":
        continue
      values = list(m.args[1])
      ids = m.kwargs.get("ids")
      for i, v in enumerate(values):
        vid = ids[i] if ids else id_of(v)
        if vid == param:
          v = v.values[0] if len(getattr(v, "values", ())) == 1 else v
          values[i] = pytest.param(*(v if isinstance(v, tuple) else (v,)), marks=mark,
                                   id=vid)
      m.args[1][:] = values


def id_of(v) -> str:
  if hasattr(v, "id") and v.id is not None:
    return v.id
  v = v.values[0] if hasattr(v, "values") and len(v.values) == 1 else v
  return getattr(v, "__name__", str(v))
