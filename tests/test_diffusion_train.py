"""Tests for jgen.diffusion.train: objective, EMA, resumable runs, failure handling."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jgen.checkpoint import CheckpointError
from jgen.diffusion import linear_schedule, nets, nnx_denoiser
from jgen.diffusion import train as dtrain
from jgen.diffusion.schedules import Schedule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULE = linear_schedule()
# A tiny problem shared by every test, so the jitted step compiles once per config.
# Runs stop early through a callback rather than a smaller num_steps (which is static
# in the step and would recompile it).
CFG = dtrain.TrainConfig(num_steps=40, batch_size=16, learning_rate=1e-2, warmup_steps=5,
                         checkpoint_every=10, keep=3, log_every=10, ema_decay=0.9)


class Stop(Exception):
  pass


def stop_at(n, seen=None):
  def callback(step, state):
    if seen is not None:
      seen[step] = state
    if step == n:
      raise Stop
  return callback


@functools.lru_cache(maxsize=None)
def toy_data(n=64):
  """Two well-separated 4-D Gaussian classes (float32)."""
  rng = np.random.default_rng(0)
  y = np.arange(n, dtype=np.int32) % 2
  x = rng.normal(0, 0.1, (n, 4)) + np.where(y[:, None] == 1, 0.8, -0.8)
  return jnp.asarray(x, jnp.float32), jnp.asarray(y)


@functools.lru_cache(maxsize=None)
def toy_model(null_class=False):
  """Built once: eager NNX initialisation is slow, and training never mutates it."""
  return nets.MLPDenoiser((4,), 2, width=16, depth=1, cond_dim=16, num_fourier=4,
                          null_class=null_class, rngs=nnx.Rngs(0))


def leaves_equal(a, b):
  return all(np.array_equal(np.asarray(u), np.asarray(v))
             for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@functools.partial(jax.jit, static_argnames=("den", "config"))
def _fixed_loss(params, den, x, y, config):
  return dtrain.loss_fn(params, den, x, y, jax.random.key(7), schedule=SCHEDULE,
                        config=config, num_classes=2)


def fixed_loss(params, den, x, y, config=CFG):
  return float(_fixed_loss(params, den, x, y, config))


def test_training_decreases_loss():
  x, y = toy_data()
  model = toy_model()
  den, params = nnx_denoiser(model)
  res = dtrain.train(model, x, y, schedule=SCHEDULE, progress=False, config=CFG)
  before = fixed_loss(params, den, x, y)
  after = fixed_loss(res.state.params, den, x, y)
  # Zero-initialised output: before = mean eps^2 over 16 x 4 draws, about 1 (chi^2
  # with 64 dof: 1 +- 0.18). Same draws before and after (paired), so a 20% drop is
  # training, not noise (low-noise times keep a floor: eps is hard to tell from x).
  assert 0.6 < before < 1.4
  assert after < 0.8 * before


def test_ema_matches_recursion():
  x, y = toy_data()
  model = toy_model()
  den, _ = nnx_denoiser(model)
  state = dtrain.init_state(model, CFG)
  ema = [np.asarray(l, np.float64) for l in jax.tree.leaves(state.params)]
  for s in range(5):
    state, _, _ = dtrain.train_step(state, x, y, denoiser=den, schedule=SCHEDULE,
                                    config=CFG, num_classes=2)
    d = min(CFG.ema_decay, (1 + s) / (10 + s))  # the documented ramp
    ema = [d * e + (1 - d) * np.asarray(p, np.float64)
           for e, p in zip(ema, jax.tree.leaves(state.params))]
  for e, got in zip(ema, jax.tree.leaves(state.ema)):
    np.testing.assert_allclose(got, e, rtol=1e-5, atol=1e-6)
  assert int(state.step) == 5
  # The EMA lags the parameters: they differ after training moved them.
  assert not leaves_equal(state.ema, state.params)


def test_label_dropout_one_is_the_null_class():
  x, y = toy_data(16)
  model = toy_model(null_class=True)
  den, params = nnx_denoiser(model)
  params = jax.tree.map(lambda p: p + 0.1, params)  # non-zero output
  dropped = fixed_loss(params, den, x, y, CFG._replace(label_dropout=1.0))
  null = fixed_loss(params, den, x, jnp.full_like(y, 2))
  kept = fixed_loss(params, den, x, y)
  assert dropped == null
  assert dropped != kept


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import jax
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, {tests!r})
    import test_diffusion_train as t
    from jgen.diffusion import train as dtrain

    def die(step, state):
      if step == 25:
        os.kill(os.getpid(), signal.SIGKILL)

    x, y = t.toy_data()
    dtrain.train(t.toy_model(), x, y, schedule=t.SCHEDULE, config=t.CFG,
                 workdir={workdir!r}, progress=False, callback=die)
""")


def test_killed_run_resumes_exactly(tmp_path):
  x, y = toy_data()
  workdir = str(tmp_path / "run")
  script = tmp_path / "killed.py"
  script.write_text(_KILLED_RUN.format(root=ROOT, tests=os.path.join(ROOT, "tests"),
                                       workdir=workdir))
  proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == -9, proc.stderr[-2000:]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10", "20"]
  resumed = dtrain.train(toy_model(), x, y, schedule=SCHEDULE, config=CFG,
                         workdir=workdir, progress=False)
  assert resumed.resumed_from == 20
  straight = dtrain.train(toy_model(), x, y, schedule=SCHEDULE, config=CFG,
                          progress=False)
  assert leaves_equal(resumed.state, straight.state)  # params, EMA, opt state, key
  # The metrics log has the records of both processes, in step order.
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    steps = [json.loads(line)["step"] for line in f]
  assert steps == [10, 20, 30, 40]


def test_corrupted_checkpoint_falls_back(tmp_path):
  x, y = toy_data()
  workdir = str(tmp_path / "run")
  straight = dtrain.train(toy_model(), x, y, schedule=SCHEDULE, config=CFG,
                          workdir=workdir, progress=False)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["20", "30", "40"]
  newest = os.path.join(workdir, "checkpoints", "40")
  for root, _, files in os.walk(newest):  # truncate every file of the newest step
    for name in files:
      open(os.path.join(root, name), "w").close()
  with pytest.warns(UserWarning, match="step 40 .* unreadable"):
    resumed = dtrain.train(toy_model(), x, y, schedule=SCHEDULE, config=CFG,
                           workdir=workdir, progress=False)
  assert resumed.resumed_from == 30
  assert leaves_equal(resumed.state, straight.state)
  assert os.listdir(os.path.join(workdir, "corrupt"))  # moved aside, not deleted


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  x, y = toy_data()
  workdir = str(tmp_path / "run")
  first, again = {}, {}
  with pytest.raises(Stop):  # an interrupted first run leaves checkpoints 10 and 20
    dtrain.train(toy_model(), x, y, schedule=SCHEDULE, config=CFG, workdir=workdir,
                 progress=False, callback=stop_at(25, first))
  # Resumed with a schedule whose gamma is NaN: the first new step fails.
  nan_schedule = Schedule(lambda t: jnp.where(t >= 0, jnp.nan, 0.0) * t, None, "nan")
  with pytest.raises(dtrain.NonFiniteLossError, match="at step 21.*step 20") as info:
    dtrain.train(toy_model(), x, y, schedule=nan_schedule, config=CFG,
                 workdir=workdir, progress=False)
  assert info.value.step == 21
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10", "20"]
  with pytest.raises(Stop):
    dtrain.train(toy_model(), x, y, schedule=SCHEDULE, config=CFG, workdir=workdir,
                 progress=False, callback=stop_at(21, again))
  # The good checkpoint is intact: resuming from it replays step 21 exactly.
  assert list(again) == [21]
  assert leaves_equal(again[21], first[21])


def test_bad_input(tmp_path):
  x, y = toy_data(8)
  model = toy_model()
  with pytest.raises(ValueError, match=r"num_classes=2"):
    dtrain.train(model, x, y.at[0].set(2), schedule=SCHEDULE, config=CFG,
                 progress=False)
  with pytest.raises(ValueError, match=r"data_shape"):
    dtrain.train(model, x[:, :3], y, schedule=SCHEDULE, config=CFG, progress=False)
  with pytest.raises(ValueError, match="null_class=True"):
    dtrain.train(model, x, y, schedule=SCHEDULE, progress=False,
                 config=CFG._replace(label_dropout=0.1))
  with pytest.raises(ValueError, match="non-finite"):
    dtrain.train(model, x.at[0, 0].set(jnp.nan), y, schedule=SCHEDULE, config=CFG,
                 progress=False)
  workdir = str(tmp_path / "run")
  with pytest.raises(Stop):
    dtrain.train(model, x, y, schedule=SCHEDULE, config=CFG, workdir=workdir,
                 progress=False, callback=stop_at(1))
  with pytest.raises(ValueError, match="TrainConfig.num_steps must be >= 1"):
    CFG._replace(num_steps=0)
  with pytest.raises(ValueError, match="weighting must be one of"):
    dtrain.TrainConfig(weighting="foo")
  with pytest.raises(ValueError, match="loss must be one of"):
    dtrain.TrainConfig(loss="foo")
  with pytest.raises(CheckpointError, match=r"train.batch_size: saved 16, now 8"):
    dtrain.train(model, x, y, schedule=SCHEDULE, workdir=workdir, progress=False,
                 config=CFG._replace(batch_size=8))


def test_experiment_smoke(tmp_path, capsys):
  """The real-data experiment's pipeline end to end with tiny settings (only the full
  strategy, to save compile time: the diffusion-core tests cover the others)."""
  sys.path.insert(0, ROOT)
  from experiments import diffusion_classifier as exp
  records = exp.main(["--smoke", "--datasets", "digits", "--no-progress",
                      "--strategies", "full",
                      "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "runs")])
  with open(tmp_path / "out" / "results.json") as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(records))
  methods = {(r["method"], r["strategy"]) for r in saved}
  # (--smoke leaves out logistic regression: its L-BFGS compile is slow; its own tests
  # and the --full run cover it.)
  assert {("gaussian_nb", None), ("lda", None), ("qda", None),
          ("diffusion", "full"), ("diffusion", "calibration")} <= methods
  for r in saved:
    if r["strategy"] in ("full", "adaptive", "sequential"):
      assert 0.0 <= r["accuracy"] <= 1.0 and r["evals_per_image"] > 0
      assert np.isfinite(r["bits_per_dim"])
  # full: 10 classes x 4 draws per image.
  assert [r["evals_per_image"] for r in saved if r["strategy"] == "full"] == [40.0]
  assert (tmp_path / "out" / "accuracy_vs_evals.png").stat().st_size > 0
  # The console ends with the summary table and the files written, one per line.
  lines = capsys.readouterr().out.splitlines()
  assert lines[-4:] == ["wrote:"] + [f"  {tmp_path / 'out' / f}" for f in (
      "results.json", "meta.json", "accuracy_vs_evals.png")]
  assert any(line.startswith("| digits | diffusion/full |") for line in lines)
  # The trained model was saved and loads in one call.
  from jgen import checkpoint
  loaded = checkpoint.load_model(tmp_path / "runs" / "digits_mlp_smoke" / "model")
  assert loaded.module.data_shape == (8, 8) and loaded.module.num_classes == 10
