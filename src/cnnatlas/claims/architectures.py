"""Claims about the design of named architectures: Inception's 1×1 bottlenecks, DenseNet's input
widths, the cost of squeeze-and-excitation, EfficientNet's compound scaling and ViT's tokens.
FORMULAS.md §DenseNet, §Squeeze-and-excitation, §EfficientNet compound scaling, worked examples.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..layers import DenseBlock, DenseLayer, InceptionModule
from ..registry import get_entry
from ..zoo import create_model
from ._measure import count_macs, count_params
from .base import Measurement, claim, require_models

INCEPTION_3A = dict(in_channels=192, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32)


def conv_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


@claim(
    "inception-bottleneck",
    "Placing 1×1 reductions before the 3×3 and 5×5 convs of an Inception module cuts its weights and "
    "multiply–accumulates several-fold.",
)
def inception_bottleneck() -> Measurement:
    reduced = InceptionModule(**INCEPTION_3A, large_kernel_size=5)
    naive = InceptionModule(**INCEPTION_3A, large_kernel_size=5, reduce=False)
    shape = (1, 192, 28, 28)
    macs_r, how = count_macs(reduced, shape)
    macs_n, _ = count_macs(naive, shape)
    w_r, w_n = conv_weights(reduced), conv_weights(naive)
    return Measurement(
        measured=f"inception (3a) at 28×28: {w_r:,} conv weights and {macs_r / 1e6:.0f}M MACs with the 1×1 reductions, "
        f"{w_n:,} and {macs_n / 1e6:.0f}M without ({w_n / w_r:.1f}× and {macs_n / macs_r:.1f}×)",
        expected="with reductions ≈ 159K weights and 128M ops (GoogLeNet paper, Table 1); without: several times more",
        passed=w_n > 2 * w_r and macs_n > 2 * macs_r and abs(macs_r / 128e6 - 1) < 0.05 and abs(w_r / 159e3 - 1) < 0.05,
        conditions="cnnatlas InceptionModule(192 → 64 | 96→128 | 16→32 (5×5) | pool→32), reduce=True vs the paper's "
        f"naive module (reduce=False); MACs by {how}; the paper's figures round and leave out batch norm",
        values={"weights_reduced": w_r, "weights_naive": w_n, "macs_reduced": macs_r, "macs_naive": macs_n},
    )


@claim(
    "dense-channels",
    "In a dense block with growth rate k, layer l receives k₀ + k(l − 1) input channels.",
    needs=("densenet121",),
)
def dense_channels() -> Measurement:
    require_models("densenet121")

    with torch.device("meta"):
        model = create_model("densenet121")
    seen: dict[str, list[int]] = {}
    hooks = []
    for name, block in model.named_modules():
        if isinstance(block, DenseBlock):
            seen[name] = []
            hooks.append(block.register_forward_pre_hook(lambda m, inp, key=name: seen[key].append(inp[0].shape[1])))
            for layer in block.children():
                if isinstance(layer, DenseLayer):
                    hooks.append(
                        layer.register_forward_pre_hook(lambda m, inp, key=name: seen[key].append(inp[0].shape[1]))
                    )
    with torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    for h in hooks:
        h.remove()
    k, rows, ok = 32, [], True
    for name, widths in seen.items():
        k0, layers = widths[0], widths[1:]
        expected = [k0 + k * (i - 1) for i in range(1, len(layers) + 1)]
        ok = ok and layers == expected
        rows.append({"block": name, "k0": k0, "layers": len(layers), "inputs": layers, "formula": expected})
    ok = ok and [r["layers"] for r in rows] == [6, 12, 24, 16] and [r["k0"] for r in rows] == [64, 128, 256, 512]
    return Measurement(
        measured="; ".join(
            f"block {i + 1}: k₀ {r['k0']}, inputs {r['inputs'][0]}…{r['inputs'][-1]} over {r['layers']} layers"
            for i, r in enumerate(rows)
        ),
        expected="k₀ + 32(l − 1): 64…224, 128…480, 256…992, 512…992 (layers 6, 12, 24, 16)",
        passed=ok,
        conditions="cnnatlas densenet121 (k = 32) on the meta device at 224×224; input widths read by hooks on every "
        "dense layer",
        values={"blocks": rows},
    )


@claim(
    "se-cost",
    "Squeeze-and-excitation adds about 2C²/r parameters per block (≈ 10% for ResNet-50) and almost no "
    "multiply–accumulates.",
    needs=("resnet50", "seresnet50"),
)
def se_cost() -> Measurement:
    require_models("resnet50", "seresnet50")
    with torch.device("meta"):
        base, se = create_model("resnet50"), create_model("seresnet50")
    r, widths = 16, [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3  # C of each bottleneck block's output
    formula = sum(2 * c * c // r for c in widths)
    with_biases = formula + sum(c // r + c for c in widths)
    extra = count_params(se) - count_params(base)
    macs_base, how = count_macs(base, (1, 3, 224, 224))
    macs_se, _ = count_macs(se, (1, 3, 224, 224))
    return Measurement(
        measured=f"extra parameters {extra:,} (+{extra / count_params(base):.1%}); extra MACs {macs_se - macs_base:,} "
        f"(+{(macs_se - macs_base) / macs_base:.2%})",
        expected=f"Σ 2C²/r = {formula:,} ({with_biases:,} with the FC biases); SENet: ~2.5M parameters, +0.26% GFLOPs",
        passed=abs(extra / formula - 1) < 0.01 and 0 < macs_se - macs_base < 0.01 * macs_base,
        conditions=f"cnnatlas seresnet50 vs resnet50 (r = 16) on the meta device; MACs by {how} at 224×224",
        values={
            "extra_params": extra,
            "formula": formula,
            "formula_with_biases": with_biases,
            "macs_resnet50": macs_base,
            "macs_seresnet50": macs_se,
        },
    )


@claim(
    "compound-scaling",
    "EfficientNet's compound scaling grows MACs by about 2× per step of φ (α·β²·γ² ≈ 2), across B0…B7.",
    needs=tuple(f"efficientnet_b{i}" for i in range(8)),
)
def compound_scaling() -> Measurement:
    names = [f"efficientnet_b{i}" for i in range(8)]
    require_models(*names)
    macs, how = [], ""
    for name in names:
        with torch.device("meta"):
            model = create_model(name)
        m, how = count_macs(model, (1, *get_entry(name).input_size))
        macs.append(m)
    phi = np.arange(8)
    ratios = [m / macs[0] for m in macs]
    slope = float(np.polyfit(phi, np.log2(ratios), 1)[0])  # log2 of the growth per unit φ
    factor = 2**slope
    abg = 1.2 * 1.1**2 * 1.15**2
    return Measurement(
        measured=f"MACs {' '.join(f'{m / 1e9:.2f}' for m in macs)} G; B_φ/B0 "
        + ", ".join(f"{r:.1f}" for r in ratios)
        + f"; fitted growth {factor:.2f}× per φ",
        expected=f"2^φ: {', '.join(str(2 ** int(p)) for p in phi)}; growth ≈ 2× per φ (α·β²·γ² = {abg:.2f})",
        passed=abs(factor - 2) < 0.2,
        conditions=f"cnnatlas efficientnet_b0…b7 at their own resolutions (224…600) on the meta device; MACs by {how}; "
        "B1–B7 use the official width/depth/resolution table, which rounds the α/β/γ rule",
        values={"macs": dict(zip(names, macs)), "ratios": ratios, "growth_per_phi": factor, "alpha_beta2_gamma2": abg},
    )


@claim("vit-tokens", "ViT-B/16 at 224×224 sees (224/16)² = 196 patches plus one CLS token: 197 tokens.")
def vit_tokens() -> Measurement:
    patch_embed = nn.Conv2d(3, 768, kernel_size=16, stride=16)
    with torch.no_grad():
        patches = patch_embed(torch.randn(1, 3, 224, 224)).flatten(2).transpose(1, 2)  # (1, 196, 768)
    cls = torch.zeros(1, 1, 768)
    tokens = torch.cat([cls, patches], 1).shape[1]
    tv_tokens, tv_note = None, "torchvision not checked"
    try:
        import torchvision

        with torch.device("meta"):
            vit = torchvision.models.vit_b_16()
            seq = vit._process_input(torch.empty(1, 3, 224, 224))
            tv_tokens = torch.cat([vit.class_token.expand(1, -1, -1), seq], 1).shape[1]
        tv_note = f"torchvision vit_b_16: {tv_tokens}"
    except Exception as err:  # a torchvision without ViT, or a changed private API
        tv_note = f"torchvision vit_b_16 not checked ({type(err).__name__})"
    ok = patches.shape[1] == 196 and tokens == 197 and tv_tokens in (None, 197)
    return Measurement(
        measured=f"patch embedding (16×16 conv, stride 16) on 224×224: {patches.shape[1]} patches of "
        f"{patches.shape[2]}, {tokens} tokens with CLS; {tv_note}",
        expected="196 patches, 197 tokens",
        passed=ok,
        conditions="nn.Conv2d(3, 768, 16, stride=16) on a 1×3×224×224 input; torchvision's vit_b_16 input processing "
        "on the meta device",
        values={"patches": patches.shape[1], "tokens": tokens, "torchvision_tokens": tv_tokens},
    )
