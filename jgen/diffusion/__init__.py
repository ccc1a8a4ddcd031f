"""Class-conditional diffusion models as classifiers (Monte Carlo ELBO)."""

# --- Denoisers, training, checkpoints (jgen.diffusion.nets, jgen.diffusion.train) ---
from jgen.diffusion import nets
from jgen.diffusion.nets import MLPDenoiser
from jgen.diffusion.nets import UNetDenoiser
from jgen.diffusion.nets import as_eps_fn
from jgen.diffusion.nets import drop_labels
