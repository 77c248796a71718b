"""Building blocks shared by every model of the zoo."""

from .conv import ConvNormAct, conv_layer, same_padding
from .dense import DenseBlock, DenseLayer, Transition
from .drop_path import DropPath, drop_path
from .factories import ACT_NAMES, NORM_NAMES, get_act_layer, get_norm_layer
from .inception import (
    FactorisedFork,
    GoogLeNetAux,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    InceptionModule,
    InceptionV3Aux,
)
from .mobile import InvertedResidual, SeparableConv, make_divisible
from .residual import BasicBlock, Bottleneck, ZeroPadShortcut
from .segmentation import ASPP, ASPPPooling, DeepLabHead, DeepLabV3PlusHead, FCNHead
from .squeeze_excite import SqueezeExcite

__all__ = [
    "ACT_NAMES",
    "ASPP",
    "ASPPPooling",
    "NORM_NAMES",
    "BasicBlock",
    "Bottleneck",
    "ConvNormAct",
    "DeepLabHead",
    "DeepLabV3PlusHead",
    "DenseBlock",
    "DenseLayer",
    "DropPath",
    "FCNHead",
    "FactorisedFork",
    "GoogLeNetAux",
    "InceptionA",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionModule",
    "InceptionV3Aux",
    "InvertedResidual",
    "SeparableConv",
    "SqueezeExcite",
    "Transition",
    "ZeroPadShortcut",
    "conv_layer",
    "drop_path",
    "get_act_layer",
    "get_norm_layer",
    "make_divisible",
    "same_padding",
]
