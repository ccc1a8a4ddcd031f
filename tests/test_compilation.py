"""jgen.core.compilation: jax.jit with jgen's CPU compiler options."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.core import compilation


def _conv(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _inputs():
  kx, kw = jax.random.split(jax.random.key(0))
  return (jax.random.normal(kx, (4, 8, 8, 32), jnp.float32),
          jax.random.normal(kw, (3, 3, 32, 32), jnp.float32))


def test_same_values_as_float64_within_float32_rounding():
  x, w = _inputs()
  loss = lambda x, w: jnp.sum(jnp.tanh(_conv(x, w)) ** 2)  # noqa: E731
  grad = jax.value_and_grad(loss, argnums=(0, 1))
  # Reference: the same function in float64 (the suite enables x64). The two float32
  # programs (XLA's defaults and jgen's options) sum the convolution's 288 products in
  # different orders, so each is compared with the float64 values at a tolerance
  # relative to the output's scale, not element by element with each other.
  ref = jax.jit(grad)(x.astype(jnp.float64), w.astype(jnp.float64))
  for out in (compilation.jit(grad)(x, w), jax.jit(grad)(x, w)):
    for a, r in zip(jax.tree.leaves(out), jax.tree.leaves(ref)):
      a, r = np.asarray(a, np.float64), np.asarray(r)
      assert np.abs(a - r).max() <= 1e-4 * np.abs(r).max()


def test_cpu_programs_keep_convolutions_out_of_ynnpack():
  if jax.default_backend() != "cpu":
    pytest.skip("CPU compiler options")
  x, w = _inputs()
  hlo = compilation.jit(_conv).lower(x, w).compile().as_text()
  assert "convolution" in hlo and "__ynn_fusion" not in hlo
  # The control: where this XLA build hands such a convolution to YNNPACK by default
  # (it does at 32 channels on x86), the option is what keeps it out.
  default = jax.jit(_conv).lower(x, w).compile().as_text()
  if "__ynn_fusion" not in default:
    pytest.skip("this XLA build does not fuse the convolution into YNNPACK anyway")


def test_nested_in_jit_vmap_grad_and_scan():
  f = compilation.jit(lambda v: jnp.sin(v) * 2.0)
  v = jnp.linspace(0.0, 1.0, 4)
  expected = np.sin(np.linspace(0.0, 1.0, 4)) * 2.0  # closed form
  np.testing.assert_allclose(f(v), expected, rtol=1e-6)
  np.testing.assert_allclose(jax.jit(lambda u: f(u) + 1.0)(v), expected + 1.0, rtol=1e-6)
  np.testing.assert_allclose(jax.vmap(f)(v), expected, rtol=1e-6)
  np.testing.assert_allclose(jax.grad(lambda u: jnp.sum(f(u)))(v),
                             2.0 * np.cos(np.linspace(0.0, 1.0, 4)), rtol=1e-6)
  _, ys = jax.lax.scan(lambda c, u: (c, f(u)), 0.0, v)
  np.testing.assert_allclose(ys, expected, rtol=1e-6)


def test_static_arguments_and_cache_queries_pass_through():
  calls = []

  @functools.partial(compilation.jit, static_argnames=("power",))
  def f(v, *, power):
    calls.append(power)
    return v ** power

  assert float(f(3.0, power=2)) == 9.0 and float(f(4.0, power=2)) == 16.0
  assert float(f(2.0, power=3)) == 8.0
  assert calls == [2, 3]  # traced once per static value
  assert f._cache_size() == 2
  assert f.__name__ == "f"


def test_rejected_options_warn_and_fall_back(monkeypatch):
  monkeypatch.setattr(compilation, "CPU_COMPILER_OPTIONS",
                      {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"})
  with pytest.warns(RuntimeWarning, match="rejects the CPU compiler options"):
    assert compilation.backend_compiler_options("cpu") == {}
  assert compilation.backend_compiler_options("gpu") == {}


def test_explicit_compiler_options_are_used_as_given():
  f = compilation.jit(lambda v: v + 1, compiler_options={})
  assert float(f(1.0)) == 2.0
