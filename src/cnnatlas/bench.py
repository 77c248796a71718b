"""Inference timing: images per second and latency percentiles, measured after warm-up, with
several models measured alternately in one run so that machine noise hits them alike."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .errors import InvalidArgumentError


@dataclass
class Timing:
    """What one model measured at one batch size."""

    model: str
    batch: int
    images_per_s: float
    latency_ms_p50: float
    latency_ms_p95: float
    threads: int
    repeats: int
    ratio_vs: float | None = None

    def as_dict(self) -> dict:
        row = asdict(self)
        if row["ratio_vs"] is None:
            del row["ratio_vs"]
        return row


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def time_alternately(
    runners: dict[str, Callable[[], object]], *, warmup: int = 3, repeats: int = 10, min_seconds: float = 0.0
) -> dict[str, list[float]]:
    """Run each callable `warmup` times, then take turns for `repeats` rounds or until `min_seconds`
    have passed — each round in a fresh random order (seeded), so that no variant always runs after
    the same other one (what the previous call left in the caches and the allocator changes the next);
    returns the seconds of every timed call per name."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    shuffle = random.Random(0).shuffle
    start = time.perf_counter()
    rounds = 0
    while rounds < repeats or time.perf_counter() - start < min_seconds:
        for name in order:
            run = runners[name]
            t0 = time.perf_counter()
            run()
            _sync()
            times[name].append(time.perf_counter() - t0)
        shuffle(order)
        rounds += 1
    return times


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def summarize(name: str, batch: int, seconds: list[float]) -> Timing:
    """Images/s from the median latency; p50 and p95 latencies in milliseconds."""
    p50 = statistics.median(seconds)
    return Timing(
        name, batch, batch / p50, 1000 * p50, 1000 * _percentile(seconds, 0.95), torch.get_num_threads(), len(seconds)
    )


def inference_runner(model: nn.Module, x: torch.Tensor, *, autocast: torch.dtype | None = None) -> Callable[[], object]:
    """A closure running the model in eval mode without autograd; with `autocast` (e.g.
    torch.float16 on a GPU) under `torch.autocast` on the input's device."""
    model.eval()
    if autocast is None:

        def run() -> object:
            with torch.inference_mode():
                return model(x)
    else:
        device_type = x.device.type

        def run() -> object:
            with torch.inference_mode(), torch.autocast(device_type, dtype=autocast):
                return model(x)

    return run


def parse_sizes(text: str, what: str) -> list[int]:
    """'1,16' → [1, 16]; a clear error otherwise."""
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidArgumentError(f"{what} must be comma-separated integers such as '1,16'; got {text!r}") from None
    if not sizes or any(v < 1 for v in sizes):
        raise InvalidArgumentError(f"{what} must be positive integers such as '1,16'; got {text!r}")
    return sizes


def parse_input(text: str, channels: int, dims: int, batched: bool = True) -> tuple[int, ...]:
    """One sample's shape from '224', '224x224' or '3x224x224' (channels default to the model's);
    `batched`: the command takes the batch size in --batch."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        raise InvalidArgumentError(f"--input must look like 224, 224x224 or 3x224x224; got {text!r}") from None
    if any(v < 1 for v in parts):
        raise InvalidArgumentError(f"--input sizes must be positive; got {text!r}")
    if len(parts) == 1:
        return (channels,) + (parts[0],) * dims
    if len(parts) == dims:
        return (channels, *parts)
    if len(parts) == dims + 1:
        return tuple(parts)
    if len(parts) == dims + 2:  # the whole shape, as summary's --input takes it: the batch is --batch here
        sample = "x".join(map(str, parts[1:]))
        raise InvalidArgumentError(
            "--input is one sample's size here, without the batch"
            + (f" (--batch gives it): --input {sample} --batch {parts[0]}" if batched else f": --input {sample}")
            + f"; got {text!r}"
        )
    raise InvalidArgumentError(
        f"--input {text!r} has {len(parts)} sizes; this model takes {dims} spatial sizes (optionally after the "
        "channels)"
    )
