"""One process of the two-process CPU cluster used by tests/test_sharding_multiprocess.py.

Usage: python tests/multiprocess_worker.py PORT PROCESS_ID NUM_PROCESSES OUT_JSON

Each process owns 2 CPU devices; together they form one JAX cluster of
2 * NUM_PROCESSES devices. The process writes what it computed to OUT_JSON (not stdout: the gloo library
writes its own unsynchronised lines there).
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import jgen  # noqa: E402

N, K = 6, 10  # K = 10 is not divisible by 4 class shards: exercises the padding.


def scores() -> np.ndarray:
  """The same [N, K] log-likelihood matrix in every process (fixed seed)."""
  return np.random.default_rng(0).normal(size=(N, K)).astype(np.float32)


def global_array(a: np.ndarray, mesh, spec) -> jax.Array:
  """A cluster-wide array; each process fills only its own shards."""
  return jax.make_array_from_callback(a.shape, NamedSharding(mesh, spec),
                                      lambda idx: a[idx])


def main() -> None:
  port, pid, nproc = (int(a) for a in sys.argv[1:4])
  out_path = sys.argv[4]
  jgen.parallel.initialize(f"127.0.0.1:{port}", nproc, pid, timeout_s=60)
  mesh = jgen.parallel.make_mesh(data=1)  # every device of every process on "classes"
  k_pad = jgen.parallel.padded_num_classes(K, mesh)
  padded = np.pad(scores(), [(0, 0), (0, k_pad - K)], constant_values=-np.inf)
  log_lik = global_array(padded, mesh, P(jgen.parallel.DATA, jgen.parallel.CLASSES))
  out = jgen.parallel.bayes_reduce(log_lik, mesh, num_classes=K)

  mesh2 = jgen.parallel.make_mesh(data=2)  # rows over 2 devices, classes over 2
  rows = global_array(np.arange(8 * 3, dtype=np.float32).reshape(8, 3), mesh2,
                      P(jgen.parallel.DATA))
  total = jgen.parallel.data_parallel_sum(lambda r: r.sum(0), mesh2, rows)
  result = {
      "process_index": jax.process_index(),
      "device_count": jax.device_count(),
      "local_device_count": jax.local_device_count(),
      "class_shards": int(mesh.shape[jgen.parallel.CLASSES]),
      "label": np.asarray(out.label).tolist(),
      "log_normalizer": np.asarray(out.log_normalizer).tolist(),
      "column_sums": np.asarray(total).tolist(),
  }
  with open(out_path, "w") as f:
    json.dump(result, f)
  _shutdown(timeout_s=30.0)


def _shutdown(timeout_s: float) -> None:
  """``jax.distributed.shutdown()``, bounded; then exit.

  Under heavy machine load the non-coordinator process was seen to stay inside
  ``shutdown`` for minutes after both processes had written identical results (the
  coordinator had already shut its service down and exited 0). The results are on disk
  by now, so a shutdown that does not return in ``timeout_s`` is reported in the log
  and the process exits instead of running into the test's timeout.
  """
  import threading
  done = threading.Thread(target=jax.distributed.shutdown, daemon=True)
  done.start()
  done.join(timeout_s)
  if done.is_alive():
    print(f"jax.distributed.shutdown did not return within {timeout_s:.0f} s;"
          " exiting with the results written.", flush=True)
  sys.stdout.flush()
  os._exit(0)


if __name__ == "__main__":
  main()
