"""`cnnatlas report --out DIR`: a static HTML atlas of the zoo, readable from disk with no network.

    DIR/index.html            every model in one sortable table, the Pareto and receptive-field plots
    DIR/models/NAME.html      summary table, architecture diagram and blocks, field growth, ERF
    DIR/claims.html           the claims of the notes, measured, passed / failed / skipped
    DIR/runs.html             training runs (with --runs): curves, confusion matrices, filters

Every number comes from the analyser, the registry's published figures (with their source), the
claims' experiments or the runs' own files. Pictures that cost real arithmetic are bounded: the
effective receptive field is measured at initialisation on `erf_samples` random inputs with each
image side capped at `erf_cap` pixels (video: two clips of at most 16 frames of 64×64); per-model pictures are kept in
DIR/.cache and redrawn only when the model's architecture, the input or the drawing code changes.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..analysis import Report, analyze, effective_receptive_field
from ..claims import run_claims
from ..errors import CnnAtlasError, InvalidArgumentError
from ..registry import get_entry, list_models
from ..train import read_run_config, top_k
from ..train.folder import is_run_folder
from ..units import axes_text, fmt_count
from ..version import __version__
from . import atlas_static
from .common import capped_input, resolve_model

Log = Callable[[str], None]
VIDEO_ERF_CAP, VIDEO_ERF_SAMPLES = 64, 2  # video: at most 16 frames of 64×64, two clips
_CODE = ("common.py", "fields.py", "diagram.py", "atlas.py")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# -- what the atlas knows about one model --------------------------------------------------------


@dataclass
class ModelPage:
    name: str
    family: str
    summary: str
    input_size: tuple[int, ...] | None = None
    report: Report | None = None
    module: torch.nn.Module | None = None
    error: str | None = None
    assets: dict[str, str] = field(default_factory=dict)  # picture kind → path relative to DIR
    notes: dict[str, str] = field(default_factory=dict)  # picture kind → why it is missing / how it was made

    @property
    def rf_size(self) -> float | None:
        rf = self.report.receptive_field if self.report else None
        return None if rf is None else float(max(rf.size))


def _analyse(name: str) -> ModelPage:
    entry = get_entry(name)
    page = ModelPage(name, entry.family, entry.summary)
    try:
        module, _, size = resolve_model(name)
        page.module, page.input_size = module, size
        page.report = analyze(module, size, training_memory=False)
    except (CnnAtlasError, RuntimeError, ValueError, TypeError) as err:
        page.error = f"{type(err).__name__}: {err}"
    return page


def select_models(models: str | Sequence[str] | None) -> list[str]:
    """Registry names from a shell pattern, a comma list of names/patterns, or a list of them."""
    if models is None:
        return list_models()
    parts = models.split(",") if isinstance(models, str) else list(models)
    names: list[str] = []
    for part in (p.strip() for p in parts):
        found = list_models(part) if part else []
        if not found:
            raise InvalidArgumentError(f"--models: no registered model matches {part!r} (`cnnatlas models` lists them)")
        names.extend(n for n in found if n not in names)
    return names


# -- pictures, cached ---------------------------------------------------------------------------


def _code_hash() -> str:
    h = hashlib.sha256()
    for name in _CODE:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


class _Cache:
    """DIR/.cache/index.json: per model, the key its pictures were drawn under."""

    def __init__(self, out: Path, settings: dict[str, Any]) -> None:
        self.path = out / ".cache" / "index.json"
        try:
            self.keys = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            self.keys = {}
        self.base = json.dumps(
            {"code": _code_hash(), "torch": torch.__version__, "cnnatlas": __version__, **settings}, sort_keys=True
        )

    def key(self, page: ModelPage) -> str:
        text = self.base + repr(page.module) + repr(page.input_size)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def fresh(self, page: ModelPage, out: Path) -> bool:
        entry = self.keys.get(page.name)
        return (
            bool(entry)
            and entry.get("key") == self.key(page)
            and all((out / p).is_file() for p in entry.get("assets", {}).values())
        )

    def restore(self, page: ModelPage) -> None:
        entry = self.keys[page.name]
        page.assets.update(entry.get("assets", {}))
        page.notes.update(entry.get("notes", {}))

    def store(self, page: ModelPage) -> None:
        self.keys[page.name] = {"key": self.key(page), "assets": page.assets, "notes": page.notes}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.keys, indent=1, sort_keys=True), encoding="utf-8")


def _draw_model(page: ModelPage, out: Path, erf_cap: int, erf_samples: int, erf: bool, diagrams: bool) -> None:
    """The model's pictures: diagram and blocks (Graphviz), receptive-field growth, ERF."""
    from .diagram import GraphvizMissingError, model_diagram, render, representative_blocks
    from .fields import plot_erf, plot_rf_growth

    folder = Path("models") / page.name
    (out / folder).mkdir(parents=True, exist_ok=True)
    report = page.report
    if diagrams:
        try:
            render(model_diagram(page.module, report=report, label=page.name), out / folder / "diagram.svg")
            page.assets["diagram"] = str(folder / "diagram.svg")
            for i, block in enumerate(representative_blocks(report)):
                d = model_diagram(page.module, block=block, report=report, label=page.name)
                render(d, out / folder / f"block-{i}.svg")
                page.assets[f"block-{i}"] = str(folder / f"block-{i}.svg")
                page.notes[f"block-{i}"] = block
        except GraphvizMissingError as err:
            page.notes["diagram"] = str(err)
        except (CnnAtlasError, RuntimeError, ValueError) as err:
            page.notes["diagram"] = f"not drawn: {err}"
    else:
        page.notes["diagram"] = "diagrams were not drawn (--no-diagrams)"
    if report.receptive_field is not None:
        plot_rf_growth([page.name], reports={page.name: report}, out=out / folder / "rf-growth.svg")
        page.assets["rf-growth"] = str(folder / "rf-growth.svg")
    else:
        page.notes["rf-growth"] = "no spatial receptive field (the input has no spatial axes)"
    if not erf:
        page.notes["erf"] = "not measured (--no-erf)"
        return
    try:
        real, _, size = resolve_model(page.name, meta=False)
        video = len(size) == 5  # 3-D convolutions cost T·k_t times more: fewer, smaller clips
        size = capped_input(size, min(erf_cap, VIDEO_ERF_CAP) if video else erf_cap)
        samples = min(erf_samples, VIDEO_ERF_SAMPLES) if video else erf_samples
        measured = effective_receptive_field(real, size, samples=samples)
        plot_erf(real, erf=measured, label=page.name, out=out / folder / "erf.png")
        page.assets["erf"] = str(folder / "erf.png")
        page.notes["erf"] = (
            f"measured at initialisation on {samples} Gaussian input(s) of "
            f"{'×'.join(map(str, size[1:]))}: {measured.fraction:.0%} of the gradient within "
            f"{'×'.join(map(str, measured.size))} {measured.input_units} of unit {tuple(measured.unit)} of "
            f"{measured.where}"
        )
    except (CnnAtlasError, RuntimeError, ValueError, TypeError) as err:
        page.notes["erf"] = f"not measured: {err}"


# -- claims and runs ----------------------------------------------------------------------------


def collect_claims(spec: str | Path | None, log: Log, quick: bool = False) -> tuple[list[dict] | None, str]:
    """The claims' results: read from a JSON file (`cnnatlas verify --json > FILE`), or, with
    spec "auto", measured now through `cnnatlas.claims.run_claims`. `quick` leaves out the claims marked slow.
    Returns (results or None, a note)."""
    if spec is None or spec == "none":
        return None, "The claims were not run for this atlas (cnnatlas report --claims none)."
    if spec != "auto":
        path = Path(spec)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise InvalidArgumentError(
                f"--claims: cannot read {spec} as the JSON of `cnnatlas verify --json` ({err})"
            ) from None
        return _claim_rows(data, str(spec)), f"Results read from {path.name} (the output of cnnatlas verify --json)."
    start = time.perf_counter()
    how = "slow claims left out by --quick-claims" if quick else "all claims"
    results = run_claims(quick=quick, on_done=lambda r: log(f"claim {r.id}: {r.status} ({r.seconds:.1f} s)"))
    return (
        _claim_rows([r.as_dict() for r in results], "cnnatlas.claims"),
        f"Measured by cnnatlas.claims while this atlas was built ({how}, "
        f"{time.perf_counter() - start:.0f} s); `cnnatlas verify` runs the same experiments.",
    )


def _claim_rows(data: Any, where: str) -> list[dict]:
    if isinstance(data, dict) and isinstance(data.get("claims"), list):
        data = data["claims"]
    if not isinstance(data, list) or not all(isinstance(d, dict) and "id" in d for d in data):
        raise InvalidArgumentError(
            f"{where}: expected a list of claim objects with keys id, claim, measured, expected, passed"
        )
    rows = []
    for d in data:
        status = d.get("status") or ("passed" if d.get("passed") else "failed")
        rows.append(
            {
                "id": str(d["id"]),
                "claim": str(d.get("claim", "")),
                "measured": str(d.get("measured", "")),
                "expected": str(d.get("expected", "")),
                "status": status,
                "conditions": str(d.get("conditions") or ""),
                "reason": str(d.get("reason") or ""),
                "seconds": d.get("seconds"),
            }
        )
    return rows


def find_runs(root: str | Path) -> list[Path]:
    """Run folders at `root`, or one and two levels below it."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidArgumentError(f"--runs: no folder {str(root)!r}")
    if is_run_folder(root):
        return [root]
    found = [p for p in sorted(root.iterdir()) if is_run_folder(p)]
    found += [
        q
        for p in sorted(root.iterdir())
        if p.is_dir() and not is_run_folder(p)
        for q in sorted(p.iterdir())
        if is_run_folder(q)
    ]
    return found


@dataclass
class RunPage:
    path: Path
    slug: str
    title: str
    metrics: dict[str, Any]
    assets: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    classes: int | None = None  # from its config.json; None where that cannot be read


def _draw_run(path: Path, slug: str, out: Path) -> RunPage:
    from .inside import plot_filters
    from .runs import plot_confusion, plot_training, run_title

    try:
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        metrics = {}
    page = RunPage(path, slug, run_title(path), metrics)
    try:
        page.classes = len(read_run_config(path)[1].classes)
    except CnnAtlasError:
        pass  # its pictures below say what is wrong with the folder
    folder = Path("runs") / slug
    (out / folder).mkdir(parents=True, exist_ok=True)
    for kind, draw, file in (
        ("training", plot_training, "training.svg"),
        ("confusion", plot_confusion, "confusion.svg"),
        ("filters", plot_filters, "filters.png"),
    ):
        try:
            draw(path, out=out / folder / file)
            page.assets[kind] = str(folder / file)
        except (CnnAtlasError, RuntimeError, ValueError, OSError) as err:
            page.notes[kind] = f"not drawn: {err}"
    return page


# -- HTML ---------------------------------------------------------------------------------------


def _page(title: str, body: str, *, prefix: str = "", here: str = "", runs: bool = False) -> str:
    nav = [("index.html", "Models", "models"), ("claims.html", "Claims", "claims")]
    if runs:
        nav.append(("runs.html", "Training runs", "runs"))
    links = "".join(
        f'<a href="{prefix}{href}"{" class=here" if key == here else ""}>{text}</a>' for href, text, key in nav
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(title)}</title>\n'
        f'<link rel="stylesheet" href="{prefix}assets/style.css">\n</head>\n<body>\n'
        f'<header class="top"><a class="brand" href="{prefix}index.html">cnnatlas</a><nav>{links}</nav></header>\n'
        f"<main>\n{body}\n<footer>Generated by cnnatlas {_e(__version__)} with torch {_e(torch.__version__)}. "
        f"Every figure is measured by cnnatlas or quoted from the source named beside it.</footer>\n</main>\n"
        f'<script src="{prefix}assets/atlas.js"></script>\n</body>\n</html>\n'
    )


def _figure(src: str | None, caption: str, prefix: str = "", note: str | None = None, scroll: bool = False) -> str:
    if src is None:
        return f'<p class="muted">{_e(caption)}: {_e(note or "not available")}</p>'
    img = f'<img src="{prefix}{_e(src)}" alt="{_e(caption)}">'
    if scroll:
        img = f'<div class="scroll">{img}</div>'
    extra = f" — {_e(note)}" if note else ""
    return f"<figure>{img}<figcaption>{_e(caption)}{extra}</figcaption></figure>"


def _num_cell(value: float | None, text: str | None = None) -> str:
    if value is None:
        return '<td class="num" data-sort="">—</td>'
    return f'<td class="num" data-sort="{value:.6g}">{_e(text if text is not None else value)}</td>'


def _gmacs(macs: int) -> str:
    g = macs / 1e9
    return f"{g:.3f}" if g >= 0.01 else f"{g:.2g}"


def _index_html(pages: list[ModelPage], plots: dict[str, str], runs: bool, claims_summary: str) -> str:
    rows = []
    for p in pages:
        pub = get_entry(p.name).published
        r = p.report
        source = pub.source or ""
        rf = r.receptive_field if r else None
        rf_text = "—" if rf is None else axes_text(rf.size) + (" +global" if rf.global_context else "")
        size = "×".join(map(str, p.input_size[1:])) if p.input_size else "—"
        top1 = None if pub.top1 is None else pub.top1
        rows.append(
            "<tr>"
            f'<td data-sort="{_e(p.name)}"><a href="models/{_e(p.name)}.html">{_e(p.name)}</a></td>'
            f"<td>{_e(p.family)}</td><td class=num "
            f'data-sort="{p.input_size[-1] if p.input_size else ""}">{_e(size)}</td>'
            + (_num_cell(r.params, f"{r.params:,}") if r else _num_cell(None))
            + (_num_cell(r.macs / 1e9, _gmacs(r.macs)) if r else _num_cell(None))
            + _num_cell(p.rf_size, rf_text)
            + _num_cell(top1, None if top1 is None else f"{top1:.2f}")
            + f"<td>{_e(pub.dataset or '—')}</td>"
            + f'<td title="{_e(pub.citation or "")}">{_e(source or "—")}</td>'
            + "</tr>"
        )
    head = (
        "<tr><th data-type=text>model</th><th data-type=text>family</th><th class=num data-type=num>input</th>"
        "<th class=num data-type=num>parameters</th><th class=num data-type=num>GMACs</th>"
        "<th class=num data-type=num>receptive field</th><th class=num data-type=num>published top-1 %</th>"
        "<th data-type=text>dataset</th><th data-type=text>source</th></tr>"
    )
    broken = [p for p in pages if p.error]
    body = [
        "<h1>The cnnatlas zoo</h1>",
        f'<p class="lead">{len(pages)} models, each traced by the analyser on meta tensors at the input size its '
        "published figures refer to: parameters, multiply–accumulates (GMACs) and the analytic receptive field of "
        "the last spatial feature map (input pixels; +global where squeeze-and-excitation lets every unit see the "
        "whole input). Top-1 accuracy is as published, with the source named (hover for the citation). "
        "Click a column to sort it.</p>",
        f'<div class="summary-line"><span>{len(pages)} models</span><span>{claims_summary}</span>'
        + (f"<span>{len(broken)} could not be traced</span>" if broken else "")
        + "</div>",
        '<div class="grid2">',
        _figure(
            plots.get("pareto"),
            "Published top-1 against the MACs the analyser measures; the dashed line is the Pareto front",
            note=plots.get("pareto-note"),
        ),
        _figure(
            plots.get("rf-growth"),
            "Receptive field against depth (log scale), from the traced graphs",
            note=plots.get("rf-growth-note"),
        ),
        "</div>",
        "<h2>Every model</h2>",
        '<input class="filter" type="search" placeholder="filter the table…" data-table="models" aria-label="filter">',
        f'<table id="models" class="sortable"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>',
    ]
    return _page("cnnatlas — the zoo", "\n".join(body), here="models", runs=runs)


def _agreement(status: str, text: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(text)}</span>'


def _field_fit_text(p: ModelPage) -> str:
    """One line: where the analytic field passes the input side, the smallest input its centre unit fits."""
    from ..analysis.field_fit import field_fit, fit_from_report

    try:
        fit = (
            field_fit(p.module, p.report.input_shapes[0], report=p.report)
            if p.module is not None
            else fit_from_report(p.report)
        )
    except (CnnAtlasError, RuntimeError, ValueError, TypeError) as err:
        return _e(f"not computed: {err}")
    return _e(str(fit) + (f" ({fit.note})" if fit.note else ""))


def _published_line(pub) -> tuple[str, str]:
    """The facts row of the published accuracy: mean IoU and pixel accuracy for segmentation, else top-1/top-5."""
    if pub.miou is not None:
        return ("published mean IoU / pixel accuracy", _e(f"{pub.miou} / {pub.pixel_acc} % on {pub.dataset}"))
    return (
        "published top-1 / top-5",
        _e(
            f"{pub.top1 if pub.top1 is not None else '—'} / "
            f"{pub.top5 if pub.top5 is not None else '—'}" + (f" % on {pub.dataset}" if pub.dataset else "")
        ),
    )


def _model_facts(p: ModelPage, entry) -> list[tuple[str, str]]:
    """The model page's facts table: measured counts beside the published ones, field, memory and source."""
    pub = entry.published
    r = p.report
    rf = r.receptive_field
    return [
        ("family", _e(p.family)),
        ("input", _e("×".join(map(str, p.input_size[1:])) if p.input_size else "—")),
        (
            "parameters",
            f"{r.params:,} "
            + (
                f"(published {pub.params:,}{'' if pub.params_exact else ', rounded'}) "
                f"{_agreement(*_ag(pub.params_agreement(r.params)))}"
                if pub.params
                else ""
            ),
        ),
        (
            "multiply–accumulates",
            f"{r.macs:,} ({r.macs / 1e9:.3f} G) "
            + (f"(published {pub.gmacs} G) {_agreement(*_ag(pub.macs_agreement(r.macs)))}" if pub.gmacs else ""),
        ),
        ("receptive field", "—" if rf is None else _e(f"{rf} of {r.receptive_field_layer or 'the last spatial map'}")),
        ("field against input", _field_fit_text(p)),
        ("activations (inference)", _e(f"{r.activation_bytes / 2**20:.1f} MiB")),
        _published_line(pub),
        ("source", _e(pub.citation or "—") + (f"<br><span class=small>{_e(pub.note)}</span>" if pub.note else "")),
        ("torchvision equivalent", _e(entry.torchvision or "—")),
    ]


def _layers_table(r) -> str:
    """The sortable table of modules at depth 2: type, output shape, parameters, MACs, receptive field."""
    rows = []
    for row in r.rows(2):
        rrf = row["receptive_field"]
        rows.append(
            f"<tr><td>{_e(row['name'] or '(model)')}</td><td>{_e(row['module_type'])}</td>"
            f"<td class=num>{_e('×'.join(map(str, row['output_shape'][1:])))}</td>"
            + _num_cell(row["params"], f"{row['params']:,}")
            + _num_cell(row["macs"], fmt_count(row["macs"], compact=True))
            + _num_cell(None if rrf is None else float(max(rrf.size)), None if rrf is None else axes_text(rrf.size))
            + "</tr>"
        )
    return (
        "<table id=layers class=sortable><thead><tr><th data-type=text>module</th><th data-type=text>type</th>"
        "<th class=num data-type=text>output</th><th class=num data-type=num>parameters</th>"
        "<th class=num data-type=num>MACs</th><th class=num data-type=num>receptive field</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _model_figures(p: ModelPage, pre: str) -> list[str]:
    """The model page's pictures: architecture (whole and per block), then analytic and effective fields."""
    blocks = [k for k in p.assets if k.startswith("block-")]
    return [
        "<h2>Architecture</h2>",
        '<p class="muted small">Drawn by Graphviz from the analyser\'s traced operator graph: every node is a module '
        "call or a functional operator, with its output shape (channels × spatial), parameters and MACs.</p>",
        _figure(p.assets.get("diagram"), "The whole model", pre, p.notes.get("diagram"), scroll=True),
        *[
            _figure(p.assets[k], f"One block, operator by operator: {p.notes.get(k, '')}", pre, scroll=True)
            for k in sorted(blocks)
        ],
        "<h2>Receptive field</h2>",
        '<div class="grid2">',
        _figure(p.assets.get("rf-growth"), "Analytic receptive field against depth", pre, p.notes.get("rf-growth")),
        _figure(
            p.assets.get("erf"),
            "Effective receptive field (Luo et al. 2016) and the analytic field",
            pre,
            p.notes.get("erf"),
        ),
        "</div>",
    ]


def _model_html(p: ModelPage, runs: bool) -> str:
    """One model's page: facts, pictures and the table of its modules (or why it could not be analysed)."""
    entry = get_entry(p.name)
    pre = "../"
    if p.error or p.report is None:
        body = f"<h1>{_e(p.name)}</h1><p class=lead>{_e(p.summary)}</p><p>Could not be analysed: {_e(p.error)}</p>"
        return _page(f"{p.name} — cnnatlas", body, prefix=pre, runs=runs)
    fact_rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in _model_facts(p, entry))
    body = [
        f'<p class=small><a href="../index.html">← all models</a></p><h1>{_e(p.name)}</h1>',
        f'<p class="lead">{_e(p.summary)}</p>',
        f'<table class="facts">{fact_rows}</table>',
        *_model_figures(p, pre),
        f"<h2>Modules (depth 2), at input {_e('×'.join(map(str, p.report.input_shapes[0])))}</h2>",
        _layers_table(p.report),
    ]
    return _page(f"{p.name} — cnnatlas", "\n".join(body), prefix=pre, runs=runs)


def _ag(agreement) -> tuple[str, str]:
    return agreement.status, agreement.text


def _claims_html(rows: list[dict] | None, note: str, runs: bool) -> str:
    body = ["<h1>The claims of the notes, measured</h1>", f'<p class="lead">{_e(note)}</p>']
    if rows:
        counts = {s: sum(r["status"] == s for r in rows) for s in ("passed", "failed", "skipped")}
        body.append(
            '<div class="summary-line">' + "".join(f"<span>{n} {s}</span>" for s, n in counts.items()) + "</div>"
        )
        trs = []
        for r in rows:
            detail = r["reason"] if r["status"] != "passed" and r["reason"] else r["conditions"]
            trs.append(
                f'<tr id="{_e(r["id"])}"><td><code>{_e(r["id"])}</code></td><td>{_e(r["claim"])}</td>'
                f"<td>{_e(r['measured'])}</td><td>{_e(r['expected'])}</td>"
                f'<td data-sort="{_e(r["status"])}">{_agreement(r["status"], r["status"])}</td>'
                f'<td class="small muted">{_e(detail)}</td></tr>'
            )
        body.append(
            "<table id=claims class=sortable><thead><tr><th data-type=text>id</th><th data-type=text>claim</th>"
            "<th data-type=text>measured</th><th data-type=text>expected</th><th data-type=text>result</th>"
            f"<th data-type=text>conditions</th></tr></thead><tbody>{''.join(trs)}</tbody></table>"
        )
    return _page("cnnatlas — claims", "\n".join(body), here="claims", runs=runs)


def _fewer_than_five(page: RunPage) -> str:
    """' (top-3)' for a run of 3 classes, whose test_top5 counts its top 3 (`train.top_k`); else ''."""
    k = None if page.classes is None else top_k(page.classes)
    return f" (top-{k})" if k is not None and k < 5 else ""


def _runs_html(pages: list[RunPage], root: str) -> str:
    trs = []
    for p in pages:
        m = p.metrics
        dense = "test_miou" in m  # a segmentation run: its accuracy is over pixels; no top-5, a mean IoU
        trs.append(
            f'<tr><td><a href="#{_e(p.slug)}">{_e(p.slug)}</a></td><td>{_e(m.get("model", "—"))}</td>'
            f"<td>{_e(m.get('data', '—'))}</td>"
            + _num_cell(m.get("epochs"))
            + _num_cell(
                None if "test_acc" not in m else 100 * m["test_acc"],
                None if "test_acc" not in m else f"{100 * m['test_acc']:.2f}",
            )
            + _num_cell(
                None if "test_top5" not in m or dense else 100 * m["test_top5"],
                None if "test_top5" not in m or dense else f"{100 * m['test_top5']:.2f}" + _fewer_than_five(p),
            )
            + _num_cell(
                None if not dense else 100 * m["test_miou"],
                None if not dense else f"{100 * m['test_miou']:.2f}",
            )
            + _num_cell(m.get("seconds"), None if m.get("seconds") is None else f"{m['seconds']:.0f}")
            + "</tr>"
        )
    body = [
        "<h1>Training runs</h1>",
        f'<p class="lead">{len(pages)} run folder(s) under {_e(root)}, read from their metrics.json and '
        "metrics.jsonl; the confusion matrices evaluate each run's final weights on its test set now. A "
        "segmentation run's top-1 is its pixel accuracy, beside its mean IoU; a run of fewer than 5 classes "
        "shows the top-k it has.</p>",
        "<table id=runs class=sortable><thead><tr><th data-type=text>run</th><th data-type=text>model</th>"
        "<th data-type=text>data</th><th class=num data-type=num>epochs</th><th class=num data-type=num>test top-1 %"
        "</th><th class=num data-type=num>test top-5 %</th><th class=num data-type=num>test mean IoU %</th>"
        "<th class=num data-type=num>seconds</th></tr></thead>"
        f"<tbody>{''.join(trs)}</tbody></table>",
    ]
    for p in pages:
        body.append(f'<h2 id="{_e(p.slug)}">{_e(p.slug)}: {_e(p.title)}</h2>')
        body.append('<div class="grid2">')
        for kind, caption in (
            (
                "training",
                "Loss, pixel accuracy and mean IoU per epoch"
                if "test_miou" in p.metrics
                else "Loss and accuracy per epoch",
            ),
            ("confusion", "Confusion matrix on the test set"),
            ("filters", "First-layer filters of the trained weights"),
        ):
            body.append(_figure(p.assets.get(kind), caption, note=p.notes.get(kind)))
        body.append("</div>")
    if not pages:
        body.append(f"<p>No training run folder (with a config.json) under {_e(root)}.</p>")
    return _page("cnnatlas — training runs", "\n".join(body), here="runs", runs=True)


# -- the whole atlas ----------------------------------------------------------------------------


def _check_erf_settings(erf_cap: int, erf_samples: int) -> None:
    """Refuse an effective-field picture too small to read or drawn from no sample."""
    if erf_cap < 8:
        raise InvalidArgumentError(f"--erf-size must be ≥ 8 pixels; got {erf_cap}")
    if erf_samples < 1:
        raise InvalidArgumentError(f"--erf-samples must be ≥ 1; got {erf_samples}")


# The file an atlas folder holds from the start of its first build: the folder is the atlas's, and a later
# build may replace what is in it. Atlases from before the file existed are known by their index.html.
ATLAS_MARKER = ".cnnatlas-atlas"
ATLAS_FOOTER = "Generated by cnnatlas"


def check_atlas_folder(out: Path) -> None:
    """Refuse a folder that holds files but is not an atlas: the atlas writes index.html, claims.html,
    runs.html, assets/ and models/ there, and would replace a user's files of those names."""
    if not out.is_dir() or (out / ATLAS_MARKER).is_file():
        return
    entries = sorted(p.name for p in out.iterdir())
    index = out / "index.html"
    if not entries or (index.is_file() and ATLAS_FOOTER in index.read_text(encoding="utf-8", errors="replace")):
        return
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    raise InvalidArgumentError(
        f"{out} holds files ({shown}) and is not an atlas cnnatlas wrote; the atlas is written to a new or "
        "empty folder, or over an earlier atlas, so that none of those files is replaced: give another --out"
    )


def _write_static(out: Path) -> None:
    """Create the atlas folders (marked as the atlas's, ATLAS_MARKER) and write its style sheet and script."""
    check_atlas_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ATLAS_MARKER).write_text("written by cnnatlas report: a later build replaces the atlas's files here\n")
    (out / "assets").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(exist_ok=True)
    (out / "assets" / "style.css").write_text(atlas_static.STYLE.lstrip(), encoding="utf-8")
    (out / "assets" / "atlas.js").write_text(atlas_static.SCRIPT.lstrip(), encoding="utf-8")


def _analyse_all(names: list[str], log: Log) -> list[ModelPage]:
    """Trace every named model, logging the time each took."""
    pages = []
    for i, name in enumerate(names, 1):
        t = time.perf_counter()
        pages.append(_analyse(name))
        log(f"[{i}/{len(names)}] traced {name} ({time.perf_counter() - t:.1f} s)")
    return pages


def _summary_plots(traced: dict[str, Any], out: Path) -> dict[str, str]:
    """Draw the index page's Pareto and field-growth plots; a plot that cannot be drawn leaves a note."""
    from .fields import RF_GROWTH_MODELS, plot_pareto, plot_rf_growth

    plots: dict[str, str] = {}
    try:
        plot_pareto(list(traced), macs={n: r.macs for n, r in traced.items()}, out=out / "assets" / "pareto.svg")
        plots["pareto"] = "assets/pareto.svg"
    except CnnAtlasError as err:
        plots["pareto-note"] = str(err)
    growth = [n for n in RF_GROWTH_MODELS if n in traced]
    growth += [
        n
        for n, r in traced.items()
        if n not in growth and r.receptive_field is not None and len(r.input_shapes[0]) == 4
    ][: max(0, 6 - len(growth))]
    if growth:
        plot_rf_growth(growth, reports=traced, out=out / "assets" / "rf-growth.svg")
        plots["rf-growth"] = "assets/rf-growth.svg"
    else:
        plots["rf-growth-note"] = "no image model with a spatial receptive field in this atlas"
    return plots


def _draw_models(
    pages: list[ModelPage], out: Path, erf: bool, erf_cap: int, erf_samples: int, diagrams: bool, log: Log
) -> None:
    """Draw each analysed model's pictures, reusing those cached from an earlier build with the same settings."""
    cache = _Cache(
        out,
        {
            "erf": erf,
            "erf_cap": erf_cap,
            "erf_samples": erf_samples,
            "diagrams": diagrams,
            "dot": bool(shutil.which("dot")),
        },
    )
    for i, page in enumerate(pages, 1):
        if page.report is None:
            continue
        t = time.perf_counter()
        if cache.fresh(page, out):
            cache.restore(page)
            log(f"[{i}/{len(pages)}] {page.name}: pictures unchanged (cached)")
            continue
        _draw_model(page, out, erf_cap, erf_samples, erf, diagrams)
        cache.store(page)
        cache.save()
        log(f"[{i}/{len(pages)}] drew {page.name} ({time.perf_counter() - t:.1f} s)")


def _claims_summary(claim_rows: list[dict] | None) -> str:
    """The index page's line on the claims: how many passed, linked to their page."""
    if claim_rows is None:
        return "claims not measured"
    passed = sum(r["status"] == "passed" for r in claim_rows)
    return f'<a href="claims.html">{passed} of {len(claim_rows)} claims passed</a>'


def _write_runs(run_dirs: list[Path], runs: str | Path, out: Path, log: Log) -> None:
    """Draw each training run (a slug unique within the atlas) and write runs.html."""
    run_pages = []
    slugs: set[str] = set()
    for path in run_dirs:
        slug = path.name if path.name not in slugs else f"{path.parent.name}-{path.name}"
        slugs.add(slug)
        t = time.perf_counter()
        run_pages.append(_draw_run(path, slug, out))
        log(f"run {slug} ({time.perf_counter() - t:.1f} s)")
    (out / "runs.html").write_text(_runs_html(run_pages, str(runs)), encoding="utf-8")


def build_atlas(
    out: str | Path,
    *,
    models: str | Sequence[str] | None = None,
    runs: str | Path | None = None,
    claims: str | Path | None = "auto",
    erf: bool = True,
    erf_cap: int = 128,
    erf_samples: int = 4,
    diagrams: bool = True,
    quick_claims: bool = False,
    log: Log | None = None,
) -> Path:
    """Write the atlas to `out` and return the path of its index.html."""
    log = log or (lambda msg: None)
    _check_erf_settings(erf_cap, erf_samples)
    names = select_models(models)
    run_dirs = find_runs(runs) if runs is not None else []
    out = Path(out)
    _write_static(out)
    start = time.perf_counter()

    pages = _analyse_all(names, log)
    plots = _summary_plots({p.name: p.report for p in pages if p.report is not None}, out)
    _draw_models(pages, out, erf, erf_cap, erf_samples, diagrams, log)

    claim_rows, claim_note = collect_claims(claims, log, quick=quick_claims)
    has_runs = runs is not None
    (out / "index.html").write_text(_index_html(pages, plots, has_runs, _claims_summary(claim_rows)), encoding="utf-8")
    for page in pages:
        (out / "models" / f"{page.name}.html").write_text(_model_html(page, has_runs), encoding="utf-8")
    (out / "claims.html").write_text(_claims_html(claim_rows, claim_note, has_runs), encoding="utf-8")
    if runs is not None:
        _write_runs(run_dirs, runs, out, log)
    log(f"atlas of {len(pages)} models written to {out / 'index.html'} in {time.perf_counter() - start:.0f} s")
    return out / "index.html"
