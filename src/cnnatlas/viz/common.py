"""What every plot shares: figures without pyplot (the Agg canvas, no global state, no display),
saving to PNG or SVG, model resolution, and the sample photograph."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from ..errors import CnnAtlasError, InvalidArgumentError
from ..files import png_software
from ..loading import LoadedModel
from ..train.folder import is_run_folder

FORMATS = (".png", ".svg")
DPI = 110
# One colour per family, so that the same family looks the same on every plot of the atlas.
FAMILY_COLOURS = {
    "lenet": "#8c564b",
    "alexnet": "#7f7f7f",
    "vgg": "#1f77b4",
    "inception": "#2ca02c",
    "resnet": "#d62728",
    "plain": "#ff9896",
    "densenet": "#9467bd",
    "senet": "#e377c2",
    "mobilenet": "#17becf",
    "efficientnet": "#ff7f0e",
    "video": "#bcbd22",
    "audio": "#393b79",
}


class VizError(CnnAtlasError, RuntimeError):
    """A picture that cannot be drawn (a missing program, a model without what the plot needs)."""


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas: no pyplot, no window, safe in any process."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def check_out(out: str | Path) -> Path:
    """The output path of a plot: .png or .svg; its folder is created."""
    path = Path(out)
    if path.suffix.lower() not in FORMATS:
        raise InvalidArgumentError(f"--out must end in .png or .svg; got {str(out)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# What each picture cnnatlas draws carries (a PNG's "Software" text chunk, an SVG's creator, a diagram's
# comment): `cnnatlas plot --out FILE` replaces only a file that carries it, never a photograph of the user's.
PICTURE_SOFTWARE = "cnnatlas plot"


def is_cnnatlas_picture(path: str | Path) -> bool:
    """Whether `path` is a picture cnnatlas drew (it carries `PICTURE_SOFTWARE`)."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        return png_software(path) == PICTURE_SOFTWARE
    try:
        with open(path, "rb") as f:  # SVG, or a diagram's DOT source: the mark is in the first lines
            return PICTURE_SOFTWARE.encode() in f.read(4096)
    except OSError:
        return False


def save_figure(fig: Figure, out: str | Path | None) -> Figure:
    """Write `fig` to `out` (PNG or SVG by suffix; reproducible: no date in the file; marked as
    cnnatlas's, `PICTURE_SOFTWARE`) and return it."""
    if out is None:
        return fig
    path = check_out(out)
    svg = path.suffix.lower() == ".svg"
    meta = {"Date": None, "Creator": PICTURE_SOFTWARE} if svg else {"Software": PICTURE_SOFTWARE}
    # SVG text stays text (searchable, a third of the size); the hash salt makes files reproducible
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cnnatlas"}):
        fig.savefig(path, metadata=meta, dpi=DPI)
    return fig


def family_colour(family: str) -> str:
    return FAMILY_COLOURS.get(family, "#444444")


def resolve_model(
    model: str | nn.Module | LoadedModel, meta: bool = True
) -> tuple[nn.Module, str, tuple[int, ...] | None]:
    """(module, label, default input shape with batch 1) for a registry name, torchvision:NAME,
    timm:NAME, path/file.py:factory, a training run folder (its trained weights, at its size), a model
    loaded already (`cnnatlas.loading.load_model`, e.g. with keyword arguments), or a module (whose
    `default_input_size` is used when set)."""
    if isinstance(model, LoadedModel):
        return model.model, model.label, model.input_size
    if isinstance(model, nn.Module):
        size = getattr(model, "default_input_size", None)
        return model, type(model).__name__, (1, *size) if size else None
    if not isinstance(model, (str, Path)):
        raise InvalidArgumentError(f"expected a model name or an nn.Module; got {type(model).__name__}")
    from ..train import load_run_or_model

    loaded = load_run_or_model(str(model), meta=meta)
    return loaded.model, loaded.label, loaded.input_size


def model_family(name: str) -> str:
    from ..registry import get_entry, list_models

    return get_entry(name).family if name in list_models() else ""


def capped_input(shape: tuple[int, ...], cap: int | None, time_cap: int = 16) -> tuple[int, ...]:
    """`shape` (N, C, *spatial) with each image side at most `cap` and, for video (N, C, T, H, W),
    at most `time_cap` frames; a 1-D signal (N, C, L) is capped at 64·`cap` samples."""
    if cap is None:
        return tuple(shape)
    if len(shape) == 3:
        return (shape[0], shape[1], min(shape[2], 64 * cap))
    if len(shape) == 5:
        return (shape[0], shape[1], min(shape[2], time_cap)) + tuple(min(s, cap) for s in shape[3:])
    return tuple(shape[:2]) + tuple(min(s, cap) for s in shape[2:])


def sample_image_path() -> Path:
    """The photograph matplotlib ships (Grace Hopper, 600×512 JPEG)."""
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path: str | Path | None, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """An image file as float (H, W, C) in [0, 1], centre-cropped to square and resized to `size`."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path) if path is not None else sample_image_path()
    if not path.is_file():
        raise InvalidArgumentError(f"--image: no file {str(path)!r}")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            w, h = img.size
            side = min(w, h)
            img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
            img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as err:
        raise InvalidArgumentError(f"--image: {path} is not an image Pillow can read ({err})") from None
    return arr[..., None] if arr.ndim == 2 else arr


def image_tensor(arr: np.ndarray, channels: int) -> torch.Tensor:
    """(H, W, C) in [0, 1] → (1, C, H, W) normalised with the ImageNet mean and std (grey: their average)."""
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float()
    if channels == 3:
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    else:
        mean, std = torch.full((channels,), 0.449), torch.full((channels,), 0.226)
        x = x.mean(0, keepdim=True).expand(channels, -1, -1)
    return ((x - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)).unsqueeze(0)


class Subject:
    """A model to look inside, with real weights: a registry/torchvision/timm name (initialised
    weights), a training run folder (its trained weights, or a checkpoint's), or a module."""

    def __init__(self, spec: str | Path | nn.Module | LoadedModel, checkpoint: str | Path | None = None) -> None:
        self.run = None
        if is_run_folder(spec):
            from ..train import load_run

            self.run = load_run(spec, checkpoint)
            self.model = self.run.model
            self.label = f"{self.run.config.model} ({Path(spec).name})"
            self.input_size: tuple[int, ...] | None = (1, *self.run.input_size)
            self.weights = f"trained weights from {self.run.weights_from}"
        else:
            if checkpoint is not None:
                raise InvalidArgumentError("--checkpoint needs a training run folder (RUN_DIR), not a model name")
            if isinstance(spec, Path):
                raise InvalidArgumentError(f"{spec}: not a training run folder (no config.json)")
            self.model, self.label, self.input_size = resolve_model(spec, meta=False)
            built = isinstance(spec, str) or (isinstance(spec, LoadedModel) and not spec.trained)
            self.weights = "weights as built (initialisation)" if built else "the module's weights"
        self.model.eval()

    def prepare(self, arr: np.ndarray) -> torch.Tensor:
        """(H, W, C) image in [0, 1] → the model's normalised input (1, C, H, W)."""
        channels = self.input_size[1] if self.input_size else 3
        if self.run is not None:
            img = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float()
            if img.shape[0] != channels:
                img = img.mean(0, keepdim=True).expand(channels, -1, -1)
            return self.run.info.prepare(img)[None]
        return image_tensor(arr, channels)


def set_title(fig: Figure, text: str, fontsize: float = 10) -> None:
    """A figure title wrapped to the figure's width."""
    import textwrap

    width = max(30, int(fig.get_figwidth() * 130 / fontsize))
    fig.suptitle(textwrap.fill(text, width), fontsize=fontsize)
