"""Pictures of what a network computes: feature maps of an image (a run's own test image, or a photograph),
first-layer filters, and translation equivariance against invariance (FORMULAS.md, "Equivariance and invariance")."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..analysis import analyze
from ..data import DatasetError
from ..errors import InvalidArgumentError, UnavailableError, did_you_mean
from ..loading import LoadedModel
from .common import Subject, VizError, load_image, new_figure, save_figure, set_title

if TYPE_CHECKING:
    from ..train.run import TrainedRun


def _spatial_side(subject: Subject, default: int = 224) -> tuple[int, int]:
    if subject.input_size is None:
        return default, default
    if len(subject.input_size) != 4:
        raise VizError(
            f"{subject.label}: this picture is for 2-D image models; its input is "
            f"{'×'.join(map(str, subject.input_size))}"
        )
    return subject.input_size[2], subject.input_size[3]


def default_layers(model: nn.Module, count: int = 4) -> list[str]:
    """The stage outputs listed in the model's `feature_info`, else `count` convolutions evenly spread."""
    info = getattr(model, "feature_info", None) or []
    names = [f.name for f in info]
    if not names:
        convs = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))]
        if not convs:
            raise VizError(f"{type(model).__name__} has no convolution layers to show")
        idx = np.unique(np.linspace(0, len(convs) - 1, min(count, len(convs))).round().astype(int))
        names = [convs[i] for i in idx]
    return names[:count] if len(names) > count else names


def _keeper(store: dict[str, torch.Tensor], name: str):
    def hook(module: nn.Module, args, output) -> None:
        store.setdefault(name, (output if isinstance(output, torch.Tensor) else output[0]).detach())

    return hook


def feature_maps(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The outputs of the modules `layers` (dotted paths) for input `x`, by name."""
    modules = dict(model.named_modules())
    out: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:
        if name not in modules:
            raise InvalidArgumentError(
                f"{type(model).__name__} has no module {name!r}."
                + (did_you_mean(name, modules) or " `cnnatlas rf MODEL` lists the path of each module.")
            )
        handles.append(modules[name].register_forward_hook(_keeper(out, name)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in layers if n not in out]
    if missing:
        raise InvalidArgumentError(f"modules {missing} did not run in {type(model).__name__}'s forward")
    return out


def plot_feature_maps(
    model: str | Path | nn.Module | LoadedModel,
    image: str | Path | None = None,
    layers: Sequence[str] | None = None,
    *,
    channels: int = 8,
    checkpoint: str | Path | None = None,
    sample: int | None = None,
    frame: int | None = None,
    out: str | Path | None = None,
) -> Figure:
    """Feature maps of `layers` (default: the stage outputs whose maps are more than one pixel) for an
    image, the `channels` most varied maps of each layer. `model` is a name (initialised weights), a
    training run folder (trained weights) or a module. The image: `image`; else, for a run, item `sample`
    (default 0) of its own test set (a digit for a digits run), where its data is on this machine; else
    the photograph matplotlib ships. A run on clips shows its test clip `sample` at `frame` (default the
    middle one), each layer's maps at the time step that frame falls in."""
    if channels < 1:
        raise InvalidArgumentError(f"--channels must be ≥ 1; got {channels}")
    subject = Subject(model, checkpoint)
    if sample is not None and (image is not None or subject.run is None):
        raise InvalidArgumentError(
            "--sample picks an image of a training run's test set; "
            + (f"--image {image} is the image" if image is not None else f"{subject.label} is not a run")
        )
    x, seen = _input_image(subject, image, sample)
    frame, frames = _frame(subject, x, frame)
    names = list(layers) if layers else default_layers(subject.model)
    maps = feature_maps(subject.model, x, names)
    steps: dict[str, str] = {}
    if frames:
        maps, steps = _at_frame(maps, frame, frames)
        x, seen = x[:, :, frame], f"frame {frame} of {frames} of {seen}"
    if not layers:  # a stage whose maps are single values (LeNet-5's C5: 120×1×1) has no picture to show
        names = [n for n in names if maps[n][0].dim() != 3 or maps[n][0][0].numel() > 1] or names
    fig = new_figure(1.45 * (channels + 1) + 0.6, 1.55 * len(names) + 0.9)
    grid = fig.subplots(len(names), channels + 1, squeeze=False)
    shown = _input_panel(subject.model, x)
    for row, name in enumerate(names):
        _map_row(grid[row], name, maps[name], shown, steps.get(name, ""), first=row == 0)
    for ax in grid.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    set_title(
        fig,
        f"{subject.label}: feature maps of {seen} ({subject.weights}); each row a layer, "
        f"its {channels} most varied channels",
        fontsize=9.5,
    )
    return save_figure(fig, out)


def _at_frame(maps: dict[str, torch.Tensor], frame: int, frames: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A clip's maps (1, C, T', H, W) at the time step frame `frame` of `frames` falls in, ⌊frame·T′/frames⌋,
    and for each the words that say which ("at step 2 of 4"); maps of other shapes as they are."""
    steps = {n: frame * m.shape[2] // frames for n, m in maps.items() if m.dim() == 5}
    at = {n: m[:, :, steps[n]] if n in steps else m for n, m in maps.items()}
    return at, {n: f" at step {t} of {maps[n].shape[2]}" for n, t in steps.items()}


def _map_row(axes, name: str, output: torch.Tensor, shown: tuple[np.ndarray, str], step: str, first: bool) -> None:
    """One layer's row: the input panel, then the most varied maps of the layer's `output` (1, C, H, W),
    one per remaining axis."""
    y = output[0]
    if y.dim() != 3:
        raise VizError(f"{name} outputs {tuple(output.shape)}, not a 2-D feature map")
    image, shown_as = shown
    origin = "lower" if shown_as != "input" else "upper"  # a spectrogram's low frequencies at the bottom
    axes[0].imshow(image, cmap=None if image.ndim == 3 else "gray", origin=origin)
    axes[0].set_ylabel(f"{name}\n{y.shape[0]}×{y.shape[1]}×{y.shape[2]}{step}", fontsize=7.5)
    axes[0].set_title(shown_as if first else "", fontsize=8)
    order = torch.argsort(y.flatten(1).std(1, correction=0), descending=True)[: len(axes) - 1].tolist()
    for ax, c in zip(axes[1:], order):
        ax.imshow(y[c].numpy(), cmap="viridis", origin=origin)
        ax.set_title(f"channel {c}", fontsize=7)
    for ax in axes[1 + len(order) :]:
        ax.axis("off")


def _frame(subject: Subject, x: torch.Tensor, frame: int | None) -> tuple[int, int | None]:
    """The frame of a clip (1, C, T, H, W) the picture shows (default the middle one) and the clip's
    frames; (0, None) for an image or a recording, where `frame` is refused."""
    if x.dim() != 5:
        if frame is not None:
            raise InvalidArgumentError(f"--frame picks a frame of a clip; {subject.label} does not take clips")
        return 0, None
    frames = x.shape[2]
    frame = frames // 2 if frame is None else frame
    if not 0 <= frame < frames:
        raise InvalidArgumentError(f"--frame must be in 0…{frames - 1}, a frame of the clip; got {frame}")
    return frame, frames


def _input_panel(model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, str]:
    """What the first column shows, scaled to [0, 1], and its title: the input image (H, W, 3) or (H, W);
    for a sound model, the spectrogram its `frontend` makes of the waveform, which its convolutions see."""
    frontend = getattr(model, "frontend", None)
    with torch.no_grad():
        image = x if frontend is None else frontend(x)
    shown = image[0].permute(1, 2, 0).numpy()
    shown = (shown - shown.min()) / (np.ptp(shown) or 1.0)
    return shown if shown.shape[2] == 3 else shown[..., 0], "input" if frontend is None else "spectrogram"


def _input_image(subject: Subject, image: str | Path | None, sample: int | None) -> tuple[torch.Tensor, str]:
    """The input the feature maps are of, as the model takes it (1, C, H, W), and what it is: `image`; else
    a run's test item `sample` (default 0); else, or where a run's data is not here and no item was asked
    for, the photograph matplotlib ships. A sound model (a `frontend` making a spectrogram of a waveform)
    takes a run's test recording only, a video model a run's test clip (1, C, T, H, W) only."""
    takes = {3: "sound", 5: "clips"}.get(len(subject.input_size or ()))
    if takes and (takes == "clips" or hasattr(subject.model, "frontend")):
        item = "a recording" if takes == "sound" else "a clip"
        if subject.run is None or image is not None:
            raise VizError(
                f"{subject.label} takes {takes}: its feature maps are drawn for {item} of a run's test set "
                f"(give a run folder, and --sample N to choose {item}), not for an image"
            )
        return _run_test_item(subject.run, sample or 0)
    side = _spatial_side(subject)
    seen = "a photograph" if image is None else Path(image).name
    if image is None and subject.run is not None:
        try:
            return _run_test_item(subject.run, sample or 0)
        except (DatasetError, UnavailableError):  # not here, and no download
            if sample is not None:
                raise
            seen = f"a photograph (the run's data, {subject.run.config.data}, is not on this machine)"
    return subject.prepare(load_image(image, side, 3)), seen


def _run_test_item(run: TrainedRun, index: int) -> tuple[torch.Tensor, str]:
    """Item `index` of the run's own test set as the run's model takes it (1, C, H, W), and what it is
    ("test image 3 of digits (labelled 7)"). DatasetError or UnavailableError where the run's data cannot be
    read or fetched here."""
    test = run.test_data().test
    if not 0 <= index < len(test):
        raise InvalidArgumentError(
            f"--sample must be in 0…{len(test) - 1}, an item of the test set of {run.config.data}; got {index}"
        )
    x, label = test[index]
    if run.info.task == "segmentation":
        shows = ", ".join(sorted({run.info.classes[int(c)] for c in torch.unique(label)} - {"background"}))
        what = f"test scene {index} of {run.config.data} ({shows or 'background only'})"
    else:
        kind = {2: "recording", 3: "image"}.get(x.dim(), "clip")  # (C, samples), (C, H, W) or (C, T, H, W)
        what = f"test {kind} {index} of {run.config.data} (labelled {run.info.classes[int(label)]})"
    return x[None], what


CONV_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def first_conv(model: nn.Module, input_size: tuple[int, ...] | None) -> tuple[str, nn.Module]:
    """The first convolution layer the forward runs (from the analyser's trace), or the first registered.
    A convolution with fixed kernels inside another module (a spectrogram's STFT) has no filters to learn
    and is passed over."""
    modules = dict(model.named_modules())
    if input_size is not None:
        try:
            report = analyze(model, input_size, training_memory=False)
            for rec in report.layers:
                if rec.op == "convolution" and isinstance(modules.get(rec.name), CONV_LAYERS):
                    return rec.name, modules[rec.name]
        except Exception:  # noqa: BLE001 — a model the tracer cannot run: fall back on registration order
            pass
    for name, m in modules.items():
        if isinstance(m, CONV_LAYERS):
            return name, m
    raise VizError(f"{type(model).__name__} has no convolution layer")


def plot_filters(
    model: str | Path | nn.Module | LoadedModel,
    *,
    checkpoint: str | Path | None = None,
    max_filters: int = 64,
    out: str | Path | None = None,
) -> Figure:
    """First-layer filters of a trained run (or of a model's initial weights): RGB filters as colour
    images, single-channel ones red (positive) and blue (negative); 3-D filters one row per filter,
    one column per time slice (an inflated filter repeats one 2-D slice, divided by T)."""
    subject = Subject(model, checkpoint)
    name, conv = first_conv(subject.model, subject.input_size)
    w = conv.weight.detach().float().cpu()
    shape = "×".join(map(str, w.shape))
    n = min(w.shape[0], max_filters)
    if w.dim() == 3:  # 1-D filters: one curve per filter
        fig = new_figure(8, 4)
        ax = fig.add_subplot()
        for i in range(n):
            ax.plot(np.arange(w.shape[2]), w[i].mean(0).numpy(), linewidth=1)
        ax.set_xlabel("tap")
        ax.set_ylabel("weight (mean over input channels)")
    elif w.dim() == 5:  # (C_out, C_in, T, kH, kW)
        rows, cols = min(n, 8), w.shape[2]
        fig = new_figure(1.2 * cols + 1.5, 1.2 * rows + 0.8)
        grid = fig.subplots(rows, cols, squeeze=False)
        lim = float(w[:rows].abs().max()) or 1.0
        for i in range(rows):
            for t in range(cols):
                ax = grid[i][t]
                ax.imshow(w[i, :, t].mean(0).numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"t = {t}", fontsize=8)
            grid[i][0].set_ylabel(f"filter {i}", fontsize=8)
    else:
        cols = int(np.ceil(np.sqrt(n)))
        rows = int(np.ceil(n / cols))
        fig = new_figure(max(4.0, 0.9 * cols + 0.8), 0.9 * rows + 1.0)
        grid = fig.subplots(rows, cols, squeeze=False)
        lim = float(w[:n].abs().max()) or 1.0
        for i, ax in enumerate(grid.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= n:
                ax.axis("off")
                continue
            f = w[i]
            if f.shape[0] == 3:
                img = f.permute(1, 2, 0).numpy()
                img = (img - img.min()) / (np.ptp(img) or 1.0)
                ax.imshow(img, interpolation="nearest")
            else:
                ax.imshow(f.mean(0).numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(str(i), fontsize=6.5)
    set_title(fig, f"{subject.label}: first-layer filters of {name} ({shape}); {subject.weights}", fontsize=9)
    return save_figure(fig, out)


def _equivariance_net(padding_mode: str, seed: int, in_channels: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(in_channels, 8, 5, padding=2, padding_mode=padding_mode),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, padding_mode=padding_mode),
        nn.ReLU(),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if p.dim() > 1 else 0.05))
    return net.eval()


def equivariance_data(
    image: str | Path | None = None, shift: tuple[int, int] = (9, 17), size: int = 96, seed: int = 0
) -> dict:
    """Measure f(T x) against T f(x) for a two-layer stride-1 conv net f (random weights) with
    circular and with zero padding, and g(x) = global average of f(x) against g(T x)."""
    if len(shift) != 2 or not all(isinstance(s, int) for s in shift):
        raise InvalidArgumentError(f"--shift takes two integers DY DX; got {shift!r}")
    x = torch.from_numpy(np.ascontiguousarray(load_image(image, (size, size), 1))).permute(2, 0, 1)[None]
    tx = torch.roll(x, shift, dims=(2, 3))
    result = {"x": x[0, 0], "tx": tx[0, 0], "shift": tuple(shift)}
    with torch.no_grad():
        for mode in ("circular", "zeros"):
            f = _equivariance_net(mode, seed, 1)
            fx, ftx = f(x), f(tx)
            err = (ftx - torch.roll(fx, shift, dims=(2, 3))).abs().amax(1)[0]
            result[mode] = {
                "fx": fx[0],
                "ftx": ftx[0],
                "error": err,
                "max_error": float(err.max()),
                "scale": float(fx.abs().max()),
                "gx": fx.mean((2, 3))[0],
                "gtx": ftx.mean((2, 3))[0],
            }
    return result


def _equivariance_panels(fig: Figure, grid, d: dict, shift: tuple[int, int], channel: int) -> None:
    """The six image panels: x, T x, f(x), f(T x) and the error with circular and with zero padding."""
    circ, zero = d["circular"], d["zeros"]
    panels = [
        (grid[0, 0], d["x"], "input x", "gray"),
        (grid[0, 1], d["tx"], f"shifted input T x  (shift {shift[0]}, {shift[1]})", "gray"),
        (grid[0, 2], circ["fx"][channel], f"f(x), channel {channel}", "viridis"),
        (grid[0, 3], circ["ftx"][channel], "f(T x) = T f(x): the map moves with the input", "viridis"),
        (
            grid[1, 0],
            circ["error"],
            f"|f(Tx) − T f(x)|, circular padding\nmax {circ['max_error']:.1e} (maps up to {circ['scale']:.2f})",
            "magma",
        ),
        (
            grid[1, 1],
            zero["error"],
            f"|f(Tx) − T f(x)|, zero padding\nmax {zero['max_error']:.2f}: only near the borders and the wrap seams",
            "magma",
        ),
    ]
    vmax = max(float(zero["error"].max()), 1e-12)
    for spec, img, title, cmap in panels:
        ax = fig.add_subplot(spec)
        kw = {"vmin": 0, "vmax": vmax} if cmap == "magma" else {}
        ax.imshow(img.numpy(), cmap=cmap, **kw)
        ax.set_title(title, fontsize=8.5)
        ax.set_xticks([])
        ax.set_yticks([])


def _pooled_bars(ax, circ: dict) -> None:
    """The globally pooled vectors of x and T x side by side, channel by channel."""
    k = np.arange(circ["gx"].numel())
    ax.bar(k - 0.2, circ["gx"].numpy(), width=0.4, label="g(f(x))", color="#4477aa")
    ax.bar(k + 0.2, circ["gtx"].numpy(), width=0.4, label="g(f(T x))", color="#ee7733")
    inv = float((circ["gx"] - circ["gtx"]).abs().max())
    ax.set_title(
        f"global average pooling g: the same vector for x and T x (invariant; max difference {inv:.1e})", fontsize=8.5
    )
    ax.set_xlabel("channel")
    ax.set_ylabel("pooled activation")
    ax.set_xticks(k)
    ax.legend(fontsize=8)


def plot_equivariance(
    image: str | Path | None = None,
    shift: tuple[int, int] = (9, 17),
    *,
    channel: int = 0,
    seed: int = 0,
    out: str | Path | None = None,
) -> Figure:
    """An input, its (circular) shift, the feature maps of both, the equivariance error
    |f(Tx) − T f(x)| with circular and with zero padding, and the pooled (invariant) outputs."""
    d = equivariance_data(image, shift, seed=seed)
    if not 0 <= channel < d["circular"]["fx"].shape[0]:
        raise InvalidArgumentError(f"--channel must be in 0..{d['circular']['fx'].shape[0] - 1}; got {channel}")
    fig = new_figure(13, 6.4)
    grid = fig.add_gridspec(2, 4)
    _equivariance_panels(fig, grid, d, shift, channel)
    _pooled_bars(fig.add_subplot(grid[1, 2:]), d["circular"])
    set_title(
        fig,
        "Convolution is translation-equivariant, f(Tx) = T f(x); after global pooling the output is "
        "invariant, g(Tx) = g(x)  (two 5×5 and 3×3 conv + ReLU layers, stride 1, random weights)",
        fontsize=10,
    )
    return save_figure(fig, out)
