"""benchmarks/analysis_coverage.py on a sample of 30 models of both zoos (the full run, over every timm
and torchvision model, takes tens of minutes and runs outside CI): all analysed, MACs equal to
FlopCounterMode's wherever it runs, the results table written."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("timm")

SAMPLE = [
    "tv:resnet18",
    "tv:mobilenet_v3_small",
    "tv:squeezenet1_0",
    "tv:shufflenet_v2_x0_5",
    "tv:mnasnet0_5",
    "tv:regnet_x_400mf",
    "tv:efficientnet_b0",
    "tv:googlenet",
    "tv:densenet121",
    "tv:alexnet",
    "tv:convnext_tiny",
    "tv:r3d_18",
    "tv:raft_small",
    "tv:ssdlite320_mobilenet_v3_large",
    "tv:lraspp_mobilenet_v3_large",
    "tv:vit_b_32",
    "tv:swin_t",
    "tv:quantized_mobilenet_v2",
    "timm:resnet10t",
    "timm:resmlp_12_224",
    "timm:pvt_v2_b0",
    "timm:cait_xxs24_224",
    "timm:volo_d1_224",
    "timm:tnt_s_patch16_224",
    "timm:mobilevitv2_050",
    "timm:convnext_atto",
    "timm:efficientformer_l1",
    "timm:poolformer_s12",
    "timm:levit_128s",
    "timm:coat_lite_tiny",
]


def _load():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "analysis_coverage.py"
    spec = importlib.util.spec_from_file_location("analysis_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_coverage_run_on_a_sample_of_thirty_models(tmp_path):
    out = tmp_path / "coverage.md"
    result = _load().main(["--models", *SAMPLE, "--output", str(out)])
    rows = result["rows"]
    assert len(rows) == 30
    failed = [(r["model"], r.get("error") or r.get("build_error")) for r in rows if "error" in r or "build_error" in r]
    assert failed == []
    differ = [(r["model"], r["macs"], r["peer_macs"]) for r in rows if "peer_macs" in r and r["macs"] != r["peer_macs"]]
    assert differ == []
    assert all(r["params_exact"] and not r["unsupported"] for r in rows)
    detection = next(r for r in rows if r["model"] == "tv:ssdlite320_mobilenet_v3_large")
    assert detection["sizing"]["torchvision.nms"] == "measured" and "peer_error" in detection
    text = out.read_text()
    assert text == result["markdown"]
    assert "| analysed by cnnatlas | 30 of 30 |" in text
    counted = sum("peer_macs" in r for r in rows)
    assert f"| MACs equal to FlopCounterMode's (2 FLOPs a MAC) | {counted} of {counted} |" in text
    assert "median" in text
