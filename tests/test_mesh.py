"""``make_mesh`` with more devices than there are: the error says how to get them on CPU."""

import os
import re
import subprocess
import sys

import jax
import pytest

import jgen


def test_too_few_devices_names_the_xla_flag():
  n = len(jax.devices())
  want = 2 * n
  with pytest.raises(ValueError, match=re.escape(
      f"XLA_FLAGS=--xla_force_host_platform_device_count={want}")) as err:
    jgen.parallel.make_mesh(data=2, classes=n)
  assert f"needs {want} devices, but only {n} are available" in str(err.value)


def test_the_named_flag_provides_the_devices():
  # The advice of the message, followed in a fresh interpreter, builds the mesh.
  code = ("import jgen\n"
          "mesh = jgen.parallel.make_mesh(data=2, classes=3)\n"
          "print(dict(mesh.shape))")
  out = subprocess.run(
      [sys.executable, "-c", code], check=True, capture_output=True, text=True,
      env={**os.environ,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=6",
           "JAX_PLATFORMS": "cpu"})
  assert out.stdout.strip() == "{'data': 2, 'classes': 3}"


def test_explicit_cpu_devices_get_the_hint_for_the_requested_count():
  # CPU devices passed explicitly: the flag asks for the requested count.
  with pytest.raises(ValueError, match="device_count=3"):
    jgen.parallel.make_mesh(data=3, classes=1, devices=jax.devices()[:1])
