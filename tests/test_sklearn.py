"""jgen.sklearn: scikit-learn's estimator checks, parity with scikit-learn, partial_fit.

References: every expected value comes from scikit-learn's own estimator of the same
model (``sklearn.naive_bayes.GaussianNB``, ``sklearn.discriminant_analysis.*`` with
``solver="lsqr"`` for LDA, ``sklearn.linear_model.LogisticRegression``) fitted on the
same data, or from the estimator checks of ``sklearn.utils.estimator_checks``.
"""

import numpy as np
import pytest
import sklearn.discriminant_analysis as skda
import sklearn.linear_model as sklm
import sklearn.naive_bayes as sknb
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import estimator_checks_generator

import jgen.datasets
from jgen.sklearn import GaussianNB
from jgen.sklearn import LinearDiscriminantAnalysis
from jgen.sklearn import LogisticRegression
from jgen.sklearn import QuadraticDiscriminantAnalysis
from jgen.sklearn.base import check_scores

ESTIMATORS = [GaussianNB(), LinearDiscriminantAnalysis(),
              QuadraticDiscriminantAnalysis(), LogisticRegression()]

# Checks expected to fail, with the reason (scikit-learn's expected_failed_checks,
# the mechanism that replaced the _xfail_checks tag in scikit-learn 1.6).
EXPECTED_FAILED: dict = {}

# Run in the default (fast) selection; every other check is marked slow. These cover
# fitting, prediction, label handling, input validation and cloning.
FAST_CHECKS = {"check_estimators_unfitted", "check_classifiers_train",
               "check_classifiers_classes", "check_supervised_y_2d",
               "check_estimators_nan_inf", "check_fit2d_1sample",
               "check_classifiers_one_label", "check_sample_weights_invariance",
               "check_n_features_in_after_fitting", "check_get_params_invariance"}


def _check_params():
  """scikit-learn's checks for each estimator as pytest params: the expected failures
  xfail (strict) with their reason, the checks outside FAST_CHECKS marked slow."""
  out = []
  for est in ESTIMATORS:
    cls = type(est).__name__
    for item in estimator_checks_generator(
        est, legacy=True, expected_failed_checks=EXPECTED_FAILED.get(cls, {}),
        mark="xfail", xfail_strict=True):
      values, marks = (item.values, list(item.marks)) if hasattr(item, "marks") else (
          item, [])
      name = getattr(values[1], "func", values[1]).__name__
      if isinstance(est, LogisticRegression) or name not in FAST_CHECKS:
        marks.append(pytest.mark.slow)
      out.append(pytest.param(*values, marks=marks, id=f"{cls}-{name}"))
  return out


@pytest.mark.parametrize("estimator, check", _check_params())
def test_sklearn_estimator_checks(estimator, check):
  check(estimator)


def _blobs(seed=0, n=120, d=3, k=3):
  rng = np.random.RandomState(seed)
  y = rng.randint(0, k, n)
  x = rng.randn(n, d) + 2.0 * np.eye(k, d)[y]
  return x, y


# (ours, scikit-learn's, whether scikit-learn's fit takes sample_weight)
PAIRS = [
    (lambda: GaussianNB(), lambda: sknb.GaussianNB(), True),
    (lambda: LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.2),
     lambda: skda.LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.2), False),
    (lambda: QuadraticDiscriminantAnalysis(reg_param=0.1),
     lambda: skda.QuadraticDiscriminantAnalysis(reg_param=0.1), False),
]


@pytest.mark.parametrize("make", PAIRS, ids=["nb", "lda", "qda"])
def test_matches_sklearn_with_string_labels(make):
  x, y = _blobs()
  labels = np.array(["cat", "dog", "emu"])[y]
  w = np.random.RandomState(1).uniform(0.2, 2.0, len(y)) if make[2] else None
  fit_kw = {} if w is None else {"sample_weight": w}
  ours = make[0]().fit(x, labels, **fit_kw)
  ref = make[1]().fit(x, labels, **fit_kw)
  np.testing.assert_array_equal(ours.classes_, ref.classes_)
  np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), atol=1e-9)
  np.testing.assert_array_equal(ours.predict(x), ref.predict(x))
  assert ours.score(x, labels) == ref.score(x, labels)
  for attr in ("theta_", "var_", "class_prior_", "means_", "priors_", "coef_",
               "intercept_"):
    if hasattr(ref, attr):
      np.testing.assert_allclose(getattr(ours, attr), getattr(ref, attr), rtol=1e-9,
                                 atol=1e-12, err_msg=attr)


def test_weighted_fit_equals_repeated_rows():
  # Integer weights mean repeated examples (the definition of sample_weight).
  x, y = _blobs(n=40)
  reps = np.random.RandomState(3).randint(0, 3, len(y))
  reps[:6] = 1  # keep every class populated
  for est in (LinearDiscriminantAnalysis(), GaussianNB()):   # QDA's: tests/test_sklearn_da.py
    a = est.fit(x, y, sample_weight=reps.astype(float)).predict_proba(x)
    b = est.fit(np.repeat(x, reps, 0), np.repeat(y, reps)).predict_proba(x)
    np.testing.assert_allclose(a, b, atol=1e-10)


def test_logistic_regression_matches_sklearn():
  x, y = _blobs(n=90)
  ours = LogisticRegression(C=0.5, tol=1e-8, max_iter=500).fit(x, y)
  ref = sklm.LogisticRegression(C=0.5, tol=1e-8, max_iter=500).fit(x, y)
  # Both minimise the same strictly convex objective to gradient tolerance 1e-8.
  np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)
  np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-5)
  assert ours.coef_.shape == (3, 3) and ours.n_features_in_ == 3
  xb, yb = _blobs(n=60, k=2)
  ours, ref = LogisticRegression().fit(xb, yb), sklm.LogisticRegression().fit(xb, yb)
  assert ours.coef_.shape == ref.coef_.shape == (1, 3)
  np.testing.assert_allclose(ours.decision_function(xb), ref.decision_function(xb),
                             atol=1e-3)


def test_gaussian_nb_partial_fit_equals_fit():
  x, y = _blobs(n=150)
  w = np.random.RandomState(2).uniform(0.5, 1.5, len(y))
  full = GaussianNB().fit(x, y, sample_weight=w)
  part = GaussianNB()
  for lo, hi in ((0, 40), (40, 41), (41, 150)):
    part.partial_fit(x[lo:hi], y[lo:hi], classes=[0, 1, 2], sample_weight=w[lo:hi])
  # Additive statistics: the chunked fit is the full fit up to rounding.
  np.testing.assert_allclose(part.theta_, full.theta_, rtol=1e-12)
  np.testing.assert_allclose(part.var_, full.var_, rtol=1e-10)
  np.testing.assert_allclose(part.class_count_, full.class_count_, rtol=1e-12)
  np.testing.assert_allclose(part.epsilon_, full.epsilon_, rtol=1e-10)
  # scikit-learn's GaussianNB on the full data (its partial_fit takes epsilon_ from
  # the last batch only, so the full fit is the reference).
  ref = sknb.GaussianNB().fit(x, y, sample_weight=w)
  np.testing.assert_allclose(part.predict_proba(x), ref.predict_proba(x), atol=1e-9)


def test_gaussian_nb_partial_fit_unseen_class_has_zero_prior():
  x, y = _blobs(n=60)
  keep = y != 2
  clf = GaussianNB().partial_fit(x[keep], y[keep], classes=[0, 1, 2])
  assert clf.class_prior_[2] == 0 and clf.class_count_[2] == 0
  assert set(clf.predict(x)) <= {0, 1}
  with pytest.raises(ValueError, match="do not exist in the initial classes"):
    clf.partial_fit(x[:3], np.array([0, 1, 7]))
  with pytest.raises(ValueError, match="classes must be passed on the first call"):
    GaussianNB().partial_fit(x, y)


def test_bad_input_uses_sklearn_messages():
  x, y = _blobs(n=30)
  with pytest.raises(NotFittedError):
    GaussianNB().predict(x)
  with pytest.raises(ValueError, match="Number of priors must match number of classes"):
    GaussianNB(priors=[0.5, 0.5]).fit(x, y)
  with pytest.raises(ValueError, match="The sum of the priors should be 1"):
    GaussianNB(priors=[0.5, 0.5, 0.5]).fit(x, y)
  with pytest.raises(ValueError, match="Input X contains NaN"):
    LinearDiscriminantAnalysis().fit(np.where(x > 1, np.nan, x), y)
  with pytest.raises(ValueError, match="Unknown label type"):
    GaussianNB().fit(x, y + 0.5)
  with pytest.raises(ValueError, match="reg_param"):
    QuadraticDiscriminantAnalysis(reg_param=2.0).fit(x, y)
  with pytest.raises(ValueError, match="X has 2 features"):
    LinearDiscriminantAnalysis().fit(x, y).predict(x[:, :2])


@pytest.mark.slow
def test_grid_search_qda_reg_param_on_digits_matches_sklearn():
  data = jgen.datasets.load_digits(dtype=np.float64)
  # All 1,437 training digits: 3-fold training sets keep about 96 > D = 64 examples per
  # class, which scikit-learn's svd solver needs.
  x, y = np.asarray(data.x_train), np.asarray(data.y_train)
  grid = {"reg_param": [0.001, 0.01, 0.05, 0.2, 0.6]}
  ours = GridSearchCV(QuadraticDiscriminantAnalysis(), grid, cv=3).fit(x, y)
  ref = GridSearchCV(skda.QuadraticDiscriminantAnalysis(), grid, cv=3).fit(x, y)
  assert ours.best_params_ == ref.best_params_
  np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                             ref.cv_results_["mean_test_score"], atol=1e-12)


def test_check_scores_accepts_dead_classes_and_names_x_for_overflow():
  # A class with prior zero scores -inf on every row (scikit-learn's GaussianNB gives
  # the same -inf column); -inf in a class that scores finite elsewhere, NaN or +inf
  # can only come from overflow, and the error names x.
  x = np.ones((5000, 3), np.float32)
  joint = np.zeros((5000, 4), np.float32)
  joint[:, 2] = -np.inf
  check_scores(joint, x)
  for row in (0, 2500, 4999):
    for value in (np.nan, np.inf, -np.inf):
      bad = joint.copy()
      bad[row, 1] = value
      with pytest.raises(ValueError, match=rf"x: the class scores of 1 row\(s\) \(first: row {row}\)"):
        check_scores(bad, x)
