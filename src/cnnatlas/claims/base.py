"""What a claim is, what its experiment returns, and the registry of claims by id.

A claim is one sentence of the notes turned into an experiment on real modules: a function that
measures, compares with what the notes predict, and says whether the sentence held and under which
conditions. `@claim(id, sentence)` registers it; `run_claim(id)` runs it (seeded, timed) and returns
a `ClaimResult`. A claim that needs a model or capability the zoo does not have yet raises
`ClaimSkipped` — it is then reported as skipped with the reason, never as passed.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..errors import CnnAtlasError, did_you_mean

Status = Literal["passed", "failed", "skipped"]
SEED = 0


class UnknownClaimError(CnnAtlasError, KeyError):
    """A claim id that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


class ClaimSkipped(Exception):
    """Raised by a claim whose model or capability is not available; the message is the reason."""


@dataclass(frozen=True)
class Measurement:
    """What a claim's experiment returns: the measured and the predicted value (as text a person
    reads), whether they agree, the conditions, and the raw numbers."""

    measured: str
    expected: str
    passed: bool
    conditions: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimResult:
    """One claim, run: `status` is "passed", "failed" or "skipped" (`passed` is True only for
    "passed"); `reason` says why a claim was skipped or how it broke."""

    id: str
    claim: str
    measured: str
    expected: str
    passed: bool
    conditions: str
    status: Status
    reason: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    slow: bool = False

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of `cnnatlas verify --json`."""
        d = asdict(self)
        d["values"] = _jsonable(self.values)
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass(frozen=True)
class Claim:
    """A registered claim: its id, its sentence and the experiment that measures it."""

    id: str
    sentence: str
    experiment: Callable[[], Measurement]
    slow: bool = False
    needs: tuple[str, ...] = ()  # registry models the experiment measures


CLAIMS: dict[str, Claim] = {}

# The claims in the order of the notes (and of issue 6, which names them).
CLAIM_ORDER = (
    "conv-params",
    "weight-sharing",
    "output-size",
    "same-padding",
    "stacked-3x3",
    "receptive-field-growth",
    "one-by-one",
    "pooling-no-params",
    "pool-backward",
    "gap-head",
    "dilation",
    "gridding",
    "separable",
    "separable-expressivity",
    "batchnorm-axes",
    "batchnorm-eval",
    "batchnorm-batch1",
    "norm-axes",
    "equivariance",
    "invariance",
    "rotation",
    "residual-identity",
    "residual-gradient",
    "degradation",
    "dying-relu",
    "conv-backward",
    "relu-backward",
    "inception-bottleneck",
    "dense-channels",
    "se-cost",
    "compound-scaling",
    "inflation",
    "conv3d-cost",
    "vit-tokens",
    "gap-dense",
    "dilation-resolution",
    "inflation-transfer",
)


def claim(id: str, sentence: str, *, slow: bool = False, needs: Iterable[str] = ()) -> Callable:
    """Register the decorated function as the experiment of claim `id`."""

    def register(fn: Callable[[], Measurement]) -> Callable[[], Measurement]:
        if id in CLAIMS:
            raise ValueError(f"claim id {id!r} is registered twice")
        CLAIMS[id] = Claim(id, sentence, fn, slow, tuple(needs))
        return fn

    return register


def list_claims() -> list[str]:
    """Every claim id, in the order of the notes."""
    rank = {c: i for i, c in enumerate(CLAIM_ORDER)}
    return sorted(CLAIMS, key=lambda c: rank.get(c, len(rank)))


def get_claim(id: str) -> Claim:
    if id not in CLAIMS:
        raise UnknownClaimError(
            f"unknown claim {id!r}.{did_you_mean(id, CLAIMS)} `cnnatlas verify --list` shows all {len(CLAIMS)} ids."
        )
    return CLAIMS[id]


def require_models(*names: str) -> None:
    """Skip the running claim unless every model in `names` is in the registry."""
    from ..registry import list_models

    missing = [n for n in names if n not in list_models()]
    if missing:
        raise ClaimSkipped(
            f"model{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"not in the zoo yet (`cnnatlas models` lists what is)"
        )


def run_claim(id: str, quick: bool = False) -> ClaimResult:
    """Run one claim under a fixed seed; `quick=True` reports a slow claim as skipped without running it."""
    c = get_claim(id)
    if quick and c.slow:
        return _result(c, "skipped", reason="marked slow; left out by --quick")
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]), single_thread():
        torch.manual_seed(SEED)
        np.random.seed(SEED)
        try:
            m = c.experiment()
        except ClaimSkipped as skip:
            return _result(c, "skipped", reason=str(skip), seconds=time.perf_counter() - start)
        except Exception as err:  # an experiment that breaks is a failed claim, with the error as reason
            where = traceback.extract_tb(err.__traceback__)[-1]
            return _result(
                c,
                "failed",
                reason=f"{type(err).__name__}: {err} ({where.filename.split('/')[-1]}:{where.lineno})",
                seconds=time.perf_counter() - start,
            )
    return ClaimResult(
        c.id,
        c.sentence,
        m.measured,
        m.expected,
        bool(m.passed),
        m.conditions,
        "passed" if m.passed else "failed",
        None,
        dict(m.values),
        time.perf_counter() - start,
        c.slow,
    )


def run_claims(
    ids: Iterable[str] | None = None,
    quick: bool = False,
    on_start: Callable[[Claim], None] | None = None,
    on_done: Callable[[ClaimResult], None] | None = None,
) -> list[ClaimResult]:
    """Run the claims `ids` (all by default), calling on_start/on_done around each (progress display)."""
    ids = list_claims() if ids is None else [get_claim(i).id for i in ids]
    results = []
    for i in ids:
        if on_start:
            on_start(get_claim(i))
        r = run_claim(i, quick=quick)
        results.append(r)
        if on_done:
            on_done(r)
    return results


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch and NumPy's BLAS on one thread: the claims are many small operations, for which
    starting threads costs more than it saves (on a busy machine, a hundred times more)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings threadpoolctl; without it NumPy keeps its threads
        threadpool_limits = None
    try:
        with threadpool_limits(1) if threadpool_limits else contextlib.nullcontext():
            yield
    finally:
        torch.set_num_threads(threads)


def _result(c: Claim, status: Status, reason: str, seconds: float = 0.0) -> ClaimResult:
    return ClaimResult(c.id, c.sentence, "—", "—", False, "", status, reason, {}, seconds, c.slow)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v
