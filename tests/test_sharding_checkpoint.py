"""Sharded checkpoints restored onto other meshes with identical values.

Reference: the saved arrays themselves (NumPy copies); restores must be bitwise equal.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import jgen
from jgen import checkpoint
ROOT = pathlib.Path(__file__).resolve().parents[1]
SPECS = {"means": P("classes"), "w": P("data", "classes"), "step": P()}


def _tree(mesh):
  rng = np.random.default_rng(0)
  put = lambda a, s: jax.device_put(jnp.asarray(a), NamedSharding(mesh, s))  # noqa
  return {"means": put(rng.normal(size=(8, 3)), SPECS["means"]),
          "w": put(rng.normal(size=(4, 8)).astype(np.float32), SPECS["w"]),
          "step": put(np.int32(7), SPECS["step"])}


def _assert_same(a, b):
  for k in a:
    assert np.asarray(a[k]).dtype == np.asarray(b[k]).dtype
    np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))


def test_eight_devices_to_one_and_back(tmp_path):
  mesh8 = jgen.parallel.make_mesh(data=2, classes=4)
  tree = _tree(mesh8)
  jgen.parallel.save_sharded(tmp_path / "eight", tree)
  one = jgen.parallel.make_mesh(data=1, classes=1, devices=jax.devices()[:1])
  small = jgen.parallel.restore_sharded(tmp_path / "eight", one)
  _assert_same(small, tree)
  assert all(len(v.sharding.device_set) == 1 for v in small.values())
  jgen.parallel.save_sharded(tmp_path / "one", small)
  back = jgen.parallel.restore_sharded(tmp_path / "one", mesh8, SPECS)
  _assert_same(back, tree)
  for k, v in back.items():
    assert v.sharding.is_equivalent_to(NamedSharding(mesh8, SPECS[k]), v.ndim)
  assert {s.data.shape for s in back["w"].addressable_shards} == {(2, 2)}


def test_restore_into_a_like_tree(tmp_path):
  mesh8 = jgen.parallel.make_mesh(data=2, classes=4)
  tree = _tree(mesh8)
  jgen.parallel.save_sharded(tmp_path / "ckpt", tree)
  like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)
  mesh = jgen.parallel.make_mesh(data=1, classes=8)
  got = jgen.parallel.restore_sharded(tmp_path / "ckpt", mesh, P(), like=like)
  _assert_same(got, tree)
  bad_like = dict(like, means=jax.ShapeDtypeStruct((9, 3), like["means"].dtype))
  with pytest.raises(checkpoint.CheckpointError, match="checkpoint shape"):
    jgen.parallel.restore_sharded(tmp_path / "ckpt", mesh, P(), like=bad_like)


def test_layouts_the_new_mesh_cannot_hold(tmp_path):
  mesh8 = jgen.parallel.make_mesh(data=2, classes=4)
  jgen.parallel.save_sharded(tmp_path / "ckpt", _tree(mesh8))
  other = jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
  with pytest.raises(ValueError, match=r"\['means'\]: .* names mesh axis 'classes'"):
    jgen.parallel.restore_sharded(tmp_path / "ckpt", other, SPECS)
  wide = jgen.parallel.make_mesh(data=1, classes=8)
  specs = dict(SPECS, means=P(None, "classes"))  # 3 columns over 8 devices
  with pytest.raises(ValueError, match=r"\['means'\]: dimension 3 .* not divisible by 8"):
    jgen.parallel.restore_sharded(tmp_path / "ckpt", wide, specs)
  with pytest.raises(checkpoint.CheckpointError, match="no checkpoint directory"):
    jgen.parallel.restore_sharded(tmp_path / "missing", wide)


_ONE_DEVICE = """
import json, sys
import jax, numpy as np
import jgen
from jgen import checkpoint
out = {"devices": jax.device_count()}
try:
  checkpoint.restore_pytree(sys.argv[1])   # saved layout: 8 devices
  out["plain"] = "restored"
except checkpoint.CheckpointError as e:
  out["plain"] = str(e)
tree = jgen.parallel.restore_sharded(sys.argv[1], jgen.parallel.make_mesh())
out["values"] = {k: np.asarray(v).tolist() for k, v in tree.items()}
print("RESULT " + json.dumps(out))
"""


def test_one_device_program_restores_an_eight_device_checkpoint(tmp_path):
  tree = _tree(jgen.parallel.make_mesh(data=2, classes=4))
  jgen.parallel.save_sharded(tmp_path / "ckpt", tree)
  # A plain one-device process; float64 leaves need x64 there too.
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
             JAX_ENABLE_X64="1")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run([sys.executable, "-c", _ONE_DEVICE, str(tmp_path / "ckpt")],
                        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][0]
  out = json.loads(line[len("RESULT "):])
  assert out["devices"] == 1
  # Without a target layout, the mismatch is a clear error, not a silent guess...
  assert "Topology mismatch" in out["plain"]
  # ...and naming the new mesh reshards explicitly, with identical values.
  for k, v in tree.items():
    np.testing.assert_array_equal(np.asarray(out["values"][k]), np.asarray(v))
