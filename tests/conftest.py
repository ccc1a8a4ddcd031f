"""Test configuration shared by the whole suite.

* 8 virtual CPU devices, so sharding tests run on any machine. XLA reads the flag
  when the backend starts, which is after this module runs.
* Strict JAX settings: rank promotion raises; float64 is enabled so float64 tests can
  run, which means float32 tests must create float32 arrays explicitly.
* XLA compiles with most optimisations off (JAX's ``jax_disable_most_optimizations``,
  meant for work limited by compile time): the suite compiles thousands of small
  programs and runs each a few times, so compilation is most of its time (about 30%
  less wall time on the diffusion tests). The optimisation passes preserve semantics,
  and the tests compare values with stated tolerances, not bit patterns of one
  compiler setting (a bitwise comparison compares two runs under the same setting).
  ``JGEN_TEST_XLA_OPTIMIZE=1`` runs the suite with the default
  optimisations, as users' programs compile; benchmarks/ always use the defaults.
"""

import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()

# Set in the environment (not jax.config) so that the subprocesses the tests start
# (multi-process workers, a training run killed and resumed) compile the same way and
# can be compared bit for bit with in-process results.
if os.environ.get("JGEN_TEST_XLA_OPTIMIZE", "") != "1":
  os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", True)


@pytest.fixture
def user_jax_config():
  """JAX's defaults while docs code runs (float32, rank promotion allowed), as a user
  pasting it gets; the suite's strict settings afterwards."""
  saved = {k: getattr(jax.config, k) for k in ("jax_enable_x64",
                                              "jax_numpy_rank_promotion")}
  jax.config.update("jax_enable_x64", False)
  jax.config.update("jax_numpy_rank_promotion", "allow")
  yield
  for k, v in saved.items():
    jax.config.update(k, v)


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
  """Drops JAX's compiled programs after each test module.

  Every loaded XLA CPU executable keeps about six memory mappings, and the jit caches
  keep every executable alive: a test worker that compiles ten thousand programs (the
  slow tier's scikit-learn suites compile one per new shape) reaches Linux's
  ``vm.max_map_count`` (65,530), and XLA's compiler then crashes in the next compile.
  Clearing the caches between modules bounds the live programs per worker.
  """
  yield
  jax.clear_caches()


@pytest.fixture
def key():
  """A fixed-seed PRNG key; split it by purpose inside each test."""
  return jax.random.key(0)


def _slow_ids() -> set[str]:
  path = os.path.join(os.path.dirname(__file__), "slow_tests.txt")
  with open(path) as f:
    return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def _doc_page(nodeid: str) -> str | None:
  """``docs/x.md`` of a ``test_doc_block[docs/x.md[i]]`` id, else None."""
  if "test_docs.py::test_doc_block[" not in nodeid:
    return None
  return nodeid.split("test_doc_block[", 1)[1].rsplit("[", 1)[0]


def pytest_collection_modifyitems(config, items):
  """Marks the tests listed in tests/slow_tests.txt ``slow`` (whole docs pages)."""
  slow = _slow_ids()
  slow_pages = {_doc_page(i) for i in slow} | {
      _doc_page(item.nodeid) for item in items if item.get_closest_marker("slow")}
  slow_pages.discard(None)
  for item in items:
    if item.nodeid in slow or _doc_page(item.nodeid) in slow_pages:
      item.add_marker(pytest.mark.slow)
