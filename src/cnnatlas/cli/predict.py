"""`cnnatlas predict RUN_DIR IMAGE...`: the top classes a trained run gives each image (each clip for a run
on clips, slid over by its window when longer; each WAV recording for a run on sound). A folder stands for
the image files in it (the recordings for a run on sound; for a model on clips it is one clip, its frames).

`cnnatlas predict MODEL IMAGE...` with a zoo name instead of a run folder: the model with its published
weights (`--weights TAG|PATH`, else the default ones) and their own preprocessing; for the video models
each IMAGE is a clip, a folder of frames or a video file. A clip longer than the model's window (its
input frames) is read by a sliding window (`--stride` frames apart, `cnnatlas.windows`): the
per-window predictions and their average, the clip's prediction, are both reported.

For a segmentation run (`--data fashion-mnist-scenes`) or a zoo segmentation model (`deeplabv3_resnet50`,
`fcn_resnet50` with their published weights) each image's predicted mask is written beside it as
`<image stem>.mask.png`, one colour per class (`mask_palette`, background black), at the image's own
size (`--out-dir DIR`: in DIR instead); the output names that file and the share of the image each class
covers, largest first. An existing file of that name is replaced only if predict wrote it (its PNG text
chunk says so): anything else there is left as it is, and nothing is written.

The predictions themselves are `cnnatlas.predict`'s; this module checks the arguments and prints."""

from __future__ import annotations

from .argtypes import names_a_zoo_model
from .console import command_console, print_json


def _run(args) -> int:
    from rich.markup import escape

    from ..errors import InvalidArgumentError
    from ..predict import run_masks, run_predictions
    from ..train import load_run

    if names_a_zoo_model(args.run_dir):
        return _run_zoo(args)
    if args.top is not None and args.top < 1:
        raise InvalidArgumentError(f"--top must be ≥ 1; got {args.top}")
    if args.weights is not None:
        raise InvalidArgumentError(f"--weights is for a zoo model name; {args.run_dir} is a run folder")
    run = load_run(args.run_dir, args.checkpoint)
    if args.shift_average:
        run.shift_averaged()  # refuses --shift-average for a classifier
    segmentation = run.info.task == "segmentation"
    _check_stride(args, segmentation, f"{args.run_dir} is a segmentation run")
    if segmentation:
        return _report_masks(args, run_masks(run, args.images, args.invert, args.shift_average, args.out_dir))
    _refuse_out_dir(args, f"{args.run_dir} is a {run.info.task} run")
    results = run_predictions(run, args.images, 3 if args.top is None else args.top, args.invert, args.stride)
    if args.json:
        print_json(results)
        return 0
    console = command_console()
    for r in results:
        best = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        console.print(
            f"{escape(r['image'])}: [bold]{escape(r['top'][0]['class'])}[/]  ({escape(best)})", soft_wrap=True
        )
        _print_windows(console, r)
    return 0


def _print_windows(console, result: dict) -> None:
    """A clip longer than the window: how it was slid over, and each window's best class (the prediction
    printed above is their average)."""
    from rich.markup import escape

    if "windows" not in result:
        return
    console.print(
        f"  {result['frames']} frames, {len(result['windows'])} windows of {result['window']} frames, stride "
        f"{result['stride']}; the prediction above is their average",
        soft_wrap=True,
    )
    for win in result["windows"]:
        best = win["top"][0]
        console.print(
            f"  frames {win['frames'][0]:>4}–{win['frames'][1]:<4} {best['probability']:7.2%}  {escape(best['class'])}",
            soft_wrap=True,
        )


def _check_stride(args, segmentation: bool, what: str) -> None:
    """--stride is frames between windows: ≥ 1, and refused for a segmentation model (`what` names it); a
    classifier's predictions check it against their input."""
    from ..errors import InvalidArgumentError

    if args.stride is not None and args.stride < 1:
        raise InvalidArgumentError(f"--stride must be ≥ 1 frame; got {args.stride}")
    if args.stride is not None and segmentation:
        raise InvalidArgumentError(f"--stride is for a video model; {what}")


def _refuse_out_dir(args, what: str) -> None:
    from ..errors import InvalidArgumentError

    if args.out_dir is not None:
        raise InvalidArgumentError(f"--out-dir is where masks go: it needs a segmentation run or model; {what}")


def _report_masks(args, results: list[dict]) -> int:
    """Each mask's file and the classes it shows, largest share first (as `write_masks` lists them): all of
    them, or the `--top` K."""
    from rich.markup import escape

    if args.top is not None:
        for r in results:
            r["classes"] = dict(list(r["classes"].items())[: args.top])
    if args.json:
        print_json(results)
        return 0
    console = command_console()
    for r in results:
        found = ", ".join(f"{c} {v:.1%}" if v >= 0.0005 else f"{c} <0.1%" for c, v in r["classes"].items())
        console.print(f"{escape(r['image'])}: mask → [bold]{escape(r['mask'])}[/]  ({escape(found)})", soft_wrap=True)
    return 0


# -- a zoo model with its published weights -------------------------------------------------------


def _run_zoo(args) -> int:
    from rich.markup import escape

    from ..errors import InvalidArgumentError
    from ..predict import zoo_masks, zoo_predictions
    from ..registry import get_entry

    top = 5 if args.top is None else args.top
    if top < 1:
        raise InvalidArgumentError(f"--top must be ≥ 1; got {top}")
    if args.checkpoint is not None:
        raise InvalidArgumentError(
            f"--checkpoint is for a run folder; {args.run_dir} is a zoo model "
            "(choose its weights with --weights TAG|PATH)"
        )
    segmentation = get_entry(args.run_dir).family == "segmentation"
    _check_stride(args, segmentation, f"{args.run_dir} is a segmentation model")
    if segmentation:
        masks = zoo_masks(args.run_dir, args.images, args.weights, args.invert, args.shift_average, args.out_dir)
        return _report_masks(args, masks)
    _refuse_out_dir(args, f"{args.run_dir} is a zoo classifier")
    if args.shift_average:
        raise InvalidArgumentError(
            f"--shift-average averages a per-pixel prediction: it needs a segmentation run or model; "
            f"{args.run_dir} is a zoo classifier"
        )
    results = zoo_predictions(args.run_dir, args.images, args.weights, top, args.invert, args.stride)
    if args.json:
        print_json(results)
        return 0
    console = command_console()
    for r in results:
        console.print(
            f"{escape(r['image'])}: [bold]{escape(r['top'][0]['class'])}[/]  ({args.run_dir} {r['weights']})",
            soft_wrap=True,
        )
        for t in r["top"]:
            console.print(f"  {t['probability']:7.2%}  {escape(t['class'])}", soft_wrap=True)
        _print_windows(console, r)
    return 0


def add_parser(sub) -> None:
    from .argtypes import out_dir
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
        help="PNG, JPEG, … files, or folders of them (each file in it, masks predict wrote left out); for a video "
        "model, clips: folders of frames or video files; for a run on sound (--data fsdd), WAV recordings or "
        "folders of them",
    )
    p.add_argument(
        "--top",
        type=int,
        default=None,
        metavar="K",
        help="how many classes to show (default 3 for a run, 5 for a zoo model; for a mask, every class "
        "it shows, largest share first)",
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
    p.add_argument(
        "--out-dir",
        type=out_dir,
        metavar="DIR",
        help="a segmentation run or model: write the masks to DIR (made if missing) instead of beside the images",
    )
    p.add_argument("--checkpoint", metavar="DIR", help="a checkpoint folder instead of the final weights")
    add_shift_average_flag(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_run)
