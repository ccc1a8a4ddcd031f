"""Class-conditional flax NNX ε-prediction denoisers.

Both condition on the class label (a learned embedding) and on ``gamma = -log SNR``
(Fourier features); split one with
[`jgen.diffusion.nnx_denoiser`][jgen.diffusion.nnx_denoiser] into
``(Denoiser, params)``.

* [`MLPDenoiser`][jgen.diffusion.MLPDenoiser]: a residual MLP for inputs of any shape.
* [`UNetDenoiser`][jgen.diffusion.UNetDenoiser]: a small convolutional U-Net for images
and 1-D signals.
"""

from jgen.diffusion.nets.common import Conditioning
from jgen.diffusion.nets.common import DenoiserBase
from jgen.diffusion.nets.common import check_denoiser_inputs
from jgen.diffusion.nets.common import denoiser_config
from jgen.diffusion.nets.common import drop_labels
from jgen.diffusion.nets.common import fourier_features
from jgen.diffusion.nets.mlp import MLPDenoiser
from jgen.diffusion.nets.unet import UNetDenoiser

ARCHITECTURES: dict[str, type] = {"MLPDenoiser": MLPDenoiser,
                                  "UNetDenoiser": UNetDenoiser}

__all__ = [
    "ARCHITECTURES",
    "Conditioning",
    "DenoiserBase",
    "MLPDenoiser",
    "UNetDenoiser",
    "check_denoiser_inputs",
    "denoiser_config",
    "drop_labels",
    "fourier_features",
]
