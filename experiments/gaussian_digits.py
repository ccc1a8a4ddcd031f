"""Gaussian generative classifiers on real data, next to scikit-learn.

    python experiments/gaussian_digits.py           # digits only (seconds)
    python experiments/gaussian_digits.py --full    # + iris, wine, breast_cancer,
                                                    #   penguins, MNIST-1D

Fits jgen's naive Bayes (scikit-learn variant and the pooled variant of Zheng et al.
2023), LDA and QDA on each dataset's documented split (jgen.datasets), and the
scikit-learn estimator of the same model on the same float64 data. Prints a table of
test accuracy (plus jgen's NLL and ECE) and writes
results/gaussian_digits/{results.json,accuracy.png}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

if __package__ in (None, ""):  # allow `python experiments/gaussian_digits.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jgen  # noqa: E402
from experiments import report  # noqa: E402
from jgen import datasets  # noqa: E402


def _models():
  """(label, jgen family, scikit-learn estimator factory or None)."""
  from sklearn import discriminant_analysis as da
  from sklearn import naive_bayes as nb
  return [
      ("NB (GaussianNB)", jgen.gaussian_nb(), lambda: nb.GaussianNB()),
      ("NB pooled (Zheng et al.)", jgen.gaussian_nb(pooled=True), None),
      ("LDA shrinkage 0.01", jgen.lda(0.01),
       lambda: da.LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.01)),
      ("LDA shrinkage 0.1", jgen.lda(0.1),
       lambda: da.LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.1)),
      ("QDA reg 0.1", jgen.qda(0.1),
       lambda: da.QuadraticDiscriminantAnalysis(reg_param=0.1)),
  ]


def evaluate(name: str) -> list[dict]:
  x_tr, y_tr, x_te, y_te = datasets.load(name, dtype=np.float64)
  k = int(y_tr.max()) + 1
  rows = []
  for label, model, make_ref in _models():
    params = model.fit(x_tr, y_tr, num_classes=k)
    log_lik = model.log_likelihood(params, x_te)
    log_post = jgen.log_posterior(log_lik, params.log_prior)
    row = dict(dataset=name, model=label,
               jgen_acc=float(jgen.accuracy(log_post, y_te)),
               jgen_nll=float(jgen.negative_log_likelihood(log_lik, y_te, params.log_prior)),
               jgen_ece=float(jgen.expected_calibration_error(np.exp(log_post), y_te)))
    if make_ref is not None:
      ref = make_ref().fit(x_tr, y_tr)
      row["sklearn_acc"] = float(ref.score(x_te, y_te))
      row["max_abs_proba_diff"] = float(np.max(np.abs(np.exp(log_post)
                                                      - ref.predict_proba(x_te))))
    rows.append(row)
  return rows


def plot(rows: list[dict], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = sorted({r["dataset"] for r in rows}, key=[r["dataset"] for r in rows].index)
  labels = [m for m, _, _ in _models()]
  fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(names), 4.0))
  width = 0.8 / len(labels)
  for j, label in enumerate(labels):
    acc = [next(r["jgen_acc"] for r in rows if r["dataset"] == n and r["model"] == label)
           for n in names]
    bars = ax.bar(np.arange(len(names)) + (j - (len(labels) - 1) / 2) * width, acc,
                  width, label=label)
    ax.bar_label(bars, fmt="%.2f", fontsize=6, rotation=90, padding=2)
  ax.set_xticks(np.arange(len(names)), names)
  # The axis starts at 0: MNIST-1D's accuracies (about 0.3-0.55) must stay visible.
  ax.set_ylim(0.0, 1.12)
  ax.set_ylabel("test accuracy")
  ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1),
            ncol=len(labels), frameon=False)
  ax.set_title("jgen Gaussian classifiers (documented 80/20 splits)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--full", action="store_true",
                      help="evaluate every bundled dataset (default: digits only)")
  parser.add_argument("--out", default="results/gaussian_digits",
                      help="folder for results.json and accuracy.png")
  parser.add_argument("--no-plot", action="store_true", help="write only the JSON")
  parser.add_argument("--replot", action="store_true",
                      help="redraw OUT/accuracy.png from OUT/results.json only")
  args = parser.parse_args(argv)
  if args.replot:
    with open(os.path.join(args.out, "results.json")) as f:
      rows = json.load(f)["rows"]
    plot(rows, os.path.join(args.out, "accuracy.png"))
    print_summary(rows)
    report.print_written([os.path.join(args.out, "accuracy.png")])
    return rows
  from tqdm import tqdm
  names = datasets.NAMES if args.full else ("digits",)
  rows = []
  for name in tqdm(names, desc="datasets"):
    rows += evaluate(name)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(dict(command="python experiments/gaussian_digits.py"
                   + (" --full" if args.full else ""), rows=rows), f, indent=1)
  written = [os.path.join(args.out, "results.json")]
  if not args.no_plot:
    plot(rows, os.path.join(args.out, "accuracy.png"))
    written.append(os.path.join(args.out, "accuracy.png"))
  print_summary(rows)
  report.print_written(written)
  return rows


def print_summary(rows):
  """Test accuracy of jgen and scikit-learn, jgen's NLL (nats) and ECE, per model."""
  fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
  report.print_table(
      ["dataset", "model", "jgen acc", "scikit-learn acc", "jgen NLL (nats)", "jgen ECE"],
      [[r["dataset"], r["model"], fmt(r["jgen_acc"]), fmt(r.get("sklearn_acc")),
        fmt(r["jgen_nll"]), fmt(r["jgen_ece"])] for r in rows])


if __name__ == "__main__":
  main()
