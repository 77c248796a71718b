"""Dense prediction on real data, written to benchmarks/RESULTS-segmentation.md.

    OMP_NUM_THREADS=1 python benchmarks/segmentation.py                      # every item but flips
    python benchmarks/segmentation.py --only dense,dense-seed1,dense-seed2,dense-seed3,dense-seed4 --threads 2
    python benchmarks/segmentation.py --only dense --keep runs                # the run folder kept as runs/dense
    python benchmarks/segmentation.py --only flips --keep runs               # flip averaging of the kept runs
    python benchmarks/segmentation.py --only ema --threads 2                 # the recipe with --ema 0.999
    python benchmarks/segmentation.py --only pretrained-seed1 --threads 1    # backbone first trained on items
    python benchmarks/segmentation.py --only shifted-seed1 --threads 2       # test scenes averaged over shifts
    python benchmarks/segmentation.py --only shifted76k-seed1 --threads 2    # the same on 76,000 scenes
    python benchmarks/segmentation.py --only lean-seed1 --threads 2          # the lean model, shift-averaged
    python benchmarks/segmentation.py --only speed --threads 2               # can this machine judge the target?
    python benchmarks/segmentation.py --render                               # rebuild the markdown only

On a CPU without bfloat16 instructions (AVX-512 BF16 or AMX) the recipe's items stop before training: its
bfloat16 steps are emulated there, about ten times slower, so its minutes would not judge the target
(`--even-without-bf16` runs them anyway).

Results accumulate in benchmarks/segmentation_results.json, one record per item, with the machine and
the load average each was measured under; the markdown is rebuilt from all of them.

* dense    `deeplabv3plus` on `resnet20` (output stride 4, ASPP without dropout, decoder of 16 channels at
           stride 1) trained by cnnatlas's trainer (bfloat16 autocast, loss weighted by sqrt median frequency)
           on `--data fashion-mnist-scenes` (96,000 train / 2,000 test scenes of 64×64, from the official
           Fashion-MNIST train / test images); target: test mean IoU ≥ 0.80 within 30 minutes on the CPU.
           The record keeps wall minutes (training and per-epoch evaluation) and the process's CPU
           minutes (all threads), so a run on more threads shows what it spent.
* dense-seed1 … dense-seed4  the same recipe with the trainer's seed 1 to 4 (initial weights, batch
           order): the same scenes, so the rows show how much a run varies with the seed alone.
* pretrained-seed1, pretrained-seed3  the recipe (training seeds 1 and 3) after a first stage that trains its
           backbone as a Fashion-MNIST classifier for one epoch (PRETRAIN), on 2,000 fewer training scenes to
           pay for that stage's time; its minutes count both stages.
* shifted-seed1, shifted-seed4  the recipe (training seeds 1 and 4), then its test mean IoU with the
           softmax averaged over the test scene moved by 0 or 1 pixel along each axis (SHIFTS); its minutes
           count that evaluation, and the target is judged on the averaged figure.
* shifted76k-seed1, shifted76k-seed3, shifted76k-seed4  the same on 76,000 training scenes (SHORT_SCENES)
           instead of 96,000: 4 epochs that fit 30 minutes on a machine 1.25× slower than the one the
           recipe was measured on (the Intel Xeon of the speed table), judged on the averaged figure.
* lean-seed1, lean-seed3, lean-seed4  the recipe (training seeds 1, 3 and 4) with the lean model (LEAN: the
           backbone's nine blocks spread 1/3/5 over its stages, ASPP of 32 channels), its test prediction then
           averaged over SHIFTS, that evaluation's time counted: a step about 0.75× the recipe's.
* speed    one epoch of the recipe on 3,200 training and 500 test scenes: its training and evaluation
           speeds on this machine (scenes per second) and the minutes they project for the whole recipe
           (4 epochs of 96,000 scenes, each followed by the evaluation of 2,000); then the same for the lean
           model, with the shift-averaged evaluation of the 2,000 test scenes counted. In about a minute
           rather than an hour. One record per processor and thread count: the table compares machines.
* ema      the dense recipe (training seed 0) with `--ema 0.999`: per epoch, the test mean IoU of the
           weights' moving average (what the run reports and keeps) against that of the stepped weights
           (each checkpoint's `training_weights`) of the same run.
* flips    the kept dense runs' test mean IoU with test-time flip averaging (horizontal; horizontal and
           vertical), against the runs as trained.
* claims   `gap-dense`, `dilation-resolution` and `inflation-transfer` (`cnnatlas verify`, full
           budgets), their numbers as the claims report them.
* long-clip  `cnnatlas predict` on a clip longer than the model's window: the sliding window's
           per-window and averaged prediction and its time (in benchmarks/video_audio.py).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_results import machine, run_items  # noqa: E402

from cnnatlas.models.segmentation import ONE_PIXEL_SHIFTS  # noqa: E402

RECORDS = HERE / "segmentation_results.json"
REPORT = HERE / "RESULTS-segmentation.md"
# item: the trainer's seed for the recipe
DENSE_RUNS = {"dense": 0, "dense-seed1": 1, "dense-seed2": 2, "dense-seed3": 3, "dense-seed4": 4}
# item: the trainer's seed for the recipe with its backbone first trained on Fashion-MNIST items (PRETRAIN)
PRETRAINED_RUNS = {"pretrained-seed1": 1, "pretrained-seed3": 3}
# item: the trainer's seed for the recipe whose test prediction is then averaged over SHIFTS
SHIFTED_RUNS = {"shifted-seed1": 1, "shifted-seed3": 3, "shifted-seed4": 4}
# item: the trainer's seed for the recipe on SHORT_SCENES training scenes, its test prediction averaged over SHIFTS
SHORT_RUNS = {"shifted76k-seed1": 1, "shifted76k-seed3": 3, "shifted76k-seed4": 4}
SHORT_SCENES = 76_000  # a fifth fewer than the recipe's: its 4 epochs fit 30 minutes on a machine 1.25× slower
# item: the trainer's seed for the recipe with the lean model (LEAN), its test prediction averaged over SHIFTS
LEAN_RUNS = {"lean-seed1": 1, "lean-seed3": 3, "lean-seed4": 4}
CLAIMS = ("gap-dense", "dilation-resolution", "inflation-transfer")
FLIPS = "flips"  # test-time flip averaging of the dense runs kept with --keep
EMA = "ema"  # the recipe with a moving average of the weights, both evaluated per epoch
EMA_DECAY = 0.999
SPEED = "speed"  # the recipe's and the lean model's speeds here, and the minutes they project
SPEED_SCENES = {"train_scenes": 3_200, "test_scenes": 500}
DENSE_ITEMS = (*DENSE_RUNS, *PRETRAINED_RUNS, *SHIFTED_RUNS, *SHORT_RUNS, *LEAN_RUNS)
ITEMS = (*DENSE_ITEMS, EMA, SPEED, *CLAIMS, FLIPS)
TITLE = "DeepLab v3+ (resnet20 backbone, output stride 4, no ASPP dropout, decoder at stride 1) on Fashion-MNIST scenes"
PRETRAINED_TITLE = ", backbone first trained 1 epoch on Fashion-MNIST items"
SHIFTED_TITLE = ", test prediction averaged over 4 one-pixel shifts of each scene"
LEAN_TITLE = ", lean model (backbone blocks 1/3/5, ASPP of 32 channels)"
TARGET_MIOU, TARGET_MINUTES = 0.80, 30.0

# The dense model's recipe: DeepLab v3+ on ResNet-20, its decoder fed by the stride-1 stage and 16 channels
# wide (at 64×64 the decoder is the costliest part of a step: with 32 channels a step takes about 1.15× as
# long, and the time saved buys more training scenes), without the dropout after ASPP (the model underfits
# these scenes), in bfloat16 autocast on the CPU (about 1.6× the float32 steps here), the loss weighted by
# the square root of median frequency balancing, on 96,000 training scenes (4 epochs: about 28 minutes on
# two threads here).
DENSE = {
    "model": "deeplabv3plus",
    "model_kwargs": {
        "backbone": "resnet20",
        "channels": 64,
        "low_level_reduced": 16,
        "decoder_channels": 16,
        "drop_rate": 0.0,
    },
    "data": {"train_scenes": 96_000, "test_scenes": 2_000, "size": 64, "max_items": 4, "seed": 0},
    "train": {
        "epochs": 4,
        "batch_size": 32,
        "optimizer": "adamw",
        "lr": 6e-3,
        "weight_decay": 1e-4,
        "warmup_epochs": 0.2,
        "precision": "bfloat16",
        "class_weights": "sqrt-median-frequency",
    },
}

# The recipe with a first stage: its backbone, ResNet-20, trained as a classifier on Fashion-MNIST's 60,000
# training images (28×28, the scale of the scenes' items; no flips: the items have an orientation) for one
# epoch, then the dense model started from those weights (`--init`: the classifier's head is left out). The
# first stage took 70 s on a machine where the dense model trains on 110 scenes a second: the time of 4 epochs
# of about 1,900 scenes. So the dense stage draws 2,000 fewer training scenes than the recipe without it.
PRETRAIN = {
    "model": "resnet20",
    "data": "fashion-mnist",
    "train": {
        "epochs": 1,
        "batch_size": 128,
        "optimizer": "adamw",
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "warmup_epochs": 0.2,
        "image_size": 28,
        "precision": "bfloat16",
        "augment": "none",
    },
}
PRETRAINED_SCENES = 94_000

# The lean model: the recipe's model made cheaper where its step is memory-bound, the same 20 layers. The
# backbone's nine blocks are spread (1, 3, 5) over its stages instead of (3, 3, 3) (a block on the 64×64 maps
# moves 4× the bytes of one on the 16×16 maps, for the same multiply-accumulates), and ASPP is 32 channels
# wide instead of 64 (its map is upsampled to 64×64 and concatenated there). A training step of 32 scenes
# takes about 0.75× the recipe's on the Intel Xeon of the speed table; trained the same way.
LEAN = {**DENSE["model_kwargs"], "channels": 32, "backbone_args": {"blocks": (1, 3, 5)}}

# Test-time shift averaging (`cnnatlas eval --shift-average`): each test scene is also seen moved by one pixel
# right, down, and both (its edges replicated: the scenes' background is uniform), and the softmax of each
# view, moved back, is averaged. Flips do not serve here: the items have an orientation.
SHIFTS = ONE_PIXEL_SHIFTS


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _curve(run_dir: str, start_seconds: float) -> list[dict]:
    """Per epoch of a run: test mean IoU (or accuracy) and the cumulative minutes from `start_seconds`."""
    history = [json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines() if line]
    elapsed, curve = start_seconds, []
    for h in history:
        elapsed += h["seconds"]
        curve.append(
            {"epoch": h["epoch"], "minutes": elapsed / 60, "test_miou": h.get("test_miou"), "test_acc": h["test_acc"]}
        )
    return curve


def run_dense(item: str, keep: str | None = None) -> dict:
    """The dense recipe with the trainer's seed of `item` (initial weights, batch order): the scenes are
    the same for every seed. The run folder is kept as `keep/item` when `keep` is given (for
    `cnnatlas eval` or `predict` later), else it is a temporary one. Item `ema`: seed 0 with the
    weights' moving average, every checkpoint kept, and each epoch's stepped weights evaluated too.
    The PRETRAINED_RUNS items first train the backbone as a classifier (PRETRAIN, folder `item-backbone`),
    and their minutes count both stages."""
    seed = {**DENSE_RUNS, **PRETRAINED_RUNS, **SHIFTED_RUNS, **SHORT_RUNS, **LEAN_RUNS}.get(item, 0)
    pretrained, short, lean = item in PRETRAINED_RUNS, item in SHORT_RUNS, item in LEAN_RUNS
    shifted = item in SHIFTED_RUNS or short or lean
    model_kwargs = LEAN if lean else DENSE["model_kwargs"]
    averaged = {"ema": EMA_DECAY, "keep_checkpoints": DENSE["train"]["epochs"]} if item == EMA else {}
    scenes = PRETRAINED_SCENES if pretrained else SHORT_SCENES if short else DENSE["data"]["train_scenes"]
    data_settings = {**DENSE["data"], "train_scenes": scenes}
    from cnnatlas.data import load_scene_splits
    from cnnatlas.models.base import count_params
    from cnnatlas.train import TrainConfig, default_config, train
    from cnnatlas.zoo import create_model

    start = time.perf_counter()
    data = load_scene_splits(**data_settings)
    data_seconds = time.perf_counter() - start
    load_before, cpu_train = os.getloadavg()[0], cpu_seconds()
    with tempfile.TemporaryDirectory() as scratch:
        out = str(Path(keep or scratch, item))
        first = None
        if pretrained:
            backbone = str(Path(keep or scratch, f"{item}-backbone"))
            first = train(
                default_config(PRETRAIN["model"], PRETRAIN["data"], out=backbone, seed=seed, **PRETRAIN["train"])
            )
        config = TrainConfig(
            model=DENSE["model"],
            data="fashion-mnist-scenes",
            model_kwargs=model_kwargs,
            train_scenes=data_settings["train_scenes"],  # as the run's config.json records it
            out=out,
            seed=seed,
            init=backbone if pretrained else None,
            **DENSE["train"],
            **averaged,
        )
        metrics = train(config, data=data)
        averaged_test = _shift_averaged(out, data) if shifted else None
        cpu_train = cpu_seconds() - cpu_train
        first_seconds = first["seconds"] if first else 0.0
        curve = _curve(out, first_seconds)
        if averaged:
            for point, stepped in zip(curve, _stepped_mious(out, data)):
                point["stepped_miou"] = stepped
    minutes = (first_seconds + metrics["seconds"]) / 60
    reached = next((c for c in curve if c["test_miou"] >= TARGET_MIOU), None)
    if averaged_test:  # judged on the averaged prediction, its evaluation's time included
        minutes += averaged_test["minutes"]
        reached = {"minutes": minutes} if averaged_test["test_miou"] >= TARGET_MIOU else None
    built = create_model(DENSE["model"], num_classes=11, in_channels=1, **model_kwargs)
    return {
        "item": item,
        "seed": seed,
        "title": _title(pretrained, scenes if short else None, shifted, lean),
        "model": DENSE["model"],
        "model_kwargs": model_kwargs,
        "train": DENSE["train"],
        "data": data_settings,
        **({"pretrain": {**PRETRAIN, "test_acc": first["test_acc"], "minutes": first_seconds / 60}} if first else {}),
        "source": data.source,
        "params": count_params(built),
        "test_miou": metrics["test_miou"],
        "test_pixel_acc": metrics["test_acc"],
        **({"ema": EMA_DECAY} if averaged else {}),
        "test_iou": metrics["test_iou"],
        **({"shift_averaged": averaged_test} if averaged_test else {}),
        "curve": curve,
        "minutes": minutes,
        "cpu_minutes": cpu_train / 60,
        "data_minutes": data_seconds / 60,
        "minutes_to_target": reached["minutes"] if reached else None,
        "passed": reached is not None and reached["minutes"] <= TARGET_MINUTES,
        "load_average": [load_before, os.getloadavg()[0]],
        **machine(),
    }


def _title(pretrained: bool, fewer_scenes: int | None, shifted: bool, lean: bool = False) -> str:
    """What a dense item trained: the recipe (TITLE), its backbone first trained on items, on
    `fewer_scenes` training scenes, the lean model, its test prediction averaged over shifts."""
    title = TITLE + (PRETRAINED_TITLE if pretrained else "") + (LEAN_TITLE if lean else "")
    if fewer_scenes:
        title += f", on {fewer_scenes:,} training scenes"
    return title + (SHIFTED_TITLE if shifted else "")


def _shift_averaged(run_dir: str, data) -> dict:
    """The finished run's test pixel accuracy, mean and per-class IoU with its prediction averaged over
    SHIFTS (`cnnatlas.train.evaluate` on `ShiftAveraged`), and the minutes that evaluation took."""
    from torch.utils.data import DataLoader

    from cnnatlas.models.segmentation import ShiftAveraged
    from cnnatlas.train import evaluate, load_run
    from cnnatlas.train.loop import segmentation_metrics

    start = time.perf_counter()
    run = load_run(run_dir)
    loader = DataLoader(data.test, batch_size=250)
    result = evaluate(ShiftAveraged(run.model, SHIFTS), loader, run.info.num_classes, torch.device("cpu"))
    return {
        "shifts": [list(s) for s in SHIFTS],
        **segmentation_metrics(result, run.info.classes),
        "minutes": (time.perf_counter() - start) / 60,
    }


def _epoch_speeds(model_kwargs: dict, data, scratch: str, shifted: bool = False) -> dict:
    """One epoch of the recipe's training (DENSE["train"]) with `model_kwargs` on SPEED_SCENES: training
    scenes per second (the epoch's training time), test scenes per second (the rest of the epoch:
    evaluation and checkpoint) and, when `shifted`, test scenes per second of the prediction averaged
    over SHIFTS; and the minutes these project for 4 epochs of DENSE's scenes (each followed by the
    evaluation), the averaged evaluation of the test scenes after them when `shifted`."""
    from cnnatlas.train import TrainConfig, train

    config = TrainConfig(
        model=DENSE["model"],
        data="fashion-mnist-scenes",
        model_kwargs=model_kwargs,
        train_scenes=SPEED_SCENES["train_scenes"],
        out=str(Path(scratch, "lean" if shifted else SPEED)),
        **{**DENSE["train"], "epochs": 1},
    )
    train(config, data=data)
    (epoch,) = [json.loads(line) for line in Path(config.out, "metrics.jsonl").read_text().splitlines() if line]
    epochs, scenes = DENSE["train"]["epochs"], DENSE["data"]
    speeds = {
        "train_scenes_per_s": SPEED_SCENES["train_scenes"] / epoch["train_seconds"],
        "test_scenes_per_s": SPEED_SCENES["test_scenes"] / (epoch["seconds"] - epoch["train_seconds"]),
    }
    seconds = epochs * (
        scenes["train_scenes"] / speeds["train_scenes_per_s"] + scenes["test_scenes"] / speeds["test_scenes_per_s"]
    )
    if shifted:
        averaged = _shift_averaged(config.out, data)
        speeds["shift_averaged_scenes_per_s"] = SPEED_SCENES["test_scenes"] / (averaged["minutes"] * 60)
        seconds += scenes["test_scenes"] / speeds["shift_averaged_scenes_per_s"]
    return {**speeds, "projected_minutes": seconds / 60}


def run_speed(earlier: list[dict] | None = None) -> dict:
    """The recipe's speeds on this machine and the minutes they project (`_epoch_speeds`), and under
    "lean" those of the lean model (LEAN) with its shift-averaged evaluation: whether this machine meets
    the target with either, in about a minute. The record keeps `earlier` measurements of other
    processors or thread counts beside this one (this machine's replaces its own)."""
    from cnnatlas.data import load_scene_splits

    data = load_scene_splits(**{**DENSE["data"], **SPEED_SCENES})
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        recipe = _epoch_speeds(DENSE["model_kwargs"], data, scratch)
        lean = _epoch_speeds(LEAN, data, scratch, shifted=True)
    measured = {**recipe, "lean": lean, "load_average": [load_before, os.getloadavg()[0]], **machine()}
    same = ("cpu", "threads", "gpu")
    kept = [m for m in earlier or [] if any(m.get(k) != measured[k] for k in same)]
    return {"item": SPEED, "scenes": SPEED_SCENES, "machines": [*kept, measured]}


def _speed_lines(record: dict, runs: list[dict]) -> list[str]:
    """The speed table: each machine's scenes per second and the minutes they project for the recipe and
    for the lean model (a machine measured before the lean model was has none), beside the full runs as
    measured."""
    epochs, scenes = DENSE["train"]["epochs"], DENSE["data"]
    lines = [
        "## Speed of the recipe, per machine",
        "",
        f"One epoch of the recipe on {record['scenes']['train_scenes']:,} training and "
        f"{record['scenes']['test_scenes']:,} test scenes (`--only speed`), and the minutes its speeds project for "
        f"the whole recipe ({epochs} epochs of {scenes['train_scenes']:,} training scenes, each followed by the "
        f"evaluation of {scenes['test_scenes']:,}); then the same for the lean model, whose minutes also count "
        "the test prediction averaged over shifts: whether a machine can meet the "
        f"{TARGET_MINUTES:.0f}-minute target, measured in about a minute.",
        "",
        "| machine | threads | training scenes/s | test scenes/s | projected minutes | lean model: training "
        "scenes/s | lean model: projected minutes, averaged evaluation included | load | date |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for m in record["machines"]:
        lean = m.get("lean")
        lean_cells = f"{lean['train_scenes_per_s']:.0f} | {lean['projected_minutes']:.1f}" if lean else "— | —"
        lines.append(
            f"| {m['gpu'] or m['cpu']} ({m.get('cpu_capability', '?')}) | {m['threads']} | "
            f"{m['train_scenes_per_s']:.0f} | {m['test_scenes_per_s']:.0f} | {m['projected_minutes']:.1f} | "
            f"{lean_cells} | {m['load_average'][0]:.1f}→{m['load_average'][1]:.1f} | {m['date']} |"
        )
    for name, items in (("recipe's", DENSE_RUNS), ("lean model's", LEAN_RUNS)):
        full = [d for d in runs if d["item"] in items]
        if full:
            where = sorted({f"{d['gpu'] or d['cpu']}, {d['threads']} thread(s)" for d in full})
            lines += [
                "",
                f"The {name} full runs above (training seeds {', '.join(str(d['seed']) for d in full)}) took "
                f"{min(d['minutes'] for d in full):.1f}–{max(d['minutes'] for d in full):.1f} minutes on "
                f"{'; '.join(where)}.",
            ]
    return [*lines, ""]


def _stepped_mious(run_dir: str, data) -> list[float]:
    """Test mean IoU of the stepped weights each checkpoint of an --ema run keeps beside its average."""
    from torch.utils.data import DataLoader

    from cnnatlas.train import evaluate, list_checkpoints, load_checkpoint, load_run, mean_iou

    run, loader, cpu = load_run(run_dir), DataLoader(data.test, batch_size=250), torch.device("cpu")
    mious = []
    for path in list_checkpoints(run_dir):
        run.model.load_state_dict(load_checkpoint(path).state["training_weights"])
        mious.append(mean_iou(evaluate(run.model, loader, run.info.num_classes, cpu).confusion))
    return mious


def _ema_lines(d: dict) -> list[str]:
    return [
        "## Moving average of the weights",
        "",
        f"The dense recipe (training seed {d['seed']}) with `--ema {d['ema']}`: each epoch's test mean IoU of "
        "the weights' moving average, which the run reports and keeps, and of the stepped weights of the "
        "same run (from each checkpoint's state).",
        "",
        "| epoch | minutes | stepped weights | moving average | difference |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {c['epoch']} | {c['minutes']:.1f} | {c['stepped_miou']:.4f} | {c['test_miou']:.4f} | "
            f"{c['test_miou'] - c['stepped_miou']:+.4f} |"
            for c in d["curve"]
        ),
        "",
        f"Measured on {d['gpu'] or d['cpu']}, {d['threads']} torch thread(s), torch {d['torch']}; load average "
        f"{d['load_average'][0]:.1f}→{d['load_average'][1]:.1f}; {d['date']}.",
        "",
    ]


class FlipAveraged(torch.nn.Module):
    """A dense model's log of its softmax averaged over the input and the input flipped along each of
    `flips` (tuples of dims), the flipped predictions flipped back: test-time flip averaging."""

    def __init__(self, model: torch.nn.Module, flips: tuple[tuple[int, ...], ...]):
        super().__init__()
        self.model, self.flips = model, flips

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.model(x).float().softmax(1)
        for dims in self.flips:
            p = p + self.model(x.flip(dims)).float().softmax(1).flip(dims)
        return (p / (1 + len(self.flips))).log()


def run_flips(keep: str | None) -> dict:
    """Test-time flip averaging of the dense runs kept in `keep` (by `--keep`): the test scenes' mean IoU
    of each run as trained, with its softmax averaged over a horizontal flip of each scene, and over a
    horizontal and a vertical one (`cnnatlas.train.evaluate` on `FlipAveraged`)."""
    from torch.utils.data import DataLoader

    from cnnatlas.data import load_scene_splits
    from cnnatlas.train import evaluate, load_run, mean_iou

    if not keep:
        raise SystemExit(f"{FLIPS}: give the folder the dense runs were kept in (--keep DIR)")
    data_settings = {k: v for k, v in DENSE["data"].items() if k != "train_scenes"}
    test = load_scene_splits(train_scenes=1, **data_settings).test
    views = {"as trained": (), "+ horizontal flip": ((-1,),), "+ horizontal and vertical flips": ((-1,), (-2,))}
    runs = {}
    for item in DENSE_RUNS:
        folder = Path(keep, item)
        if not folder.is_dir():
            continue
        run = load_run(folder)
        test.mean, test.std = (torch.tensor(v).view(-1, 1, 1) for v in (run.info.mean, run.info.std))
        loader, n, cpu = DataLoader(test, batch_size=250), run.info.num_classes, torch.device("cpu")
        runs[item] = {  # evaluate runs without gradients
            view: mean_iou(evaluate(FlipAveraged(run.model, flips), loader, n, cpu).confusion)
            for view, flips in views.items()
        }
    if not runs:
        raise SystemExit(f"{FLIPS}: no dense run folder in {keep} (expected {', '.join(DENSE_RUNS)})")
    return {"item": FLIPS, "runs": runs, "keep": str(keep), **machine()}


def _flip_lines(record: dict) -> list[str]:
    views = list(next(iter(record["runs"].values())))
    return [
        "## Test-time flip averaging",
        "",
        "The dense runs' test mean IoU with the softmax averaged over flipped copies of each scene.",
        "",
        "| run | " + " | ".join(views) + " |",
        "|---|" + "---:|" * len(views),
        *(f"| {item} | " + " | ".join(f"{v:.4f}" for v in r.values()) + " |" for item, r in record["runs"].items()),
        "",
        f"Measured on {record['cpu']}, torch {record['torch']}, {record['date']}.",
        "",
    ]


def run_claim_item(item: str) -> dict:
    from cnnatlas.claims import run_claim

    load_before = os.getloadavg()[0]
    result = run_claim(item)
    return {"item": item, **result.as_dict(), "load_average": [load_before, os.getloadavg()[0]], **machine()}


def _dense_lines(runs: list[dict]) -> list[str]:
    """The dense model's table, one row per training seed, then each run's curve and details."""
    lines = [
        "## Dense model",
        "",
        "| model | params | train / test scenes | training seed | epochs | minutes | pixel acc | mean IoU | "
        f"target (mIoU ≥ {TARGET_MIOU:.2f} in {TARGET_MINUTES:.0f} min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for d in runs:
        averaged = d.get("shift_averaged")
        if d["minutes_to_target"] is None:
            reached = "not reached"
        elif averaged:
            reached = f"reached by the averaged prediction, {d['minutes_to_target']:.1f} min"
        else:
            epoch = next(c["epoch"] for c in d["curve"] if c["test_miou"] >= TARGET_MIOU)
            reached = f"reached at epoch {epoch}, {d['minutes_to_target']:.1f} min"
        miou = (
            f"{d['test_miou']:.4f}; averaged over shifts **{averaged['test_miou']:.4f}**"
            if averaged
            else f"**{d['test_miou']:.4f}**"
        )
        lines.append(
            f"| {d['title']} | {d['params']:,} | {d['data']['train_scenes']:,} / {d['data']['test_scenes']:,} | "
            f"{d.get('seed', 0)} | {d['train']['epochs']} | {d['minutes']:.1f} | {d['test_pixel_acc']:.1%} | "
            f"{miou} | {reached}: {'meets target' if d['passed'] else '**misses target**'} |"
        )
    lines.append("")
    for d in runs:
        where = d["gpu"] or f"{d['cpu']}, {d['cores']} cores, {d['threads']} torch thread(s)"
        first, averaged = d.get("pretrain"), d.get("shift_averaged")
        lines += [
            f"### Training seed {d.get('seed', 0)}"
            + (", backbone first trained on Fashion-MNIST items" if first else "")
            + (f", {d['data']['train_scenes']:,} training scenes" if d["item"] in SHORT_RUNS else "")
            + (", lean model" if d["item"] in LEAN_RUNS else "")
            + (", test prediction averaged over shifts" if averaged else ""),
            "",
            f"Mean IoU per epoch (cumulative minutes{', the first stage included' if first else ''}): "
            + ", ".join(f"{c['test_miou']:.4f} ({c['minutes']:.1f})" for c in d["curve"])
            + ".",
            "",
        ]
        if first:
            lines += [
                f"First stage: `{first['model']}` trained as a classifier on `{first['data']}` "
                f"({', '.join(f'{k}={v}' for k, v in first['train'].items())}): test accuracy "
                f"{first['test_acc']:.2%} in {first['minutes']:.1f} min; its weights start the dense model's "
                "backbone (`--init`).",
                "",
            ]
        if averaged:
            lines += [
                f"Test prediction averaged over the scene moved by {averaged['shifts']} pixels (rows, columns): "
                f"mean IoU {averaged['test_miou']:.4f}, pixel accuracy {averaged['test_pixel_acc']:.1%} "
                f"(as trained {d['test_miou']:.4f}, {d['test_pixel_acc']:.1%}); that evaluation took "
                f"{averaged['minutes']:.1f} min, counted in the run's minutes. IoU per class, averaged: "
                + ", ".join(f"{k} {v:.2f}" for k, v in averaged["test_iou"].items() if v is not None)
                + ".",
                "",
            ]
        if "cpu_minutes" in d:  # recorded since the two-thread runs
            lines += [
                f"Minutes are wall time of training and the per-epoch evaluation; the process used "
                f"{d['cpu_minutes']:.1f} CPU minutes (user + system, all threads) in them. Building the "
                f"scenes took {d['data_minutes']:.1f} min more.",
                "",
            ]
        lines += [
            "IoU per class: " + ", ".join(f"{k} {v:.2f}" for k, v in d["test_iou"].items() if v is not None) + ".",
            "",
            f"Model: {', '.join(f'{k}={v}' for k, v in d['model_kwargs'].items())}. "
            f"Trainer: {', '.join(f'{k}={v}' for k, v in d['train'].items())}; {d['source']}. Measured on "
            f"{where}; torch {d['torch']}; load average {d['load_average'][0]:.1f}→{d['load_average'][1]:.1f}; "
            f"{d['date']}.",
            "",
        ]
    return lines


def render(records: dict) -> str:
    lines = [
        "# Segmentation and the dense-prediction claims, measured",
        "",
        "Written by `python benchmarks/segmentation.py` from `benchmarks/segmentation_results.json`; every figure",
        "is what that script measured, on the machine named with it. Minutes are wall time of the whole run",
        "(training and the per-epoch test evaluation) on a machine shared with other work: the load average",
        "is given with each.",
        "",
    ]
    runs = [records[i] for i in DENSE_ITEMS if i in records]
    if runs:
        lines += _dense_lines(runs)
    if SPEED in records:
        lines += _speed_lines(records[SPEED], runs)
    if EMA in records:
        lines += _ema_lines(records[EMA])
    if FLIPS in records:
        lines += _flip_lines(records[FLIPS])
    claims = [records[i] for i in CLAIMS if i in records]
    if claims:
        lines += [
            "## Claims",
            "",
            "| claim | status | measured | expected | minutes | load |",
            "|---|---|---|---|---:|---|",
        ]
        for c in claims:
            lines.append(
                f"| `{c['id']}` | {c['status']} | {c['measured']} | {c['expected']} | "
                f"{c['seconds'] / 60:.1f} | {c['load_average'][0]:.1f}→{c['load_average'][1]:.1f} |"
            )
        lines += [""] + [f"- `{c['id']}`: {c['conditions']}" for c in claims] + [""]
    return "\n".join(lines) + "\n"


def _refuse_emulated_bfloat16(args) -> None:
    """The recipe autocasts to bfloat16; on a CPU without bfloat16 instructions its step ran at a tenth of
    the float32 speed (an AVX2 CPU), so its minutes say nothing about the 30-minute target: stop before
    training unless --even-without-bf16 asks for the run anyway."""
    from cnnatlas import hardware

    if not args.even_without_bf16 and not torch.cuda.is_available() and hardware.bfloat16_emulated():
        raise SystemExit(
            f"this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bfloat16 instructions (AVX-512 BF16 or "
            "AMX): the dense recipe's bfloat16 steps are emulated and about ten times slower than on a CPU with "
            "them, so its time would not judge the target; run it on such a CPU, or pass --even-without-bf16"
        )


def _add_arguments(parser) -> None:
    parser.add_argument(
        "--keep", metavar="DIR", help="keep each dense run's folder as DIR/ITEM (default: a temporary folder)"
    )
    parser.add_argument(
        "--even-without-bf16",
        action="store_true",
        help="train the recipe on a CPU without bfloat16 instructions too (emulated: about 10× slower)",
    )


def _run_item(item: str, args) -> dict:
    """One ITEM: a claim, the flip averaging of kept runs, the recipe's speed, or a run of the dense recipe."""
    if item in CLAIMS:
        return run_claim_item(item)
    if item == FLIPS:
        return run_flips(args.keep)
    _refuse_emulated_bfloat16(args)
    if item == SPEED:
        earlier = json.loads(RECORDS.read_text()).get(SPEED, {}) if RECORDS.exists() else {}
        return run_speed(earlier.get("machines"))
    return run_dense(item, args.keep)


def main(argv: list[str] | None = None) -> int:
    return run_items(
        argv,
        __doc__,
        ITEMS,
        _run_item,
        RECORDS,
        REPORT,
        render,
        default_items=(*DENSE_RUNS, *CLAIMS),
        add_arguments=_add_arguments,
    )


if __name__ == "__main__":
    sys.exit(main())
