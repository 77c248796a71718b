"""The zoo. Importing a family module registers its models."""

from . import alexnet, densenet, efficientnet, inception, lenet, mobilenet, resnet, vgg  # noqa: F401
from . import audio, slowfast, video  # noqa: F401  (video and audio; after inception, which I3D inflates)
from . import segmentation  # noqa: F401  (after the classifiers it builds on)
from .alexnet import AlexNet
from .base import Classifier, FeatureInfo, count_params, smallest_input_size
from .lenet import LeNet5
from .vgg import VGG

__all__ = ["AlexNet", "Classifier", "FeatureInfo", "LeNet5", "VGG", "count_params", "smallest_input_size"]
