"""Test configuration shared by the whole suite.

* 8 virtual CPU devices, so sharding tests run on any machine. XLA reads the flag
  when the backend starts, which is after this module runs.
* Strict JAX settings: rank promotion raises; float64 is enabled so float64 tests can
  run, which means float32 tests must create float32 arrays explicitly.
"""

import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
  """A fixed-seed PRNG key; split it by purpose inside each test."""
  return jax.random.key(0)
