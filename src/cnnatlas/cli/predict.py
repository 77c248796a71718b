"""`cnnatlas predict RUN_DIR IMAGE...`: the top classes a trained run gives each image."""

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
                    raise DatasetError(f"{path}: {img.width}×{img.height} pixels, more than the {MAX_PIXELS:,} "
                                       f"predict reads; expected a smaller image (it is resized to the run's input "
                                       f"size anyway)")
                image = pil_to_tensor(img.convert("L" if channels == 1 else "RGB"))
    except Image.DecompressionBombError as err:  # over twice PIL's limit: refused by Image.open itself
        raise DatasetError(f"{path}: too large to read ({err}); expected a smaller image, of at most "
                           f"{MAX_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"{path}: cannot be read as an image ({err})") from None
    image = image.float() / 255.0
    return 1.0 - image if invert else image


def _run(args) -> int:
    from rich.console import Console

    from ..errors import InvalidArgumentError
    from ..train import load_run

    if args.top < 1:
        raise InvalidArgumentError(f"--top must be ≥ 1; got {args.top}")
    run = load_run(args.run_dir, args.checkpoint)
    classes = run.info.classes
    k = min(args.top, len(classes))
    results = []
    for path in args.images:
        probs = run.predict(read_image(path, run.info.in_channels, args.invert)[None])[0]
        top = probs.topk(k)
        results.append({"image": path, "top": [{"class": classes[i], "index": i, "probability": p}
                                               for p, i in zip(top.values.tolist(), top.indices.tolist())]})
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    console = Console()
    for r in results:
        best = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        console.print(f"{r['image']}: [bold]{r['top'][0]['class']}[/]  ({best})")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="the top classes a trained run gives each image")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG, … files")
    p.add_argument("--top", type=int, default=3, metavar="K", help="how many classes to show (default 3)")
    p.add_argument("--invert", action="store_true",
                   help="invert intensities (dark ink on white → the digits' and Fashion-MNIST's light on dark)")
    p.add_argument("--checkpoint", metavar="DIR", help="a checkpoint folder instead of the final weights")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_run)
