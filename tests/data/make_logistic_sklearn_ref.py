"""Writes the scikit-learn reference fits used by tests/test_logistic.py.

    python tests/data/make_logistic_sklearn_ref.py [names...]

LogisticRegression(C=1.0, solver="lbfgs", tol=1e-8, max_iter=10000) on the raw
features of scikit-learn's bundled iris, wine, breast_cancer and digits (float64).
These fits take minutes (wine and digits run to max_iter), so the test suite reads
their coefficients and predictions from logistic_sklearn_ref.json instead of refitting.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.linear_model import LogisticRegression

PATH = Path(__file__).with_name("logistic_sklearn_ref.json")


def entry(coef, intercept, pred, n_iter):
  return dict(coef=np.asarray(coef).tolist(), intercept=np.asarray(intercept).tolist(),
              predictions=np.asarray(pred).astype(int).tolist(), n_iter=int(n_iter))


def main(names):
  refs = json.loads(PATH.read_text()) if PATH.exists() else {}
  for name in names:
    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      sk = LogisticRegression(C=1.0, solver="lbfgs", tol=1e-8, max_iter=10000).fit(x, y)
    refs[name] = entry(sk.coef_, sk.intercept_, sk.predict(x), sk.n_iter_[0])
    PATH.write_text(json.dumps(refs))


if __name__ == "__main__":
  main(sys.argv[1:] or ["iris", "wine", "breast_cancer", "digits"])
