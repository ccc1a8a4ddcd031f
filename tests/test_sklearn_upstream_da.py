"""scikit-learn's own ``sklearn/tests/test_discriminant_analysis.py`` run on jgen's classes.

The module's source is read from the installed scikit-learn with
``inspect.getsource``; one line, ``from jgen.sklearn import LinearDiscriminantAnalysis,
QuadraticDiscriminantAnalysis``, is inserted after its imports, and the result is
executed into this module's globals, so pytest collects the upstream tests with the two
classes swapped for jgen's (everything else, data and helpers, is scikit-learn's).
scikit-learn's conftest fixtures the tests use are defined here with their defaults.

The tests that fail for a reason that is not a numerical difference are listed in
``XFAIL`` with the reason and marked ``xfail(strict=True)``, so one that starts to pass
is reported. All run in the slow tier.
"""

import ast
import inspect

import numpy as np
import pytest
import sklearn.tests.test_discriminant_analysis as upstream

SWAP = ("from jgen.sklearn import LinearDiscriminantAnalysis,"
        " QuadraticDiscriminantAnalysis")

# test id (function name, or name[param id]) -> why it fails.
XFAIL = {
    "test_qda_regularization[svd]": (
        "not a numerical difference: with reg_param > 0 jgen's svd solver fits the"
        " full-rank covariance (1 - r) C_k + r I of a class with fewer examples than"
        " features, where scikit-learn's factorisation keeps only n_k directions and"
        " raises LinAlgError, which the test expects"),
}


def _swapped_source(module, swap: str) -> str:
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


def _mark_xfails(namespace: dict, xfail: dict) -> None:
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
        vid = ids[i] if ids else _id_of(v)
        if vid == param:
          v = v.values[0] if len(getattr(v, "values", ())) == 1 else v
          values[i] = pytest.param(*(v if isinstance(v, tuple) else (v,)), marks=mark,
                                   id=vid)
      m.args[1][:] = values


def _id_of(v) -> str:
  if hasattr(v, "id") and v.id is not None:
    return v.id
  v = v.values[0] if hasattr(v, "values") and len(v.values) == 1 else v
  return getattr(v, "__name__", str(v))


exec(compile(_swapped_source(upstream, SWAP), upstream.__file__, "exec"), globals())
_mark_xfails(globals(), XFAIL)
pytestmark = pytest.mark.slow
