"""cnnatlas — the classic convolutional networks, an analyser for any PyTorch model, and the
claims of the textbook measured."""

from .analysis import Report, analyze, effective_receptive_field
from .errors import (
    CnnAtlasError,
    InputShapeError,
    InvalidArgumentError,
    MissingDependencyError,
    UnavailableError,
    UnknownModelError,
    WeightsError,
)
from .inflate import inflate
from .models.efficientnet import compound_scale
from .optimize import optimize
from .registry import get_entry, list_models, register_model
from .version import __version__
from .weights import load_torchvision_weights
from .weights_timm import load_timm_weights
from .zoo import create_model, model_info

__all__ = [
    "CnnAtlasError",
    "InputShapeError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "Report",
    "UnavailableError",
    "UnknownModelError",
    "WeightsError",
    "__version__",
    "analyze",
    "compound_scale",
    "create_model",
    "effective_receptive_field",
    "get_entry",
    "inflate",
    "list_models",
    "load_timm_weights",
    "load_torchvision_weights",
    "model_info",
    "optimize",
    "register_model",
]
