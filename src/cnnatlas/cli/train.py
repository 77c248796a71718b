"""`cnnatlas train MODEL`: train a model of the zoo on the digits, Fashion-MNIST or a folder.

Also under torchrun, unchanged: `torchrun --nproc-per-node 2 -m cnnatlas train lenet5`.
"""

from __future__ import annotations

from pathlib import Path

from .argtypes import add_model_arg, model_args


def _data(args) -> str:
    return "digits" if args.data is None else args.data  # --data "" is refused, not read as the default


def config_from_args(args):
    """The TrainConfig a command line asks for: per-model/dataset defaults with the given flags on
    top; with --resume, the saved run's config with the given flags on top (the trainer refuses
    those a resumed run cannot change, see `cnnatlas.train.check_resume`)."""
    from ..train import ResumeError, default_config, read_run_config, resolve_resume, with_overrides
    from ..train.loop import resolve_run_dir

    flags = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "schedule": args.schedule,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "warmup_epochs": args.warmup_epochs,
        "label_smoothing": args.label_smoothing,
        "class_weights": args.class_weights,
        "grad_clip": args.grad_clip,
        "ema": args.ema,
        "seed": args.seed,
        "device": args.device,
        "precision": args.precision,
        "image_size": args.image_size,
        "augment": args.augment,
        "train_scenes": args.train_scenes,
        "sample_rate": args.sample_rate,
        "mu_law": args.mu_law or None,
        "frames": args.frames,
        "workers": args.workers,
        "out": args.out,
        "model_kwargs": model_args(args.model_arg) or None,
        "deterministic": args.deterministic or None,
        "quiet": args.quiet or None,
        "inflate": args.inflate or None,
        "init": args.init,
    }
    if not args.resume or args.out == "":
        return default_config(args.model, _data(args), **flags)  # (--out "" is refused there)
    if args.resume != "latest":  # a run folder or one of its checkpoints: the run continues there (the
        run_dir, _ = resolve_resume(args.resume)  # trainer refuses an --out naming another folder)
    elif args.out is not None:
        run_dir = Path(args.out)
    else:
        run_dir = resolve_run_dir(default_config(args.model, _data(args)), resume=True)
    if not (run_dir / "config.json").exists():  # checkpoints only: the trainer checks them against the flags
        return default_config(args.model, _data(args), **{**flags, "out": args.out or str(run_dir)})
    saved, _, _ = read_run_config(run_dir)
    if saved.model != args.model:
        raise ResumeError(f"{run_dir} is a run of {saved.model}, not {args.model}")
    if args.data is not None and args.data != saved.data:
        raise ResumeError(f"{run_dir} was trained on {saved.data}; --data {args.data} cannot resume it")
    flags.update(out=args.out or str(run_dir), quiet=args.quiet)
    return with_overrides(saved, **flags)


def _run(args) -> int:
    from ..train import TrainingDivergedError, train

    config = config_from_args(args)
    resume = args.resume if args.resume not in (None, "latest") else args.resume == "latest"
    try:
        train(config, resume=resume)
    except TrainingDivergedError as err:
        print(f"cnnatlas: training stopped: {err}")
        return 1
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on the digits, Fashion-MNIST or an image folder",
        description="Train MODEL. Unset flags take defaults chosen per model and dataset "
        "(a bare 'cnnatlas train lenet5' trains LeNet-5 on the digits). Under "
        "torchrun each process trains a shard (DistributedDataParallel).",
    )
    p.add_argument("model", metavar="MODEL", help="a name from 'cnnatlas models'")
    p.add_argument(
        "--data",
        metavar="DATA",
        help="digits (default), fashion-mnist, cifar10, fsdd, "
        "moving-fashion-mnist, fashion-mnist-scenes (found in, or downloaded into, the data folder $CNNATLAS_DATA or "
        "~/.cache/cnnatlas), NAME:DIR (its files in DIR), or a folder "
        "(of MNIST-format IDX files, or of images with one sub-folder per class)",
    )
    p.add_argument("--epochs", type=int, metavar="N", help="passes over the training set")
    p.add_argument("--batch-size", type=int, metavar="B", help="global batch, split over torchrun's processes")
    p.add_argument("--lr", type=float, metavar="X", help="peak learning rate")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), help="SGD with momentum, or AdamW")
    p.add_argument("--schedule", choices=("cosine", "step"), help="cosine, or ÷10 at 50%% and 75%% of the epochs")
    _add_run_args(p)
    _add_more_settings(p.add_argument_group("more settings"))
    p.set_defaults(run=_run)


def _add_run_args(p) -> None:
    """Where the run goes and how it runs: its folder, resume, seed, device, precision, initial weights."""
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/MODEL-DATA, numbered when taken)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN_OR_CHECKPOINT",
        help="continue the run in --out (or the newest runs/MODEL-DATA) from its newest checkpoint, "
        "or the run folder or checkpoint folder given — always in that run's folder",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="seed of the initial weights, the batch order and the augmentation (the train/test split stays)",
    )
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (same result twice)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="auto: the GPU where there is one")
    p.add_argument(
        "--init",
        metavar="PATH",
        help="start from another run's weights (a run, checkpoint or .safetensors): a classifier's for a "
        "segmentation model's backbone, …",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="auto: mixed on a GPU, float32 on the CPU; bfloat16 autocasts on the CPU too",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _add_more_settings(g) -> None:
    """The recipe's finer settings: regularisation, augmentation, input size, loader, model arguments."""
    g.add_argument("--momentum", type=float, help="SGD's momentum")
    g.add_argument("--weight-decay", type=float, help="on weights of rank ≥ 2 only (not biases or norm scales)")
    g.add_argument("--warmup-epochs", type=float, help="linear warm-up of the learning rate from lr/100 (epochs)")
    g.add_argument(
        "--label-smoothing",
        type=float,
        metavar="EPS",
        help="ε: the target gives the label 1 − ε, and ε/classes to each",
    )
    g.add_argument(
        "--class-weights",
        choices=("none", "median-frequency", "sqrt-median-frequency"),
        help="weight the loss per class from the training labels' frequencies (median frequency balancing)",
    )
    g.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the global gradient norm (0 = off)")
    g.add_argument(
        "--ema",
        type=float,
        metavar="DECAY",
        help="evaluate and keep a moving average of the weights with this decay, e.g. 0.999 (0 = off)",
    )
    g.add_argument("--augment", metavar="LIST", help="auto, none, or a comma list of crop, flip, jitter")
    g.add_argument(
        "--image-size",
        type=int,
        metavar="PX",
        help="side of the model's input (--data fsdd: the window in samples, default one second)",
    )
    g.add_argument(
        "--train-scenes",
        type=int,
        metavar="N",
        help="--data fashion-mnist-scenes: training scenes drawn (default 10,000; the test scenes stay the same)",
    )
    g.add_argument(
        "--sample-rate",
        type=int,
        metavar="HZ",
        help="--data fsdd: the recordings' rate, 8000 divided by a whole number (default 8000)",
    )
    g.add_argument("--mu-law", action="store_true", help="--data fsdd: μ-law compand each recording (WaveNet)")
    g.add_argument(
        "--frames",
        type=int,
        metavar="T",
        help="--data moving-fashion-mnist: frames per clip (default 16)",
    )
    g.add_argument("--workers", type=int, metavar="N", help="DataLoader worker processes")
    add_model_arg(g)
    g.add_argument(
        "--inflate",
        action="store_true",
        help="train the 3-D inflation of a 2-D model (I3D; the default for video clips)",
    )
