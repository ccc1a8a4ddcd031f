"""Checkpoints: generic pytree save/restore (orbax) and trained denoisers with their
config. A face over ``jgen.parallel.checkpoint`` and ``jgen.diffusion.checkpoint``.
"""

from jgen.parallel.checkpoint import CheckpointError
from jgen.parallel.checkpoint import save_pytree
from jgen.parallel.checkpoint import restore_pytree
from jgen.parallel.checkpoint import checkpoint_shapes
from jgen.diffusion.checkpoint import LoadedModel
from jgen.diffusion.checkpoint import save_model
from jgen.diffusion.checkpoint import load_model
from jgen.diffusion.checkpoint import restore_params
from jgen.diffusion.checkpoint import schedule_from_spec

__all__ = (
    "CheckpointError",
    "save_pytree",
    "restore_pytree",
    "checkpoint_shapes",
    "LoadedModel",
    "save_model",
    "load_model",
    "restore_params",
    "schedule_from_spec",
)
