"""SlowFast — Feichtenhofer, Fan, Malik & He, "SlowFast Networks for Video Recognition", ICCV 2019.

Two ResNet-50 pathways read the same clip at two frame rates. The Slow pathway sees every τ-th
frame with full width (semantics: what is there); the Fast pathway sees α times more frames
(every τ/α-th) with β times the channels (motion: how it moves), so it costs about 20% of the total.
After the stem and after res2, res3 and res4, a lateral connection fuses Fast into Slow: a
time-strided conv (kernel k_t×1×1, stride α in time, 2βC channels) maps the Fast features onto the
Slow frames, and they are concatenated to the Slow features. Only Slow's res4–res5 and all of Fast
use temporal kernels (3×1×1 in the first 1×1 of each bottleneck; Fast's stem is 5×7×7): the paper's
finding that early temporal convolution hurts the slow, semantic stream.

Configurations (PySlowFast, `configs/Kinetics/{c2/SLOWFAST_4x16_R50, SLOWFAST_8x8_R50}.yaml`):
"4x16" α = 8, β = 1/8, fusion kernel 5; "8x8" α = 4, β = 1/8, fusion kernel 7. Both take a 32-frame
clip (T×τ = 64 frames sampled every 2nd); the Slow pathway takes every α-th of those frames.
Heads as PyTorchVideo: global average of each pathway, concatenation, dropout 0.5, FC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InvalidArgumentError
from ..layers import ConvNormAct
from ..layers.checks import check_choice, check_int, check_rate
from ..registry import register_model
from .base import Classifier, FeatureInfo, init_weights


@dataclass(frozen=True)
class SlowFastSpec:
    """One published configuration: T×τ of the Slow pathway and the SlowFast ratios."""

    alpha: int  # α: Fast frames per Slow frame
    beta_inv: int  # 1/β: Slow channels per Fast channel
    fusion_kernel: int  # k_t of the lateral time-strided conv
    fusion_channel_ratio: int = 2  # the lateral conv outputs ratio·(Fast channels)


SLOWFAST_CONFIGS = {"4x16": SlowFastSpec(8, 8, 5), "8x8": SlowFastSpec(4, 8, 7)}

# ResNet-50 stages: (blocks, inner width of the Slow pathway, spatial stride, Slow temporal kernel of
# the first 1×1); Fast uses the temporal kernel 3 everywhere (NUM_BLOCK_TEMP_KERNEL, the paper's Table 1).
R50_STAGES = ((3, 64, 1, 1), (4, 128, 2, 1), (6, 256, 2, 3), (3, 512, 2, 3))


class VideoBottleneck(nn.Module):
    """k_t×1×1 reduce → 1×3×3 (spatial stride) → 1×1×1 expand (×4), added to the input:
    (N, C_in, T, H, W) → (N, 4C, T, H/s, W/s). Time is never strided inside a pathway."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, time_kernel: int = 1) -> None:
        super().__init__()
        out = 4 * channels
        self.conv1 = ConvNormAct(in_channels, channels, (time_kernel, 1, 1), dims=3)
        self.conv2 = ConvNormAct(channels, channels, (1, 3, 3), (1, stride, stride), dims=3)
        self.conv3 = ConvNormAct(channels, out, 1, dims=3, act_layer=None)
        self.shortcut = (
            ConvNormAct(in_channels, out, 1, (1, stride, stride), dims=3, act_layer=None)
            if stride != 1 or in_channels != out
            else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def make_stage(blocks: int, in_channels: int, channels: int, stride: int, time_kernel: int) -> nn.Sequential:
    return nn.Sequential(
        *[
            VideoBottleneck(in_channels if i == 0 else 4 * channels, channels, stride if i == 0 else 1, time_kernel)
            for i in range(blocks)
        ]
    )


class FuseFastToSlow(nn.Module):
    """Lateral connection: Slow ← concat(Slow, ReLU(BN(conv_{k×1×1, stride α×1×1}(Fast)))).
    The time-strided conv turns the αT Fast frames into the T Slow frames."""

    def __init__(self, fast_channels: int, ratio: int, kernel: int, alpha: int) -> None:
        super().__init__()
        self.conv = ConvNormAct(
            fast_channels, fast_channels * ratio, (kernel, 1, 1), (alpha, 1, 1), padding=(kernel // 2, 0, 0), dims=3
        )
        self.out_channels = fast_channels * ratio

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return torch.cat([slow, self.conv(fast)], 1)


class SlowFast(Classifier):
    """SlowFast R50: one clip (N, C, αT, H, W) in; the Slow pathway takes every α-th frame, the Fast
    pathway all of them at β times the width, with lateral fusions Fast → Slow after the stem, res2,
    res3 and res4 (`config` "4x16": α = 8, or "8x8": α = 4; `alpha`, `beta_inv` and
    `fusion_kernel_size` override it)."""

    dims = 3

    def __init__(
        self,
        num_classes: int = 400,
        in_channels: int = 3,
        config: str = "4x16",
        alpha: int | None = None,
        beta_inv: int | None = None,
        fusion_kernel_size: int | None = None,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__(num_classes, in_channels)
        check_choice("SlowFast", "config", config, tuple(SLOWFAST_CONFIGS))
        check_rate("SlowFast", "drop_rate", drop_rate)
        spec = SLOWFAST_CONFIGS[config]
        alpha = spec.alpha if alpha is None else alpha
        beta_inv = spec.beta_inv if beta_inv is None else beta_inv
        kernel = spec.fusion_kernel if fusion_kernel_size is None else fusion_kernel_size
        for name, value in (("alpha", alpha), ("beta_inv", beta_inv), ("fusion_kernel_size", kernel)):
            check_int("SlowFast", name, value)
        if 64 % beta_inv:
            raise InvalidArgumentError(f"SlowFast: beta_inv must divide the stem width 64; got {beta_inv}")
        self.alpha, self.beta_inv, self.config = alpha, beta_inv, config
        ratio = spec.fusion_channel_ratio
        fast_w = 64 // beta_inv

        self.slow_stem = nn.Sequential(
            ConvNormAct(in_channels, 64, (1, 7, 7), (1, 2, 2), dims=3), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        )
        self.fast_stem = nn.Sequential(
            ConvNormAct(in_channels, fast_w, (5, 7, 7), (1, 2, 2), dims=3),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        slow_c, fast_c = 64, fast_w
        fusions, slow_stages, fast_stages = [FuseFastToSlow(fast_c, ratio, kernel, alpha)], [], []
        self.feature_info.append(FeatureInfo("slow_stem", slow_c, 4))
        reduction = 4
        for i, (blocks, width, stride, slow_kt) in enumerate(R50_STAGES):
            slow_stages.append(make_stage(blocks, slow_c + fusions[-1].out_channels, width, stride, slow_kt))
            fast_stages.append(make_stage(blocks, fast_c, width // beta_inv, stride, 3))
            slow_c, fast_c, reduction = 4 * width, 4 * width // beta_inv, reduction * stride
            self.feature_info.append(FeatureInfo(f"slow_stages.{i}", slow_c, reduction))
            if i < len(R50_STAGES) - 1:
                fusions.append(FuseFastToSlow(fast_c, ratio, kernel, alpha))
        self.slow_stages, self.fast_stages = nn.ModuleList(slow_stages), nn.ModuleList(fast_stages)
        self.fusions = nn.ModuleList(fusions)
        self.add_head(slow_c + fast_c, drop_rate)  # the pool runs in forward_features, on each pathway
        init_weights(self)

    def pathways(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Slow, Fast) feature maps of the last stage: (N, 2048, T/α, H/32, W/32), (N, 2048β, T, …)."""
        slow, fast = self.slow_stem(x[:, :, :: self.alpha]), self.fast_stem(x)
        slow = self.fusions[0](slow, fast)
        for i, (slow_stage, fast_stage) in enumerate(zip(self.slow_stages, self.fast_stages)):
            slow, fast = slow_stage(slow), fast_stage(fast)
            if i + 1 < len(self.fusions):
                slow = self.fusions[i + 1](slow, fast)
        return slow, fast

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Both pathways pooled over time and space and concatenated: (N, 2048 + 2048β, 1, 1, 1)."""
        slow, fast = self.pathways(x)
        return torch.cat([self.pool(slow), self.pool(fast)], 1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x.flatten(1))
        return x if pre_logits else self.fc(x)

    def remap_pytorchvideo_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """PyTorchVideo's `create_slowfast` names (its model zoo's checkpoints; PySlowFast's wrapper adds
        "model.") → ours, in our order: blocks.0 is the two stems and the first fusion, blocks.1–4 the
        stages of each pathway and the fusion after them, blocks.6.proj the FC. Unknown names are kept as
        they are, for the loader to report."""
        renamed = {_pytorchvideo_name(key.removeprefix("model.")): v for key, v in state_dict.items()}
        ours = [k for k in self.state_dict() if k in renamed]
        return {**{k: renamed[k] for k in ours}, **{k: v for k, v in renamed.items() if k not in ours}}


# PyTorchVideo's parts of a residual block → ours (ResBlock's branch1 is our shortcut, branch2 the bottleneck).
_PTV_BLOCK_PARTS = {
    "branch1_conv": "shortcut.conv",
    "branch1_norm": "shortcut.norm",
    "branch2.conv_a": "conv1.conv",
    "branch2.norm_a": "conv1.norm",
    "branch2.conv_b": "conv2.conv",
    "branch2.norm_b": "conv2.norm",
    "branch2.conv_c": "conv3.conv",
    "branch2.norm_c": "conv3.norm",
}
_PTV_NAME = re.compile(
    r"blocks\.(?P<block>\d+)\.(?:multipathway_blocks\.(?P<path>[01])\.(?:res_blocks\.(?P<res>\d+)\."
    r"(?P<part>branch1_conv|branch1_norm|branch2\.(?:conv|norm)_[abc])|(?P<stem>conv|norm))"
    r"|multipathway_fusion\.(?P<fusion>conv_fast_to_slow|norm)|proj)\.(?P<tensor>\w+)"
)


def _pytorchvideo_name(key: str) -> str:
    """One PyTorchVideo SlowFast state-dict name as ours (unchanged when it is not one of theirs)."""
    m = _PTV_NAME.fullmatch(key)
    if m is None:
        return key
    block, tensor = int(m["block"]), m["tensor"]
    pathway = "slow" if m["path"] == "0" else "fast"
    if m["stem"]:
        return f"{pathway}_stem.0.{m['stem']}.{tensor}" if block == 0 else key
    if m["part"]:
        return f"{pathway}_stages.{block - 1}.{m['res']}.{_PTV_BLOCK_PARTS[m['part']]}.{tensor}"
    if m["fusion"]:
        return f"fusions.{block}.conv.{'conv' if m['fusion'] == 'conv_fast_to_slow' else 'norm'}.{tensor}"
    return f"fc.{tensor}"


register_model("slowfast_r50", SlowFast, family="slowfast", input_size=(3, 32, 224, 224))
