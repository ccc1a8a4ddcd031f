"""The execution plan: budgets from the device, overrides, and every vectorised path
sized by it.

References: the DiT-XL/2 architecture (Peebles & Xie 2023: 28 layers, hidden 1152, 16
heads of 72, patch 2 on a 32x32x4 latent -> 256 tokens) for its largest intermediate;
unchunked runs (one vectorised call, or the device's own plan) for the chunked ones;
a Python loop over (timestep, class) pairs for the pretrained class errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgen
from jgen import diffusion
from jgen.core import plan as plan_lib
from jgen.core.plan import ExecutionPlan, device_plan, items_per_call, use_plan
from jgen.diffusion import chunking
from jgen.diffusion.pretrained import DiTConfig, dit_denoiser, dit_param_shapes
from jgen.diffusion.pretrained import init_dit, reference_gammas
from jgen.diffusion.pretrained import scoring as pt_scoring

GB = 10**9


class FakeDevice:
  """A device reporting given memory numbers, as a GPU's ``memory_stats()`` does."""

  def __init__(self, platform, stats):
    self.platform, self._stats = platform, stats

  def memory_stats(self):
    return self._stats


def test_cpu_plan_is_the_cache_budget():
  plan = device_plan(jax.devices("cpu")[0])
  assert plan == ExecutionPlan("cpu", plan_lib.CPU_CACHE_BYTES, "cache")
  assert chunking.CACHE_BYTES == plan_lib.CPU_CACHE_BYTES
  # A cache budget is soft: an item larger than the cache still runs, one per call.
  assert items_per_call(10 * plan.budget_bytes, 100, plan=plan) == 1
  assert items_per_call(plan.budget_bytes // 3, 100, plan=plan) == 2   # power of two
  assert items_per_call(1, 100, plan=plan) == 100


def test_fake_gpu_memory_stats_drive_the_plan():
  dev = FakeDevice("gpu", {"bytes_limit": 16 * GB, "bytes_in_use": 4 * GB})
  plan = device_plan(dev)
  assert plan == ExecutionPlan("gpu", int(12 * GB * (1 - plan_lib.MEMORY_HEADROOM)),
                               "memory")
  assert device_plan(dev, headroom=0.5).budget_bytes == 6 * GB
  # A device without statistics falls back to the cache plan.
  assert device_plan(FakeDevice("tpu", None)).kind == "cache"
  with pytest.raises(ValueError, match="no free memory"):
    device_plan(FakeDevice("gpu", {"bytes_limit": GB, "bytes_in_use": GB}))
  with pytest.raises(ValueError, match="headroom"):
    device_plan(dev, headroom=1.0)


def test_dit_xl2_bfloat16_under_80gb_gets_at_least_256_pairs():
  cfg = DiTConfig()   # DiT-XL/2 on 32x32x4 latents
  tokens = (cfg.sample_size // cfg.patch_size) ** 2
  assert (tokens, cfg.dim, cfg.num_layers) == (256, 1152, 28)
  # The largest intermediate of one pair: the attention weights, softmax in float32
  # (as PyTorch's SDPA accumulates half types), heads x tokens x tokens x 4 bytes.
  # The MLP's hidden activations are smaller: tokens x 4 dim x 2 bytes = 2.36 MB.
  expected = cfg.num_attention_heads * tokens * tokens * 4
  den = dit_denoiser(cfg)
  params = dit_param_shapes(cfg, jnp.bfloat16)   # shapes only: no memory
  shape = den.data_shape
  per = chunking.activation_bytes(den, params, shape, jnp.float32)
  assert per == expected == 4_194_304
  gpu = ExecutionPlan("gpu", 80 * GB, "memory")
  with use_plan(gpu):
    pairs = chunking.pairs_per_call(den, params, shape, jnp.float32, 1000 * 50)
  assert pairs >= 256
  assert pairs == 1 << (80 * GB // (plan_lib.LIVE_FACTOR * expected)).bit_length() - 1
  # The CPU plan gives the one pair the cache allows.
  assert chunking.pairs_per_call(den, params, shape, jnp.float32, 1000 * 50) == 1


def test_budget_too_small_for_one_pair_names_the_budget():
  den, params = diffusion.gaussian_oracle(jnp.zeros((3, 64), jnp.float32),
                                          jnp.ones((3, 64), jnp.float32))
  with use_plan(ExecutionPlan("gpu", 1000, "memory")):
    with pytest.raises(ValueError, match="budget_bytes=1000"):
      chunking.pairs_per_call(den, params, (64,), jnp.float32, 10)
    with pytest.raises(ValueError, match="budget_bytes=1000"):
      jgen.diffusion.classify(jax.random.key(0), den, params,
                              jnp.zeros(64, jnp.float32), 3, num_t=4)


def test_use_plan_overrides_and_restores():
  outer = plan_lib.current_plan()
  with use_plan(budget_bytes=GB, kind="memory") as p:
    assert plan_lib.current_plan() == p and p.kind == "memory"
    with use_plan(ExecutionPlan("tpu", 5 * GB, "memory")):
      assert plan_lib.current_plan().budget_bytes == 5 * GB
    assert plan_lib.current_plan() == p
  assert plan_lib.current_plan() == outer
  with pytest.raises(ValueError, match="budget_bytes"):
    with use_plan(budget_bytes=0):
      pass
  with pytest.raises(ValueError, match="kind"):
    with use_plan(kind="disk"):
      pass


def test_classify_scores_do_not_depend_on_the_plan(key):
  k, d = 10, 64
  rng = np.random.default_rng(0)
  den, params = diffusion.gaussian_oracle(jnp.asarray(rng.normal(size=(k, d)), jnp.float32),
                                          jnp.ones((k, d), jnp.float32))
  x = jnp.asarray(rng.normal(size=(8, d)), jnp.float32)
  base = diffusion.batch_classify(key, den, params, x, k, num_t=32)
  per = chunking.activation_bytes(den, params, (d,), jnp.float32)
  # A memory plan with room for exactly 16 pairs per call, and one with all of them.
  for budget in (16 * plan_lib.LIVE_FACTOR * per, 80 * GB):
    with use_plan(ExecutionPlan("gpu", budget, "memory")):
      got = diffusion.batch_classify(key, den, params, x, k, num_t=32)
    np.testing.assert_array_equal(got.label, base.label)
    scale = float(jnp.max(jnp.abs(base.scores)))
    np.testing.assert_allclose(got.scores, base.scores, rtol=0, atol=1e-5 * scale)


def test_pretrained_class_errors_chunked_by_the_plan_equal_a_loop():
  cfg = DiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=1,
                  sample_size=4, out_channels=8, num_embeds_ada_norm=5)
  den = dit_denoiser(cfg)
  params = init_dit(jax.random.key(0), cfg)
  x = jax.random.normal(jax.random.key(1), (4, 4, 4), jnp.float32)
  eps = jax.random.normal(jax.random.key(2), (4, 4, 4), jnp.float32)
  gammas = reference_gammas(250)
  classes = jnp.arange(5)
  apply = jax.jit(den.apply)
  ref = np.zeros((gammas.shape[0], 5))
  for j, g in enumerate(np.asarray(gammas)):
    z = np.sqrt(jax.nn.sigmoid(-g)) * x + np.sqrt(jax.nn.sigmoid(g)) * eps
    for c in range(5):
      ref[j, c] = float(jnp.mean(jnp.square(eps - apply(params, z, g, c))))
  per = chunking.activation_bytes(den, params, x.shape, x.dtype)
  for budget in (3 * plan_lib.LIVE_FACTOR * per, 80 * GB):   # 2 pairs per call; all
    with use_plan(ExecutionPlan("gpu", budget, "memory")):
      got = pt_scoring.class_eps_errors(den, params, x, eps, gammas, classes)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=0)
  np.testing.assert_allclose(pt_scoring.class_eps_errors(
      den, params, x, eps, gammas, classes, pairs_per_call=3), ref, rtol=1e-5, atol=0)
  with use_plan(ExecutionPlan("gpu", per, "memory")):
    with pytest.raises(ValueError, match=f"budget_bytes={per}"):
      pt_scoring.class_eps_errors(den, params, x, eps, gammas, classes)
  with pytest.raises(ValueError, match="pairs_per_call"):
    pt_scoring.class_eps_errors(den, params, x, eps, gammas, classes, pairs_per_call=0)


@pytest.mark.parametrize("family", ["gaussian_nb", "lda", "qda"])
def test_gaussian_rows_chunked_by_a_memory_plan(family):
  rng = np.random.default_rng(0)
  n, d, k = 100_000, 8, 5
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = rng.integers(0, k, n)
  model = getattr(jgen, family)()
  params = model.fit(jnp.asarray(x[:2000]), jnp.asarray(y[:2000]), num_classes=k)
  base = np.asarray(model.log_likelihood(params, x))
  # Room for 4096 rows per call: 25 chunks, the last one padded.
  row = (3 * k + 2 * d) * 4
  with use_plan(ExecutionPlan("gpu", 4096 * plan_lib.LIVE_FACTOR * row, "memory")):
    got = np.asarray(model.log_likelihood(params, x))
  assert got.shape == (n, k)
  assert int(np.sum(~np.isfinite(got))) == 0
  np.testing.assert_allclose(got, base, rtol=0, atol=1e-5 * np.abs(base).max())


def test_ode_classes_chunked_by_a_memory_plan():
  rng = np.random.default_rng(0)
  k, d = 5, 3
  den, params = diffusion.gaussian_oracle(jnp.asarray(rng.normal(size=(k, d))),
                                          jnp.ones((k, d)))
  x = jnp.asarray(rng.normal(size=d))
  base = diffusion.pf_log_likelihoods(None, den, params, x, k)
  per = 2 * d * chunking.activation_bytes(den, params, (d,), x.dtype)
  with use_plan(ExecutionPlan("gpu", 2 * plan_lib.LIVE_FACTOR * per, "memory")):
    got = diffusion.pf_log_likelihoods(None, den, params, x, k)   # 2 classes per call
  assert bool(got.success)
  np.testing.assert_allclose(got.log_likelihood, base.log_likelihood, rtol=1e-9)


def test_text_scorer_batch_from_the_plan():
  import pathlib
  from jgen import text
  lm = text.load_pretrained(pathlib.Path(__file__).parent / "data" / "text" / "gpt2")
  labels = np.array([[5, 9, 11, 40], [7, -1, -1, -1], [20, 30, -1, -1]], np.int32)
  prompts = np.tile(np.array([[50, 60, 70, 80, 90, -1], [12, 13, -1, -1, -1, -1]],
                             np.int32), (5, 1))
  fixed = text.causal_lm_classifier(lm, labels, bos=False, batch_size=8)
  planned = text.causal_lm_classifier(lm, labels, bos=False)
  params = fixed.fit(None, None, num_classes=3)
  ref = np.asarray(fixed.log_likelihood(params, prompts))
  for budget in (2 * GB, 1):   # all prompts in one call; one per call
    with use_plan(ExecutionPlan("cpu", budget, "cache")):
      got = np.asarray(planned.log_likelihood(params, prompts))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
  with use_plan(ExecutionPlan("gpu", 1000, "memory")):
    with pytest.raises(ValueError, match="budget_bytes=1000"):
      planned.log_likelihood(params, prompts)
