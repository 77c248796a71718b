"""Video models: C3D's layer sizes and parameter count, R3D/MC3/R(2+1)D equal to torchvision on the
same weights, SlowFast's α and β, separate receptive fields for time and space, and moving
Fashion-MNIST (clips, labels, a short training run)."""

import json
import math

import pytest
import torch
import torchvision
from equivalence import assert_same_outputs, randomize_norm_stats

import cnnatlas
from cnnatlas.data import DatasetError, load_dataset
from cnnatlas.data.moving_fashion import DIRECTIONS, load_moving_fashion_splits
from cnnatlas.models.base import count_params
from cnnatlas.models.video import C3D_LAYERS, midplanes


def _meta(name, **kwargs):
    with torch.device("meta"):
        return cnnatlas.create_model(name, **kwargs)


# -- C3D ------------------------------------------------------------------------------------------


def test_c3d_layers_and_parameters():
    """Layer sizes of the released Sports-1M C3D (Keras port's README, litao1381/C3D_Sport1M_keras;
    notes/PUBLISHED.md §3.9): 79,991,015 parameters with 487 classes at 3×16×112×112."""
    model = _meta("c3d")
    published = {
        "conv1": 5_248,
        "conv2": 221_312,
        "conv3a": 884_992,
        "conv3b": 1_769_728,
        "conv4a": 3_539_456,
        "conv4b": 7_078_400,
        "conv5a": 7_078_400,
        "conv5b": 7_078_400,
        "fc6": 33_558_528,
        "fc7": 16_781_312,
        "fc8": 1_995_239,
    }
    measured = {name: count_params(getattr(model.features, name, None) or getattr(model, name)) for name in published}
    assert measured == published
    assert count_params(model) == 79_991_015 == cnnatlas.get_entry("c3d").published.params
    maps = _meta("c3d", features_only=True, out_indices=[-1])
    assert maps(torch.empty(1, 3, 16, 112, 112, device="meta"))[0].shape == (1, 512, 2, 7, 7)
    x = torch.empty(1, 3, 16, 112, 112, device="meta")
    assert model.features(x).flatten(1).shape[1] == 8192  # pool5 → 512×1×4×4, fc6's input


def test_c3d_receptive_field_in_time_and_space():
    """The analyser's field of pool5 against the recurrence r += (k − 1)·j, j *= s (FORMULAS.md), run
    here over the C3D table: pool1 is 1×2×2, so time and space differ."""
    report = cnnatlas.analyze(_meta("c3d"), (1, 3, 16, 112, 112))
    r, j = [1, 1], [1, 1]  # (time, space)
    for name, width in C3D_LAYERS:
        kernels = [3, 3] if width else ([1, 2] if name == "pool1" else [2, 2])
        strides = [1, 1] if width else kernels
        for a in range(2):
            r[a] += (kernels[a] - 1) * j[a]
            j[a] *= strides[a]
    rf = report.receptive_field_of("features.pool5")
    assert rf.axes == ("T", "H", "W")
    assert rf.size == (r[0], r[1], r[1]) == (76, 150, 150)
    assert rf.stride == (j[0], j[1], j[1]) == (16, 32, 32)


# -- video ResNets against torchvision ------------------------------------------------------------

TV_VIDEO = ["r3d_18", "mc3_18", "r2plus1d_18"]


@pytest.mark.parametrize("name", TV_VIDEO)
def test_video_resnet_equals_torchvision(name):
    torch.manual_seed(0)
    theirs = randomize_norm_stats(getattr(torchvision.models.video, name)(num_classes=7))
    ours = cnnatlas.create_model(name, num_classes=7)
    assert count_params(ours) == count_params(theirs)
    cnnatlas.load_torchvision_weights(ours, theirs.state_dict())
    assert_same_outputs(ours, theirs, torch.randn(2, 3, 4, 32, 32))


def test_video_resnet_parameters_match_torchvision_published():
    for name, published in (("r3d_18", 33_371_472), ("mc3_18", 11_695_440), ("r2plus1d_18", 31_505_325)):
        assert count_params(_meta(name)) == published == cnnatlas.get_entry(name).published.params


def test_r2plus1d_midplanes_keep_the_3d_parameter_budget():
    """Tran et al. 2018 §3.5: M = ⌊27·C_in·C_out / (9·C_in + 3·C_out)⌋ makes 1×3×3 then 3×1×1 cost
    about what one 3×3×3 costs."""
    for c_in, c_out in ((64, 64), (64, 128), (128, 256), (256, 512)):
        m = midplanes(c_in, c_out)
        factorised, full = 9 * c_in * m + 3 * m * c_out, 27 * c_in * c_out
        assert factorised <= full and full - factorised < 9 * c_in + 3 * c_out


def test_time_receptive_fields_of_the_video_resnets():
    """MC3 uses 3-D convs only in the stem and the first stage: its units see 1 + 2 + 4·2 = 11 frames.
    R(2+1)D has the temporal kernels and strides of R3D, so the same field in time and space."""
    rf = {name: cnnatlas.analyze(_meta(name), (1, 3, 16, 112, 112)).receptive_field_of("stages.3") for name in TV_VIDEO}
    assert rf["mc3_18"].size[0] == 11 and rf["mc3_18"].stride[0] == 1
    assert rf["r3d_18"].size[0] > 11 and rf["r3d_18"].stride[0] == 8
    assert rf["r2plus1d_18"].size == rf["r3d_18"].size and rf["r2plus1d_18"].stride == rf["r3d_18"].stride
    assert all(r.size[1] == r.size[2] and r.stride[1:] == (16, 16) for r in rf.values())


# -- SlowFast -------------------------------------------------------------------------------------


@pytest.mark.parametrize("config, alpha, kernel, published", [("4x16", 8, 5, 34.48e6), ("8x8", 4, 7, 34.57e6)])
def test_slowfast_ratios_and_parameters(config, alpha, kernel, published):
    """PySlowFast configs SLOWFAST_4x16_R50 (α = 8, β = 1/8, fusion kernel 5) and SLOWFAST_8x8_R50
    (α = 4); parameters as PyTorchVideo's model zoo gives them (34.48M, 34.57M)."""
    model = _meta("slowfast_r50", config=config)
    assert (model.alpha, model.beta_inv) == (alpha, 8)
    assert abs(count_params(model) - published) / published < 0.001
    for fusion in model.fusions:  # lateral: time-strided conv from Fast to Slow
        assert fusion.conv.conv.kernel_size == (kernel, 1, 1) and fusion.conv.conv.stride == (alpha, 1, 1)
    fast_widths = [s[-1].conv3.conv.out_channels for s in model.fast_stages]
    slow_widths = [s[-1].conv3.conv.out_channels for s in model.slow_stages]
    assert [s // f for s, f in zip(slow_widths, fast_widths)] == [8, 8, 8, 8]  # β = 1/8


def test_slowfast_pathways_see_alpha_times_fewer_frames():
    model = cnnatlas.create_model("slowfast_r50", num_classes=3).eval()
    x = torch.randn(1, 3, 16, 32, 32)
    with torch.no_grad():
        slow, fast = model.pathways(x)
        assert slow.shape[2] == 16 // 8 and fast.shape[2] == 16
        assert slow.shape[1] == 2048 and fast.shape[1] == 256
        base = model(x)
        # frames the Slow pathway never reads still reach the output, through Fast and the laterals
        y = x.clone()
        y[:, :, 1::8] += 1.0
        assert not torch.allclose(model(y), base)
    report = cnnatlas.analyze(model, (1, 3, 32, 64, 64))  # units of Slow are α frames apart, of Fast 1
    assert report.receptive_field_of("slow_stages.3").stride == (8, 32, 32)
    assert report.receptive_field_of("fast_stages.3").stride == (1, 32, 32)


def test_slowfast_rejects_bad_ratios():
    with pytest.raises(cnnatlas.InvalidArgumentError, match="config must be one of '4x16', '8x8'"):
        _meta("slowfast_r50", config="16x4")
    with pytest.raises(cnnatlas.InvalidArgumentError, match="beta_inv must divide the stem width 64"):
        _meta("slowfast_r50", beta_inv=3)


# -- moving Fashion-MNIST -------------------------------------------------------------------------

needs_fashion = pytest.mark.needs("fashion-mnist")


@pytest.fixture(scope="module")
def clips():
    return load_moving_fashion_splits(size=16, frames=6, train_clips=400, test_clips=200)


@needs_fashion
def test_moving_fashion_clips_move_one_step_per_frame(clips):
    steps = {0: (0, 1), 1: (0, -1), 2: (1, 0), 3: (-1, 0)}
    data = clips.train
    assert data.clips.shape == (400, 1, 6, 16, 16) and data[0][0].shape == (1, 6, 16, 16)
    assert clips.info.classes == DIRECTIONS and clips.info.num_classes == 4
    for i in range(40):
        video, label = data.clips[i, 0], int(data.labels[i])
        matches = [
            v
            for v in (1, 2, 3)
            if all(
                torch.equal(torch.roll(video[t], (steps[label][0] * v, steps[label][1] * v), (0, 1)), video[t + 1])
                for t in range(5)
            )
        ]
        assert len(matches) == 1, f"clip {i} does not move {DIRECTIONS[label]} at a constant speed"
    assert set(data.labels.tolist()) == {0, 1, 2, 3}


@needs_fashion
def test_a_single_frame_says_nothing_about_the_direction(clips):
    """On a torus every frame places the item uniformly, whatever its direction: the mean image of the
    first frame per direction is the same up to sampling noise (a 2-D model sees no cue)."""
    frames = clips.train.clips[:, 0, 0].float()
    labels = clips.train.labels
    centre = torch.stack(
        [
            (frames[labels == d].mean(0) * torch.arange(16)[:, None]).sum() / frames[labels == d].mean(0).sum()
            for d in range(4)
        ]
    )
    assert centre.std() < 1.0  # centre of mass of the mean frame, in pixels (the canvas is 16)
    single = load_moving_fashion_splits(size=16, frames=6, train_clips=8, test_clips=8, frame=0)
    assert single.train[0][0].shape == (1, 16, 16)


@needs_fashion
def test_the_trainer_takes_moving_fashion_and_a_short_run_learns(tmp_path):
    """The inflated LeNet-5 learns the direction: test loss far below chance level (ln 4) and accuracy far
    above chance (25%) — the README's run at a quarter of the clips and a third of the epochs."""
    from cnnatlas.train import TrainConfig, default_config, train

    assert default_config("r3d_18", "moving-fashion-mnist").data == "moving-fashion-mnist"
    data = load_moving_fashion_splits(size=32, frames=8, train_clips=1024, test_clips=128)
    torch.manual_seed(0)
    model = cnnatlas.inflate(cnnatlas.create_model("lenet5", num_classes=4, style="modern"), time_stride=1)
    config = TrainConfig(
        "lenet5",
        data="moving-fashion-mnist",
        epochs=4,
        batch_size=32,
        lr=0.02,
        warmup_epochs=0.5,
        out=str(tmp_path),
        quiet=True,
    )
    metrics = train(config, data=data, model=model)
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["epochs"] == 4 and (tmp_path / "model.safetensors").is_file()
    assert last["test_loss"] < 0.25 * math.log(4) and last["train_loss"] < 0.25 * math.log(4), last
    assert metrics["test_acc"] >= 0.8, metrics  # chance: 0.25


@needs_fashion
def test_load_dataset_names_moving_fashion():
    splits = load_dataset("moving-fashion-mnist", 16)
    assert splits.info.name == "moving-fashion-mnist" and splits.train[0][0].shape == (1, 16, 16, 16)
    short = load_dataset("moving-fashion-mnist", 16, frames=4)  # as a run of 4-frame clips is evaluated
    assert short.info.frames == 4 and short.test[0][0].shape == (1, 4, 16, 16)
    with pytest.raises(DatasetError, match="frames=4 is for --data moving-fashion-mnist"):
        load_dataset("digits", frames=4)


@needs_fashion
def test_train_frames_sets_the_length_of_the_clips(tmp_path, capsys):
    """`train --frames T`: the trainer reads moving Fashion-MNIST clips of T frames (recorded in the data's
    description, fixed on resume); on other data, or below 1, it is refused in one line, leaving no folder."""
    from cnnatlas.cli import build_parser, main
    from cnnatlas.cli.train import config_from_args
    from cnnatlas.train import TrainConfig
    from cnnatlas.train.loop import FIXED_ON_RESUME, _load_data

    args = ["train", "lenet5", "--data", "moving-fashion-mnist", "--frames", "8", "--out", str(tmp_path / "r")]
    config = config_from_args(build_parser().parse_args(args))
    data = _load_data(config, None, None, 32, torch.device("cpu"))
    assert data.info.frames == 8 and data.train[0][0].shape == data.test[0][0].shape == (1, 8, 32, 32)
    assert "frames" in FIXED_ON_RESUME
    for flags, needle in (
        (["--frames", "8"], "frames=8 is for --data moving-fashion-mnist (its clips); got --data digits"),
        (["--data", "moving-fashion-mnist", "--frames", "0"], "frames must be a positive integer; got 0"),
    ):
        assert main(["train", "lenet5", *flags, "--epochs", "1", "--out", str(tmp_path / "no")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "no").exists()
    with pytest.raises(cnnatlas.InvalidArgumentError, match="frames must be a positive integer; got 2.5"):
        TrainConfig("lenet5", data="moving-fashion-mnist", frames=2.5)


def test_trainer_inflates_an_image_model_for_clips_and_says_when_it_must(tmp_path, capsys):
    from cnnatlas.train import TrainConfig, default_config, train

    config = default_config("lenet5", "moving-fashion-mnist", epochs=1, out=str(tmp_path / "a"), quiet=True)
    assert config.inflate and not default_config("r3d_18", "moving-fashion-mnist").inflate
    assert not default_config("lenet5", "digits").inflate
    data = load_moving_fashion_splits(size=32, frames=8, train_clips=64, test_clips=32)
    metrics = train(config, data=data)
    assert metrics["epochs"] == 1 and math.isfinite(metrics["train_loss"])
    from cnnatlas.cli import main
    from cnnatlas.train import load_run_model

    # the analyser takes the run with a clip of the frames it was trained on (the 2-D registry entry has none)
    assert load_run_model(tmp_path / "a").input_size == (1, 1, 8, 32, 32)
    assert main(["summary", str(tmp_path / "a"), "--json"]) == 0

    # predict takes a clip, a folder of frames, as the run's test set fed it; a longer one window by window
    from PIL import Image

    from cnnatlas.train import load_run

    run = load_run(tmp_path / "a")
    x, _ = data.test[0]
    with torch.no_grad():
        expected = run.model(x[None]).softmax(dim=1)[0]
    frames = data.test.clips[0, 0]  # (8, 32, 32) uint8
    for name, order in (("clip", range(8)), ("long", [*range(8), *range(4)])):
        (tmp_path / name).mkdir()
        for t, f in enumerate(order):
            Image.fromarray(frames[f].numpy()).save(tmp_path / name / f"{t:02d}.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "a"), str(tmp_path / "clip"), "--top", "4", "--json"]) == 0
    (short,) = json.loads(capsys.readouterr().out)
    got = {t["index"]: t["probability"] for t in short["top"]}
    assert got == pytest.approx({c: float(p) for c, p in enumerate(expected)}, abs=1e-5) and "windows" not in short
    assert main(["predict", str(tmp_path / "a"), str(tmp_path / "long"), "--top", "4", "--json"]) == 0
    (long,) = json.loads(capsys.readouterr().out)
    assert (long["frames"], long["window"], long["stride"]) == (12, 8, 4)
    assert [w["frames"] for w in long["windows"]] == [[0, 7], [4, 11]]
    first = {t["index"]: t["probability"] for t in long["windows"][0]["top"]}
    assert first == pytest.approx(got, abs=1e-6)  # its first window is the 8-frame clip
    with pytest.raises(cnnatlas.InvalidArgumentError, match="pass --inflate"):
        train(
            TrainConfig("lenet5", data="moving-fashion-mnist", epochs=1, out=str(tmp_path / "b"), quiet=True), data=data
        )
    _feature_maps_of_a_clip(tmp_path / "a", run, capsys)


def _feature_maps_of_a_clip(folder, run, capsys):
    """`plot feature-maps RUN` of a run on clips: a frame of its test clip (--sample, --frame: default the
    middle one) and each layer's maps at the time step that frame falls in; a video model without a run,
    and --frame outside the clip or for a model on images, are refused in one line."""
    import numpy as np

    from cnnatlas.cli import main
    from cnnatlas.viz import plot_feature_maps
    from cnnatlas.viz.inside import feature_maps

    clip, label = run.test_data().test[3]  # (1, 8, 32, 32)
    maps = feature_maps(run.model, clip[None], ["features.c1"])["features.c1"][0]  # (6, T', H', W')
    for frame in (None, 6):
        fig = plot_feature_maps(str(folder), layers=["features.c1"], sample=3, frame=frame, channels=2)
        t = 4 if frame is None else frame
        title = "".join(fig.get_suptitle().split())  # as wrapped: "moving-\nfashion-mnist"
        said = f"frame {t} of 8 of test clip 3 of moving-fashion-mnist (labelled {run.info.classes[label]})"
        assert "".join(said.split()) in title, title
        shown, first_map = (ax.images[0].get_array() for ax in fig.axes[:2])
        x = clip[0, t]
        assert np.allclose(shown, ((x - x.min()) / (x.max() - x.min())).numpy(), atol=1e-6)
        step = t * maps.shape[1] // 8
        assert fig.axes[0].get_ylabel().endswith(f"at step {step} of {maps.shape[1]}")
        assert any(np.allclose(first_map, m.numpy()) for m in maps[:, step])
        assert not any(np.allclose(first_map, m.numpy()) for m in maps[:, step - 1])  # not another step's
    out = folder.parent / "maps.png"
    assert main(["plot", "feature-maps", str(folder), "--frame", "7", "--out", str(out)]) == 0 and out.is_file()
    for flags, needle in (
        ([str(folder), "--frame", "8"], "--frame must be in 0…7, a frame of the clip; got 8"),
        (["lenet5", "--frame", "1"], "--frame picks a frame of a clip; lenet5 does not take clips"),
        (["r3d_18"], "r3d_18 takes clips: its feature maps are drawn for a clip of a run's test set"),
    ):
        assert main(["plot", "feature-maps", *flags, "--out", str(folder.parent / "x.png")]) == 2, flags
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
