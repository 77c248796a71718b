"""The zoo. Importing a family module registers its models."""

from . import (  # noqa: F401  (importing each family registers its models)
    alexnet,
    audio,
    densenet,
    efficientnet,
    inception,
    lenet,
    mobilenet,
    resnet,
    segmentation,
    slowfast,
    vgg,
    video,
)
from .alexnet import AlexNet
from .base import Classifier, FeatureInfo, count_params, smallest_input_size
from .lenet import LeNet5
from .vgg import VGG

__all__ = ["AlexNet", "Classifier", "FeatureInfo", "LeNet5", "VGG", "count_params", "smallest_input_size"]
