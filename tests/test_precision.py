"""Mixed precision: bfloat16 parameters and matmuls, float32 accumulations and scores.

References: the same computation in float32 (same key, same draws). The bound checked
is ``jgen.diffusion.BF16_SCORE_TOLERANCE`` relative to the mean absolute score
(``4 * 2^-8``, bfloat16's unit roundoff times four); if every class score moves by at
most ``B``, an argmax can change only where float32's top-two margin is below ``2 B``,
so decisions must agree on every example with a larger margin (and they do on every
example of the oracle, whose margins are wide).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jgen import datasets, diffusion
from jgen.core import precision
from jgen.core.precision import PrecisionPolicy, policy
from jgen.diffusion import nets
from jgen.diffusion import train as dtrain

BF16 = policy("bfloat16")


def test_policy_fields_and_casts():
  assert BF16 == PrecisionPolicy("bfloat16", "bfloat16", None)
  tree = {"w": jnp.ones(3, jnp.float32), "ids": jnp.arange(3)}
  cast = BF16.cast_params(tree)
  assert cast["w"].dtype == jnp.bfloat16 and cast["ids"].dtype == tree["ids"].dtype
  assert BF16.cast_output(jnp.ones(2, jnp.bfloat16)).dtype == jnp.float32
  # float64 data keeps float64 accumulations (the suite runs with x64 enabled).
  assert BF16.out_dtype(jnp.ones(2, jnp.float64)) == jnp.float64
  assert precision.output_dtype(jnp.float16) == jnp.float32
  with pytest.raises(ValueError, match="compute"):
    policy("int8")
  with pytest.raises(TypeError, match="policy"):
    diffusion.mixed_precision(diffusion.gaussian_oracle(jnp.zeros((2, 2)),
                                                        jnp.ones((2, 2)))[0], "bf16")


def test_mlp_matmuls_run_in_bfloat16_and_return_float32():
  model = nets.MLPDenoiser((64,), 10, width=32, depth=2, rngs=nnx.Rngs(0))
  den, params = diffusion.nnx_denoiser(model)
  bf = diffusion.mixed_precision(den, BF16)
  assert bf == diffusion.mixed_precision(den, BF16)   # one compile for equal wrappers
  z = jnp.zeros(64, jnp.float32)
  jaxpr = jax.make_jaxpr(lambda p, zz: bf.apply(p, zz, jnp.float32(0.0), 1))(params, z)
  dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
  assert len(dots) == 8   # conditioning 3, input 1, blocks 2, output 1... all of them
  assert all(v.aval.dtype == jnp.bfloat16 for e in dots for v in e.invars)
  assert jaxpr.out_avals[0].dtype == jnp.float32


def _compare(s32, s16):
  """Largest score change, the bound B, and agreement where the margin exceeds 2 B."""
  s32, s16 = np.asarray(s32), np.asarray(s16)
  bound = diffusion.BF16_SCORE_TOLERANCE * float(np.mean(np.abs(s32)))
  top = np.sort(s32, axis=1)
  clear = top[:, -1] - top[:, -2] > 2 * bound
  return float(np.max(np.abs(s16 - s32))), bound, clear, s32.argmax(1), s16.argmax(1)


def test_gaussian_oracle_bfloat16_scores_and_decisions(key):
  rng = np.random.default_rng(0)
  k, d, n = 10, 64, 512
  means = rng.normal(0, 1, (k, d))
  var = rng.uniform(0.5, 1.5, (k, d))
  den, params = diffusion.gaussian_oracle(jnp.asarray(means, jnp.float32),
                                          jnp.asarray(var, jnp.float32))
  y = rng.integers(0, k, n)
  x = jnp.asarray(means[y] + rng.normal(size=(n, d)) * np.sqrt(var[y]), jnp.float32)
  run = functools.partial(diffusion.batch_class_log_likelihoods, key, x=x,
                          num_classes=k, schedule=diffusion.linear_schedule(), num_t=16)
  s32 = run(den, params)
  s16 = run(diffusion.mixed_precision(den, BF16), BF16.cast_params(params))
  assert s16.dtype == jnp.float32
  assert int(jnp.sum(~jnp.isfinite(s16))) == 0
  diff, bound, clear, l32, l16 = _compare(s32, s16)
  print(f"oracle: max change {diff / np.mean(np.abs(np.asarray(s32))):.4f} of mean"
        f" |score|, {int(np.sum(l16 == l32))}/{n} equal")   # shown with pytest -s
  assert diff <= bound, (diff, bound)
  assert clear.mean() > 0.95   # the check below covers nearly every example
  np.testing.assert_array_equal(l16[clear], l32[clear])


@functools.lru_cache(maxsize=None)
def _digits_denoiser():
  split = datasets.load_digits()
  model = nets.MLPDenoiser((64,), 10, width=128, depth=2, rngs=nnx.Rngs(0))
  cfg = dtrain.TrainConfig(num_steps=600, batch_size=128, learning_rate=2e-3,
                           warmup_steps=50)
  res = dtrain.train(model, jnp.asarray(split.x_train * 2 - 1),
                     jnp.asarray(split.y_train), schedule=diffusion.linear_schedule(),
                     config=cfg, progress=False)
  return diffusion.nnx_denoiser(res.ema_model), split


def test_digits_denoiser_bfloat16_scores_and_decisions(key):
  (den, params), split = _digits_denoiser()
  x = jnp.asarray(split.x_test * 2 - 1)   # all 360 test digits
  run = functools.partial(diffusion.batch_class_log_likelihoods, key, x=x,
                          num_classes=10, schedule=diffusion.linear_schedule(), num_t=64)
  s32 = run(den, params)
  s16 = run(diffusion.mixed_precision(den, BF16), BF16.cast_params(params))
  assert s16.dtype == jnp.float32
  assert int(jnp.sum(~jnp.isfinite(s16))) == 0
  diff, bound, clear, l32, l16 = _compare(s32, s16)
  print(f"digits: max change {diff / np.mean(np.abs(np.asarray(s32))):.4f} of mean"
        f" |score|, {int(np.sum(l16 == l32))}/360 equal, {int(clear.sum())} clear")
  assert diff <= bound, (diff, bound)
  # Digits' class scores lie close together: about half the test digits have a
  # float32 margin above 2 B, and on those the decisions must agree. Measured over all
  # 360 (docs/accelerators.md): 356 agree; every flip has a margin below 2 B.
  assert clear.mean() > 0.4
  np.testing.assert_array_equal(l16[clear], l32[clear])
  assert float(np.mean(l16 == l32)) >= 0.98
  # A trained denoiser, not noise: float32 accuracy well above chance (10%).
  assert float(np.mean(l32 == split.y_test)) > 0.5


def test_ode_trace_accumulates_in_float32():
  rng = np.random.default_rng(1)
  k, d = 3, 4
  den, params = diffusion.gaussian_oracle(jnp.asarray(rng.normal(size=(k, d)), jnp.float32),
                                          jnp.ones((k, d), jnp.float32))
  x = jnp.asarray(rng.normal(size=d), jnp.float32)
  r32 = diffusion.pf_log_likelihoods(None, den, params, x, k)
  r16 = diffusion.pf_log_likelihoods(None, diffusion.mixed_precision(den, BF16),
                                     BF16.cast_params(params), x, k)
  assert r16.log_likelihood.dtype == jnp.float32 and bool(r16.success)
  bound = diffusion.BF16_SCORE_TOLERANCE * float(jnp.mean(jnp.abs(r32.log_likelihood)))
  assert float(jnp.max(jnp.abs(r16.log_likelihood - r32.log_likelihood))) <= bound
