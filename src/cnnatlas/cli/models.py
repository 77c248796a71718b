"""`cnnatlas models` and `cnnatlas info NAME`: what the registry holds, measured beside published."""

from __future__ import annotations

import torch
from rich.table import Table

from ..errors import UnknownModelError, did_you_mean
from ..models.base import count_params
from ..registry import get_entry, list_models
from ..zoo import create_model, model_info
from .console import NUMBER, command_console, figure_table, print_json


def measured_params(name: str) -> int:
    """Parameters of the default model `name`, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return count_params(create_model(name))


def model_row(name: str) -> dict:
    """One model as `cnnatlas models --json` lists it."""
    entry = get_entry(name)
    pub = entry.published
    return {
        "name": name,
        "family": entry.family,
        "params": measured_params(name),
        "reference": {
            "params": pub.params,
            "macs": pub.macs,
            "top1": pub.top1,
            "top5": pub.top5,
            "source": pub.citation,
        },
    }


def params_table(names: list[str], title: str = "Parameters: measured on the built model vs published") -> Table:
    table = figure_table(title)
    number = {**NUMBER, "min_width": 11}  # figures are never cut short
    for col, kw in (
        ("model", {"no_wrap": True}),
        ("family", {"overflow": "fold"}),
        ("measured", number),
        ("published", number),
        ("agreement", {}),
        ("source", {"overflow": "fold"}),
    ):
        table.add_column(col, **kw)
    for name in names:
        pub = get_entry(name).published
        params = measured_params(name)
        agreement = pub.params_agreement(params)
        published = (
            "—" if pub.params is None else (f"{pub.params:,}" if pub.params_exact else f"≈{pub.params / 1e6:g}M")
        )
        colour = {"exact": "green", "approx": "yellow", "differs": "red"}.get(agreement.status, "dim")
        table.add_row(
            name, get_entry(name).family, f"{params:,}", published, f"[{colour}]{agreement.text}[/]", pub.source or "—"
        )
    return table


def weights_rows(names: list[str]) -> list[dict]:
    """One row per published weights of each model, as `cnnatlas models --pretrained --json` lists them."""
    from ..pretrained import available_weights

    rows = []
    for name in names:
        for tag, w in available_weights(name).items():
            m = w.metrics or {}
            rows.append(
                {
                    "name": name,
                    "tag": tag,
                    "default": w.default,
                    "source": w.source,
                    "num_classes": len(w.categories) if w.categories else None,
                    "top1": m.get("top1"),
                    "top5": m.get("top5"),
                    "miou": m.get("miou"),
                    "pixel_acc": m.get("pixel_acc"),
                    "dataset": m.get("dataset"),
                    "url": w.url,
                    "source_ref": w.source_ref,
                    "model_args": dict(w.model_args),
                }
            )
    return rows


def weights_table(names: list[str]) -> Table:
    from ..pretrained import catalogue

    cat = catalogue()
    table = figure_table(
        "Pretrained weights, accuracy as published",
        caption=f"* the default (pretrained=True). Catalogue from torchvision {cat['torchvision']} and "
        f"timm {cat['timm']} (timm's package publishes no accuracy), and from the READMEs of PyTorchVideo's "
        "model zoo and pytorch-cifar-models.",
        caption_justify="left",
    )
    rows = weights_rows(names)
    dense = any(r["miou"] is not None for r in rows)  # segmentation weights publish mean IoU and pixel accuracy
    name = {"overflow": "fold"}  # in a narrow terminal the names take more lines, the figures stay whole
    columns = [("model", name), ("tag", name), ("source", name)]
    columns += [("top-1 %", NUMBER), ("top-5 %", NUMBER)]
    columns += [("mean IoU %", NUMBER), ("pixel acc. %", NUMBER)] if dense else []
    for col, kw in (*columns, ("on", name)):
        table.add_column(col, **kw)

    def figure(value: float | None, digits: int = 3) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    for r in rows:
        table.add_row(
            r["name"],
            r["tag"] + (" *" if r["default"] else ""),
            r["source"],
            figure(r["top1"]),
            figure(r["top5"]),
            *((figure(r["miou"], 1), figure(r["pixel_acc"], 1)) if dense else ()),
            r["dataset"] or "—",
        )
    return table


def _run_models(args) -> int:
    if args.pretrained:
        from ..pretrained import list_pretrained

        names = list_pretrained(args.pattern)
        if args.json:
            print_json(weights_rows(names))
        else:
            command_console().print(weights_table(names))
        return 0
    names = list_models(args.pattern)
    if not names:
        hint = did_you_mean(args.pattern, list_models()) if args.pattern.strip("*?[]") == args.pattern else ""
        raise UnknownModelError(
            f"expected a pattern matching a registered model, such as 'resnet*'; got "
            f"{args.pattern!r}, which matches none.{hint}"
        )
    if args.json:
        print_json([model_row(n) for n in names])
    else:
        command_console().print(params_table(names))
    return 0


def _run_info(args) -> int:
    info = model_info(args.name)
    info["measured_params"] = measured_params(args.name)
    if args.json:
        print_json(info)
        return 0
    console = command_console()
    console.print(f"[bold]{info['name']}[/] ({info['family']}) — {info['summary']}")
    console.print(
        f"default input: {'×'.join(map(str, info['input_size']))}"
        + (f"; torchvision counterpart: {info['torchvision']}" if info["torchvision"] else "")
    )
    console.print("arguments: " + ", ".join(f"{k}={v!r}" for k, v in info["arguments"].items()))
    pub = get_entry(args.name).published
    console.print(
        f"parameters: measured {info['measured_params']:,}; "
        f"published {pub.params:,} → {pub.params_agreement(info['measured_params']).text}"
        if pub.params
        else f"parameters: measured {info['measured_params']:,}; no published figure"
    )
    for key, label in (
        ("gmacs", "published GMACs"),
        ("top1", "published top-1 %"),
        ("top5", "published top-5 %"),
        ("miou", "published mean IoU %"),
        ("pixel_acc", "published pixel accuracy %"),
    ):
        if info["published"][key] is not None:
            console.print(f"{label}: {info['published'][key]}" + (f" ({pub.dataset})" if key != "gmacs" else ""))
    if pub.citation:
        console.print(f"source: {pub.citation}")
    if pub.note:
        console.print(f"note: {pub.note}")
    for tag, w in info["weights"].items():
        m = w["metrics"] or {}
        acc = (
            f"mean IoU {m['miou']}%, pixel accuracy {m['pixel_acc']}% on {m['dataset']} (published)"
            if "miou" in m
            else f"top-1 {m['top1']}%, top-5 {m['top5']}% on {m['dataset']} (published)"
            if m
            else "no published accuracy"
        )
        builds = "".join(f", builds {k}={v!r}" for k, v in w["model_args"].items())  # e.g. SlowFast's config
        console.print(
            f"weights {tag}{' (default)' if w['default'] else ''}: {w['source']}{builds}, "
            f"{w['num_classes']} categories, {acc}"
        )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the registered models, parameters measured vs published")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="only the models with published weights: their tags and published accuracy",
    )
    p.set_defaults(run=_run_models)
    p = sub.add_parser("info", help="everything the registry knows about one model")
    p.add_argument("name", metavar="MODEL", help="a name from 'cnnatlas models'")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(run=_run_info)
