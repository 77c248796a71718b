"""Predictions on image files: the top classes a trained run or a zoo model with its published weights
gives each image (or clip), and the masks of segmentation runs and models, written as PNGs.

`cnnatlas predict` is this module's command line. Images are read with PIL (`read_image`,
`read_image_uint8`); clips are folders of frames or video files (`read_clip`). A clip longer than a video
model's window is read by a sliding window (`cnnatlas.windows`): the per-window predictions and their
average are both returned. A mask is saved beside its image as `<image stem>.mask.png`, one colour per
class (`mask_palette`, background black), at the image's own size. `zoo_evaluation` scores a zoo model's
published weights on a whole test set (`cnnatlas eval MODEL`), beside the accuracy published for them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .files import png_software, written_whole

if TYPE_CHECKING:
    from .pretrained import Weights
    from .train import EvalResult

MAX_PIXELS = 89_478_485  # PIL's own warning threshold (Image.MAX_IMAGE_PIXELS): ~ 9459×9459


def read_image(path: str | Path, channels: int, invert: bool = False) -> torch.Tensor:
    """An image file as a float (C, H, W) tensor in [0, 1] with the run's number of channels
    (`read_image_uint8`); `invert`: 1 - x (dark items on a light ground, for a run trained the other way)."""
    image = read_image_uint8(path, channels).float() / 255.0
    return 1.0 - image if invert else image


def files_in_folders(paths: list[str], extensions: tuple[str, ...], what: str) -> list[str]:
    """`paths` with each folder among them replaced by its files of those `extensions` (by name; not its
    sub-folders), leaving out the masks predict wrote there (`is_predicted_mask`): predicting a folder twice
    does not predict the first time's masks. A folder without such files is refused, naming `what`."""
    from .data import DatasetError

    out = []
    for given in paths:
        folder = Path(given)
        if not folder.is_dir():
            out.append(given)
            continue
        found = sorted(
            str(p)
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in extensions and not is_predicted_mask(p)
        )
        if not found:
            raise DatasetError(f"{given}: a folder without {what} ({', '.join(e[1:] for e in extensions)}) in it")
        out.extend(found)
    return out


def _image_files(paths: list[str]) -> list[str]:
    from .data.folder import IMAGE_EXTENSIONS

    return files_in_folders(paths, IMAGE_EXTENSIONS, "image files")


def run_predictions(
    run, images: list[str], top: int = 3, invert: bool = False, stride: int | None = None
) -> list[dict]:
    """The `top` classes, with probabilities, a trained classification run (`cnnatlas.train.load_run`)
    gives each image file, best first; for a run on sound (a 1-D model, `--data fsdd`), each WAV file
    (`read_run_recording`); for a run on clips (a 3-D model), each clip (`read_run_clip`), slid over by
    the run's window as `zoo_predictions` slides a zoo model's. A folder stands for the image (or WAV) files
    in it; for a run on clips a folder is one clip, its frames."""
    from .errors import InvalidArgumentError

    if run.info.task != "classification":
        raise InvalidArgumentError(f"{run.path} is a {run.info.task} run: run_masks gives its masks, not top classes")
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise InvalidArgumentError(f"top must be an integer ≥ 1; got {top!r}")
    dims = getattr(run.model, "dims", 2)
    if stride is not None and dims != 3:
        raise InvalidArgumentError(f"--stride slides a video model's window; {run.path} is not a run on clips")
    k = min(top, len(run.info.classes))
    if dims == 3:
        return _run_clip_predictions(run, images, k, invert, stride)
    if dims == 1:
        if invert:
            raise InvalidArgumentError(f"--invert inverts images; {run.path} is a run on sound")
        images = files_in_folders(images, (".wav",), "WAV files")
        sounds = [read_run_recording(run, path) for path in images]  # bad files fail first
        with torch.no_grad():
            scores = [run.model.eval()(x[None]).softmax(dim=1)[0] for x in sounds]
    else:
        images = _image_files(images)
        images_in = [read_image(path, run.info.in_channels, invert) for path in images]  # bad files fail first
        scores = [run.predict(x[None])[0] for x in images_in]
    return [{"image": path, "top": _ranked(p, run.info.classes, k)} for path, p in zip(images, scores)]


def _run_clip_predictions(run, clips: list[str], k: int, invert: bool, stride: int | None) -> list[dict]:
    """Each clip's top classes by a run on clips: one window of the run's frames, or, for a longer clip,
    each window (`stride` frames apart, default half a window) and their average."""
    from .windows import sliding_window

    inputs = [read_run_clip(run, path, invert) for path in clips]  # bad files fail first
    window = run.input_size[1]
    stride = stride or max(1, window // 2)
    results = []
    for path, x in zip(clips, inputs):
        with torch.no_grad():
            starts, per_window, probs = sliding_window(run.model.eval(), x, window, stride)
        result = {"image": path, "top": _ranked(probs, run.info.classes, k)}
        if x.shape[1] > window:
            result |= {
                "frames": x.shape[1],
                "window": window,
                "stride": stride,
                "windows": [
                    {"frames": [s, s + window - 1], "top": _ranked(p, run.info.classes, k)}
                    for s, p in zip(starts, per_window)
                ],
            }
        results.append(result)
    return results


def read_run_clip(run, path: str | Path, invert: bool = False) -> torch.Tensor:
    """A clip (a folder of frames or a video file, `read_clip`) as a run on clips was fed: each frame in the
    run's channels (grey by ITU-R 601 luma, as PIL converts), prepared as its images were (`DataInfo.prepare`:
    resized, normalised) → (C, T, side, side); `invert`: 1 − x first."""
    frames = read_clip(path).float() / 255.0  # (T, 3, H, W)
    if run.info.in_channels == 1:
        frames = (frames * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if invert:
        frames = 1.0 - frames
    return torch.stack([run.info.prepare(f) for f in frames], dim=1)


def read_run_recording(run, path: str | Path) -> torch.Tensor:
    """A WAV file as a run on FSDD was fed: at the run's sample rate, its window of samples, μ-law
    companded where the run's data were, normalised with the run's mean and std → (1, L)."""
    from .data.fsdd import prepare_recording

    x = prepare_recording(path, run.info.image_size, run.sample_rate, mu_law=run.mu_law)
    return ((torch.from_numpy(x) - run.info.mean[0]) / run.info.std[0])[None]


# -- segmentation: a mask per image ---------------------------------------------------------------

# matplotlib's tab10, and tab20 (each tab10 colour, then a lighter one)
TAB10 = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
TAB20_LIGHT = (
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
)
TAB20 = tuple(c for pair in zip(TAB10, TAB20_LIGHT) for c in pair)
BACKGROUND_NAMES = ("background", "__background__")


def voc_colour(index: int) -> tuple[int, int, int]:
    """PASCAL VOC's colour map: the bits of `index`, three at a time, spread from the high bit of R, G, B down."""
    rgb = [0, 0, 0]
    for shift in range(7, -1, -1):
        for channel in range(3):
            rgb[channel] |= ((index >> channel) & 1) << shift
        index >>= 3
    return tuple(rgb)


def mask_palette(classes) -> tuple[tuple[int, int, int], ...]:
    """One colour per class, in the classes' order: background (a class named "background" or
    "__background__") black, the others matplotlib's tab10 colours in turn (tab20's past ten classes,
    PASCAL VOC's colour map past twenty)."""
    others = [c for c in classes if c not in BACKGROUND_NAMES]
    colours = (
        TAB10 if len(others) <= 10 else TAB20 if len(others) <= 20 else [voc_colour(i + 1) for i in range(len(others))]
    )
    turn = iter(colours)
    return tuple((0, 0, 0) if c in BACKGROUND_NAMES else next(turn) for c in classes)


# The PNG text chunk each mask carries: a file with it is one predict wrote, and predict may replace it.
MASK_SOFTWARE = "cnnatlas predict"


def mask_path(image: str | Path, out_dir: str | Path | None = None) -> Path:
    """Where predict writes an image's mask: `<stem>.mask.png` beside it, or in `out_dir`."""
    image = Path(image)
    return (Path(out_dir) if out_dir is not None else image.parent) / f"{image.stem}.mask.png"


def is_predicted_mask(path: str | Path) -> bool:
    """Whether `path` is a PNG that predict wrote (its text chunk "Software" is MASK_SOFTWARE)."""
    return png_software(path) == MASK_SOFTWARE


def mask_paths(images: list[str], out_dir: str | Path | None = None) -> list[Path]:
    """Each image's mask path (`mask_path`), checked before anything is written: no two images may share
    one, and an existing file there must be a mask predict wrote: any other file is the user's, left alone."""
    from .errors import InvalidArgumentError

    paths, seen = [mask_path(image, out_dir) for image in images], {}
    for image, path in zip(images, paths):
        key, source = path.resolve(), Path(image).resolve()
        if seen.setdefault(key, source) != source:
            raise InvalidArgumentError(
                f"{seen[key]} and {image} would both write their mask to {path}; expected images with "
                "different names (or predict them one folder at a time)"
            )
        if path.is_dir() or (path.exists() and not is_predicted_mask(path)):
            raise InvalidArgumentError(
                f"{path} exists and is not a mask predict wrote; it is left as it is: move it, or write "
                "the masks to another folder (--out-dir DIR)"
            )
    return paths


def predict_mask(run, image: torch.Tensor, model: torch.nn.Module | None = None) -> torch.Tensor:
    """The class of every pixel (H, W) of a float image (C, H, W) in [0, 1]: the run's logits (or
    `model`'s, the run's wrapped) at its input size, upsampled to the image's size (`mask_at`)."""
    return mask_at(model or run.model, run.info.prepare(image)[None], image.shape[-2:])


def mask_at(model: torch.nn.Module, x: torch.Tensor, size) -> torch.Tensor:
    """The best class per pixel (H, W) of `model`'s logits on `x`, a batch of one, upsampled (bilinear) to `size`."""
    with torch.inference_mode():
        return upsampled_argmax(model(x), size)


# Output pixels per band of `upsampled_argmax`: 1 Mi, 4 MiB a class in float32.
BAND_PIXELS = 1 << 20


def upsampled_argmax(logits: torch.Tensor, size, band_pixels: int = BAND_PIXELS) -> torch.Tensor:
    """argmax over the classes of `logits` (1, C, h, w) upsampled bilinearly (align_corners=False) to `size`
    (H, W), one band of output rows at a time, so that the (C, H, W) scores of a large photo are never held.

    Each band takes the input rows it needs, interpolates them along the width (F.interpolate, their
    height kept), then blends each output row's two source rows y0, y1 = y0 + 1 (clamped) with the weight
    λ = s − y0 at s = max(0, (i + ½)·h/H − ½): the same sum, W-lerp then H-lerp, as F.interpolate's kernel."""
    from torch.nn.functional import interpolate

    (height, width), h = (int(v) for v in size), logits.shape[-2]
    rows = max(1, band_pixels // max(width, 1))
    if height <= rows:
        return interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)[0].argmax(0)
    source = ((torch.arange(height, dtype=torch.float32) + 0.5) * (h / height) - 0.5).clamp(min=0)
    y0 = source.long().clamp(max=h - 1)
    y1 = (y0 + 1).clamp(max=h - 1)
    weight = (source - y0).view(1, -1, 1)
    out = torch.empty((height, width), dtype=torch.long)
    for start in range(0, height, rows):
        end = min(height, start + rows)
        low, high = int(y0[start]), int(y1[end - 1]) + 1
        wide = interpolate(logits[:, :, low:high], size=(high - low, width), mode="bilinear", align_corners=False)[0]
        w = weight[:, start:end].to(wide.dtype)
        upper = wide.index_select(1, y0[start:end] - low).mul_(1 - w)
        out[start:end] = upper.add_(wide.index_select(1, y1[start:end] - low).mul_(w)).argmax(0)
    return out


def save_mask(mask: torch.Tensor, path: Path, classes) -> None:
    """The mask (H, W) of class indices as an RGB PNG, each class in its `mask_palette` colour, tagged
    as predict's (MASK_SOFTWARE); written whole (`written_whole`): the file is whole or absent."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    palette = torch.tensor(mask_palette(classes), dtype=torch.uint8)
    tag = PngInfo()
    tag.add_text("Software", MASK_SOFTWARE)
    with written_whole(path) as tmp:
        Image.fromarray(palette[mask].numpy()).save(tmp, format="PNG", pnginfo=tag)


def run_masks(
    run, images: list[str], invert: bool = False, shift_average: bool = False, out_dir: str | Path | None = None
) -> list[dict]:
    """The mask a trained segmentation run predicts for each image file (`shift_average`: its softmax
    averaged over ONE_PIXEL_SHIFTS of the input), each written beside its image or in `out_dir`
    (`write_masks`; the places are checked before the model runs)."""
    from .errors import InvalidArgumentError

    if run.info.task != "segmentation":
        raise InvalidArgumentError(f"{run.path} is a {run.info.task} run: run_predictions gives its top classes")
    model = run.shift_averaged() if shift_average else run.model
    images = _image_files(images)
    inputs = [read_image(path, run.info.in_channels, invert) for path in images]  # bad files fail first
    mask_paths(images, out_dir)
    return write_masks(images, [predict_mask(run, x, model) for x in inputs], run.info.classes, out_dir)


def write_masks(paths: list[str], masks: list[torch.Tensor], classes, out_dir: str | Path | None = None) -> list[dict]:
    """Each mask saved beside its image, or in `out_dir` (made if missing), where `mask_paths` allows; per
    image its path, the mask's and the share of the image each class present covers, largest first."""
    outs = mask_paths(paths, out_dir)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    results = []
    for path, mask, out in zip(paths, masks, outs):
        save_mask(mask, out, classes)
        share = torch.bincount(mask.flatten(), minlength=len(classes)).double() / mask.numel()
        largest_first = share.argsort(descending=True, stable=True).tolist()
        results.append(
            {
                "image": path,
                "mask": str(out),
                "classes": {classes[i]: float(share[i]) for i in largest_first if share[i] > 0},
            }
        )
    return results


def read_image_uint8(path: str | Path, channels: int = 3) -> torch.Tensor:
    """An image file as a uint8 (C, H, W) tensor, RGB (`channels` 3: what the weights' preprocessing takes)
    or grey (1), whatever its mode (`PilMode`: a 16-bit one scaled to 8 bits). An image of more than
    MAX_PIXELS is refused from its header, before decoding."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2.functional import pil_to_tensor

    from .data import DatasetError
    from .data.folder import PilMode

    path = Path(path)
    if path.is_dir():
        raise DatasetError(
            f"{path}: a folder; expected an image file (PNG, JPEG, …) — a folder of frames is a clip, "
            "which a video model takes"
        )
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked here instead
            with Image.open(path) as img:  # reads the header only: a huge image is refused before decoding
                if img.width * img.height > MAX_PIXELS:
                    raise DatasetError(
                        f"{path}: {img.width}×{img.height} pixels, more than the {MAX_PIXELS:,} "
                        f"predict reads; expected a smaller image (it is resized to the model's input "
                        f"size anyway)"
                    )
                return pil_to_tensor(PilMode(channels)(img))
    except Image.DecompressionBombError as err:  # over twice PIL's limit: refused by Image.open itself
        raise DatasetError(
            f"{path}: too large to read ({err}); expected a smaller image, of at most {MAX_PIXELS:,} pixels"
        ) from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"{path}: cannot be read as an image ({err})") from None


def read_clip(path: str | Path) -> torch.Tensor:
    """A clip as a uint8 (T, 3, H, W) tensor: a folder of frames (image files in name order, all one
    size) or a video file (decoded with torchcodec, or torchvision.io with PyAV)."""
    from .data import DatasetError

    path = Path(path)
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not frames:
            raise DatasetError(f"{path}: a folder of frames, but it holds no files")
        images = [read_image_uint8(f) for f in frames]
        sizes = {tuple(i.shape) for i in images}
        if len(sizes) > 1:
            raise DatasetError(f"{path}: the frames must all have one size; found {sorted(sizes)}")
        return torch.stack(images)
    if not path.is_file():
        raise DatasetError(f"{path}: no such clip (a video file or a folder of frames)")
    if _is_image(path):
        raise DatasetError(
            f"{path}: an image; expected a clip, as a video model takes: a video file, or a folder of its frames"
        )
    try:
        video = _decode_video(path)
    except ImportError:
        raise DatasetError(
            f"{path}: reading a video file needs torchcodec (pip install 'cnnatlas[video]'), or a "
            "torchvision with io.read_video and PyAV; or give a folder of its frames"
        ) from None
    except Exception as err:  # noqa: BLE001 — a file the decoder cannot read
        raise DatasetError(f"{path}: cannot be read as a video ({type(err).__name__}: {err})") from None
    if video.shape[0] == 0:
        raise DatasetError(f"{path}: no frames could be read from it")
    return video


def _is_image(path: Path) -> bool:
    """Whether PIL recognises the file as an image (from its header: nothing is decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError):
        return False


def _decode_video(path: Path) -> torch.Tensor:
    """Every frame of a video file, uint8 (T, C, H, W): torchcodec's decoder, else torchvision.io's
    read_video (torchvision < 0.29, with PyAV); ImportError when neither is there."""
    try:
        from torchcodec.decoders import VideoDecoder
    except ImportError:
        from torchvision.io import read_video

        return read_video(str(path), pts_unit="sec", output_format="TCHW")[0]
    return VideoDecoder(str(path))[:]


def zoo_predictions(
    name: str,
    inputs: list[str],
    weights: str | None = None,
    top: int = 5,
    invert: bool = False,
    stride: int | None = None,
) -> list[dict]:
    """Top-`top` categories, with probabilities, that zoo model `name` with its published weights
    (the default, a tag or a file) gives each image (or clip, for the video models). A clip longer
    than the model's window is slid over (`stride` frames, default half the window): its entry
    gains "windows" (each window's first and last frame and top classes) and "top" is their average."""
    from .errors import InvalidArgumentError
    from .registry import get_entry
    from .zoo import create_model

    if get_entry(name).family == "segmentation":
        raise InvalidArgumentError(f"{name} is a segmentation model: zoo_masks gives its masks, not top classes")
    w = _predicting_weights(name, weights)
    video = w.transforms.kind != "image"
    inputs = inputs if video else _image_files(inputs)  # a folder: a clip for a video model, else its images
    clips = [read_clip(item) if video else read_image_uint8(item) for item in inputs]  # bad files fail first
    model = create_model(name, weights=w.path or w.tag)
    k = min(top, len(w.categories))
    window = get_entry(name).input_size[1] if video else 0
    stride = stride or max(1, window // 2)
    results = []
    for item, x in zip(inputs, clips):
        x = 255 - x if invert else x
        if video and x.shape[0] > window:  # (T, C, H, W) longer than the model's window
            results.append(_slide_over(model, w, item, x, k, window, stride))
            continue
        with torch.inference_mode():
            probs = model(w.transforms(x)[None]).softmax(-1)[0]
        results.append({"image": item, "weights": w.tag, "top": _ranked(probs, w.categories, k)})
    return results


def zoo_masks(
    name: str,
    images: list[str],
    weights: str | None = None,
    invert: bool = False,
    shift_average: bool = False,
    out_dir: str | Path | None = None,
) -> list[dict]:
    """The mask zoo segmentation model `name` with its published weights (the default, a tag or a file)
    predicts for each image: the weights' preprocessing (the shorter side resized to 520 for
    torchvision's), the logits upsampled (bilinear) to the image's own size, the best class per pixel
    (`shift_average`: the softmax averaged over ONE_PIXEL_SHIFTS of the preprocessed image). Each mask is
    written beside its image or in `out_dir` (`write_masks`; the places are checked before the model is
    loaded); each result also names the weights."""
    from .models.segmentation import ONE_PIXEL_SHIFTS, ShiftAveraged
    from .zoo import create_model

    w = _predicting_weights(name, weights)
    images = _image_files(images)
    inputs = [read_image_uint8(path) for path in images]  # bad files fail first
    mask_paths(images, out_dir)
    model = create_model(name, weights=w.path or w.tag)
    model = ShiftAveraged(model, ONE_PIXEL_SHIFTS) if shift_average else model
    masks = [mask_at(model, w.transforms(255 - x if invert else x)[None], x.shape[-2:]) for x in inputs]
    return [{**r, "weights": w.tag} for r in write_masks(images, masks, w.categories, out_dir)]


def _predicting_weights(name: str, weights: str | None):
    """The weights asked for (published by default), refused where they carry no preprocessing and categories."""
    from .errors import InvalidArgumentError
    from .pretrained import available_weights, catalogue, get_weights
    from .registry import get_entry

    get_entry(name)  # an unknown name fails here, with its hint
    if not available_weights(name):
        if weights is not None:
            get_weights(name, weights)  # a tag it has not, or a file that is not there, is named as such
        given = f"; a state dict alone ({weights}) carries neither" if weights is not None else ""
        raise InvalidArgumentError(
            f"{name} has no published weights, so nothing gives the preprocessing and class names to predict "
            f"with{given}: train it (`cnnatlas train {name}`) and give the run folder, which records both; "
            f"`cnnatlas models --pretrained` lists the {len(catalogue()['models'])} models that have published weights"
        )
    w = get_weights(name, True if weights is None else weights)
    if w.transforms is None or not w.categories:  # a catalogue entry without them: none has today
        raise InvalidArgumentError(
            f"{name}: the weights {w.tag} carry no preprocessing and class names to predict with"
        )
    return w


def _ranked(probs: torch.Tensor, categories, k: int) -> list[dict]:
    """The `k` most probable categories, best first, with their index and probability."""
    best = probs.topk(k)
    return [
        {"class": categories[i], "index": i, "probability": p}
        for p, i in zip(best.values.tolist(), best.indices.tolist())
    ]


def _slide_over(model, w, item: str, x: torch.Tensor, k: int, window: int, stride: int) -> dict:
    """A clip longer than the model's window: each window's top classes, and "top" their average."""
    from .windows import sliding_window

    with torch.inference_mode():
        starts, per_window, probs = sliding_window(model, w.transforms(x), window, stride)
    return {
        "image": item,
        "weights": w.tag,
        "frames": x.shape[0],
        "window": window,
        "stride": stride,
        "top": _ranked(probs, w.categories, k),
        "windows": [
            {"frames": [s, s + window - 1], "top": _ranked(p, w.categories, k)} for s, p in zip(starts, per_window)
        ],
    }


# The --data spec whose test set a published dataset names (the weights' `metrics["dataset"]`).
DATA_OF_PUBLISHED = {"CIFAR-10": "cifar10"}


@dataclass(frozen=True)
class ZooEvaluation:
    """Published weights measured on a test set: `result.acc` beside `weights.metrics` (the published
    figures); the confusion matrix is in the order of `weights.categories`."""

    result: EvalResult
    weights: Weights
    data: str  # the dataset's name (cifar10, folder:DIR)
    source: str  # what was read: the dataset, or the folder and its number of images


def zoo_evaluation(name: str, data: str | None = None, weights: str | None = None) -> ZooEvaluation:
    """Zoo model `name` with its published weights (the default, a tag or a file) measured on the test
    set of `data` (a --data spec; default: the dataset the weights publish their accuracy on, where
    cnnatlas reads it).

    A folder of images with one sub-folder per class is read whole (its test/ or val/ sub-folder where it
    has one), every image through the weights' own preprocessing (resize, centre crop, interpolation,
    mean and std: the protocol of the published figure); a dataset cnnatlas reads at the weights' input
    size (CIFAR-10) is normalised with their mean and std. Labels are mapped by class name onto the
    weights' categories; the classes may be a subset of them (Imagenette's 10 of ImageNet's 1000), and
    ImageNet-1K's may be named by WordNet ID (n01440764 …), as ImageNet's own folders are."""
    from torch.utils.data import DataLoader

    from .data import DatasetError, TensorImageDataset, dataset_kind, load_dataset
    from .data.folder import load_test_folder
    from .errors import InvalidArgumentError
    from .pretrained import category_synsets
    from .registry import get_entry
    from .train import evaluate
    from .zoo import create_model

    if get_entry(name).family == "segmentation":
        raise InvalidArgumentError(f"{name} is a segmentation model: zoo_evaluation measures classifiers")
    w = _predicting_weights(name, weights)
    if w.transforms.kind != "image":
        raise InvalidArgumentError(f"{name}: a video model; zoo_evaluation measures image classifiers")
    published = (w.metrics or {}).get("dataset")
    if data is None:
        if published not in DATA_OF_PUBLISHED:
            raise InvalidArgumentError(
                f"{name} {w.tag}: cnnatlas reads no test set of {published or 'the dataset of these weights'}; "
                f"give the data to measure them on: a folder of images with one sub-folder per category, named "
                f"as the weights' {len(w.categories)} ({', '.join(w.categories[:3])}, …)"
                + (" or by WordNet ID (n01440764, …)" if category_synsets(w.categories) else "")
            )
        data = DATA_OF_PUBLISHED[published]
    channels = len(w.transforms.mean)
    if dataset_kind(data) == "folder":
        test, folder = load_test_folder(data, w.transforms, channels)
        test.target_transform = _label_map(data, test.classes, w, name).__getitem__
        name_of_data, source = f"folder:{data}", f"image folder {folder} ({len(test):,} images)"
    else:
        splits = load_dataset(data, w.transforms.crop[-1], "none", channels)
        if not isinstance(splits.test, TensorImageDataset):
            raise DatasetError(f"{data}: its test images cannot be normalised as the {name} {w.tag} weights expect")
        test = splits.test
        test.mean, test.std = (torch.tensor(v).view(-1, 1, 1) for v in (w.transforms.mean, w.transforms.std))
        test.labels = torch.tensor(_label_map(data, splits.info.classes, w, name))[test.labels]
        name_of_data, source = splits.info.name, splits.source
    model = create_model(name, weights=w.path or w.tag)
    torch.manual_seed(0)
    result = evaluate(model, DataLoader(test, batch_size=64), len(w.categories), torch.device("cpu"))
    return ZooEvaluation(result, w, name_of_data, source)


def _label_map(data: str, classes, w, name: str) -> list[int]:
    """For each class of the data (in its label order), the index of the weights' category of that name,
    or of that WordNet ID for ImageNet-1K's; refused, naming them, where some match none."""
    from .data import DatasetError
    from .pretrained import category_synsets

    index = {c: i for i, c in enumerate(w.categories)}
    index.update({s: i for i, s in enumerate(category_synsets(w.categories) or ())})
    unknown = [c for c in classes if c not in index]
    if unknown:
        also = " or their WordNet IDs (n01440764, …)" if category_synsets(w.categories) else ""
        raise DatasetError(
            f"{data} has {len(unknown)} class{'es' if len(unknown) > 1 else ''} that the {name} {w.tag} weights do "
            f"not classify: {', '.join(unknown[:4])}{', …' if len(unknown) > 4 else ''}; they classify "
            f"{', '.join(w.categories[:4])}, … ({len(w.categories)}){also}"
        )
    return [index[c] for c in classes]
