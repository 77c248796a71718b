"""Measured training results of cnnatlas, written to benchmarks/RESULTS-training.md.

    python benchmarks/train_results.py                      # digits, throughput, fashion
    python benchmarks/train_results.py --only resnet20      # ResNet-20 on Fashion-MNIST (long on a CPU)
    python benchmarks/train_results.py --only digits --threads 1

Each item is a real run of `cnnatlas.train.train` with the defaults of `cnnatlas train` (the
command each row names does the same run). Results accumulate in benchmarks/train_results.json,
one record per item, so an item can be re-measured alone (on a GPU, say); the markdown is rebuilt
from all records with the machine, threads and load average each was measured under.

* digits      LeNet-5 on scikit-learn's digits; target ≥ 98% test accuracy in well under a minute.
* throughput  the trainer's training images/s against a bare PyTorch loop (same model, data loader,
              optimiser and batch, no evaluation) measured alternately in one process; target ≥ 0.95×.
* fashion     LeNet-5 on Fashion-MNIST; target ≥ 90%.
* resnet20    ResNet-20 (He et al. 2016, CIFAR form) on Fashion-MNIST; target ≥ 93% (the
              dataset's README lists ResNet-18 at 94.9%).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "train_results.json"
REPORT = HERE / "RESULTS-training.md"
ITEMS = ("digits", "throughput", "fashion", "resnet20")
DEFAULT_ITEMS = ("digits", "throughput", "fashion")


def machine() -> dict:
    from cnnatlas import hardware

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the vector instructions PyTorch uses
        "bfloat16_emulated": hardware.bfloat16_emulated(),  # no AVX-512 BF16 or AMX: bfloat16 is slower than float32
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "date": datetime.date.today().isoformat(),
    }


def timed_run(name: str, model: str, data: str, target: float, command: str, **overrides) -> dict:
    from cnnatlas.train import default_config, train

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        config = default_config(model, data, out=out, **overrides)
        metrics = train(config)
    return {
        "item": name,
        "command": command,
        "model": model,
        "data": data,
        "target_acc": target,
        "test_acc": metrics["test_acc"],
        "test_top5": metrics["test_top5"],
        "epochs": metrics["epochs"],
        "seconds": metrics["seconds"],
        "images_per_s": metrics["images_per_s"],
        "device": metrics["device"],
        "config": {k: v for k, v in config.to_json().items() if k not in ("out", "quiet")},
        "load_average": [load_before, os.getloadavg()[0]],
        "passed": metrics["test_acc"] >= target,
        **machine(),
    }


def bare_loop_images_per_s(config, data, epochs: int) -> float:
    """The loop every PyTorch tutorial writes: same model, loader, optimiser and batch; no extras."""
    from cnnatlas.train import build_model, make_optimizer

    torch.manual_seed(config.seed)
    model = build_model(config, data.info)
    optimizer = make_optimizer(model, config)
    sampler = DistributedSampler(data.train, num_replicas=1, rank=0, shuffle=True, seed=config.seed)
    loader = DataLoader(data.train, batch_size=config.batch_size, sampler=sampler, drop_last=True)
    model.train()
    images, seconds = 0, 0.0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        start = time.perf_counter()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            images += len(y)
        seconds += time.perf_counter() - start
    return images / seconds


def throughput(rounds: int = 3, epochs: int = 4) -> dict:
    """Trainer vs bare loop on LeNet-5 / digits, alternating so both see the same machine load."""
    from cnnatlas.data import load_dataset
    from cnnatlas.train import default_config, train

    load_before = os.getloadavg()[0]
    config = default_config("lenet5", "digits", epochs=epochs)
    data = load_dataset("digits", 32, config.augment)
    bare, trainer = [], []
    for _ in range(rounds):
        bare.append(bare_loop_images_per_s(config, data, epochs))
        with tempfile.TemporaryDirectory() as out:
            trainer.append(train(default_config("lenet5", "digits", epochs=epochs, out=out), data=data)["images_per_s"])
    ratios = [t / b for t, b in zip(trainer, bare)]
    return {
        "item": "throughput",
        "command": "python benchmarks/train_results.py --only throughput",
        "model": "lenet5",
        "data": "digits",
        "epochs_per_round": epochs,
        "rounds": rounds,
        "bare_images_per_s": bare,
        "trainer_images_per_s": trainer,
        "ratios": ratios,
        "ratio": statistics.median(ratios),
        "passed": statistics.median(ratios) >= 0.95,
        "load_average": [load_before, os.getloadavg()[0]],
        **machine(),
    }


def measure(item: str, resnet_epochs: int | None) -> dict:
    if item == "digits":
        return timed_run("digits", "lenet5", "digits", 0.98, "cnnatlas train lenet5")
    if item == "fashion":
        return timed_run("fashion", "lenet5", "fashion-mnist", 0.90, "cnnatlas train lenet5 --data fashion-mnist")
    if item == "resnet20":
        extra = {"epochs": resnet_epochs} if resnet_epochs else {}
        command = "cnnatlas train resnet20 --data fashion-mnist" + (
            f" --epochs {resnet_epochs}" if resnet_epochs else ""
        )
        return timed_run("resnet20", "resnet20", "fashion-mnist", 0.93, command, **extra)
    return throughput()


# -- the report ---------------------------------------------------------------------------------


def _context(r: dict) -> str:
    where = r["gpu"] or f"{r['cpu']}, {r['cores']} cores, {r['threads']} torch thread(s)"
    return (
        f"{where}; torch {r['torch']}; load average {r['load_average'][0]:.1f}→{r['load_average'][1]:.1f}; {r['date']}"
    )


def render(records: dict) -> str:
    lines = [
        "# Training results, measured",
        "",
        "Written by `python benchmarks/train_results.py` from `benchmarks/train_results.json`; every figure",
        "below is what that script measured, on the machine named with it. Accuracies are on the test split",
        "(digits: the fixed stratified 20% = 360 images; Fashion-MNIST: the official 10,000). Seconds",
        "are the whole run (training and the per-epoch test evaluation); images/s counts training only.",
        "",
    ]
    lines += [
        "| run | command | target | test acc | top-5 | epochs | time | train img/s | result |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    planned = {
        "digits": ("lenet5 on digits", "cnnatlas train lenet5", "98%"),
        "fashion": ("lenet5 on fashion-mnist", "cnnatlas train lenet5 --data fashion-mnist", "90%"),
        "resnet20": ("resnet20 on fashion-mnist", "cnnatlas train resnet20 --data fashion-mnist", "93%"),
    }
    for item in ("digits", "fashion", "resnet20"):
        r = records.get(item)
        if r is None:
            run, command, target = planned[item]
            lines.append(f"| {run} | `{command}` | ≥ {target} | — | — | — | — | — | **not run** (see Notes) |")
            continue
        t = f"{r['seconds']:.1f} s" if r["seconds"] < 120 else f"{r['seconds'] / 60:.1f} min"
        lines.append(
            f"| {r['model']} on {r['data']} | `{r['command']}` | ≥ {r['target_acc']:.0%} | "
            f"{r['test_acc']:.2%} | {r['test_top5']:.2%} | {r['epochs']} | {t} | {r['images_per_s']:,.0f} | "
            f"{'meets target' if r['passed'] else '**below target**'} |"
        )
    lines.append("")
    for item in ("digits", "fashion", "resnet20"):
        if item in records:
            r = records[item]
            lines.append(
                f"- {r['model']} on {r['data']}: {_context(r)}; settings "
                + ", ".join(f"{k}={v}" for k, v in r["config"].items() if k not in ("model", "data"))
            )
    r = records.get("throughput")
    lines += ["", "## Trainer vs a bare PyTorch loop", ""]
    if r is None:
        lines.append("Not measured yet.")
    else:
        lines += [
            f"LeNet-5 on the digits, same data loader, optimiser and batch; {r['rounds']} alternating rounds of "
            f"{r['epochs_per_round']} epochs each; training images/s only (the trainer's evaluation and "
            f"checkpoints are outside the timed loop, its progress bar inside). {_context(r)}.",
            "",
            "| round | bare loop img/s | trainer img/s | ratio |",
            "|---:|---:|---:|---:|",
        ]
        for i, (b, t, q) in enumerate(zip(r["bare_images_per_s"], r["trainer_images_per_s"], r["ratios"]), 1):
            lines.append(f"| {i} | {b:,.0f} | {t:,.0f} | {q:.3f} |")
        lines += [
            "",
            f"Median ratio **{r['ratio']:.3f}×** (target ≥ 0.95×): "
            f"{'meets target' if r['passed'] else '**below target**'}.",
        ]
    notes = records.get("_notes", [])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def run_items(
    argv: list[str] | None,
    doc: str,
    items: tuple[str, ...],
    run_item: Callable[[str, argparse.Namespace], dict],
    records_path: Path,
    report_path: Path,
    render: Callable[[dict], str],
    default_items: tuple[str, ...] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """The command line the results scripts share: `--only` (a comma list of items), `--threads`,
    `--render` (only rebuild the Markdown). Each item is measured by `run_item(item, args)`; its record
    is saved to `records_path` as soon as it is done (merged with the records the file holds then, so runs
    of several items at once keep each other's), and the Markdown is rebuilt from every record."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(default_items or items), help=f"comma list of {', '.join(items)}")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's choice)")
    parser.add_argument("--render", action="store_true", help="only rebuild the markdown from the JSON records")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    records = json.loads(records_path.read_text()) if records_path.exists() else {}
    if not args.render:
        for item in args.only.split(","):
            if item not in items:
                parser.error(f"unknown item {item!r}; choose from {', '.join(items)}")
            print(f"== {item}", flush=True)
            start = time.perf_counter()
            record = run_item(item, args)
            print(f"{item}: done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
            # merged into the file as it is now: another run of this script may have saved items meanwhile
            records = json.loads(records_path.read_text()) if records_path.exists() else {}
            records[item] = record
            records_path.write_text(json.dumps(records, indent=1) + "\n")
            report_path.write_text(render(records))
    report_path.write_text(render(records))
    print(f"wrote {report_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    def more(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--resnet-epochs", type=int, help="epochs for resnet20 (default: cnnatlas's default)")

    return run_items(
        argv,
        __doc__,
        ITEMS,
        lambda item, args: measure(item, args.resnet_epochs),
        RECORDS,
        REPORT,
        render,
        default_items=DEFAULT_ITEMS,
        add_arguments=more,
    )


if __name__ == "__main__":
    sys.exit(main())
