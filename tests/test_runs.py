"""The run folder: nothing lost, nothing silently wrong. One writer at a time (the lock), a resume
writes only where it read and cannot change what the run is, the final weights are hash-checked on
every load, and every damaged file or impossible setting is one line and exit 2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

from cnnatlas import create_model
from cnnatlas.cli import main
from cnnatlas.train import (
    CheckpointError,
    ResumeError,
    RunLock,
    RunLockedError,
    default_config,
    fit_weights,
    list_checkpoints,
    load_run,
    read_history,
    resolve_resume,
    save_checkpoint,
    train,
)
from cnnatlas.train.checkpoint import load_final_weights, sha256

TRAIN = ["train", "lenet5", "--batch-size", "128", "--quiet"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """LeNet-5 on the digits, 2 epochs, through the command line (copied by each test that changes it)."""
    out = tmp_path_factory.mktemp("base") / "run"
    assert main([*TRAIN, "--epochs", "2", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run(base_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(base_run, copy)
    return copy


def _files(run: Path) -> dict[str, bytes]:
    """Every file of a run folder (the lock file aside), by relative path."""
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != "train.lock"
    }


def _one_line_error(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    assert err.startswith("cnnatlas: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# -- the lock -------------------------------------------------------------------------------------


def _hold_lock_in_another_process(run: Path) -> subprocess.Popen:
    """A plain Python process (no cnnatlas) that takes RUN/train.lock as RunLock does and waits."""
    code = (
        "import fcntl, json, os, sys, time\n"
        f"f = open({str(run / 'train.lock')!r}, 'a+b')\n"
        "fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "f.truncate(0); f.write(json.dumps({'pid': os.getpid(), 'host': 'h', 'since': 's'}).encode()); f.flush()\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_run_folder_has_one_writer_and_a_dead_holder_does_not_block_it(run, capsys):
    before = _files(run)
    holder = _hold_lock_in_another_process(run)
    try:
        # exit 3: the folder is unavailable now, the command itself is right (a usage error exits 2)
        assert main([*TRAIN, "--out", str(run), "--resume", "--epochs", "3"]) == 3
        _one_line_error(capsys, f"in use by process {holder.pid}", str(run))
        assert main([*TRAIN, "--resume", str(run / "checkpoints" / "epoch-0002"), "--epochs", "3"]) == 3
        _one_line_error(capsys, f"process {holder.pid}")
        assert _files(run) == before  # nothing written meanwhile
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the holder died without releasing: its lock is stale and simply taken over
    assert json.loads((run / "train.lock").read_text())["pid"] == holder.pid
    assert main([*TRAIN, "--out", str(run), "--resume", "--epochs", "3"]) == 0
    assert [h["epoch"] for h in read_history(run / "metrics.jsonl")] == [1, 2, 3]
    assert (run / "train.lock").read_text() == ""  # released: no holder named
    with RunLock(run):  # and free again
        pass


def test_the_lock_in_the_library_is_released_on_every_exit(run, tmp_path):
    from cnnatlas.train import MemoryEstimateError

    with RunLock(run), pytest.raises(RunLockedError, match=f"in use by process {os.getpid()}"):
        train(default_config("lenet5", epochs=3, quiet=True, out=str(run)), resume=True)
    with pytest.raises(ResumeError, match="expected --epochs ≥ 2"):
        train(default_config("lenet5", epochs=1, quiet=True, out=str(run)), resume=True)
    with RunLock(run):  # released after the refusal
        pass
    new = tmp_path / "new" / "run"
    with pytest.raises(MemoryEstimateError, match="GiB"):
        train(default_config("lenet5", image_size=100_000, quiet=True, out=str(new)))
    assert not (tmp_path / "new").exists()  # the folders it made for nothing are gone, lock file and all
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(MemoryEstimateError, match="GiB"):
        train(default_config("lenet5", image_size=100_000, quiet=True, out=str(kept / "a" / "run")))
    assert kept.is_dir() and not any(kept.iterdir())  # what was there before stays


def test_a_new_run_never_enters_a_folder_that_holds_one(run, tmp_path):
    from cnnatlas.train import RunExistsError

    before = _files(run)
    with pytest.raises(RunExistsError, match="already holds a run"):
        train(default_config("lenet5", epochs=1, quiet=True, out=str(run)))
    assert _files(run) == before
    with RunLock(run):
        pass  # the refusal gave the lock back


# -- resume writes where it read, and keeps what the run is ---------------------------------------------


def test_resume_continues_the_run_it_read_and_nowhere_else(run, tmp_path, monkeypatch, capsys):
    decoy_root = tmp_path / "cwd"
    decoy = decoy_root / "runs" / "lenet5-digits"
    shutil.copytree(run, decoy)
    monkeypatch.chdir(decoy_root)
    decoy_files = _files(decoy)

    # a checkpoint folder, without --out: continued in ITS run, not in runs/lenet5-digits
    assert main([*TRAIN, "--resume", str(run / "checkpoints" / "epoch-0002"), "--epochs", "3"]) == 0
    assert [h["epoch"] for h in read_history(run / "metrics.jsonl")] == [1, 2, 3]
    assert _files(decoy) == decoy_files
    # a run folder given to --resume: the same
    assert main([*TRAIN, "--resume", str(run), "--epochs", "4"]) == 0
    assert [h["epoch"] for h in read_history(run / "metrics.jsonl")] == [1, 2, 3, 4]
    assert _files(decoy) == decoy_files
    # a checkpoint of one run with --out another: refused, nothing written
    run_files = _files(run)
    assert (
        main([*TRAIN, "--resume", str(run / "checkpoints" / "epoch-0004"), "--out", str(decoy), "--epochs", "5"]) == 2
    )
    _one_line_error(capsys, "belongs to the run", "not --out")
    assert _files(decoy) == decoy_files and _files(run) == run_files
    # the library refuses the same
    with pytest.raises(ResumeError, match="belongs to the run"):
        train(default_config("lenet5", epochs=5, quiet=True, out=str(decoy)), resume=run / "checkpoints" / "epoch-0004")
    assert resolve_resume(run / "checkpoints" / "epoch-0004") == (run, run / "checkpoints" / "epoch-0004")
    assert resolve_resume(run) == (run, None)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--model-arg", "style=modern"], "model_kwargs"),
        (["--image-size", "28"], "image_size 32 → 28"),
        (["--optimizer", "adamw"], "optimizer 'sgd' → 'adamw'"),
        (["--batch-size", "64"], "batch_size 128 → 64"),
        (["--seed", "1"], "seed 0 → 1"),
        (["--augment", "none"], "augment"),
        (["--epochs", "1"], "expected --epochs ≥ 2"),
    ],
)
def test_resume_refuses_what_would_change_the_run(run, capsys, flags, needle):
    before = _files(run)
    args = [*TRAIN, "--out", str(run), "--resume", "--epochs", "3", *flags]
    assert main(args) == 2
    _one_line_error(capsys, needle)
    assert _files(run) == before


def test_resume_records_what_it_changes(run, capsys):
    assert main([*TRAIN, "--out", str(run), "--resume", "--epochs", "3", "--lr", "0.01"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["epochs"] == 3 and saved["train"]["lr"] == 0.01
    [record] = saved["resumes"]
    assert record["after_epoch"] == 2 and record["checkpoint"].endswith("epoch-0002")
    assert record["changed"]["epochs"] == [2, 3] and record["changed"]["lr"][1] == 0.01
    assert record["discarded_epochs"] == []
    # an earlier checkpoint resumed: the epochs trained again keep their first metrics in the record
    assert main([*TRAIN, "--resume", str(run / "checkpoints" / "epoch-0002"), "--epochs", "3"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert len(saved["resumes"]) == 2 and [h["epoch"] for h in saved["resumes"][1]["discarded_epochs"]] == [3]
    assert [h["epoch"] for h in read_history(run / "metrics.jsonl")] == [1, 2, 3]
    # and the checkpoint of the epoch trained again is kept aside, out of --resume's and eval's way
    [aside] = saved["resumes"][1]["set_aside"]
    assert aside.startswith("superseded/") and aside.endswith("-after-epoch-0002/epoch-0003")
    assert (run / aside / "meta.json").is_file() and load_run(run).weights_from == run / "model.safetensors"
    assert [p.name for p in list_checkpoints(run)] == ["epoch-0002", "epoch-0003"]


def test_a_resume_that_fails_leaves_no_stale_final_weights(run, capsys):
    assert main([*TRAIN, "--out", str(run), "--resume", "--epochs", "3", "--lr", "1e12"]) == 1  # diverges
    assert "training stopped" in capsys.readouterr().out
    assert not (run / "model.safetensors").exists() and not (run / "metrics.json").exists()
    assert load_run(run).weights_from == run / "checkpoints" / "epoch-0002"  # the last good weights
    assert json.loads((run / "config.json").read_text())["resumes"][0]["changed"]["lr"][1] == 1e12


def test_a_checkpoint_of_another_class_count_is_one_line(run, capsys):
    weights = create_model("lenet5", num_classes=3, in_channels=1).state_dict()
    other = save_checkpoint(
        run.parent / "other", 1, weights, {"optimizer": {}, "scaler": {}, "rng": {}}, {"step": 1, "model": "lenet5"}
    )
    assert main(["eval", str(run), "--checkpoint", str(other)]) == 2
    err = _one_line_error(capsys, "weights do not fit lenet5 (10 classes", "is 10×84 in", "but 3×84 in the file")
    assert "Error(s) in loading" not in err
    # the same weights placed inside the run as its newest checkpoint: resume refuses them
    shutil.copytree(other, run / "checkpoints" / "epoch-0003")
    assert main([*TRAIN, "--out", str(run), "--resume", "--epochs", "4"]) == 2
    _one_line_error(capsys, "epoch-0003: weights do not fit lenet5")
    with pytest.raises(CheckpointError, match="and 1 more differences"):
        fit_weights(create_model("lenet5"), weights, "w.safetensors", "lenet5")
    assert (
        main(["export", "lenet5", "--weights", str(other / "model.safetensors"), "--onnx", str(run.parent / "x.onnx")])
        == 2
    )
    _one_line_error(capsys, "weights do not fit lenet5", "3×84 in the file")


def test_export_a_run_folder_as_the_run_built_it(run, tmp_path, capsys):
    """`cnnatlas export RUN_DIR`: the run's model (built for its data, with its final weights) at the size it
    was trained at, as eval and predict take a run folder; onnxruntime gives the run's output. --weights
    beside a run folder is refused."""
    ort = pytest.importorskip("onnxruntime")
    onnx = tmp_path / "run.onnx"
    assert main(["export", str(run), "--onnx", str(onnx)]) == 0
    trained = load_run(run)
    x = torch.randn(2, trained.info.in_channels, trained.info.image_size, trained.info.image_size)
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == list(x.shape[1:])  # the size the run was trained at
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(session.run(None, {"input": x.numpy()})[0]), trained.model(x), atol=1e-5)
    assert main(["export", str(run), "--weights", "x", "--onnx", str(onnx)]) == 2
    _one_line_error(capsys, f"--weights is for a zoo model name; {run} is a run folder")
    assert main(["export", "resnet20", "--weights", str(run), "--onnx", str(onnx)]) == 2  # another model's run
    _one_line_error(capsys, f"--weights {run}: a run of lenet5; expected one of resnet20")


def test_the_analyser_and_the_pictures_take_a_run_folder(run, tmp_path, capsys):
    """`summary RUN_DIR`, `rf RUN_DIR --erf`, `plot erf RUN_DIR` and `bench RUN_DIR`: the run's model as it
    was trained (its classes, its input size, its trained weights: the effective field is that of those
    weights, not of a fresh initialisation); --output-stride, which builds a registry model anew, is refused
    for it."""
    from cnnatlas.analysis import effective_receptive_field
    from cnnatlas.viz import plot_erf
    from cnnatlas.viz.common import resolve_model

    trained = load_run(run).model
    assert main(["summary", str(run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == f"lenet5 ({run.name})" and report["output_shapes"] == [[1, 10]]
    assert report["input_shapes"] == [[1, 1, 32, 32]]
    assert report["params"] == sum(p.numel() for p in trained.parameters())
    assert main(["rf", str(run), "--erf", "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)["effective_receptive_field"]
    assert measured == effective_receptive_field(trained, (1, 1, 32, 32), samples=8).as_dict()
    assert main(["rf", str(run), "--erf"]) == 0
    assert "trained weights" in " ".join(capsys.readouterr().out.split())
    pictured, label, size = resolve_model(str(run), meta=False)  # what the pictures draw: the trained weights
    assert label == f"lenet5 ({run.name})" and size == (1, 1, 32, 32)
    assert all(torch.equal(a, b) for a, b in zip(pictured.state_dict().values(), trained.state_dict().values()))
    fig = plot_erf(str(run), out=tmp_path / "erf.png")
    assert "the run's trained weights" in " ".join(fig.get_suptitle().split())
    assert main(["summary", str(run), "--output-stride", "8"]) == 2
    _one_line_error(capsys, f"--output-stride builds a registry model anew; {run} is a training run folder")
    for command in (["summary"], ["rf"], ["bench"], ["plot", "diagram"]):  # --model-arg too: it builds anew
        out = ["--out", str(tmp_path / "d.svg")] if command[0] == "plot" else []
        assert main([*command, str(run), "--model-arg", "num_classes=3", *out]) == 2
        _one_line_error(capsys, f"--model-arg builds a model anew; {run} is a training run folder")
    assert main(["export", str(run), "--model-arg", "num_classes=3", "--onnx", str(tmp_path / "m.onnx")]) == 2
    _one_line_error(capsys, f"--model-arg is for a zoo model name; {run} is a run folder")
    assert main(["bench", str(run), "--batch", "2", "--repeats", "2", "--warmup", "0", "--json"]) == 0
    (timed,) = json.loads(capsys.readouterr().out)
    assert timed["model"] == f"lenet5 ({run.name})" and timed["batch"] == 2 and timed["images_per_s"] > 0
    assert main(["bench", str(run), "--vs", "torchvision"]) == 2
    _one_line_error(capsys, f"--vs torchvision times a registry model against torchvision's; got lenet5 ({run.name})")


# -- the final weights are hash-checked on every load --------------------------------------------------


def test_feature_maps_of_a_run_show_an_image_of_its_own_test_set(run, tmp_path, capsys, monkeypatch):
    """`plot feature-maps RUN` draws what the trained network computes for an item of the run's own test
    set (a digit for a digits run; --sample N picks it), named in the title with its label; where the run's
    data cannot be read the photograph stands in, and the title says why. --sample outside the test set,
    with --image, or for a model name is refused in one line."""
    import numpy as np

    from cnnatlas.data import DatasetError
    from cnnatlas.train.run import TrainedRun
    from cnnatlas.viz import plot_feature_maps
    from cnnatlas.viz.inside import feature_maps

    trained = load_run(run)
    x, label = trained.test_data().test[5]
    fig = plot_feature_maps(str(run), layers=["features.c1"], sample=5, channels=2)
    title = " ".join(fig.get_suptitle().split())
    assert f"test image 5 of digits (labelled {trained.info.classes[int(label)]})" in title, title
    shown_input, first_map = (ax.images[0].get_array() for ax in fig.axes[:2])
    expected = (x[0] - x[0].min()) / (x[0].max() - x[0].min())
    assert np.allclose(shown_input, expected.numpy(), atol=1e-6)
    maps = feature_maps(trained.model, x[None], ["features.c1"])["features.c1"][0]
    assert any(np.allclose(first_map, m.numpy()) for m in maps)
    other = plot_feature_maps(str(run), layers=["features.c1"], channels=2)  # item 0 by default
    assert "test image 0 of digits" in " ".join(other.get_suptitle().split())
    assert not np.allclose(other.axes[0].images[0].get_array(), shown_input)

    out = tmp_path / "maps.png"
    assert main(["plot", "feature-maps", str(run), "--sample", "3", "--out", str(out)]) == 0 and out.is_file()
    for flags, needle in (
        ([str(run), "--sample", "360"], "--sample must be in 0…359, an item of the test set of digits; got 360"),
        ([str(run), "--sample", "1", "--image", str(out)], "picks an image of a training run's test set; --image"),
        (["lenet5", "--sample", "1"], "picks an image of a training run's test set; lenet5 is not a run"),
    ):
        assert main(["plot", "feature-maps", *flags, "--out", str(tmp_path / "x.png")]) == 2, flags
        _one_line_error(capsys, needle)

    def unreadable(self, data=None):
        raise DatasetError("not here")

    monkeypatch.setattr(TrainedRun, "test_data", unreadable)
    elsewhere = plot_feature_maps(str(run), channels=2)
    assert "a photograph (the run's data, digits, is not on this machine)" in " ".join(elsewhere.get_suptitle().split())


def test_final_weights_carry_their_sha256_and_damage_is_caught_everywhere(run, tmp_path, capsys):
    weights = run / "model.safetensors"
    recorded = (run / "model.safetensors.sha256").read_text().split()
    assert recorded == [sha256(weights), "model.safetensors"]  # the format `sha256sum -c` reads
    image = tmp_path / "digit.png"
    from torchvision.utils import save_image

    save_image(torch.rand(1, 8, 8), image)
    onnx = tmp_path / "m.onnx"
    data = bytearray(weights.read_bytes())
    data[20_000:60_000] = os.urandom(40_000)  # 40 KB overwritten inside the file
    weights.write_bytes(bytes(data))
    for args in (
        ["eval", str(run)],
        ["predict", str(run), str(image)],
        ["export", "lenet5", "--weights", str(run), "--onnx", str(onnx)],
        ["export", "lenet5", "--weights", str(weights), "--onnx", str(onnx)],
        ["export", str(run), "--onnx", str(onnx)],
    ):
        assert main(args) == 2, args
        _one_line_error(capsys, "model.safetensors: corrupted — its SHA-256 differs")
    assert not onnx.exists()
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_run(run)
    (run / "model.safetensors.sha256").unlink()
    with pytest.raises(CheckpointError, match="no SHA-256 recorded"):
        load_final_weights(run)
    assert main(["eval", str(run), "--checkpoint", str(run / "checkpoints" / "epoch-0002"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_acc"] > 0.3  # the checkpoints still serve


# -- damaged files and impossible settings: one line, exit 2 ---------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00garbage",
        b"{not json",
        b'{"train": 1, "data": {}}',
        b"[]",
        b'{"train": {"model": "lenet5", "epochs": "many"}, "data": {}}',
    ],
)
def test_a_damaged_config_json_is_one_line_in_train_eval_predict(run, tmp_path, capsys, content):
    (run / "config.json").write_bytes(content)
    image = tmp_path / "x.png"
    from torchvision.utils import save_image

    save_image(torch.rand(1, 8, 8), image)
    for args in (
        ["eval", str(run)],
        ["predict", str(run), str(image)],
        [*TRAIN, "--out", str(run), "--resume", "--epochs", "3"],
        [*TRAIN, "--resume", str(run / "checkpoints" / "epoch-0002"), "--epochs", "3"],
    ):
        assert main(args) == 2, args
        _one_line_error(capsys, "config.json: corrupted")
    assert (run / "config.json").read_bytes() == content  # nothing overwritten


@pytest.mark.parametrize("content", [b"\xff\xfe", b'{"epoch": 1}\n{oops\n', b'{"epoch": 1}\n{"loss": 2}\n', b"[1]\n"])
def test_a_damaged_metrics_jsonl_is_one_line(run, capsys, content):
    (run / "metrics.jsonl").write_bytes(content)
    assert main([*TRAIN, "--out", str(run), "--resume", "--epochs", "3"]) == 2
    _one_line_error(capsys, "metrics.jsonl")
    assert (run / "metrics.jsonl").read_bytes() == content


def test_a_damaged_checkpoint_record_is_one_line(run, capsys):
    meta = run / "checkpoints" / "epoch-0002" / "meta.json"
    record = json.loads(meta.read_text())
    for bad, needle in (
        ({**record, "epoch": "two"}, "corrupted (expected the epoch, a whole number"),
        ({k: v for k, v in record.items() if k != "sha256"}, "corrupted"),
        ([record], "not a cnnatlas checkpoint"),
    ):
        meta.write_text(json.dumps(bad))
        assert main([*TRAIN, "--resume", str(meta.parent), "--epochs", "3"]) == 2
        _one_line_error(capsys, f"meta.json: {needle}")
    del record["step"]
    meta.write_text(json.dumps(record))
    assert main([*TRAIN, "--resume", str(meta.parent), "--epochs", "3"]) == 2
    _one_line_error(capsys, "epoch-0002: its optimiser or RNG state does not fit this run")


def test_bad_settings_are_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where runs/MODEL-DATA would go
    file = tmp_path / "a-file"
    file.write_text("x")
    cases = [
        (["--lr", "inf"], "lr must be a finite number"),
        (["--lr", "nan"], "lr must be a finite number"),
        (["--weight-decay", "inf"], "weight_decay must be a finite number"),
        (["--seed", str(2**64)], "seed must be an integer of at most 63 bits (−2**63 ≤ seed < 2**63, torch's range)"),
        (["--data", ""], "data must name a dataset"),
        (["--out", ""], "out must name a folder"),
        (["--model-arg", "num_classes=abc"], "num_classes='abc' is not accepted: the data sets it"),
        (["--model-arg", "in_channels=3"], "in_channels=3 is not accepted"),
        (["--model-arg", "style=1"], "style"),
        (["--out", str(file)], "a file; expected a folder"),
        (["--out", str(file / "run")], "cannot create the run folder"),
        (["--image-size", "100000"], "GiB"),
        (["--resume", str(tmp_path / "nowhere")], "no such folder"),
        (["--resume", str(tmp_path)], "not a run folder"),
    ]
    for flags, needle in cases:
        assert main([*TRAIN, "--epochs", "1", *flags]) == 2, flags
        err = _one_line_error(capsys, needle)
        if flags[0] == "--image-size":
            assert "100000×100000" in err and "expected a smaller --image-size" in err
    assert not Path("runs").exists()  # no folder left by a refusal, runs/ included


def test_shift_average_is_refused_for_a_classifier(base_run, tmp_path, capsys):
    """--shift-average averages a per-pixel prediction: eval and predict refuse it for a classification
    run, and predict for a zoo classifier (before any weights are fetched), in one line with exit 2."""
    from torchvision.utils import save_image

    image = tmp_path / "digit.png"
    save_image(torch.rand(1, 8, 8), image)
    for args in (["eval", str(base_run), "--shift-average"], ["predict", str(base_run), str(image), "--shift-average"]):
        assert main(args) == 2, args
        _one_line_error(capsys, "--shift-average", "needs a segmentation run", "is a classification run")
    assert main(["predict", "resnet18", str(image), "--shift-average"]) == 2
    _one_line_error(capsys, "--shift-average", "needs a segmentation run or model", "resnet18 is a zoo classifier")
    assert main(["predict", str(base_run), str(image), "--stride", "2"]) == 2  # a window over time: clips only
    _one_line_error(capsys, "--stride slides a video model's window", "is not a run on clips")
    assert main(["predict", str(base_run), str(image), "--stride", "0"]) == 2
    _one_line_error(capsys, "--stride must be ≥ 1 frame; got 0")


def test_predict_reads_a_folder_as_its_images_and_refuses_a_huge_one_before_decoding(base_run, tmp_path, capsys):
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    def png(side: int) -> Path:  # a header that claims side×side grey pixels, and almost no data
        path = tmp_path / f"{side}.png"
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
            + chunk(b"IEND", b"")
        )
        return path

    assert main(["predict", str(base_run), str(png(20000))]) == 2  # PIL itself refuses to open it
    _one_line_error(capsys, "too large to read", "400000000 pixels", "expected a smaller image")
    assert main(["predict", str(base_run), str(png(10000))]) == 2  # PIL would decode 100 MB: refused first
    _one_line_error(capsys, "10000×10000 pixels", "expected a smaller image")
    assert main(["predict", str(base_run), str(tmp_path)]) == 2  # the folder's images: the huge ones among them
    _one_line_error(capsys, "10000.png", "10000×10000 pixels", "expected a smaller image")
    from PIL import Image

    digits = tmp_path / "digits"
    digits.mkdir()
    for name, level in (("b", 200), ("a", 40)):
        Image.new("L", (8, 8), level).save(digits / f"{name}.png")
    (digits / "readme.txt").write_text("not an image")
    assert main(["predict", str(base_run), str(digits), "--json"]) == 0
    folder = json.loads(capsys.readouterr().out)
    assert main(["predict", str(base_run), str(digits / "a.png"), str(digits / "b.png"), "--json"]) == 0
    assert folder == json.loads(capsys.readouterr().out)  # its images by name, as if each were given
    (tmp_path / "nothing").mkdir()
    assert main(["predict", str(base_run), str(tmp_path / "nothing")]) == 2
    _one_line_error(capsys, "nothing: a folder without image files")
    # a zoo model reads its images as a run does: the huge one refused before decoding (and before any weights)
    assert main(["predict", "resnet18", str(png(10000))]) == 2
    _one_line_error(capsys, "10000×10000 pixels", "expected a smaller image")


def test_eval_on_other_data_needs_the_runs_classes_by_name(base_run, tmp_path, capsys):
    """A digits run evaluated on a folder: its classes must be the run's, in order (label i means what it
    meant in training); ten classes of other names are refused, naming both, not read as the digits."""
    from PIL import Image

    for c in range(10):
        for split, n in (("train", 2), ("test", 2)):
            (tmp_path / "same" / split / str(c)).mkdir(parents=True)
            for i in range(n):
                Image.new("L", (8, 8), 25 * c + i).save(tmp_path / "same" / split / str(c) / f"{i}.png")
    assert main(["eval", str(base_run), "--data", str(tmp_path / "same"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 20 and report["classes"] == [str(c) for c in range(10)]
    shutil.copytree(tmp_path / "same", tmp_path / "other")
    for split in ("train", "test"):
        (tmp_path / "other" / split / "9").rename(tmp_path / "other" / split / "nine")
    assert main(["eval", str(base_run), "--data", str(tmp_path / "other")]) == 2
    _one_line_error(
        capsys,
        "other's classes are not the run's: its class 9 is 'nine' where the run's is '9'; expected the classes it "
        "was trained on, in that order (0, 1, 2, 3, 4, 5, … (10))",
    )

    import dataclasses

    import numpy as np

    from cnnatlas.data import FASHION_MNIST_CLASSES, DatasetError, write_idx

    idx = tmp_path / "idx"  # the four IDX files in a folder: classes 0…9, unnamed
    idx.mkdir()
    for split, n in (("train", 20), ("t10k", 10)):
        write_idx(idx / f"{split}-images-idx3-ubyte", np.zeros((n, 28, 28), dtype=np.uint8))
        write_idx(idx / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    fashion = load_run(base_run)
    fashion.info = dataclasses.replace(fashion.info, classes=FASHION_MNIST_CLASSES)  # as a Fashion-MNIST run
    with pytest.raises(DatasetError, match="its class 0 is '0' where the run's is 'T-shirt/top'.* as NAME:DIR"):
        fashion.test_data(str(idx))


@pytest.mark.parametrize(
    "mode, suffix", [("1", ".bmp"), ("P", ".png"), ("P", ".gif"), ("CMYK", ".jpg"), ("RGBA", ".png"), ("LA", ".png")]
)
def test_an_image_of_any_mode_reads_as_rgb_or_grey(tmp_path, mode, suffix):
    """1-bit, palette (a GIF too), CMYK and alpha images: predict's reader and an image folder (training, and
    eval's test folder) give uint8 RGB or grey, as PIL converts them (a 1-bit image came through as bool
    tensors; a folder's GIFs were left out)."""
    import numpy as np
    from PIL import Image

    from cnnatlas.data.folder import load_folder_splits, load_test_folder
    from cnnatlas.predict import read_image_uint8

    g = np.random.default_rng(0)
    image = Image.fromarray(g.integers(0, 256, (6, 6, 3), dtype=np.uint8)).convert(mode)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            image.save(tmp_path / split / c / f"0{suffix}")
    path = tmp_path / "test" / "a" / f"0{suffix}"
    for channels, target in ((3, "RGB"), (1, "L")):
        expected = torch.from_numpy(np.array(Image.open(path).convert(target))).reshape(6, 6, channels)
        assert torch.equal(read_image_uint8(path, channels), expected.permute(2, 0, 1))
        test, _ = load_test_folder(tmp_path, lambda x: x, channels)
        assert test[0][0].dtype == torch.uint8 and torch.equal(test[0][0], expected.permute(2, 0, 1))
        item = load_folder_splits(tmp_path, image_size=6, in_channels=channels, augment="none").test[0][0]
        assert item.shape == (channels, 6, 6) and item.dtype == torch.float32


def test_a_sixteen_bit_image_is_scaled_to_eight_bits_not_clipped(tmp_path):
    """A 16-bit grey PNG (PIL mode I;16) read by predict (a run's grey input, a zoo model's RGB) and by an
    image folder: each pixel v becomes round(v / 257); PIL's own conversion would clip all v ≥ 255 to 255."""
    from PIL import Image

    from cnnatlas.data.folder import load_folder_splits
    from cnnatlas.predict import read_image, read_image_uint8

    values = torch.tensor([[0, 128, 257, 1000], [30000, 40000, 65278, 65535]], dtype=torch.int32).repeat(2, 1)
    path = tmp_path / "deep.png"
    Image.fromarray(values.numpy().astype("uint16")).save(path)
    assert Image.open(path).mode == "I;16"
    expected = (values.double() / 257).round().to(torch.uint8)  # 0, 0, 1, 4 / 117, 156, 254, 255, twice
    assert torch.equal(read_image_uint8(path, channels=1)[0], expected)
    assert torch.equal(read_image_uint8(path), expected.expand(3, -1, -1))  # RGB: the grey in each channel
    assert torch.allclose(read_image(path, 1)[0], expected / 255.0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "folder" / split / c).mkdir(parents=True)
            Image.fromarray(values.numpy().astype("uint16")).save(tmp_path / "folder" / split / c / "0.png")
    test = load_folder_splits(tmp_path / "folder", image_size=4, in_channels=1, augment="none").test  # 4×4 as saved
    assert torch.allclose(test[0][0][0] * 0.5 + 0.5, expected.float() / 255, atol=1e-6)  # mean = std = 0.5


@pytest.mark.slow
def test_two_trainers_on_one_folder_the_second_is_refused(tmp_path, capsys):
    """A real `cnnatlas train --out X` in another process; a second one and a --resume meanwhile are
    refused naming its pid, and its history is its own."""
    import time

    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "cnnatlas", *TRAIN, "--epochs", "4", "--out", str(out)], env=env)
    deadline = time.time() + 300
    while not (out / "train.lock").is_file() or str(first.pid) not in (out / "train.lock").read_text():
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.05)
    assert main([*TRAIN, "--epochs", "4", "--out", str(out)]) == 3
    _one_line_error(capsys, f"in use by process {first.pid}")
    assert main([*TRAIN, "--epochs", "4", "--out", str(out), "--resume"]) == 3
    _one_line_error(capsys, f"in use by process {first.pid}")
    assert first.wait(timeout=600) == 0
    assert [h["epoch"] for h in read_history(out / "metrics.jsonl")] == [1, 2, 3, 4]
