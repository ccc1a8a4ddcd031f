"""Resumable training runs on disk: the run record, orbax checkpoints, progress.

A run directory holds ``run.json`` (the model and training configuration; resuming
with different settings raises [`CheckpointError`][jgen.io.CheckpointError]
naming each mismatch), ``checkpoints/`` (an orbax ``CheckpointManager`` of the whole
train state) and ``metrics.jsonl``. Unreadable checkpoints are moved to ``corrupt/``
with a warning and the previous good step is used.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from typing import TYPE_CHECKING

import jax
from flax import nnx

from jgen.core import progress
from jgen.parallel.checkpoint import CheckpointError
from jgen.diffusion.nets import denoiser_config

if TYPE_CHECKING:   # annotations only: orbax loads on first use
  import orbax.checkpoint as ocp

__all__ = ["run_record", "check_run", "open_run", "restore_latest", "save",
           "progress_bar"]


def run_record(model: nnx.Module, config, schedule_spec) -> dict:
  """What must match between a run and its resumption: the denoiser's constructor
  arguments, the [`TrainConfig`][jgen.diffusion.TrainConfig] (less ``num_steps`` and
  ``log_every``) and the schedule's JSON description."""
  cfg = config._asdict()
  for k in ("num_steps", "log_every"):  # may change between resumes
    cfg.pop(k)
  return {"denoiser": denoiser_config(model), "train": cfg, "schedule": schedule_spec}


def check_run(workdir: str, record: dict) -> None:
  """The run in ``workdir`` must have the same model/config (named mismatches)."""
  path = os.path.join(workdir, "run.json")
  if os.path.isfile(path):
    with open(path) as f:
      saved = json.load(f)
    bad = [f"{part}.{k}: saved {saved.get(part, {}).get(k)!r}, now {v!r}"
           for part in ("denoiser", "train") for k, v in record[part].items()
           if saved.get(part, {}).get(k) != v]
    if saved.get("schedule") != record["schedule"]:
      bad.append(f"schedule: saved {saved.get('schedule')!r}, now"
                 f" {record['schedule']!r}")
    if bad:
      raise CheckpointError(f"{workdir} holds a run with a different model or config;"
                            " use a new workdir or the same settings:\n  "
                            + "\n  ".join(bad))
  else:
    with open(path, "w") as f:
      json.dump(record, f, indent=1, sort_keys=True)


def open_run(workdir: str, record: dict, keep: int):
  """Creates or checks ``workdir``; ``(checkpoint manager, metrics log file)``.

  Raises:
    CheckpointError: ``workdir`` holds a run whose ``record`` differs.
  """
  import orbax.checkpoint as ocp  # orbax loads on first use
  os.makedirs(workdir, exist_ok=True)
  check_run(workdir, record)
  mngr = ocp.CheckpointManager(
      os.path.join(workdir, "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep,
                                           enable_async_checkpointing=False))
  return mngr, open(os.path.join(workdir, "metrics.jsonl"), "a")


def save(mngr: ocp.CheckpointManager, step: int, state) -> None:
  """Saves the whole train ``state`` pytree as checkpoint ``step`` (synchronously)."""
  import orbax.checkpoint as ocp  # orbax loads on first use
  mngr.save(step, args=ocp.args.StandardSave(state), force=True)


def restore_latest(mngr: ocp.CheckpointManager, like, workdir: str):
  """Newest readable checkpoint shaped like the pytree ``like``, moving unreadable
  ones aside; ``(state, step)``, or ``(None, None)`` when there is none."""
  import orbax.checkpoint as ocp  # orbax loads on first use
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  failures = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      return mngr.restore(step, args=ocp.args.StandardRestore(abstract)), step
    except Exception as e:  # orbax raises many types for truncated/missing files
      failures.append(f"step {step}: {type(e).__name__}: {str(e)[:200]}")
      bad_dir = os.path.join(workdir, "checkpoints", str(step))
      aside = os.path.join(workdir, "corrupt", f"{step}-{time.time_ns()}")
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      if os.path.isdir(bad_dir):
        shutil.move(bad_dir, aside)
      warnings.warn(f"checkpoint at step {step} in {workdir} is unreadable and was"
                    f" moved to {aside} ({failures[-1]}); trying the previous step.")
      mngr.reload()
  if failures:
    warnings.warn(f"no readable checkpoint in {workdir}; starting from step 0."
                  " Failures:\n  " + "\n  ".join(failures))
  return None, None


def progress_bar(enabled: bool, total: int, initial: int):
  """A tqdm bar from ``initial`` to ``total`` steps, or ``None``."""
  if not enabled:
    return None
  return progress.bar(total, initial=initial, unit="step")
