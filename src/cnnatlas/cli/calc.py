"""`cnnatlas calc …`: the closed forms of the notes as calculators, one sub-command per formula."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from ..analysis import formulas as F
from ..errors import InvalidArgumentError
from .argtypes import MAX_INT, integer, number
from .console import print_json


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise InvalidArgumentError(f"{name}: expected whole numbers separated by commas; got {text!r}") from None
    if not values or any(not 0 <= v <= MAX_INT for v in values):
        raise InvalidArgumentError(
            f"{name}: expected whole numbers from 0 to {MAX_INT} separated by commas; got {text!r}"
        )
    return values


def _conv_params(a) -> dict[str, Any]:
    k = _ints(a.kernel, "--kernel")
    if len(k) > 1 and a.dims is not None and a.dims != len(k):
        raise InvalidArgumentError(
            f"--kernel {a.kernel} gives {len(k)} sizes, one per axis, but --dims is {a.dims}; "
            f"expected {a.dims} sizes or one"
        )
    dims = len(k) if len(k) > 1 else (a.dims or 2)
    value = F.conv_params(
        k[0] if len(k) == 1 else k, a.in_channels, a.out_channels, groups=a.groups, bias=not a.no_bias, dims=dims
    )
    return {"value": value, "formula": "(K^d·C_in/G + 1)·C_out" if not a.no_bias else "K^d·C_in/G·C_out"}


def _dense_params(a) -> dict[str, Any]:
    conv = F.conv_params(3, a.in_channels, a.out_channels, bias=False)
    value = F.dense_params(a.height, a.width, a.in_channels, a.out_channels)
    return {
        "value": value,
        "formula": "(H·W·C_in)·(H·W·C_out)",
        "conv3x3_params": conv,
        "ratio_to_conv3x3": value / conv,
    }


def _conv_output(a) -> dict[str, Any]:
    return {
        "value": F.conv_output_size(a.input, a.kernel, a.stride, a.padding, a.dilation),
        "formula": "floor((I + 2P − D·(K−1) − 1)/S) + 1",
    }


def _same_padding(a) -> dict[str, Any]:
    return {"value": F.same_padding(a.kernel, a.dilation), "formula": "P = D·(K−1)/2"}


def _conv_macs(a) -> dict[str, Any]:
    out = _ints(a.output, "--output")
    k = _ints(a.kernel, "--kernel")
    dims = len(out)
    value = F.conv_macs(
        out, k[0] if len(k) == 1 else k, a.in_channels, a.out_channels, groups=a.groups, batch=a.batch, dims=dims
    )
    return {"value": value, "flops": 2 * value, "formula": "N·H_out·W_out·C_out·K·K·C_in/G"}


def _stacked_rf(a) -> dict[str, Any]:
    return {"value": F.stacked_receptive_field(a.n, a.kernel), "formula": "n·(K−1) + 1"}


def _rf_stack(a) -> dict[str, Any]:
    layers = [_ints(layer, "--layer") for layer in a.layer]
    steps = F.receptive_field_stack(layers)
    return {
        "value": {"size": steps[-1].size, "stride": steps[-1].jump, "start": steps[-1].start},
        "steps": [
            {"layer": layer, "size": s.size, "stride": s.jump, "start": s.start} for layer, s in zip(layers, steps)
        ],
        "formula": "j_l = j_{l−1}·s_l; r_l = r_{l−1} + d_l(k_l−1)·j_{l−1}; "
        "c_l = c_{l−1} + (d_l(k_l−1)/2 − p_l)·j_{l−1}",
    }


def _comparison(c: F.Comparison, first: str, second: str) -> dict[str, Any]:
    return {first: c.first, second: c.second, "ratio": c.ratio, "saving": c.saving}


def _stacked_vs_single(a) -> dict[str, Any]:
    c = F.stacked_vs_single(a.channels, a.kernel, a.n)
    k_single = F.stacked_receptive_field(a.n, a.kernel)
    return {
        "value": _comparison(c, f"one_{k_single}x{k_single}", f"{a.n}_stacked_{a.kernel}x{a.kernel}"),
        "formula": f"{a.n}·{a.kernel}²·C² vs {k_single}²·C²",
    }


def _pointwise(a) -> dict[str, Any]:
    c = F.pointwise_vs_kxk(a.in_channels, a.out_channels, a.kernel, bias=not a.no_bias)
    return {"value": _comparison(c, f"conv{a.kernel}x{a.kernel}", "conv1x1"), "formula": "C_in·C_out (+C_out)"}


def _dilation(a) -> dict[str, Any]:
    return {
        "value": F.dilated_kernel_size(a.kernel, a.dilation),
        "weights": a.kernel**a.dims,
        "formula": "K_eff = K + (K−1)(D−1)",
    }


def _separable(a) -> dict[str, Any]:
    c = F.separable_vs_standard(a.kernel, a.in_channels, a.out_channels)
    return {
        "value": _comparison(c, "standard", "separable"),
        "closed_form_ratio": F.separable_ratio(a.kernel, a.out_channels),
        "formula": "(K²·C_in + C_in·C_out)/(K²·C_in·C_out) = 1/C_out + 1/K²",
    }


def _se(a) -> dict[str, Any]:
    return {
        "value": F.se_params(a.channels, a.reduction, bias=not a.no_bias),
        "approximation": 2 * a.channels**2 / a.reduction,
        "formula": "2·C²/r (+ C/r + C biases)",
    }


def _densenet(a) -> dict[str, Any]:
    return {"value": F.densenet_input_channels(a.initial, a.growth, a.layer), "formula": "k_0 + k·(l−1)"}


def _compound(a) -> dict[str, Any]:
    s = F.compound_scaling(a.phi, a.alpha, a.beta, a.gamma)
    return {
        "value": {"depth": s.depth, "width": s.width, "resolution": s.resolution, "flops": s.flops},
        "formula": "d = α^φ, w = β^φ, r = γ^φ; FLOPs × (α·β²·γ²)^φ",
    }


def _inflation(a) -> dict[str, Any]:
    c = F.inflation_cost(a.time, a.kernel, a.in_channels, a.out_channels)
    return {"value": _comparison(c, "conv2d", "conv3d"), "formula": "k_t·k·k·C_in·C_out vs k·k·C_in·C_out: k_t×"}


def _vit(a) -> dict[str, Any]:
    return {"value": F.vit_tokens(a.image, a.patch, not a.no_cls), "formula": "(H/P)² + 1"}


# What each argument is, named by the symbol the formulas use; an argument's own help, where it has one, wins.
ARG_HELP = {
    "kernel": "K, the kernel size",
    "in_channels": "C_in, input channels",
    "out_channels": "C_out, output channels",
    "channels": "C, channels",
    "groups": "G, groups",
    "no_bias": "leave out the bias",
    "dims": "spatial dimensions: 1, 2 or 3",
    "height": "H, the map's height",
    "width": "W, the map's width",
    "input": "I, the input's size along one axis",
    "stride": "S, the stride",
    "padding": "P, the padding on each side",
    "dilation": "D, the dilation",
    "batch": "N, the batch size",
    "n": "n, how many convs are stacked",
    "reduction": "r, the reduction ratio",
    "initial": "k_0, the channels entering the dense block",
    "growth": "k, the growth rate",
    "layer": "l, the layer's place in the block (1 is the first)",
    "phi": "φ, the compound coefficient",
    "alpha": "α, the depth base",
    "beta": "β, the width base",
    "gamma": "γ, the resolution base",
    "time": "k_t, the temporal kernel size",
    "image": "the image's side in pixels",
    "patch": "P, the patch's side in pixels",
    "no_cls": "leave out the CLS token",
}


class _SymbolHelp:
    """A formula's parser whose arguments without help of their own are described by `ARG_HELP`, with
    their default."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser

    def add_argument(self, *flags: str, **kwargs: Any) -> argparse.Action:
        if "help" not in kwargs:
            dest = kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")
            shown_default = kwargs.get("default") is not None and kwargs.get("action") != "store_true"
            kwargs["help"] = ARG_HELP[dest] + (" (default %(default)s)" if shown_default else "")
        return self.parser.add_argument(*flags, **kwargs)


def _ch(p, *names: str) -> None:
    for n in names:
        p.add_argument(f"--{n.replace('_', '-')}", dest=n, type=integer(1), required=True)


COMMANDS: list[tuple[str, str, Callable, Callable]] = []


def _cmd(name: str, help_: str, fn: Callable):
    def deco(setup: Callable) -> Callable:
        COMMANDS.append((name, help_, fn, setup))
        return setup

    return deco


@_cmd("conv-params", "parameters of a conv layer: (K·K·C_in/G + 1)·C_out", _conv_params)
def _(p):
    p.add_argument("--kernel", default="3", help="K, or K per axis as 3,3 (default 3)")
    _ch(p, "in_channels", "out_channels")
    p.add_argument("--groups", type=integer(1), default=1)
    p.add_argument("--no-bias", action="store_true")
    p.add_argument(
        "--dims", type=integer(1, 3), help="spatial dimensions (1, 2, 3; default 2, or one per --kernel size)"
    )


@_cmd("dense-params", "a fully connected layer between two H×W×C maps, against a 3×3 conv", _dense_params)
def _(p):
    _ch(p, "height", "width", "in_channels", "out_channels")


@_cmd("conv-output", "output size: floor((I + 2P − D(K−1) − 1)/S) + 1", _conv_output)
def _(p):
    _ch(p, "input", "kernel")
    p.add_argument("--stride", type=integer(1), default=1)
    p.add_argument("--padding", type=integer(0), default=0)
    p.add_argument("--dilation", type=integer(1), default=1)


@_cmd("same-padding", "padding that keeps the size at stride 1: D(K−1)/2", _same_padding)
def _(p):
    _ch(p, "kernel")
    p.add_argument("--dilation", type=integer(1), default=1)


@_cmd("conv-macs", "multiply–accumulates of a conv: H_out·W_out·C_out·K²·C_in/G", _conv_macs)
def _(p):
    p.add_argument("--output", required=True, help="output spatial size, e.g. 112,112")
    p.add_argument("--kernel", default="3", help="K, or K per axis as 3,3 (default 3)")
    _ch(p, "in_channels", "out_channels")
    p.add_argument("--groups", type=integer(1), default=1)
    p.add_argument("--batch", type=integer(1), default=1)


@_cmd("stacked-rf", "receptive field of n stacked K×K stride-1 convs: n(K−1) + 1", _stacked_rf)
def _(p):
    p.add_argument("--n", type=integer(0), required=True)
    p.add_argument("--kernel", type=integer(1), default=3)


@_cmd("rf-stack", "receptive field through a stack of layers (the general recurrence)", _rf_stack)
def _(p):
    p.add_argument("--layer", action="append", required=True, help="k,s[,p[,d]] — repeat once per layer, in order")


@_cmd(
    "stacked-vs-single",
    "n stacked K×K convs against one conv with the same field (two 3×3 vs one 5×5)",
    _stacked_vs_single,
)
def _(p):
    _ch(p, "channels")
    p.add_argument("--kernel", type=integer(1), default=3)
    p.add_argument("--n", type=integer(1), default=2)


@_cmd("pointwise", "1×1 conv cost against a K×K conv at the same widths", _pointwise)
def _(p):
    _ch(p, "in_channels", "out_channels")
    p.add_argument("--kernel", type=integer(1), default=3)
    p.add_argument("--no-bias", action="store_true")


@_cmd("dilation", "effective kernel of a dilated conv: K + (K−1)(D−1)", _dilation)
def _(p):
    _ch(p, "kernel", "dilation")
    p.add_argument("--dims", type=integer(1, 3), default=2)


@_cmd("separable", "depthwise-separable against standard conv: ratio 1/C_out + 1/K²", _separable)
def _(p):
    _ch(p, "in_channels", "out_channels")
    p.add_argument("--kernel", type=integer(1), default=3)


@_cmd("se", "squeeze-and-excitation parameters: ≈ 2C²/r", _se)
def _(p):
    _ch(p, "channels")
    p.add_argument("--reduction", type=integer(1), default=16)
    p.add_argument("--no-bias", action="store_true")


@_cmd("densenet-channels", "input channels of layer l of a dense block: k_0 + k(l−1)", _densenet)
def _(p):
    _ch(p, "initial", "growth", "layer")


@_cmd("compound-scaling", "EfficientNet depth/width/resolution multipliers and FLOPs factor at φ", _compound)
def _(p):
    p.add_argument("--phi", type=number(), required=True)
    p.add_argument("--alpha", type=number(1), default=1.2)
    p.add_argument("--beta", type=number(1), default=1.1)
    p.add_argument("--gamma", type=number(1), default=1.15)


@_cmd("inflation", "cost of a k_t×k×k 3D conv against the k×k 2D conv it inflates", _inflation)
def _(p):
    _ch(p, "time", "kernel", "in_channels", "out_channels")


@_cmd("vit-tokens", "tokens of a ViT: (H/P)² patches + 1 CLS", _vit)
def _(p):
    _ch(p, "image", "patch")
    p.add_argument("--no-cls", action="store_true")


def _show(name: str, result: dict[str, Any]) -> str:
    value = result["value"]
    if isinstance(value, dict):
        body = ", ".join(f"{k} = {_num(v)}" for k, v in value.items())
    else:
        body = _num(value)
    extra = ", ".join(f"{k} = {_num(v)}" for k, v in result.items() if k not in ("value", "formula", "steps"))
    lines = [f"{name}: {body}" + (f" ({extra})" if extra else ""), f"  formula: {result['formula']}"]
    for s in result.get("steps", []):
        lines.append(
            f"  after k,s,p,d = {','.join(map(str, s['layer']))}: size {_num(s['size'])}, "
            f"stride {_num(s['stride'])}, start {_num(s['start'])}"
        )
    return "\n".join(lines)


def _num(v: Any) -> str:
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def add_parser(sub) -> None:
    p = sub.add_parser("calc", help="the formulas of the notes as calculators (conv params, RF, separable, SE, …)")
    p.add_argument("--json", action="store_true", help="print JSON")
    csub = p.add_subparsers(dest="formula", metavar="FORMULA", parser_class=type(p))
    for name, help_, fn, setup in COMMANDS:
        q = csub.add_parser(name, help=help_)
        q.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        setup(_SymbolHelp(q))
        q.set_defaults(run=_runner(name, fn))
    p.set_defaults(run=_no_formula)


def _no_formula(args) -> int:
    raise InvalidArgumentError(
        f"calc needs a FORMULA: {', '.join(name for name, *_ in COMMANDS)} (see 'cnnatlas calc --help')"
    )


def _runner(name: str, fn: Callable) -> Callable:
    def run(args) -> int:
        result = fn(args)
        if args.json:
            print_json({"formula_name": name, **result})
        else:
            print(_show(name, result))
        return 0

    return run
