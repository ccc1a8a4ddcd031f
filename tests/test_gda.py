"""Tests of the generative data augmentation simulation (jgen.simulate.gda)."""

from __future__ import annotations

import numpy as np
import pytest
import jax.numpy as jnp

from jgen import logistic
from jgen.simulate import gda


def _reference_losses(theta, x, y01, sigma):
  # The formulas of main_simulation_bGMM.py (ML-GSAI/Understanding-GDA):
  # prediction 1 where theta . x >= 0; NLL = mean ||x - (2y - 1) theta||^2 / (2 sigma^2).
  pred = (x @ theta >= 0).astype(int)
  s = 2 * y01 - 1
  return np.mean(pred != y01), np.sum((x - s[:, None] * theta[None, :]) ** 2) / (
      2 * sigma**2 * len(y01))


def test_losses_match_the_reference_formulas():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(30, 3)), rng.integers(0, 2, 30)
  xt, yt = rng.normal(size=(50, 3)), rng.integers(0, 2, 50)
  weight = np.stack([np.r_[np.ones(10), np.zeros(20)], np.ones(30)])
  out = gda.augmentation_losses(jnp.asarray(x), jnp.asarray(2.0 * y - 1), jnp.asarray(weight),
                                jnp.asarray(xt), jnp.asarray(2.0 * yt - 1), 0.6)
  for g, n in enumerate((10, 30)):
    theta = ((2 * y[:n] - 1)[:, None] * x[:n]).mean(0)
    tr01, trn = _reference_losses(theta, x[:n], y[:n], 0.6)
    te01, ten = _reference_losses(theta, xt, yt, 0.6)
    np.testing.assert_allclose([float(o[g]) for o in out], [tr01, te01, trn, ten],
                               rtol=1e-12)


def test_no_augmentation_matches_the_closed_form_nll(key):
  # With gamma = 0, s x = mu + sigma z and theta = mu + sigma zbar, so
  # E[test NLL] = d (1 + 1/m) / 2 and E[train NLL] = d (1 - 1/m) / 2 (Gaussian moments).
  d, m, reps = 3, 10, 400
  res = gda.augmentation_gaps(key, dim=d, num_real=m, gammas=[0, 4], num_reps=reps,
                              num_test=2000, dtype=jnp.float64)
  for values, expected in ((res.test_nll[:, 0], d * (1 + 1 / m) / 2),
                           (res.train_nll[:, 0], d * (1 - 1 / m) / 2)):
    se = values.std(ddof=1) / np.sqrt(reps)
    assert abs(values.mean() - expected) < 5 * se
  assert res.gap_nll.shape == (reps, 2) and np.all(res.gap_01 <= 1)


def test_bad_input(key):
  kw = dict(dim=2, num_real=10, num_reps=2, num_test=10)
  with pytest.raises(ValueError, match="gamma"):
    gda.augmentation_gaps(key, gammas=[0, -1], **kw)
  with pytest.raises(ValueError, match="d "):
    gda.augmentation_gaps(key, gammas=[0], **{**kw, "dim": 0})
  with pytest.raises(ValueError, match="num_reps"):
    gda.augmentation_gaps(key, gammas=[0], **{**kw, "num_reps": 0})
  with pytest.raises(ValueError, match="num_real"):
    gda.augmentation_gaps(key, gammas=[0], **{**kw, "num_real": 1})
  with pytest.raises(TypeError, match="generator"):
    gda.augmentation_gaps(key, gammas=[0], generator=logistic.logistic_regression(), **kw)
  with pytest.raises(ValueError, match="sigma"):
    gda.gda_mixture(2, sigma=0.0)


def test_fit_rate_recovers_a_power_law():
  xs = np.array([10.0, 20, 50, 100])
  r = gda.fit_rate(xs, 3.0 * xs ** -0.5)
  assert abs(r["slope"] + 0.5) < 1e-12 and r["r2"] > 1 - 1e-12
