"""Multi-host start-up: a checked wrapper around ``jax.distributed.initialize``.

Why a wrapper: in this JAX, when the coordinator cannot be reached (or a peer never
joins) within ``initialization_timeout``, the runtime does not raise a Python exception;
it aborts the whole process from C++ (``DEADLINE_EXCEEDED`` in ``RegisterTask``,
``SIGABRT``). [`initialize`][jgen.parallel.initialize] therefore checks, before handing
over, that a worker can open a TCP connection to the coordinator and that the
coordinator can bind its port, turning the common mistakes (wrong address, coordinator
not started, port taken) into a ``TimeoutError``/``OSError`` after at most ``timeout_s``
seconds.
"""

from __future__ import annotations

import socket
import time
from typing import Sequence

import jax

__all__ = ["initialize"]


def _split_address(address: str) -> tuple[str, int]:
  host, sep, port = str(address).rpartition(":")
  if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise ValueError(
        f"coordinator_address must look like 'host:port' with a port in [1, 65535],"
        f" got {address!r}.")
  return host.strip("[]"), int(port)


def _wait_reachable(host: str, port: int, timeout_s: float) -> None:
  """Retries a TCP connect until it succeeds or ``timeout_s`` passes."""
  deadline = time.monotonic() + timeout_s
  last: OSError | None = None
  while True:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
      raise TimeoutError(
          f"The JAX coordinator at {host}:{port} was not reachable within {timeout_s:g}"
          f" s (last error: {last}). Start process 0 first, check the address and"
          f" port, and that no firewall blocks it.")
    try:
      with socket.create_connection((host, port), timeout=min(remaining, 2.0)):
        return
    except OSError as e:  # refused, unreachable, DNS failure, timeout
      last = e
      time.sleep(min(0.2, max(remaining, 0.0)))


def _check_bindable(port: int) -> None:
  for family, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
    try:
      s = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
      continue  # no IPv6 on this host: try IPv4
    with s:
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      try:
        s.bind((addr, port))
        return
      except OSError as e:
        raise OSError(
            f"Process 0 hosts the JAX coordinator but cannot bind port {port}: {e}."
            f" Choose a free port.") from e


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None, *,
               local_device_ids: int | Sequence[int] | None = None,
               timeout_s: int = 60,
               cpu_collectives: str | None = "gloo") -> None:
  """Joins this process to a multi-host JAX cluster (``jax.distributed.initialize``).

  Call once per process, before any other JAX call. On TPU pod slices and on clusters
  JAX detects (SLURM, Open MPI, Kubernetes with the right environment) all three
  arguments may be omitted; otherwise pass all three. After it returns,
  ``jax.devices()`` lists the devices of every process and ``make_mesh`` spans them.

  Args:
    coordinator_address: ``"host:port"`` of process 0, which hosts the coordinator.
    num_processes: total number of processes.
    process_id: this process's index in ``[0, num_processes)``.
    local_device_ids: restrict this process to these local accelerators.
    timeout_s: bound, in seconds, on reaching the coordinator (checked here) and on
      the whole cluster forming (passed as ``initialization_timeout``).
    cpu_collectives: cross-process collectives for the CPU backend (``"gloo"``; ``None``
      leaves JAX's setting alone). Without it, CPU arrays cannot span processes.

  Raises:
    ValueError: malformed address or ``process_id``/``num_processes``.
    TimeoutError: the coordinator was not reachable within ``timeout_s``.
    OSError: process 0 cannot bind the coordinator port.

  Examples:
    On each of two hosts, before any other JAX call (process 1 passes
    ``process_id=1``):

    >>> import jgen
    >>> jgen.parallel.initialize("10.0.0.1:1234", num_processes=2,
    ...                          process_id=0)  # doctest: +SKIP

    Partial arguments are refused before anything changes:

    >>> jgen.parallel.initialize("10.0.0.1:1234")
    Traceback (most recent call last):
    ValueError: Pass all of coordinator_address, num_processes and process_id, ...
  """
  if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < 1:
    raise ValueError(f"timeout_s must be a positive int (seconds), got {timeout_s!r}.")
  given = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in given) and any(v is None for v in given):
    raise ValueError(
        "Pass all of coordinator_address, num_processes and process_id, or none of"
        f" them (auto-detection); got {given}.")
  if cpu_collectives is not None:
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
  if coordinator_address is not None:
    for name, v in (("num_processes", num_processes), ("process_id", process_id)):
      if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name} must be an int, got {v!r}.")
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise ValueError(
          f"process_id must lie in [0, num_processes={num_processes}), got"
          f" {process_id}.")
    host, port = _split_address(coordinator_address)
    if process_id == 0:
      _check_bindable(port)
    else:
      _wait_reachable(host, port, timeout_s)
  jax.distributed.initialize(
      coordinator_address, num_processes, process_id,
      local_device_ids=local_device_ids, initialization_timeout=timeout_s)
