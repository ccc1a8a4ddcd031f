"""scikit-learn estimators computed by jgen: drop-in ``fit`` / ``predict_proba`` / ``score``.

``GaussianNB``, ``LinearDiscriminantAnalysis``, ``QuadraticDiscriminantAnalysis`` and
``LogisticRegression`` take scikit-learn's parameter names, accept any label values
(``classes_``), ``sample_weight`` and ``priors``, expose scikit-learn's fitted
attributes, and pass scikit-learn's estimator checks (``tests/test_sklearn.py`` lists
the few that are expected to fail, with the reason). They compute in float64 when JAX's
x64 mode is enabled and in float32 otherwise. The fitted jgen parameters are kept in
``params_``, so ``jgen.save(path, est._model(), est.params_)`` stores them.

Requires scikit-learn (the ``jgen[sklearn]`` extra).
"""

from jgen.sklearn.base import JgenClassifier
from jgen.sklearn.base import block_rows
from jgen.sklearn.base import bucket_size
from jgen.sklearn.base import compute_dtype
from jgen.sklearn.base import host_bytes
from jgen.sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from jgen.sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from jgen.sklearn.linear_model import LogisticRegression
from jgen.sklearn.naive_bayes import GaussianNB
from jgen.sklearn.missing import MarginalizeMissing
from jgen.sklearn.semi_supervised import GenerativeEM

__all__ = (
    "JgenClassifier",
    "block_rows",
    "bucket_size",
    "compute_dtype",
    "host_bytes",
    "GaussianNB",
    "LinearDiscriminantAnalysis",
    "QuadraticDiscriminantAnalysis",
    "LogisticRegression",
    "MarginalizeMissing",
    "GenerativeEM",
)
