"""Building blocks shared by every model of the zoo."""

from .conv import ConvNormAct, conv_layer, same_padding
from .drop_path import DropPath, drop_path
from .factories import ACT_NAMES, NORM_NAMES, get_act_layer, get_norm_layer
from .squeeze_excite import SqueezeExcite

__all__ = [
    "ACT_NAMES",
    "NORM_NAMES",
    "ConvNormAct",
    "DropPath",
    "SqueezeExcite",
    "conv_layer",
    "drop_path",
    "get_act_layer",
    "get_norm_layer",
    "same_padding",
]
