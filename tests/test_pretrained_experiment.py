"""experiments/imagenet_dit.py: the --smoke run, class sharding and the elimination."""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "experiments"))
import imagenet_dit  # noqa: E402

from jgen.diffusion import pretrained as pt  # noqa: E402


def test_smoke_run_writes_results(tmp_path, capsys):
  summary = imagenet_dit.main(["--smoke", "--out", str(tmp_path)])
  lines = capsys.readouterr().out.splitlines()
  assert lines[-2:] == ["wrote:", f"  {tmp_path / 'results.json'}"]
  assert [line.split(" |")[0] for line in lines[-6:-2]] == [
      "| reference", "| adaptive", "| staged", "| race"]
  result = json.loads((tmp_path / "results.json").read_text())
  assert result["summary"] == summary and len(result["images"]) == 3
  # Closed form: t_interval 500 -> 2 timesteps x 3 classes; stages (1, 2) timesteps
  # keeping (2, 1) classes -> 1 x 3 + 1 x 2 evaluations.
  assert summary["reference"]["evaluations_per_image"] == 6
  assert summary["adaptive"]["evaluations_per_image"] == 5
  # The library's staged elimination, stages (2, 4) draws keeping (2, 1) classes:
  # 2 x K + (4 - 2) x 2 evaluations, K = 3 classes padded to a multiple of the
  # devices (padding is evaluated too); the race evaluates chunks of 8 draws.
  import jgen
  padded = jgen.parallel.padded_num_classes(3, jgen.parallel.make_mesh())
  assert summary["staged"]["evaluations_per_image"] == 2 * padded + 2 * 2
  assert summary["race"]["evaluations_per_image"] % 8 == 0
  assert {r["reference"] for r in result["images"]} <= {0, 1, 2}


def test_sharded_errors_equal_single_device():
  cfg = pt.DiTConfig(num_attention_heads=2, attention_head_dim=8, num_layers=1,
                     sample_size=4, out_channels=8, num_embeds_ada_norm=5)
  params = pt.init_dit(jax.random.key(1), cfg)
  den = pt.dit_denoiser(cfg)
  kx, ke = jax.random.split(jax.random.key(2))
  x = jax.random.normal(kx, (4, 4, 4), jnp.float32)
  eps = jax.random.normal(ke, (4, 4, 4), jnp.float32)
  gammas = pt.reference_gammas(500)
  mesh = Mesh(np.asarray(jax.devices()), ("classes",))
  sharded = imagenet_dit.sharded_errors(den, mesh)(params, x, eps, gammas,
                                                     np.arange(5))
  single = pt.class_eps_errors(den, params, x, eps, gammas, jnp.arange(5))
  assert sharded.shape == (2, 5)  # 5 classes padded to the 8 devices, then cut
  np.testing.assert_allclose(sharded, single, rtol=1e-6, atol=1e-7)


def test_adaptive_elimination_follows_reference_stages():
  calls = []
  err = np.array([[3., 1., 2., 5.]])  # class errors, the same at every timestep

  def errors(params, x, noise, gammas, classes):
    calls.append((list(np.asarray(gammas)), list(classes), len(noise)))
    return np.repeat(err[:, classes], len(gammas), axis=0)

  table = np.arange(1000.0)  # "gamma" of DDPM step t is t itself here
  pred, evals = imagenet_dit.adaptive_protocol(
      errors, None, None, np.zeros((4, 1)), table, [2, 4], [2, 1], 4, 1000)
  # eval_prob_adaptive.py: t_to_eval = range(125, 1000, 250); stage n=2 takes
  # t_to_eval[1::2] = [375, 875]; stage n=4 adds the rest [125, 625].
  assert calls == [([375., 875.], [0, 1, 2, 3], 2), ([125., 625.], [1, 2], 2)]
  assert pred == 1 and evals == 2 * 4 + 2 * 2


def test_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match="--dit, --vae and --images"):
    imagenet_dit.parse([])
  with pytest.raises(ValueError, match="--to-keep"):
    imagenet_dit.parse(["--smoke", "--n-samples", "5", "--to-keep", "2"])
  (tmp_path / "a").mkdir()
  with pytest.raises(ValueError, match="--images.*1 class folders.*3 classes"):
    imagenet_dit.list_images(str(tmp_path), 3)
