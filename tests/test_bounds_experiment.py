"""Smoke test of experiments/hconsistency.py at tiny settings (keeps it from rotting)."""

import json

import pytest

from experiments import hconsistency as hc


def test_transform_part_tiny(tmp_path):
  res = hc.transforms_vs_calibration(ks=(2,), cases=[("logistic", None)], num_t=3,
                                     num_restarts=2, num_steps=5)
  (row,) = res["rows"]
  assert row["K"] == 2 and row["loss"] == "logistic"
  assert row["max_T_minus_delta"] <= 1e-9          # delta is attained: T below it
  hc.plot_transforms(res, tmp_path / "transforms.png")
  assert (tmp_path / "transforms.png").stat().st_size > 0
  assert "| logistic |" in hc.markdown_table(res["rows"])
  json.dumps(res)


def test_lr_part_tiny(tmp_path):
  pytest.importorskip("jgen.simulate")
  # Same draw size for training and test: one sampler compile.
  res = hc.lr_bound(problems=[(2, 3)], sizes=[6, 40], iters=[2], reps=1, num_test=40,
                    gap_samples=0)
  assert res["num_points"] == 2 and res["violations"] == 0
  hc.plot_lr(res, tmp_path / "lr.png")
  assert (tmp_path / "lr.png").stat().st_size > 0


def test_replot_redraws_the_committed_figures(tmp_path, capsys):
  # The docs' figures are redrawn from the committed numbers without recomputing them.
  committed = "docs/figures/hconsistency/results.json"
  res = hc.main(["--replot", committed, "--out", str(tmp_path)])
  assert set(res) >= {"transforms", "lr_bound"}
  out = capsys.readouterr().out
  for name in ("transforms.png", "lr_bound.png"):
    assert (tmp_path / name).stat().st_size > 0
    assert str(tmp_path / name) in out
