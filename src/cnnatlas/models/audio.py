"""Audio CNNs: inputs (N, C, L), a waveform of L samples per channel.

* WaveNet — van den Oord et al., "WaveNet: A Generative Model for Raw Audio", 2016. Stacks of
  *causal* 1-D convolutions (output t sees only inputs ≤ t: the input is padded on the left only)
  whose dilation doubles every layer, 1, 2, 4, …, 512, and the stack repeats. With kernel k a stack
  of dilations d_i sees 1 + (k − 1)·Σ d_i samples — 1,024 for k = 2 and 1 … 512 (§2.1, "each
  1, 2, 4, …, 512 block has receptive field of size 1024") — from 10 layers of 2 taps each, where
  plain convs would need 1,023 layers. Each layer is a gated unit z = tanh(W_f ∗ x) ⊙ σ(W_g ∗ x)
  (§2.3) with a 1×1 residual connection back to the stream and a 1×1 skip connection to the output
  (§2.4); the sum of the skips goes through ReLU → 1×1 → ReLU. For classification (§3.4, speech)
  the causal features are averaged over time and a linear layer gives the logits.
* Spectrogram CNNs — a 2-D image CNN on a log-mel spectrogram, "audio as an image". The front end
  is torch only: the STFT is a strided 1-D convolution with a bank of Hann-windowed cosines and
  sines (kernel n_fft, stride hop), |X|² their power, a fixed 1×1 convolution with triangular mel
  filters (HTK mel scale, m = 2595·log10(1 + f/700)), then log. Any 2-D model of the zoo serves as
  the back end, with the spectrogram as a one-channel image (frequency × time).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidArgumentError
from ..layers.checks import check_int, check_rate
from ..registry import build_model, get_entry, list_models, register_model
from .base import Classifier, FeatureInfo, init_weights

# -- WaveNet -------------------------------------------------------------------------------------


def wavenet_receptive_field(kernel_size: int, dilations: list[int] | tuple[int, ...]) -> int:
    """Samples seen by one output of stacked causal convs: r = 1 + (k − 1)·Σ d_i."""
    return 1 + (kernel_size - 1) * sum(dilations)


class CausalConv1d(nn.Conv1d):
    """Conv1d padded by (k − 1)·d on the left only: y[t] depends on x[t − (k−1)d … t]; length kept."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.left_pad = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0)))


class GatedResidualLayer(nn.Module):
    """One WaveNet layer: z = tanh(W_f ∗_d x) ⊙ σ(W_g ∗_d x); returns (x + W_r z, W_s z).
    (N, R, L) → ((N, R, L), (N, S, L)), causal. The last layer feeds only the skips (`residual=False`)."""

    def __init__(
        self,
        residual_channels: int,
        dilation_channels: int,
        skip_channels: int,
        kernel_size: int,
        dilation: int,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.conv = CausalConv1d(residual_channels, 2 * dilation_channels, kernel_size, dilation)  # filter | gate
        self.residual = nn.Conv1d(dilation_channels, residual_channels, 1) if residual else None
        self.skip = nn.Conv1d(dilation_channels, skip_channels, 1)
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, g = self.conv(x).chunk(2, dim=1)
        z = torch.tanh(f) * torch.sigmoid(g)
        return (x if self.residual is None else x + self.residual(z)), self.skip(z)


class WaveNet(Classifier):
    """WaveNet as a classifier: causal input conv → `stacks` × (dilations 1, 2, …, 2^(depth−1)) gated
    residual layers → Σ skips → ReLU → 1×1 → ReLU → mean over time → dropout → FC. Every feature is
    causal; `receptive_field` is the closed form 1 + (k − 1)·(1 + stacks·(2^depth − 1)). With
    `pool_size` > 0 the head first mean-pools the features to frames of that many samples and runs
    two non-causal 3-tap convs over the frames (the paper's speech-recognition head, §3.4)."""

    dims = 1

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        residual_channels: int = 32,
        dilation_channels: int = 32,
        skip_channels: int = 128,
        kernel_size: int = 2,
        dilation_depth: int = 10,
        stacks: int = 3,
        pool_size: int = 0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_channels)
        for name, value in (
            ("residual_channels", residual_channels),
            ("dilation_channels", dilation_channels),
            ("skip_channels", skip_channels),
            ("kernel_size", kernel_size),
            ("dilation_depth", dilation_depth),
            ("stacks", stacks),
        ):
            check_int("WaveNet", name, value)
        if kernel_size < 2:
            raise InvalidArgumentError(
                f"WaveNet: kernel_size must be ≥ 2 (a 1-tap conv sees no past); got {kernel_size}"
            )
        check_rate("WaveNet", "drop_rate", drop_rate)
        check_int("WaveNet", "pool_size", pool_size, minimum=0)
        self.kernel_size = kernel_size
        self.dilations = tuple(2**i for _ in range(stacks) for i in range(dilation_depth))
        self.stem = CausalConv1d(in_channels, residual_channels, kernel_size)
        last = len(self.dilations) - 1
        self.layers = nn.ModuleList(
            GatedResidualLayer(residual_channels, dilation_channels, skip_channels, kernel_size, d, residual=i < last)
            for i, d in enumerate(self.dilations)
        )
        self.post = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1), nn.ReLU())
        # §3.4: mean-pool to frames of `pool_size` samples, then non-causal convs over the frames
        self.frames = (
            nn.Sequential(
                nn.AvgPool1d(pool_size, pool_size, ceil_mode=True),
                nn.Conv1d(skip_channels, skip_channels, 3, padding=1),
                nn.ReLU(),
                nn.Conv1d(skip_channels, skip_channels, 3, padding=1),
                nn.ReLU(),
            )
            if pool_size
            else nn.Identity()
        )
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(skip_channels, num_classes)
        self.num_features = skip_channels
        self.feature_info = [FeatureInfo("stem", residual_channels, 1), FeatureInfo("post", skip_channels, 1)]
        init_weights(self)
        for layer in self.layers:  # the gated units start in their linear range (He init overshoots tanh)
            nn.init.xavier_uniform_(layer.conv.weight)

    @property
    def receptive_field(self) -> int:
        """Samples one output sees: the input conv's k taps plus every dilated layer's (k − 1)·d."""
        return wavenet_receptive_field(self.kernel_size, (1,) + self.dilations)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, L) → causal features (N, S, L): output t depends on x[..., :t + 1] only."""
        x = self.stem(x)
        skips = 0
        for layer in self.layers:
            x, s = layer(x)
            skips = skips + s
        return self.post(skips)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.frames(x).mean(dim=2))
        return x if pre_logits else self.fc(x)


# -- log-mel spectrogram front end ----------------------------------------------------------------


def hz_to_mel(f: float) -> float:
    """HTK mel scale: m = 2595·log10(1 + f/700)."""
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    """Inverse of `hz_to_mel`: f = 700·(10^(m/2595) − 1)."""
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """(n_mels, n_freqs) triangular filters on the STFT bins, centres evenly spaced in mel between
    f_min and f_max (default sample_rate/2); each rises from its left neighbour's centre to 1 at its
    own and falls to 0 at its right neighbour's (torchaudio's `melscale_fbanks`, norm=None, "htk")."""
    f_max = sample_rate / 2 if f_max is None else f_max
    bins = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def stft_basis(n_fft: int) -> torch.Tensor:
    """(2·(n_fft/2 + 1), 1, n_fft) conv kernels: Hann-windowed cos and −sin of bins 0 … n_fft/2,
    so conv1d(x, basis, stride=hop) gives the real and imaginary parts of torch.stft (center=False)."""
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    angle = 2 * math.pi * k * n / n_fft
    return torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])[:, None, :].float()


class LogMelSpectrogram(nn.Module):
    """(N, C, L) waveform → (N, C, n_mels, frames) log-mel images, frames = 1 + ⌊(L − n_fft)/hop⌋.

    STFT (a strided conv with fixed Hann-windowed Fourier kernels, no centring) → power |X|² →
    mel filterbank (a fixed 1×1 conv) → log(· + ε). No trainable parameters."""

    def __init__(
        self,
        sample_rate: int = 8000,
        n_fft: int = 256,
        hop_length: int = 128,
        n_mels: int = 40,
        f_min: float = 0.0,
        f_max: float | None = None,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        for name, value in (
            ("sample_rate", sample_rate),
            ("n_fft", n_fft),
            ("hop_length", hop_length),
            ("n_mels", n_mels),
        ):
            check_int("LogMelSpectrogram", name, value)
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.n_mels, self.eps = n_mels, eps
        self.register_buffer("basis", stft_basis(n_fft))
        self.register_buffer("mel", mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate, f_min, f_max)[:, :, None])

    def power(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, L) → |STFT|² (N, n_fft/2 + 1, frames)."""
        re, im = F.conv1d(x, self.basis, stride=self.hop_length).chunk(2, dim=1)
        return re * re + im * im

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, length = x.shape
        mel = F.conv1d(self.power(x.reshape(n * c, 1, length)), self.mel)
        logmel = torch.log(mel + self.eps)
        return logmel.reshape(n, c, self.n_mels, logmel.shape[-1])

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, n_mels={self.n_mels}"


class SpectrogramCNN(Classifier):
    """A 2-D CNN of the zoo on log-mel spectrograms: waveform (N, C, L) → LogMelSpectrogram →
    (N, C, n_mels, frames) → `backbone` (any registered 2-D model, built with in_channels=C) → logits."""

    dims = 1

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        backbone: str = "lenet5",
        sample_rate: int = 8000,
        n_fft: int = 256,
        hop_length: int = 128,
        n_mels: int = 40,
    ) -> None:
        super().__init__(num_classes, in_channels)
        if not isinstance(backbone, str) or backbone not in list_models():
            raise InvalidArgumentError(
                f"SpectrogramCNN: backbone must be the name of a 2-D model of the zoo "
                f"(e.g. 'resnet20', 'lenet5', 'resnet18'); got {backbone!r}"
            )
        if len(get_entry(backbone).input_size) != 3:
            raise InvalidArgumentError(
                f"SpectrogramCNN: backbone {backbone!r} is not a 2-D image model "
                f"(its input is {get_entry(backbone).input_size})"
            )
        self.frontend = LogMelSpectrogram(sample_rate, n_fft, hop_length, n_mels)
        no_aux = {"aux_logits": False} if "aux_logits" in get_entry(backbone).accepted_kwargs() else {}
        self.backbone = build_model(backbone, num_classes=num_classes, in_channels=in_channels, **no_aux)
        self.backbone_name = backbone
        self.num_features = getattr(self.backbone, "num_features", None)
        self.feature_info = [
            FeatureInfo(f"backbone.{f.name}", f.channels, f.reduction) for f in self.backbone.feature_info
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(self.frontend(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.backbone.forward_head(x, pre_logits)


register_model("wavenet", WaveNet, family="wavenet", input_size=(1, 16000))
register_model("spectrogram_cnn", SpectrogramCNN, family="spectrogram_cnn", input_size=(1, 8000))
