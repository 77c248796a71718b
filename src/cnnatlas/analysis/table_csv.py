"""The per-record table of an analysis as CSV (one row per operator record, for spreadsheets).

Columns: index, layer (module path), type (module class), op (ATen operator), input_shapes (each as
1x3x224x224, several separated by ';'), output_shape, params, macs, other_flops, activation_bytes, rf_size,
rf_stride, rf_start (per axis joined by 'x', empty where the output is not a spatial map), rf_exact,
rf_global; with a roofline also flops, bytes_moved, arithmetic_intensity, bound, predicted_seconds.
"""

from __future__ import annotations

import csv
from typing import Any, TextIO

from .report import Report

COLUMNS = [
    "index",
    "layer",
    "type",
    "op",
    "input_shapes",
    "output_shape",
    "params",
    "macs",
    "other_flops",
    "activation_bytes",
    "rf_size",
    "rf_stride",
    "rf_start",
    "rf_exact",
    "rf_global",
]
ROOFLINE_COLUMNS = ["flops", "bytes_moved", "arithmetic_intensity", "bound", "predicted_seconds"]


def _shape(s) -> str:
    return "x".join(map(str, s))


def csv_rows(report: Report, roofline: list | None = None) -> list[dict[str, Any]]:
    """One dict per record, keyed by COLUMNS (+ ROOFLINE_COLUMNS when `roofline`, a list of LayerRoofline)."""
    rows = []
    for i, rec in enumerate(report.layers):
        rf = rec.receptive_field
        row = {
            "index": rec.index,
            "layer": rec.name,
            "type": rec.module_type,
            "op": rec.op,
            "input_shapes": ";".join(_shape(s) for s in rec.input_shapes),
            "output_shape": _shape(rec.output_shape),
            "params": rec.params,
            "macs": rec.macs,
            "other_flops": rec.other_flops,
            "activation_bytes": rec.activation_bytes,
            "rf_size": "" if rf is None else _shape(rf.size),
            "rf_stride": "" if rf is None else _shape(rf.stride),
            "rf_start": "" if rf is None else _shape(rf.start),
            "rf_exact": "" if rf is None else rf.exact,
            "rf_global": "" if rf is None else rf.global_context,
        }
        if roofline is not None:
            p = roofline[i]
            row.update(
                flops=p.flops,
                bytes_moved=p.bytes,
                bound=p.bound or "",
                predicted_seconds=p.seconds,
                arithmetic_intensity="" if p.intensity is None else p.intensity,
            )
        rows.append(row)
    return rows


def write_csv(report: Report, stream: TextIO, roofline: list | None = None) -> int:
    """Write the records of `report` to `stream` (opened with newline=''); returns the number of rows."""
    rows = csv_rows(report, roofline)
    writer = csv.DictWriter(stream, fieldnames=COLUMNS + (ROOFLINE_COLUMNS if roofline is not None else []))
    writer.writeheader()
    writer.writerows(rows)
    return len(rows)
