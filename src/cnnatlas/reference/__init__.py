"""A NumPy reference for backpropagation through a CNN — written to be read.

Each layer is a pair of functions, forward and backward, with its formula in the docstring:
conv2d (stride, padding, dilation, groups; the input gradient as the full convolution with the
flipped kernel, the weight gradient as a correlation), max/average/global pooling, batch norm
(training and inference), ReLU, tanh, linear, softmax cross-entropy. `NumpyLeNet5` puts them
together into a network that trains like the torch `lenet5` from the same weights.
"""

from .batchnorm import batch_norm, batch_norm_backward
from .conv import (
    conv2d,
    conv2d_backward,
    conv2d_backward_input,
    conv2d_backward_weight,
    correlate2d,
    flip_kernel,
    output_size,
    pad2d,
    unfold,
)
from .gradcheck import numerical_gradient, relative_error
from .layers import (
    linear,
    linear_backward,
    log_softmax,
    relu,
    relu_backward,
    softmax_cross_entropy,
    tanh,
    tanh_backward,
)
from .lenet import NumpyLeNet5
from .pooling import (
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool,
    global_avg_pool_backward,
    max_pool2d,
    max_pool2d_backward,
)

__all__ = [
    "NumpyLeNet5",
    "avg_pool2d",
    "avg_pool2d_backward",
    "batch_norm",
    "batch_norm_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "correlate2d",
    "flip_kernel",
    "global_avg_pool",
    "global_avg_pool_backward",
    "linear",
    "linear_backward",
    "log_softmax",
    "max_pool2d",
    "max_pool2d_backward",
    "numerical_gradient",
    "output_size",
    "pad2d",
    "relative_error",
    "relu",
    "relu_backward",
    "softmax_cross_entropy",
    "tanh",
    "tanh_backward",
    "unfold",
]
