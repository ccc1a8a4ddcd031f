"""jgen.parallel core: meshes, class padding, the sharded Bayes-rule reduction.

References: jgen.predict / jgen.log_posterior on one device and scipy's logsumexp in
float64 (independent of the collectives under test).
"""

import socket
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from jax.sharding import AxisType

import jgen
MESHES = [(1, 8), (2, 4), (4, 2), (8, 1)]


def _scores(seed, n, k, dtype=np.float64):
  rng = np.random.default_rng(seed)
  log_lik = rng.normal(size=(n, k)) * 3.0
  log_prior = scipy.special.log_softmax(rng.normal(size=k))
  return log_lik.astype(dtype), log_prior.astype(dtype)


def test_make_mesh_axes_and_types():
  mesh = jgen.parallel.make_mesh(data=2)
  assert mesh.axis_names == ("data", "classes")
  assert dict(mesh.shape) == {"data": 2, "classes": 4}
  assert mesh.axis_types == (AxisType.Auto, AxisType.Auto)
  explicit = jgen.parallel.make_mesh(classes=2, axis_types=AxisType.Explicit)
  assert dict(explicit.shape) == {"data": 1, "classes": 2}
  assert explicit.axis_types == (AxisType.Explicit, AxisType.Explicit)


@pytest.mark.parametrize("kwargs, match", [
    (dict(data=3, classes=3), "needs 9 devices"),
    (dict(data=0), "data must be a positive int"),
    (dict(classes=2.0), "classes must be a positive int"),
])
def test_make_mesh_bad_input(kwargs, match):
  with pytest.raises(ValueError, match=match):
    jgen.parallel.make_mesh(**kwargs)


def test_padding_never_drops_classes():
  mesh = jgen.parallel.make_mesh(classes=8)
  assert jgen.parallel.padded_num_classes(21, mesh) == 24
  assert jgen.parallel.padded_num_classes(16, mesh) == 16
  a = jnp.arange(6.0).reshape(2, 3)
  np.testing.assert_array_equal(jgen.parallel.pad_classes(a, 5, fill=-np.inf)[:, 3:],
                                np.full((2, 2), -np.inf))
  np.testing.assert_array_equal(jgen.parallel.pad_classes(a, 5)[:, 3:], [[2, 2], [5, 5]])
  np.testing.assert_array_equal(jgen.parallel.class_mask(3, 5), [1, 1, 1, 0, 0])
  with pytest.raises(ValueError, match="smaller than the class axis"):
    jgen.parallel.pad_classes(a, 2)


@pytest.mark.parametrize("data, classes, dtype", [
    (d, c, np.float64) for d, c in MESHES] + [(2, 4, np.float32)])
def test_bayes_reduce_matches_single_device(data, classes, dtype):
  # N = 13 and K = 21 divide neither axis: rows and classes are both padded.
  log_lik, log_prior = _scores(0, 13, 21, dtype)
  mesh = jgen.parallel.make_mesh(data=data, classes=classes)
  out = jgen.parallel.bayes_reduce(log_lik, mesh, num_classes=21, log_prior=log_prior)
  np.testing.assert_array_equal(out.label, jgen.predict(log_lik, log_prior))
  joint = log_lik.astype(np.float64) + log_prior[None, :]
  rtol = 1e-6 if dtype == np.float32 else 1e-12
  np.testing.assert_allclose(out.log_normalizer, scipy.special.logsumexp(joint, -1),
                             rtol=rtol)
  np.testing.assert_allclose(out.max_log_joint, joint.max(-1), rtol=rtol)
  assert out.log_normalizer.dtype == dtype


def test_bayes_reduce_accepts_padded_input_and_masks_it():
  log_lik, _ = _scores(1, 5, 21)
  mesh = jgen.parallel.make_mesh(classes=8)
  # Garbage (large finite) scores in the padded columns must not matter.
  padded = jgen.parallel.pad_classes(log_lik, 24, fill=1e6)
  out = jgen.parallel.bayes_reduce(padded, mesh, num_classes=21)
  np.testing.assert_array_equal(out.label, np.argmax(log_lik, -1))
  np.testing.assert_allclose(out.log_normalizer,
                             scipy.special.logsumexp(log_lik, -1), rtol=1e-12)


def test_bayes_reduce_ties_like_argmax_and_no_label_from_broken_rows():
  mesh = jgen.parallel.make_mesh(classes=8)
  rows = np.zeros((4, 16))
  rows[0, [3, 5, 12]] = 2.0  # tie across shards 1, 2 and 6 -> first index, 3
  rows[1, :] = -np.inf       # nothing possible: normaliser -inf, no label
  rows[2, [6, 13]] = np.nan  # no label
  rows[3, 15] = np.inf       # no label (an infinite likelihood is degenerate)
  with pytest.raises(ValueError, match=r"log_lik has 3 row\(s\) that cannot be"
                     r" classified .* first at index 1"):
    jgen.parallel.bayes_reduce(rows, mesh, num_classes=16)
  out = jax.jit(lambda r: jgen.parallel.bayes_reduce(r, mesh, num_classes=16))(rows)
  np.testing.assert_array_equal(out.label, jgen.predict(rows[:1]).tolist() + [-1] * 3)
  np.testing.assert_array_equal(out.label, jax.jit(jgen.predict)(rows))
  np.testing.assert_array_equal(out.label, [3, -1, -1, -1])
  assert out.log_normalizer[1] == -np.inf
  assert np.isnan(out.log_normalizer[2])
  assert out.log_normalizer[3] == np.inf


def test_bayes_reduce_communicates_vectors_not_the_score_matrix():
  log_lik, _ = _scores(2, 16, 64)
  mesh = jgen.parallel.make_mesh(data=2, classes=4)
  placed = jax.device_put(log_lik, jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("data", "classes")))
  hlo = jgen.parallel.collectives._bayes_reduce.lower(placed, 64, mesh).compile().as_text()
  assert "all-reduce" in hlo
  assert "all-gather" not in hlo and "all-to-all" not in hlo
  # Each device holds one [N / 2, K / 4] block of the input.
  assert {s.data.shape for s in placed.addressable_shards} == {(8, 16)}


def test_explicit_axes():
  log_lik, log_prior = _scores(3, 9, 10)
  mesh = jgen.parallel.make_mesh(data=2, classes=4, axis_types=AxisType.Explicit)
  out = jgen.parallel.bayes_reduce(log_lik, mesh, num_classes=10, log_prior=log_prior)
  np.testing.assert_array_equal(out.label, jgen.predict(log_lik, log_prior))
  post = jgen.parallel.sharded_log_posterior(log_lik, mesh, num_classes=10)
  # An uneven slice of an Explicit-sharded axis is refused by JAX: go via NumPy.
  np.testing.assert_allclose(np.asarray(post)[:, :10], jgen.log_posterior(log_lik),
                             rtol=1e-12)
  w = np.random.default_rng(3).normal(size=(10, 4))
  scores = jgen.parallel.class_sharded_scores(_linear_scores, w, log_lik[:, :4], mesh,
                                         num_classes=10)
  np.testing.assert_allclose(np.asarray(scores)[:, :10],
                             log_lik[:, :4] @ w.T + np.arange(10)[None, :], rtol=1e-12)
  total = jgen.parallel.data_parallel_sum(lambda a: a.sum(0), mesh, log_lik)
  np.testing.assert_allclose(total, log_lik.sum(0), rtol=1e-12)


def test_bayes_reduce_bad_input():
  mesh = jgen.parallel.make_mesh(classes=8)
  with pytest.raises(ValueError, match="21 .num_classes. or 24 .padded. columns"):
    jgen.parallel.bayes_reduce(np.zeros((3, 22)), mesh, num_classes=21)
  with pytest.raises(ValueError, match="log_prior must have 21"):
    jgen.parallel.bayes_reduce(np.zeros((3, 21)), mesh, num_classes=21,
                          log_prior=np.zeros(20))
  with pytest.raises(TypeError, match="num_classes must be a static Python int"):
    jgen.parallel.bayes_reduce(np.zeros((3, 21)), mesh, num_classes=21.0)
  with pytest.raises(ValueError, match="axis named 'classes'"):
    jgen.parallel.bayes_reduce(np.zeros((3, 21)), jax.make_mesh((8,), ("x",)),
                          num_classes=21)


@pytest.mark.parametrize("data, classes", [(1, 8), (2, 4)])
def test_sharded_log_posterior_stays_sharded(data, classes):
  log_lik, log_prior = _scores(4, 12, 21)
  mesh = jgen.parallel.make_mesh(data=data, classes=classes)
  post = jgen.parallel.sharded_log_posterior(log_lik, mesh, num_classes=21,
                                        log_prior=log_prior)
  assert post.shape == (12, 24)
  assert post.sharding.is_equivalent_to(jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("data", "classes")), 2)
  np.testing.assert_allclose(post[:, :21], jgen.log_posterior(log_lik, log_prior),
                             rtol=1e-12, atol=1e-12)
  assert np.all(np.asarray(post[:, 21:]) == -np.inf)


def _linear_scores(w, shared, ids, x):
  """A toy per-class score: ``x @ w_k + k``; ``ids`` are the global class ids."""
  del shared
  return x @ w.T + ids[None, :].astype(x.dtype)


@pytest.mark.parametrize("data, classes", MESHES)
def test_class_sharded_scores(data, classes):
  rng = np.random.default_rng(5)
  w, x = rng.normal(size=(21, 3)), rng.normal(size=(13, 3))
  mesh = jgen.parallel.make_mesh(data=data, classes=classes)
  scores = jgen.parallel.class_sharded_scores(_linear_scores, w, x, mesh, num_classes=21)
  k_pad = jgen.parallel.padded_num_classes(21, mesh)
  assert scores.shape == (13, k_pad)
  np.testing.assert_allclose(scores[:, :21], x @ w.T + np.arange(21)[None, :],
                             rtol=1e-12)
  assert np.all(np.asarray(scores[:, 21:]) == -np.inf)
  errs = jgen.parallel.class_sharded_scores(_linear_scores, w, x, mesh, num_classes=21,
                                       fill=np.inf)
  assert np.all(np.asarray(errs[:, 21:]) == np.inf)


def test_class_sharded_scores_bad_params():
  mesh = jgen.parallel.make_mesh(classes=8)
  with pytest.raises(ValueError, match="class axis first"):
    jgen.parallel.class_sharded_scores(_linear_scores, np.zeros((20, 3)), np.zeros((4, 3)),
                                  mesh, num_classes=21)


@pytest.mark.parametrize("n, data", [(13, 8), (16, 8), (5, 8), (203, 4), (203, 2)])
def test_data_parallel_sum_keeps_every_row(n, data):
  # (203, 4): leftover rows next to a data-sharded slice on a 4 x 2 mesh, the layout
  # where computing the leftovers outside shard_map miscounted (scatter-add).
  rng = np.random.default_rng(6)
  x, y = rng.normal(size=(n, 3)), rng.integers(0, 4, size=n)
  mesh = jgen.parallel.make_mesh(data=data)

  def stats(x, y):
    onehot = jax.nn.one_hot(y, 4, dtype=x.dtype)
    return {"count": onehot.sum(0), "sum": onehot.T @ x}

  got = jgen.parallel.data_parallel_sum(stats, mesh, x, y)
  onehot = np.eye(4)[y]
  np.testing.assert_allclose(got["count"], onehot.sum(0), rtol=1e-12)
  np.testing.assert_allclose(got["sum"], onehot.T @ x, rtol=1e-12, atol=1e-12)


def test_shard_rows():
  mesh = jgen.parallel.make_mesh(data=4, classes=2)
  (x,) = jgen.parallel.shard_rows(mesh, np.zeros((8, 3)))
  assert {s.data.shape for s in x.addressable_shards} == {(2, 3)}
  with pytest.raises(ValueError, match="divisible by the data axis size 4"):
    jgen.parallel.shard_rows(mesh, np.zeros((10, 3)))


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.parametrize("args, kwargs, match", [
    (("127.0.0.1", 2, 1), {}, "host:port"),
    (("127.0.0.1:1234", 2, 2), {}, "process_id must lie in"),
    (("127.0.0.1:1234", None, 0), {}, "all of coordinator_address"),
    (("127.0.0.1:1234", 2, 1), {"timeout_s": 0}, "timeout_s must be a positive int"),
])
def test_initialize_bad_input(args, kwargs, match):
  with pytest.raises(ValueError, match=match):
    jgen.parallel.initialize(*args, cpu_collectives=None, **kwargs)


def test_initialize_unreachable_coordinator_fails_within_timeout():
  # Nothing listens on a port just released. The runtime itself would abort the
  # process after its timeout; the wrapper raises a Python error first.
  port = _free_port()
  start = time.monotonic()
  with pytest.raises(TimeoutError, match=f"127.0.0.1:{port} was not reachable within 2"):
    jgen.parallel.initialize(f"127.0.0.1:{port}", 2, 1, timeout_s=2, cpu_collectives=None)
  assert time.monotonic() - start < 30  # bounded: 2 s plus one connect attempt
  assert not jax.distributed.is_initialized()


def test_initialize_coordinator_port_taken():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    with pytest.raises(OSError, match=f"cannot bind port {port}"):
      jgen.parallel.initialize(f"127.0.0.1:{port}", 2, 0, cpu_collectives=None)
  assert not jax.distributed.is_initialized()
