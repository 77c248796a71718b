"""The NumPy reference: every layer's backward against finite differences and against torch
autograd, and a NumPy LeNet-5 that trains like the torch one from the same weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnnatlas
from cnnatlas import reference as ref
from cnnatlas.reference import numerical_gradient, relative_error

RNG = np.random.default_rng(0)
FD_TOL = 1e-6  # central differences with h = 1e-6 in float64
AD_TOL = 1e-12  # same arithmetic up to summation order


def t(a: np.ndarray, grad: bool = True) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


# -- convolution ----------------------------------------------------------------------------------

CONV_SETTINGS = [  # stride, padding, dilation, groups
    (1, 0, 1, 1),
    (1, 1, 1, 1),
    (2, 1, 1, 1),
    (1, 2, 2, 1),
    (2, 0, 1, 2),
    (3, 2, 2, 2),
    ((2, 1), (1, 0), (1, 2), 1),
    (1, 1, 1, 4),  # depthwise
]


@pytest.mark.parametrize("stride,padding,dilation,groups", CONV_SETTINGS)
def test_conv2d_matches_torch(stride, padding, dilation, groups):
    x, w, b = RNG.standard_normal((2, 4, 9, 8)), RNG.standard_normal((8, 4 // groups, 3, 3)), RNG.standard_normal(8)
    y = ref.conv2d(x, w, b, stride, padding, dilation, groups)
    xt, wt, bt = t(x), t(w), t(b)
    yt = F.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    assert y.shape == tuple(yt.shape)
    assert relative_error(y, yt.detach().numpy()) < AD_TOL
    dy = RNG.standard_normal(y.shape)
    yt.backward(torch.from_numpy(dy))
    dx, dw, db = ref.conv2d_backward(dy, x, w, stride, padding, dilation, groups)
    assert relative_error(dx, xt.grad.numpy()) < AD_TOL
    assert relative_error(dw, wt.grad.numpy()) < AD_TOL
    assert relative_error(db, bt.grad.numpy()) < AD_TOL


@pytest.mark.parametrize("stride,padding,dilation,groups", CONV_SETTINGS[:6])
def test_conv2d_backward_matches_finite_differences(stride, padding, dilation, groups):
    x, w, b = RNG.standard_normal((1, 2, 7, 6)), RNG.standard_normal((4, 2 // groups, 3, 3)), RNG.standard_normal(4)
    r = RNG.standard_normal(ref.conv2d(x, w, b, stride, padding, dilation, groups).shape)

    def loss() -> float:  # L = Σ r·y, so ∂L/∂y = r
        return float((ref.conv2d(x, w, b, stride, padding, dilation, groups) * r).sum())

    dx, dw, db = ref.conv2d_backward(r, x, w, stride, padding, dilation, groups)
    assert relative_error(dx, numerical_gradient(loss, x)) < FD_TOL
    assert relative_error(dw, numerical_gradient(loss, w)) < FD_TOL
    assert relative_error(db, numerical_gradient(loss, b)) < FD_TOL


def test_input_gradient_needs_the_flipped_kernel():
    x, w = RNG.standard_normal((1, 3, 8, 8)), RNG.standard_normal((5, 3, 3, 3))
    dy = RNG.standard_normal(ref.conv2d(x, w).shape)
    right = ref.conv2d_backward_input(dy, w, x.shape)
    wrong = ref.conv2d_backward_input(dy, w, x.shape, flip=False)
    assert relative_error(wrong, right) > 0.1


def test_flip_kernel_rotates_and_swaps_channels():
    w = RNG.standard_normal((6, 2, 3, 3))  # groups=2: C_out 6, C_in 4
    k = ref.flip_kernel(w, groups=2)
    assert k.shape == (4, 3, 3, 3)
    # input channel 3 (group 1, channel 1) reading output channel 4 (group 1, out index 1)
    assert np.array_equal(k[3, 1], w[4, 1, ::-1, ::-1])


@pytest.mark.parametrize("size,k,s,p,d", [(7, 3, 1, 0, 1), (224, 7, 2, 3, 1), (10, 3, 3, 2, 2), (5, 2, 2, 0, 1)])
def test_output_size_matches_torch(size, k, s, p, d):
    out = F.conv2d(torch.zeros(1, 1, size, size), torch.ones(1, 1, k, k), stride=s, padding=p, dilation=d)
    assert ref.output_size(size, k, s, p, d) == out.shape[-1]


# -- pooling --------------------------------------------------------------------------------------

POOLS = [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)]  # kernel, stride, padding


@pytest.mark.parametrize("k,s,p", POOLS)
def test_max_pool_matches_torch_and_finite_differences(k, s, p):
    x = RNG.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) / 10.0  # distinct values: one argmax per window
    y, argmax = ref.max_pool2d(x, k, s, p)
    xt = t(x)
    yt = F.max_pool2d(xt, k, s, p)
    assert np.array_equal(y, yt.detach().numpy())
    dy = RNG.standard_normal(y.shape)
    yt.backward(torch.from_numpy(dy))
    dx = ref.max_pool2d_backward(dy, argmax, x.shape, k, s, p)
    assert relative_error(dx, xt.grad.numpy()) < AD_TOL
    assert relative_error(dx, numerical_gradient(lambda: float((ref.max_pool2d(x, k, s, p)[0] * dy).sum()), x)) < FD_TOL


def test_max_pool_routes_to_the_argmax_only():
    x = RNG.standard_normal((1, 1, 4, 4))
    y, argmax = ref.max_pool2d(x, 2)
    dx = ref.max_pool2d_backward(np.ones_like(y), argmax, x.shape, 2)
    assert (dx != 0).sum() == 4  # one input per window
    assert np.array_equal(dx != 0, x == np.repeat(np.repeat(y, 2, 2), 2, 3))


@pytest.mark.parametrize("k,s,p", POOLS)
def test_avg_pool_matches_torch_and_finite_differences(k, s, p):
    x = RNG.standard_normal((2, 3, 7, 8))
    xt = t(x)
    yt = F.avg_pool2d(xt, k, s, p)
    y = ref.avg_pool2d(x, k, s, p)
    assert relative_error(y, yt.detach().numpy()) < AD_TOL
    dy = RNG.standard_normal(y.shape)
    yt.backward(torch.from_numpy(dy))
    dx = ref.avg_pool2d_backward(dy, x.shape, k, s, p)
    assert relative_error(dx, xt.grad.numpy()) < AD_TOL
    assert relative_error(dx, numerical_gradient(lambda: float((ref.avg_pool2d(x, k, s, p) * dy).sum()), x)) < FD_TOL


def test_avg_pool_gives_each_input_one_over_k_squared():
    dx = ref.avg_pool2d_backward(np.ones((1, 1, 2, 2)), (1, 1, 6, 6), 3)
    assert np.allclose(dx, 1 / 9)


def test_global_avg_pool():
    x = RNG.standard_normal((2, 3, 4, 5))
    xt = t(x)
    yt = F.adaptive_avg_pool2d(xt, 1).flatten(1)
    assert relative_error(ref.global_avg_pool(x), yt.detach().numpy()) < AD_TOL
    dy = RNG.standard_normal((2, 3))
    yt.backward(torch.from_numpy(dy))
    assert relative_error(ref.global_avg_pool_backward(dy, x.shape), xt.grad.numpy()) < AD_TOL


# -- batch norm -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 3)])
def test_batch_norm_training_matches_torch(shape):
    x = RNG.standard_normal(shape) * 3 + 1
    gamma, beta = RNG.standard_normal(3), RNG.standard_normal(3)
    rm, rv = RNG.standard_normal(3), RNG.random(3) + 0.5
    xt, gt, bt = t(x), t(gamma), t(beta)
    rmt, rvt = torch.tensor(rm), torch.tensor(rv)
    yt = F.batch_norm(xt, rmt, rvt, gt, bt, training=True, momentum=0.1, eps=1e-5)
    y, new_rm, new_rv = ref.batch_norm(x, gamma, beta, rm, rv, training=True)
    assert relative_error(y, yt.detach().numpy()) < AD_TOL
    assert relative_error(new_rm, rmt.numpy()) < AD_TOL  # torch updates its buffers in place
    assert relative_error(new_rv, rvt.numpy()) < AD_TOL
    dy = RNG.standard_normal(shape)
    yt.backward(torch.from_numpy(dy))
    dx, dgamma, dbeta = ref.batch_norm_backward(dy, x, gamma, training=True)
    assert relative_error(dx, xt.grad.numpy()) < 1e-10
    assert relative_error(dgamma, gt.grad.numpy()) < AD_TOL
    assert relative_error(dbeta, bt.grad.numpy()) < AD_TOL


def test_batch_norm_eval_matches_torch():
    x = RNG.standard_normal((4, 3, 5, 5))
    gamma, beta, rm, rv = RNG.standard_normal(3), RNG.standard_normal(3), RNG.standard_normal(3), RNG.random(3) + 0.5
    xt, gt = t(x), t(gamma)
    yt = F.batch_norm(xt, torch.tensor(rm), torch.tensor(rv), gt, t(beta), training=False)
    y, rm2, rv2 = ref.batch_norm(x, gamma, beta, rm, rv, training=False)
    assert relative_error(y, yt.detach().numpy()) < AD_TOL
    assert np.array_equal(rm2, rm) and np.array_equal(rv2, rv)
    dy = RNG.standard_normal(x.shape)
    yt.backward(torch.from_numpy(dy))
    dx, dgamma, _ = ref.batch_norm_backward(dy, x, gamma, training=False, running_mean=rm, running_var=rv)
    assert relative_error(dx, xt.grad.numpy()) < AD_TOL
    assert relative_error(dgamma, gt.grad.numpy()) < AD_TOL


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_backward_matches_finite_differences(training):
    x = RNG.standard_normal((3, 2, 3, 3)) * 2
    gamma, beta, rm, rv = RNG.standard_normal(2), RNG.standard_normal(2), RNG.standard_normal(2), RNG.random(2) + 0.5
    r = RNG.standard_normal(x.shape)

    def loss() -> float:
        return float((ref.batch_norm(x, gamma, beta, rm, rv, training)[0] * r).sum())

    dx, dgamma, dbeta = ref.batch_norm_backward(r, x, gamma, training, rm, rv)
    assert relative_error(dx, numerical_gradient(loss, x)) < FD_TOL
    assert relative_error(dgamma, numerical_gradient(loss, gamma)) < FD_TOL
    assert relative_error(dbeta, numerical_gradient(loss, beta)) < FD_TOL


def test_batch_norm_refuses_one_value_per_channel():
    with pytest.raises(ValueError, match="more than one value"):
        ref.batch_norm(np.ones((1, 3, 1, 1)), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), training=True)


# -- activations, linear, loss --------------------------------------------------------------------


def test_relu_and_tanh():
    x = RNG.standard_normal((3, 4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from ReLU's kink
    dy = RNG.standard_normal(x.shape)
    for fwd, bwd, torch_fn, uses_output in (
        (ref.relu, ref.relu_backward, torch.relu, False),
        (ref.tanh, ref.tanh_backward, torch.tanh, True),
    ):
        xt = t(x)
        yt = torch_fn(xt)
        yt.backward(torch.from_numpy(dy))
        y = fwd(x)
        dx = bwd(dy, y if uses_output else x)
        assert relative_error(y, yt.detach().numpy()) < AD_TOL
        assert relative_error(dx, xt.grad.numpy()) < AD_TOL
        assert relative_error(dx, numerical_gradient(lambda fwd=fwd: float((fwd(x) * dy).sum()), x)) < FD_TOL


def test_linear():
    x, w, b = RNG.standard_normal((5, 7)), RNG.standard_normal((3, 7)), RNG.standard_normal(3)
    xt, wt, bt = t(x), t(w), t(b)
    yt = F.linear(xt, wt, bt)
    dy = RNG.standard_normal((5, 3))
    yt.backward(torch.from_numpy(dy))
    dx, dw, db = ref.linear_backward(dy, x, w)
    assert relative_error(ref.linear(x, w, b), yt.detach().numpy()) < AD_TOL
    for mine, theirs, arr in ((dx, xt.grad, x), (dw, wt.grad, w), (db, bt.grad, b)):
        assert relative_error(mine, theirs.numpy()) < AD_TOL
        assert relative_error(mine, numerical_gradient(lambda: float((ref.linear(x, w, b) * dy).sum()), arr)) < FD_TOL


def test_softmax_cross_entropy():
    z, labels = RNG.standard_normal((6, 10)) * 5, RNG.integers(0, 10, 6)
    zt = t(z)
    lt = F.cross_entropy(zt, torch.from_numpy(labels))
    lt.backward()
    loss, dz = ref.softmax_cross_entropy(z, labels)
    assert abs(loss - lt.item()) < 1e-12
    assert relative_error(dz, zt.grad.numpy()) < AD_TOL
    assert relative_error(dz, numerical_gradient(lambda: ref.softmax_cross_entropy(z, labels)[0], z)) < FD_TOL
    assert math.isfinite(ref.softmax_cross_entropy(np.array([[1000.0, -1000.0]]), np.array([1]))[0])  # stable


# -- LeNet-5 in NumPy vs torch --------------------------------------------------------------------


def digits32() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits upsampled to 32×32 and standardised once, then given to both implementations."""
    from cnnatlas.claims._measure import digits

    x_tr, y_tr, x_te, y_te = digits(32)
    return x_tr.double().numpy(), y_tr.numpy(), x_te.double().numpy(), y_te.numpy()


def test_numpy_lenet_loads_every_torch_parameter():
    model = cnnatlas.create_model("lenet5")
    net = ref.NumpyLeNet5.from_torch(model)
    assert set(net.params) == set(model.state_dict())
    x = RNG.standard_normal((3, 1, 32, 32))
    with torch.no_grad():
        expected = model.double()(torch.from_numpy(x)).numpy()
    assert relative_error(net.forward(x), expected) < AD_TOL


def test_numpy_lenet_gradients_match_autograd():
    torch.manual_seed(1)
    model = cnnatlas.create_model("lenet5").double()
    net = ref.NumpyLeNet5.from_torch(model)
    x, labels = RNG.standard_normal((4, 1, 32, 32)), RNG.integers(0, 10, 4)
    F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(labels)).backward()
    _, grads = net.loss_and_grads(x, labels)
    for name, p in model.named_parameters():
        assert relative_error(grads[name], p.grad.numpy()) < 1e-10, name


def test_numpy_lenet_trains_like_torch_step_by_step():
    """Same weights, same batches, same SGD: the losses agree at every step to float64 rounding."""
    x_tr, y_tr, _, _ = digits32()
    torch.manual_seed(0)
    model = cnnatlas.create_model("lenet5").double()
    net = ref.NumpyLeNet5.from_torch(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    order = np.random.default_rng(0).permutation(len(x_tr))
    for step in range(8):
        idx = order[step * 32 : (step + 1) * 32]
        loss_t = F.cross_entropy(model(torch.from_numpy(x_tr[idx])), torch.from_numpy(y_tr[idx]))
        opt.zero_grad()
        loss_t.backward()
        opt.step()
        loss_n, grads = net.loss_and_grads(x_tr[idx], y_tr[idx])
        net.sgd_step(grads, lr=0.05, momentum=0.9)
        assert abs(loss_n - loss_t.item()) < 1e-10 * max(1.0, loss_n), f"step {step}"
    for name, p in model.named_parameters():  # and the weights they end with
        assert relative_error(net.params[name], p.detach().numpy()) < 1e-9, name


@pytest.mark.slow
def test_numpy_lenet_reaches_95_percent_on_digits():
    """Six epochs of SGD (batch 32, lr 0.05 on a cosine schedule, momentum 0.9) in NumPy alone."""
    from threadpoolctl import threadpool_limits

    x_tr, y_tr, x_te, y_te = digits32()
    torch.manual_seed(0)
    net = ref.NumpyLeNet5.from_torch(cnnatlas.create_model("lenet5"))
    rng = np.random.default_rng(0)
    epochs = 6
    with threadpool_limits(1):  # small matrices: one thread is faster, and the result reproducible
        for epoch in range(epochs):
            lr = 0.05 * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
            order = rng.permutation(len(x_tr))
            for i in range(0, len(order), 32):
                idx = order[i : i + 32]
                _, grads = net.loss_and_grads(x_tr[idx], y_tr[idx])
                net.sgd_step(grads, lr=lr, momentum=0.9)
        accuracy = (net.predict(x_te) == y_te).mean()
    assert accuracy >= 0.95, f"test accuracy {accuracy:.3f}"
