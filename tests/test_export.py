"""Export round-trips: the ONNX file run in onnxruntime and the TorchScript file give our outputs."""

import pytest
import torch
from equivalence import max_relative_difference, randomize_norm_stats
from safetensors.torch import save_file

import cnnatlas
from cnnatlas.cli import main
from cnnatlas.export import ExportError, export_onnx, export_torchscript

ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("name, size", [("resnet18", 64), ("mobilenet_v2", 64), ("lenet5", 32)])
def test_onnx_round_trip(tmp_path, name, size):
    torch.manual_seed(0)
    model = cnnatlas.create_model(name).eval()
    channels = model.in_channels
    path = export_onnx(model, tmp_path / f"{name}.onnx", torch.randn(1, channels, size, size))
    x = torch.randn(3, channels, size, size)  # another batch size: the batch axis is dynamic
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with torch.no_grad():
        assert max_relative_difference(got, model(x)) <= 1e-4


def test_torchscript_round_trip(tmp_path):
    model = cnnatlas.create_model("vgg11_bn").eval()
    path = export_torchscript(model, tmp_path / "vgg.pt", torch.randn(1, 3, 32, 32))
    loaded = torch.jit.load(str(path))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert max_relative_difference(loaded(x), model(x)) <= 1e-5


def test_export_command(tmp_path, capsys):
    """`export --optimize` writes the folded model, and onnxruntime running it gives the original
    model's outputs (with the same weights, random batch-norm statistics so that the folds matter)."""
    torch.manual_seed(0)
    model = randomize_norm_stats(cnnatlas.create_model("resnet20")).eval()
    weights, onnx_file = tmp_path / "resnet20.safetensors", tmp_path / "resnet20.onnx"
    save_file(model.state_dict(), str(weights))
    assert main(["export", "resnet20", "--weights", str(weights), "--onnx", str(onnx_file), "--optimize"]) == 0
    x = torch.randn(3, 3, 32, 32)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with torch.no_grad():
        assert max_relative_difference(got, model(x)) <= 1e-4
    assert main(["export", "lenet5"]) == 2
    assert "give --onnx FILE" in capsys.readouterr().err
    assert main(["export", "lenet5", "--onnx", str(tmp_path / "missing" / "x.onnx")]) == 2
    capsys.readouterr()
    assert main(["export", "lenet5", "--input", "1x1x32x32", "--onnx", str(tmp_path / "b.onnx")]) == 2
    err = capsys.readouterr().err  # the whole shape, as summary takes it: the sample is named, no --batch here
    assert "--input is one sample's size here, without the batch: --input 1x32x32; got '1x1x32x32'" in err
    assert not (tmp_path / "b.onnx").exists()


def test_export_replaces_only_an_earlier_export_and_leaves_the_old_file_if_it_fails(tmp_path, capsys):
    """A file of the user's (notes, a state dict saved with torch.save under the name) is never overwritten;
    an earlier export is; a failing export leaves the file there as it was, and no partial file behind."""
    model, x = cnnatlas.create_model("lenet5").eval(), torch.randn(1, 1, 32, 32)
    notes, state = tmp_path / "notes.onnx", tmp_path / "weights.pt"
    notes.write_text("my notes")
    torch.save(model.state_dict(), state)
    before = state.read_bytes()
    for call, path, kind in ((export_onnx, notes, "an ONNX"), (export_torchscript, state, "a TorchScript")):
        with pytest.raises(ExportError, match=f"{path.name} exists and is not {kind} model"):
            call(model, path, x)
    assert notes.read_text() == "my notes" and state.read_bytes() == before
    assert main(["export", "lenet5", "--torchscript", str(state)]) == 2
    assert "weights.pt exists and is not a TorchScript model" in capsys.readouterr().err
    assert state.read_bytes() == before

    onnx_file, script = tmp_path / "m.onnx", tmp_path / "m.pt"
    for call, path in ((export_onnx, onnx_file), (export_torchscript, script)):
        call(model, path, x)
        call(cnnatlas.create_model("lenet5", num_classes=3).eval(), path, x)  # an earlier export: replaced
    assert torch.jit.load(str(script))(x).shape == (1, 3)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": x.numpy()})[0].shape == (1, 3)

    kept = script.read_bytes()
    with pytest.raises(ExportError, match="TorchScript export of LeNet5 to .*m.pt failed"):
        export_torchscript(model, script, torch.randn(1, 1, 2, 2))  # too small an input: the trace fails
    assert script.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["notes.onnx", "weights.pt", "m.onnx", "m.pt"]
    )
    with pytest.raises(ExportError, match="a folder; expected a file name for the ONNX model"):
        export_onnx(model, tmp_path, x)
