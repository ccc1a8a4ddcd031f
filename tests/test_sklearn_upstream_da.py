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

import pytest
import sklearn.tests.test_discriminant_analysis as upstream

from sklearn_upstream import global_dtype  # noqa: F401 (fixtures)
from sklearn_upstream import global_random_seed  # noqa: F401
from sklearn_upstream import mark_xfails
from sklearn_upstream import swapped_source

SWAP = ("from jgen.sklearn import LinearDiscriminantAnalysis,"
        " QuadraticDiscriminantAnalysis")

# test id (function name, or name[param id]) -> why it fails.
XFAIL: dict[str, str] = {}


exec(compile(swapped_source(upstream, SWAP), upstream.__file__, "exec"), globals())
mark_xfails(globals(), XFAIL)
pytestmark = pytest.mark.slow
