"""Scale-out on JAX's own runtime, for any family: meshes, collectives, multi-host start-up
and sharded checkpoints.

A 2-D device mesh with named axes ``data`` (examples) and ``classes``; class scores are
sharded over ``classes`` and reduced with ``shard_map`` collectives, additive statistics
are summed over ``data``. See ``docs/distributed.md``.
"""

from jgen.parallel.mesh import DATA
from jgen.parallel.mesh import CLASSES
from jgen.parallel.mesh import make_mesh
from jgen.parallel.mesh import axis_size
from jgen.parallel.mesh import padded_num_classes
from jgen.parallel.mesh import pad_classes
from jgen.parallel.mesh import class_mask
from jgen.parallel.mesh import shard_rows
from jgen.parallel.collectives import BayesReduction
from jgen.parallel.collectives import bayes_reduce
from jgen.parallel.collectives import sharded_log_posterior
from jgen.parallel.collectives import class_sharded_scores
from jgen.parallel.collectives import data_parallel_sum
from jgen.parallel.classifier import class_sharded_log_likelihood
from jgen.parallel.classifier import class_sharded_predict
from jgen.parallel.classifier import fit_data_parallel
from jgen.parallel.semi_supervised import SemiSupervisedResult
from jgen.parallel.semi_supervised import semi_supervised_fit
from jgen.parallel.multihost import initialize
from jgen.parallel.checkpoint import save_sharded
from jgen.parallel.checkpoint import restore_sharded
from jgen.parallel.checkpoint import replicate

__all__ = (
    "DATA",
    "CLASSES",
    "make_mesh",
    "axis_size",
    "padded_num_classes",
    "pad_classes",
    "class_mask",
    "shard_rows",
    "BayesReduction",
    "bayes_reduce",
    "sharded_log_posterior",
    "class_sharded_scores",
    "data_parallel_sum",
    "class_sharded_log_likelihood",
    "class_sharded_predict",
    "fit_data_parallel",
    "SemiSupervisedResult",
    "semi_supervised_fit",
    "initialize",
    "save_sharded",
    "restore_sharded",
    "replicate",
)
