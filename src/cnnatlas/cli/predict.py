"""`cnnatlas predict RUN_DIR IMAGE...`: the top classes a trained run gives each image.

`cnnatlas predict MODEL IMAGE...` with a zoo name instead of a run folder: the model with its published
weights (`--weights TAG|PATH`, else the default ones) and their own preprocessing; for the video models
each IMAGE is a clip, a folder of frames or a video file. A clip longer than the model's window (its
input frames) is read by a sliding window (`--stride` frames apart, `cnnatlas.windows`): the
per-window predictions and their average, the clip's prediction, are both reported.

For a segmentation run (`--data fashion-mnist-scenes`) or a zoo segmentation model (`deeplabv3_resnet50`,
`fcn_resnet50` with their published weights) each image's predicted mask is written beside it as
`<image stem>.mask.png`, one colour per class (`mask_palette`, background black), at the image's own
size; the output names that file and the share of the image each class covers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

MAX_PIXELS = 89_478_485  # PIL's own warning threshold (Image.MAX_IMAGE_PIXELS): ~ 9459×9459


def read_image(path: str | Path, channels: int, invert: bool = False) -> torch.Tensor:
    """An image file as a float (C, H, W) tensor in [0, 1] with the run's number of channels."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2.functional import pil_to_tensor

    from ..data import DatasetError

    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path}: a folder; expected an image file (PNG, JPEG, …)")
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked here instead
            with Image.open(path) as img:  # reads the header only: a huge image is refused before decoding
                if img.width * img.height > MAX_PIXELS:
                    raise DatasetError(
                        f"{path}: {img.width}×{img.height} pixels, more than the {MAX_PIXELS:,} "
                        f"predict reads; expected a smaller image (it is resized to the run's input "
                        f"size anyway)"
                    )
                image = pil_to_tensor(img.convert("L" if channels == 1 else "RGB"))
    except Image.DecompressionBombError as err:  # over twice PIL's limit: refused by Image.open itself
        raise DatasetError(
            f"{path}: too large to read ({err}); expected a smaller image, of at most {MAX_PIXELS:,} pixels"
        ) from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"{path}: cannot be read as an image ({err})") from None
    image = image.float() / 255.0
    return 1.0 - image if invert else image


def _run(args) -> int:
    from rich.console import Console

    from ..errors import InvalidArgumentError
    from ..train import load_run
    from .evaluate import shift_averaged

    if not Path(args.run_dir).is_dir() and _is_zoo_name(args.run_dir):
        return _run_zoo(args)
    if args.top is None:
        args.top = 3
    if args.top < 1:
        raise InvalidArgumentError(f"--top must be ≥ 1; got {args.top}")
    if args.weights is not None:
        raise InvalidArgumentError(f"--weights is for a zoo model name; {args.run_dir} is a run folder")
    run = load_run(args.run_dir, args.checkpoint)
    if run.info.task == "segmentation":
        return _run_segmentation(run, args)
    shift_averaged(run, args.shift_average)  # refuses --shift-average for a classifier
    classes = run.info.classes
    k = min(args.top, len(classes))
    results = []
    for path in args.images:
        probs = run.predict(read_image(path, run.info.in_channels, args.invert)[None])[0]
        top = probs.topk(k)
        results.append(
            {
                "image": path,
                "top": [
                    {"class": classes[i], "index": i, "probability": p}
                    for p, i in zip(top.values.tolist(), top.indices.tolist())
                ],
            }
        )
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    console = Console()
    for r in results:
        best = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        console.print(f"{r['image']}: [bold]{r['top'][0]['class']}[/]  ({best})")
    return 0


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


def mask_path(image: str | Path) -> Path:
    """Where predict writes an image's mask: beside it, `<stem>.mask.png`."""
    image = Path(image)
    return image.with_name(f"{image.stem}.mask.png")


def predict_mask(run, image: torch.Tensor, model: torch.nn.Module | None = None) -> torch.Tensor:
    """The class of every pixel (H, W) of a float image (C, H, W) in [0, 1]: the run's logits (or
    `model`'s, the run's wrapped) at its input size, upsampled to the image's size (`mask_at`)."""
    return mask_at(model or run.model, run.info.prepare(image)[None], image.shape[-2:])


def mask_at(model: torch.nn.Module, x: torch.Tensor, size) -> torch.Tensor:
    """The best class per pixel (H, W) of `model`'s logits on `x`, a batch of one, upsampled (bilinear) to `size`."""
    with torch.inference_mode():
        logits = model(x)
    return torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)[0].argmax(0)


def save_mask(mask: torch.Tensor, path: Path, classes) -> None:
    """The mask (H, W) of class indices as an RGB PNG, each class in its `mask_palette` colour."""
    from PIL import Image

    palette = torch.tensor(mask_palette(classes), dtype=torch.uint8)
    Image.fromarray(palette[mask].numpy()).save(path)


def _run_segmentation(run, args) -> int:
    from .evaluate import shift_averaged

    model = shift_averaged(run, args.shift_average)
    images = [read_image(path, run.info.in_channels, args.invert) for path in args.images]  # bad files fail first
    masks = [predict_mask(run, image, model) for image in images]
    return _report_masks(args, write_masks(args.images, masks, run.info.classes))


def write_masks(paths: list[str], masks: list[torch.Tensor], classes) -> list[dict]:
    """Each mask saved beside its image (`mask_path`); per image its path, the mask's and the share of
    the image each class present covers."""
    results = []
    for path, mask in zip(paths, masks):
        out = mask_path(path)
        save_mask(mask, out, classes)
        share = torch.bincount(mask.flatten(), minlength=len(classes)).double() / mask.numel()
        results.append(
            {
                "image": path,
                "mask": str(out),
                "classes": {classes[i]: float(share[i]) for i in share.nonzero().flatten().tolist()},
            }
        )
    return results


def _report_masks(args, results: list[dict]) -> int:
    from rich.console import Console
    from rich.markup import escape

    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    console = Console()
    for r in results:
        found = ", ".join(f"{c} {v:.1%}" for c, v in sorted(r["classes"].items(), key=lambda kv: -kv[1]))
        console.print(f"{escape(r['image'])}: mask → [bold]{escape(r['mask'])}[/]  ({escape(found)})", soft_wrap=True)
    return 0


# -- a zoo model with its published weights -------------------------------------------------------


def _is_zoo_name(name: str) -> bool:
    from ..registry import list_models

    return name in list_models()


def read_image_uint8(path: str | Path) -> torch.Tensor:
    """An image file as a uint8 (3, H, W) RGB tensor (what the weights' preprocessing takes)."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2.functional import pil_to_tensor

    from ..data import DatasetError

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with Image.open(path) as img:
            return pil_to_tensor(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"{path}: cannot be read as an image ({err})") from None


def read_clip(path: str | Path) -> torch.Tensor:
    """A clip as a uint8 (T, 3, H, W) tensor: a folder of frames (image files in name order, all one
    size) or a video file (decoded with torchcodec, or torchvision.io with PyAV)."""
    from ..data import DatasetError

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
    from ..errors import InvalidArgumentError
    from ..registry import get_entry
    from ..zoo import create_model

    if get_entry(name).family == "segmentation":
        raise InvalidArgumentError(f"{name} is a segmentation model: zoo_masks gives its masks, not top classes")
    w = _predicting_weights(name, weights)
    video = w.transforms.kind != "image"
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
    name: str, images: list[str], weights: str | None = None, invert: bool = False, shift_average: bool = False
) -> list[dict]:
    """The mask zoo segmentation model `name` with its published weights (the default, a tag or a file)
    predicts for each image: the weights' preprocessing (the shorter side resized to 520 for
    torchvision's), the logits upsampled (bilinear) to the image's own size, the best class per pixel
    (`shift_average`: the softmax averaged over ONE_PIXEL_SHIFTS of the preprocessed image). Each mask is
    written beside its image (`write_masks`); each result also names the weights."""
    from ..models.segmentation import ONE_PIXEL_SHIFTS, ShiftAveraged
    from ..zoo import create_model

    w = _predicting_weights(name, weights)
    inputs = [read_image_uint8(path) for path in images]  # bad files fail first
    model = create_model(name, weights=w.path or w.tag)
    model = ShiftAveraged(model, ONE_PIXEL_SHIFTS) if shift_average else model
    masks = [mask_at(model, w.transforms(255 - x if invert else x)[None], x.shape[-2:]) for x in inputs]
    return [{**r, "weights": w.tag} for r in write_masks(images, masks, w.categories)]


def _predicting_weights(name: str, weights: str | None):
    """The weights asked for (published by default), refused where they carry no preprocessing and categories."""
    from ..errors import InvalidArgumentError
    from ..pretrained import get_weights

    w = get_weights(name, True if weights is None else weights)
    if w.transforms is None or not w.categories:
        raise InvalidArgumentError(
            f"{name}: the weights {w.tag} carry no preprocessing and categories to predict "
            f"with; use the model's published weights, or a file named as they are"
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
    from ..windows import sliding_window

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


def _run_zoo(args) -> int:
    from rich.console import Console
    from rich.markup import escape

    from ..errors import InvalidArgumentError
    from ..registry import get_entry

    top = 5 if args.top is None else args.top
    if top < 1:
        raise InvalidArgumentError(f"--top must be ≥ 1; got {top}")
    if args.checkpoint is not None:
        raise InvalidArgumentError(
            f"--checkpoint is for a run folder; {args.run_dir} is a zoo model "
            "(choose its weights with --weights TAG|PATH)"
        )
    if args.stride is not None and args.stride < 1:
        raise InvalidArgumentError(f"--stride must be ≥ 1 frame; got {args.stride}")
    if get_entry(args.run_dir).family == "segmentation":
        if args.stride is not None:
            raise InvalidArgumentError(f"--stride is for a video model; {args.run_dir} is a segmentation model")
        return _report_masks(args, zoo_masks(args.run_dir, args.images, args.weights, args.invert, args.shift_average))
    if args.shift_average:
        raise InvalidArgumentError(
            f"--shift-average averages a per-pixel prediction: it needs a segmentation run or model; "
            f"{args.run_dir} is a zoo classifier"
        )
    results = zoo_predictions(args.run_dir, args.images, args.weights, top, args.invert, args.stride)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    console = Console()
    for r in results:
        console.print(
            f"{escape(r['image'])}: [bold]{escape(r['top'][0]['class'])}[/]  ({args.run_dir} {r['weights']})",
            soft_wrap=True,
        )
        if "windows" in r:
            console.print(
                f"  {r['frames']} frames, {len(r['windows'])} windows of {r['window']} frames, stride "
                f"{r['stride']}; the average of the windows:",
                soft_wrap=True,
            )
        for t in r["top"]:
            console.print(f"  {t['probability']:7.2%}  {escape(t['class'])}", soft_wrap=True)
        for win in r.get("windows", []):
            best = win["top"][0]
            console.print(
                f"  frames {win['frames'][0]:>4}–{win['frames'][1]:<4} {best['probability']:7.2%}  "
                f"{escape(best['class'])}",
                soft_wrap=True,
            )
    return 0


def add_parser(sub) -> None:
    from .evaluate import add_shift_average_flag

    p = sub.add_parser(
        "predict",
        help="the top classes a trained run, or a zoo model with its published weights, "
        "gives each image (a segmentation run or model: a mask PNG beside each image)",
    )
    p.add_argument(
        "run_dir",
        metavar="RUN_DIR|MODEL",
        help="a run folder, or a zoo model name (its published weights, e.g. resnet50)",
    )
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="PNG, JPEG, … files; for a video model, clips: folders of frames or video files",
    )
    p.add_argument(
        "--top",
        type=int,
        default=None,
        metavar="K",
        help="how many classes to show (default 3 for a run, 5 for a zoo model)",
    )
    p.add_argument(
        "--weights",
        metavar="TAG|PATH",
        help="a zoo model's weights: a tag from `cnnatlas info MODEL` or a .pth/.pt/.safetensors file",
    )
    p.add_argument(
        "--invert",
        action="store_true",
        help="invert intensities (dark ink on white → the digits' and Fashion-MNIST's light on dark)",
    )
    p.add_argument(
        "--stride",
        type=int,
        default=None,
        metavar="FRAMES",
        help="a video model on a clip longer than its window: frames between windows (default half "
        "the window); the windows' scores are averaged",
    )
    p.add_argument("--checkpoint", metavar="DIR", help="a checkpoint folder instead of the final weights")
    add_shift_average_flag(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_run)
