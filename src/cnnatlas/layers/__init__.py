"""Building blocks shared by every model of the zoo."""

from .conv import ConvNormAct, conv_layer, same_padding
from .factories import ACT_NAMES, NORM_NAMES, get_act_layer, get_norm_layer

__all__ = [
    "ACT_NAMES",
    "NORM_NAMES",
    "ConvNormAct",
    "conv_layer",
    "get_act_layer",
    "get_norm_layer",
    "same_padding",
]
