"""Checkpoints: atomic writes, refusal of pickled code, clear errors for damaged files, and a run
killed with SIGKILL mid-epoch that resumes to bit-identical weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from cnnatlas.train import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    load_weights,
    save_checkpoint,
)
from cnnatlas.train import checkpoint as ck


def _state(seed: int) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    weights = {"conv.weight": torch.randn(4, 3, 3, 3, generator=g), "fc.bias": torch.randn(10, generator=g)}
    state = {
        "optimizer": {
            "state": {0: {"momentum_buffer": torch.randn(4, generator=g)}},
            "param_groups": [{"lr": 0.1, "params": [0]}],
        },
        "rng": {"torch": torch.get_rng_state(), "python": (3, tuple(range(625)), None)},
    }
    return weights, state


def test_round_trip(tmp_path):
    weights, state = _state(0)
    path = save_checkpoint(tmp_path, 3, weights, state, {"step": 30})
    assert path == tmp_path / "checkpoints" / "epoch-0003"
    got = load_checkpoint(path)
    assert got.epoch == 3 and got.meta["step"] == 30
    assert all(torch.equal(got.weights[k], v) for k, v in weights.items())
    assert torch.equal(
        got.state["optimizer"]["state"][0]["momentum_buffer"], state["optimizer"]["state"][0]["momentum_buffer"]
    )
    assert got.state["rng"]["python"] == state["rng"]["python"]
    assert set(got.meta["sha256"]) == {"model.safetensors", "state.pt"}


def test_keeps_only_the_newest(tmp_path):
    for epoch in range(1, 5):
        save_checkpoint(tmp_path, epoch, *_state(epoch), {"step": epoch}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-0003", "epoch-0004"]
    assert load_latest_checkpoint(tmp_path).epoch == 4


@pytest.mark.parametrize("crash_in", ["torch.save", "rename"])
def test_crash_while_writing_leaves_last_good_checkpoint(tmp_path, monkeypatch, crash_in):
    save_checkpoint(tmp_path, 1, *_state(1), {"step": 1})
    before = load_checkpoint(tmp_path / "checkpoints" / "epoch-0001")

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    if crash_in == "torch.save":
        monkeypatch.setattr(ck.torch, "save", crash)
    else:
        monkeypatch.setattr(ck.os, "rename", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path, 2, *_state(2), {"step": 2})
    monkeypatch.undo()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-0001"]
    after = load_latest_checkpoint(tmp_path)
    assert after.epoch == 1 and torch.equal(after.weights["conv.weight"], before.weights["conv.weight"])
    assert ck.clean_partial_checkpoints(tmp_path)  # the half-written folder, now removed
    assert not list((tmp_path / "checkpoints").glob(".epoch-*"))


def test_crafted_pickle_is_refused_and_never_runs(tmp_path):
    """A state.pt whose unpickling would run a shell command is refused by weights_only=True —
    even with a meta.json whose hashes match it, as an attacker would write."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = save_checkpoint(tmp_path, 1, *_state(1), {"step": 1})
    torch.save({"optimizer": Exploit()}, path / "state.pt")
    meta = json.loads((path / "meta.json").read_text())
    meta["sha256"]["state.pt"] = ck.sha256(path / "state.pt")
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"refused — the file holds pickled Python objects") as err:
        load_checkpoint(path)
    assert "state.pt" in str(err.value) and "weights_only=True" in str(err.value)
    assert not marker.exists()

    # a pickle dressed up as the weights file is not safetensors at all
    torch.save({"w": Exploit()}, path / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_weights(path / "model.safetensors")
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error_and_the_previous_one_stays_usable(tmp_path):
    save_checkpoint(tmp_path, 1, *_state(1), {"step": 1})
    latest = save_checkpoint(tmp_path, 2, *_state(2), {"step": 2})
    weights = latest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"model.safetensors: corrupted — its SHA-256 differs") as err:
        load_latest_checkpoint(tmp_path)
    assert "epoch-0001 is intact" in str(err.value) and "--resume" in str(err.value)
    assert load_checkpoint(tmp_path / "checkpoints" / "epoch-0001").epoch == 1
    # without the hash check the formats' own errors are still clear
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_weights(weights)
    state = latest / "state.pt"
    state.write_bytes(state.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable torch.save file"):
        ck.load_state(state)


def test_incomplete_and_foreign_folders(tmp_path):
    path = save_checkpoint(tmp_path, 1, *_state(1), {"step": 1})
    (path / "meta.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        load_latest_checkpoint(tmp_path / "nothing")
    (path / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="meta.json: corrupted"):
        load_checkpoint(path)


# -- a real run, killed --------------------------------------------------------------------------


def _cnnatlas(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cnnatlas",
        "train",
        "lenet5",
        "--data",
        "digits",
        "--epochs",
        "4",
        "--batch-size",
        "64",
        "--deterministic",
        "--quiet",
        *args,
    ]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_bit_identical_weights(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_cnnatlas("--out", str(straight)), check=True, env=_env(), timeout=600)

    proc = subprocess.Popen(_cnnatlas("--out", str(killed)), env=_env())
    deadline = time.time() + 600
    while not (killed / "checkpoints" / "epoch-0002" / "meta.json").exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    time.sleep(0.2)  # into epoch 3
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists()
    done = [p.name for p in list_checkpoints(killed)]
    assert "epoch-0004" not in done

    subprocess.run(_cnnatlas("--out", str(killed), "--resume"), check=True, env=_env(), timeout=600)
    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    history = [json.loads(line)["epoch"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert history == [1, 2, 3, 4]
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (straight, killed))
    assert ma["test_acc"] == mb["test_acc"] and ma["train_loss"] == mb["train_loss"]


def test_resume_refuses_a_corrupted_checkpoint_and_continues_from_the_previous(tmp_path, capsys):
    from cnnatlas.cli import main

    out = tmp_path / "run"
    args = ["train", "lenet5", "--epochs", "2", "--batch-size", "128", "--quiet", "--out", str(out)]
    assert main(args) == 0
    last = out / "checkpoints" / "epoch-0002" / "state.pt"
    last.write_bytes(last.read_bytes()[:-50])
    assert main(args + ["--resume", "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "state.pt: corrupted" in err and "epoch-0001 is intact" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert main(args + ["--resume", str(out / "checkpoints" / "epoch-0001"), "--epochs", "3"]) == 0
    assert [p.name for p in list_checkpoints(out)] == ["epoch-0002", "epoch-0003"]
    assert load_latest_checkpoint(out).epoch == 3
    lines = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines == [1, 2, 3]
