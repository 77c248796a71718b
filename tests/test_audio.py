"""Audio models: WaveNet's causality (exactly) and receptive field (closed form, gradients and the
analyser), the log-mel front end against torch.stft, spectrogram CNNs on any 2-D backbone, and the
Free Spoken Digit Dataset loader with a short training run."""

import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from needs import FSDD_FIXTURE
from torch.utils.data import Subset

import cnnatlas
from cnnatlas import InvalidArgumentError
from cnnatlas.data import DatasetError, DataSplits, load_dataset
from cnnatlas.data.fsdd import decimation_filter, load_fsdd_splits, mu_law_compand
from cnnatlas.models.audio import (
    LogMelSpectrogram,
    WaveNet,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    wavenet_receptive_field,
)

FSDD = FSDD_FIXTURE  # the tests' copy of FSDD (tests/needs.py); they download nothing
needs_fsdd = pytest.mark.needs("fsdd")


def _small_wavenet(kernel_size=2, **kw):
    torch.manual_seed(0)
    return WaveNet(
        num_classes=3,
        residual_channels=8,
        dilation_channels=8,
        skip_channels=8,
        kernel_size=kernel_size,
        dilation_depth=4,
        stacks=2,
        **kw,
    ).eval()


# -- WaveNet: causality and receptive field --------------------------------------------------------


@pytest.mark.parametrize("build", [lambda: cnnatlas.create_model("wavenet").eval(), _small_wavenet])
def test_wavenet_is_exactly_causal(build):
    model = build()
    x = torch.randn(2, 1, 300)
    for t0 in (0, 1, 150, 299):
        y = x.clone()
        y[..., t0:] = torch.randn_like(y[..., t0:])  # change the present and the future
        with torch.no_grad():
            fx, fy = model.forward_features(x), model.forward_features(y)
        assert torch.equal(fx[..., :t0], fy[..., :t0]), f"an output before {t0} changed"
        assert not torch.equal(fx[..., t0], fy[..., t0])  # the present does matter


def test_wavenet_receptive_field_closed_form():
    """van den Oord et al. 2016 §2.1: "each 1, 2, 4, …, 512 block has receptive field of size 1024"
    (notes/PUBLISHED.md §3.12): filter width 2, 1 + Σ d = 1 + 1023."""
    assert wavenet_receptive_field(2, [2**i for i in range(10)]) == 1024
    model = cnnatlas.create_model("wavenet")  # causal input conv, then 3 blocks of 1 … 512
    assert model.dilations == tuple(2**i for i in range(10)) * 3
    assert model.receptive_field == 1 + 1 + 3 * 1023


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_wavenet_receptive_field_measured_by_gradients(kernel_size):
    """∂out[t]/∂x[s] ≠ 0 exactly for t − RF < s ≤ t, with RF the closed form."""
    model = _small_wavenet(kernel_size)
    rf = model.receptive_field
    assert rf == 1 + (kernel_size - 1) * (1 + 2 * (2**4 - 1))
    length, t = 3 * rf, 2 * rf
    x = torch.randn(1, 1, length, dtype=torch.float64, requires_grad=True)
    model.double()
    model.forward_features(x)[0, :, t].sum().backward()
    seen = (x.grad[0, 0] != 0).nonzero().flatten()
    assert seen.min().item() == t - rf + 1 and seen.max().item() == t


def test_wavenet_receptive_field_from_the_analyser():
    model = cnnatlas.create_model("wavenet")
    report = cnnatlas.analyze(model, (1, 1, 8000))
    rf = report.receptive_field_of("post")
    assert rf.axes == ("L",) and rf.size == (model.receptive_field,) and rf.stride == (1,)
    assert rf.span(5000)[0] == (5000 - model.receptive_field + 1, 5000)  # the field ends at the unit: causal


def test_wavenet_classifies_and_checks_arguments():
    model = _small_wavenet()
    assert model(torch.randn(4, 1, 100)).shape == (4, 3)
    assert model(torch.randn(1, 1, 1)).shape == (1, 3)  # causal padding: any length works
    with pytest.raises(InvalidArgumentError, match="kernel_size must be ≥ 2"):
        WaveNet(kernel_size=1)
    with pytest.raises(cnnatlas.InputShapeError, match=r"expects a 3-D input \(N, C, L\)"):
        model(torch.randn(1, 100))


def test_wavenet_frame_head_pools_after_the_causal_features():
    """§3.4's head: mean-pool the causal features to frames, non-causal convs over the frames."""
    model = _small_wavenet(pool_size=10)
    assert isinstance(model.frames[0], torch.nn.AvgPool1d) and model.frames[0].kernel_size == (10,)
    x = torch.randn(2, 1, 95)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 8, 95) and model.frames(features).shape == (2, 8, 10)
        assert torch.equal(model(x), model.forward_head(features))
    assert _small_wavenet().frames.__class__ is torch.nn.Identity  # pool_size=0: mean over all samples


# -- log-mel front end ---------------------------------------------------------------------------


def test_stft_as_a_convolution_equals_torch_stft():
    front = LogMelSpectrogram(n_fft=256, hop_length=64)
    x = torch.randn(3, 1, 2000, dtype=torch.float64)
    front.double()
    ours = front.power(x)
    ref = (
        torch.stft(
            x[:, 0], 256, 64, window=torch.hann_window(256, dtype=torch.float64), center=False, return_complex=True
        ).abs()
        ** 2
    )
    assert ours.shape == ref.shape == (3, 129, 1 + (2000 - 256) // 64)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6 * ref.max().item())  # basis stored in float32


def test_mel_filterbank_is_a_partition_of_unity_on_the_htk_scale():
    assert hz_to_mel(700.0) == pytest.approx(2595 * math.log10(2))
    assert mel_to_hz(torch.tensor(hz_to_mel(1234.0), dtype=torch.float64)).item() == pytest.approx(1234.0)
    bank = mel_filterbank(129, 40, 8000).double()
    assert bank.shape == (40, 129) and bank.min() >= 0 and bank.max() <= 1
    freqs = torch.linspace(0, 4000, 129, dtype=torch.float64)
    centres = mel_to_hz(torch.linspace(0, hz_to_mel(4000.0), 42, dtype=torch.float64))[1:-1]
    between = (freqs >= centres[0]) & (freqs <= centres[-1])
    assert torch.allclose(bank.sum(0)[between], torch.ones(int(between.sum()), dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("tone", [300.0, 1000.0, 2500.0])
def test_a_pure_tone_lights_the_mel_band_around_its_frequency(tone):
    front = LogMelSpectrogram(sample_rate=8000, n_fft=256, hop_length=128, n_mels=40)
    t = torch.arange(8000) / 8000
    logmel = front(torch.sin(2 * math.pi * tone * t).view(1, 1, -1))
    assert logmel.shape == (1, 1, 40, 1 + (8000 - 256) // 128)
    band = int(logmel[0, 0].mean(1).argmax())
    centres = mel_to_hz(torch.linspace(0, hz_to_mel(4000.0), 42, dtype=torch.float64))[1:-1]
    assert abs(centres[band].item() - tone) <= (centres[band + 1] - centres[band - 1]).item() / 2


# -- spectrogram CNNs ------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", ["lenet5", "resnet20", "mobilenet_v2"])
def test_spectrogram_cnn_takes_any_2d_backbone(backbone):
    model = cnnatlas.create_model("spectrogram_cnn", backbone=backbone, num_classes=10).eval()
    assert model.backbone.in_channels == 1 and model.dims == 1
    first = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(2, 1, 8000)).shape == (2, 10)


def test_spectrogram_cnn_receptive_field_in_samples():
    """LeNet-5 on frames: 5, pool 2, 5, pool 2, 5 → 32 frames; through the STFT (kernel n_fft, stride
    hop) that is n_fft + 31·hop samples, 128 samples apart."""
    model = cnnatlas.create_model("spectrogram_cnn", backbone="lenet5")
    rf = cnnatlas.analyze(model, (1, 1, 8000)).receptive_field_of("backbone.features.c5")
    assert rf.axes == ("L",) and rf.size == (256 + 31 * 128,) and rf.stride == (4 * 128,)


def test_spectrogram_cnn_effective_field_is_centred_on_its_units_place_in_time():
    """A spectrogram CNN's map is (N, C, mel, time): only its time dimension runs along the waveform
    (`ReceptiveField.dims`). The effective field of the map's centre unit is measured around that unit's
    field, whose centre comes from its time index, not from its mel band's, and it lies inside that field."""
    from cnnatlas.analysis import effective_receptive_field

    model = cnnatlas.create_model("spectrogram_cnn")
    report = cnnatlas.analyze(model, (1, 1, 8000))
    erf = effective_receptive_field(model, (1, 1, 8000), samples=2)
    theo = report.receptive_field_of(erf.layer)
    assert theo.dims == (3,) and cnnatlas.analyze(
        cnnatlas.create_model("resnet18"), (1, 3, 64, 64)
    ).receptive_field.dims == (2, 3)
    mel, time = erf.unit
    assert mel != time and theo.unit_index(erf.unit) == (time,)
    assert erf.centre == (theo.start[0] + time * theo.stride[0],)
    ((lo, hi),) = theo.span((time,))
    support = erf.grad.nonzero().flatten()
    assert lo <= support.min() and support.max() <= hi  # the gradient lies inside the unit's analytic field
    assert erf.size[0] <= theo.size[0] and erf.input_units == "samples"


def test_spectrogram_cnn_rejects_what_is_not_a_2d_model():
    with pytest.raises(InvalidArgumentError, match="not a 2-D image model"):
        cnnatlas.create_model("spectrogram_cnn", backbone="wavenet")
    with pytest.raises(InvalidArgumentError, match="backbone must be the name of a 2-D model"):
        cnnatlas.create_model("spectrogram_cnn", backbone="resnet-20")


# -- FSDD ----------------------------------------------------------------------------------------


def _write_wav(path, samples, rate=8000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def test_fsdd_loader_takes_any_folder_with_the_naming(tmp_path):
    rng = np.random.default_rng(0)
    for digit in (3, 7):
        for take in (0, 4, 5, 11):
            _write_wav(tmp_path / f"{digit}_alice_{take}.wav", rng.normal(0, 0.1, 500 + 100 * take))
    (tmp_path / "README.txt").write_text("not a recording")
    data = load_fsdd_splits(tmp_path, length=1000, shift=False)
    assert len(data.train) == 4 and len(data.test) == 4  # takes 0–4 are the test set
    assert sorted(data.test.labels.tolist()) == [3, 3, 7, 7]
    x, y = data.train[0]
    assert x.shape == (1, 1000) and y in (3, 7)
    assert data.train.lengths.tolist() == [1000] * 4  # takes 5 (1,000 samples) and 11 (1,600: centre-cropped)
    assert sorted(data.test.lengths.tolist()) == [500, 500, 900, 900]  # takes 0 and 4, zero-padded
    short = data.test.waves[data.test.lengths == 500][0]
    assert short[:250].abs().sum() == 0 and short[-250:].abs().sum() == 0 and short[250:750].abs().max() == 1
    with pytest.raises(DatasetError, match="not a folder"):
        load_fsdd_splits(tmp_path / "missing")
    _write_wav(tmp_path / "1_bob_0.wav", rng.normal(0, 0.1, 100), rate=16000)
    with pytest.raises(DatasetError, match="sample rate 16000 Hz"):
        load_fsdd_splits(tmp_path)


def test_decimation_keeps_the_band_below_the_new_nyquist_and_removes_the_rest():
    t = np.arange(8000) / 8000
    h = decimation_filter(2)
    for tone, kept in ((500.0, True), (3000.0, False)):  # the new Nyquist frequency is 2 kHz
        y = np.convolve(np.sin(2 * np.pi * tone * t), h, mode="same")[::2]
        rms = float(np.sqrt(np.mean(y[200:-200] ** 2)))
        assert (abs(rms - 2**-0.5) < 0.01) if kept else rms < 0.01


def test_read_wav_takes_every_common_sample_format(tmp_path):
    """8-bit unsigned, 16-, 24- and 32-bit signed PCM, 32-bit float, and stereo (its channels averaged): each
    gives the same samples in [−1, 1] (full scale 2^(bits − 1)), to half a step of its quantisation; a file
    that is not a WAV is named in one line."""
    from scipy.io import wavfile

    from cnnatlas.data.fsdd import read_wav

    x = (0.8 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)).astype(np.float32)
    wavfile.write(tmp_path / "u8.wav", 8000, np.round(x * 2**7 + 128).astype(np.uint8))
    wavfile.write(tmp_path / "s16.wav", 8000, np.round(x * 2**15).astype(np.int16))
    wavfile.write(tmp_path / "s32.wav", 8000, np.round(x.astype(np.float64) * 2**31).astype(np.int32))
    wavfile.write(tmp_path / "f32.wav", 8000, x)
    wavfile.write(tmp_path / "stereo.wav", 8000, np.stack([x + 0.1, x - 0.1], axis=1))
    s24 = np.round(x.astype(np.float64) * 2**23).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    with wave.open(str(tmp_path / "s24.wav"), "wb") as w:  # three bytes a sample, little-endian
        w.setnchannels(1)
        w.setsampwidth(3)
        w.setframerate(8000)
        w.writeframes(s24)
    for name, step in (("u8", 2**-7), ("s16", 2**-15), ("s24", 2**-23), ("s32", 2**-31), ("f32", 0), ("stereo", 1e-7)):
        samples, rate = read_wav(tmp_path / f"{name}.wav")
        assert rate == 8000 and samples.dtype == np.float32 and samples.shape == x.shape, name
        assert np.abs(samples - x).max() <= step / 2 + 1e-7, name
    (tmp_path / "photo.wav").write_bytes(b"\xff\xd8\xff\xe0 not a WAV")
    with pytest.raises(DatasetError, match="photo.wav: not a readable WAV file"):
        read_wav(tmp_path / "photo.wav")


def test_mu_law_companding():
    x = np.array([-1.0, -0.01, 0.0, 0.01, 0.5, 1.0], dtype=np.float32)
    y = mu_law_compand(x)
    assert y[0] == pytest.approx(-1) and y[2] == 0 and y[-1] == pytest.approx(1) and np.all(np.diff(y) > 0)
    assert y[3] == pytest.approx(math.log(1 + 2.55) / math.log(256))  # quiet samples are spread out: 0.01 → 0.23


@pytest.fixture(scope="module")
def fsdd_4k():
    return load_fsdd_splits(FSDD, length=2000, sample_rate=4000)


@needs_fsdd
def test_fsdd_official_split(fsdd_4k):
    data = fsdd_4k
    assert len(data.train) == 2700 and len(data.test) == 300
    assert torch.bincount(data.test.labels).tolist() == [30] * 10  # 6 speakers × 5 takes per digit
    assert data.train[0][0].shape == (1, 2000) and data.info.name == "fsdd" and data.info.num_classes == 10
    assert load_dataset(f"fsdd:{FSDD}").info.image_size == 8000  # `cnnatlas train --data fsdd:DIR` reads it too


@needs_fsdd
def test_the_command_line_trains_and_resumes_on_fsdd_at_any_rate(tmp_path, fsdd_4k, capsys):
    """`cnnatlas train --data fsdd` reads --sample-rate, --mu-law and --image-size (the window in samples)
    into the recordings it trains on, records them, evaluates and resumes with them; a rate that does not
    divide 8 kHz, or the flags on other data, are refused in one line."""
    from cnnatlas.cli import main
    from cnnatlas.train import load_run

    base = ["train", "spectrogram_cnn", "--data", f"fsdd:{FSDD}", "--batch-size", "64", "--quiet"]
    model = ["--model-arg", "n_fft=128", "--model-arg", "hop_length=32"]  # the rate comes from --sample-rate
    run = tmp_path / "4k"
    flags = ["--sample-rate", "4000", "--image-size", "2000", "--mu-law", *model]
    assert main([*base, *flags, "--epochs", "1", "--out", str(run)]) == 0
    trained = load_run(run)
    assert (trained.info.sample_rate, trained.info.image_size, trained.input_size) == (4000, 2000, (1, 2000))
    assert "mu-law" in trained.info.augment
    assert trained.model.frontend.sample_rate == 4000  # its mel bands placed for 4 kHz recordings
    assert "2000 samples at 4 kHz, μ-law companded" in trained.data_origin["source"]
    companded = load_fsdd_splits(FSDD, length=2000, sample_rate=4000, mu_law=True).test
    assert torch.equal(trained.test_data().test.waves, companded.waves)  # eval hears what training heard
    assert not torch.equal(companded.waves, fsdd_4k.test.waves)
    assert main([*base, *flags, "--epochs", "2", "--out", str(run), "--resume"]) == 0  # continues at 4 kHz
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert main([*base, *model, "--sample-rate", "8000", "--epochs", "3", "--out", str(run), "--resume"]) == 2
    assert "--resume cannot change sample_rate 4000 → 8000" in capsys.readouterr().err
    default = tmp_path / "8k"  # the default: one second at 8 kHz, and its resume
    assert main([*base, "--epochs", "1", "--out", str(default)]) == 0
    assert load_run(default).info.image_size == 8000
    assert main([*base, "--epochs", "2", "--out", str(default), "--resume"]) == 0
    for wrong, needle in (
        ([*base, "--sample-rate", "3000"], "FSDD: sample_rate must divide 8000 (8000, 4000, 2000 …); got 3000"),
        (["train", "lenet5", "--sample-rate", "4000"], "sample_rate=4000 is for --data fsdd (its recordings)"),
        (["train", "lenet5", "--mu-law"], "mu_law=True is for --data fsdd (its recordings); got --data digits"),
    ):
        assert main([*wrong, "--epochs", "1", "--out", str(tmp_path / "no")]) == 2, wrong
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "no").exists()


def test_a_model_on_sound_is_built_at_the_recordings_rate():
    """The trainer builds a model that takes `sample_rate` at the data's rate (its mel filterbank
    then places the bands in hertz of those recordings); a different --model-arg sample_rate is
    refused; models without the argument, and data without a rate, are built as asked."""
    from cnnatlas.data.base import DataInfo
    from cnnatlas.models.audio import mel_filterbank
    from cnnatlas.train import TrainConfig
    from cnnatlas.train.loop import build_model

    def info(rate):
        return DataInfo("fsdd", tuple("0123456789"), 1, 4000, 4000, (0.0,), (1.0,), sample_rate=rate)

    model = build_model(TrainConfig("spectrogram_cnn", data="fsdd", sample_rate=4000), info(4000))
    assert model.frontend.sample_rate == 4000
    assert torch.equal(model.frontend.mel[:, :, 0], mel_filterbank(129, 40, 4000))
    assert not torch.equal(model.frontend.mel[:, :, 0], mel_filterbank(129, 40, 8000))
    config = TrainConfig("spectrogram_cnn", data="fsdd", sample_rate=4000, model_kwargs={"sample_rate": 4000})
    assert build_model(config, info(4000)).frontend.sample_rate == 4000  # the same rate, said twice
    config = TrainConfig("spectrogram_cnn", data="fsdd", sample_rate=4000, model_kwargs={"sample_rate": 8000})
    with pytest.raises(InvalidArgumentError, match=r"sample_rate=8000 but fsdd's recordings are at 4000 Hz"):
        build_model(config, info(4000))
    assert build_model(TrainConfig("wavenet", data="fsdd"), info(4000)).num_classes == 10  # no sample_rate to set
    old_run = build_model(TrainConfig("spectrogram_cnn", data="fsdd"), info(None))  # a run from before the rate
    assert old_run.frontend.sample_rate == 8000


def _learns(tmp_path, data, model, kwargs, **train):
    """Train on `data`; the last epoch's losses and the test accuracy."""
    from cnnatlas.train import TrainConfig
    from cnnatlas.train import train as run

    settings = {"batch_size": 16, "optimizer": "adamw", "warmup_epochs": 0.5} | train
    config = TrainConfig(model, data="fsdd", model_kwargs=kwargs, out=str(tmp_path), quiet=True, **settings)
    metrics = run(config, data=data)
    assert metrics["data"] == "fsdd"
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    return last["train_loss"], last["test_loss"], metrics["test_acc"]


@needs_fsdd
def test_a_short_spectrogram_cnn_run_on_fsdd_learns(tmp_path, fsdd_4k):
    """Log-mel + LeNet-5 on the whole training set at 4 kHz: 3 epochs take a few seconds and bring the
    test loss far below chance level (ln 10) and the accuracy far above chance (10%)."""
    kwargs = {"backbone": "lenet5", "sample_rate": 4000, "n_fft": 128, "hop_length": 32}
    data = DataSplits(fsdd_4k.train, Subset(fsdd_4k.test, range(0, 300, 2)), fsdd_4k.info, "every other test clip")
    train_loss, test_loss, acc = _learns(
        tmp_path, data, "spectrogram_cnn", kwargs, epochs=3, lr=0.05, optimizer="sgd", batch_size=32
    )
    assert train_loss < 0.5 * math.log(10) and test_loss < 0.5 * math.log(10), (train_loss, test_loss)
    assert acc >= 0.6, acc


@pytest.mark.slow
@needs_fsdd
def test_a_short_wavenet_run_on_fsdd_learns(tmp_path):
    """A small WaveNet (dilations 1…32, pooled to 20 ms frames) on μ-law audio at 2 kHz, 0.5 s per clip:
    3 epochs bring the test loss below half of chance level (ln 10) and the accuracy to 4× chance."""
    full = load_fsdd_splits(length=1000, sample_rate=2000, mu_law=True)
    data = DataSplits(full.train, Subset(full.test, range(0, 300, 2)), full.info, "every other test clip")
    kwargs = {
        "residual_channels": 8,
        "dilation_channels": 8,
        "skip_channels": 8,
        "stacks": 1,
        "dilation_depth": 6,
        "pool_size": 40,
    }
    train_loss, test_loss, acc = _learns(tmp_path, data, "wavenet", kwargs, epochs=3, lr=0.01)
    assert train_loss < 0.5 * math.log(10) and test_loss < 0.5 * math.log(10), (train_loss, test_loss)
    assert acc >= 0.4, acc


@pytest.mark.parametrize(
    "item, dataset", [("spectrogram", "fsdd"), ("wavenet", "fsdd"), ("video-3d", "moving-fashion-mnist")]
)
def test_trainer_defaults_are_the_measured_recipes(item, dataset):
    """`cnnatlas train MODEL --data DATASET` trains with the settings benchmarks/video_audio.py measured."""
    import importlib.util

    from cnnatlas.train import default_config

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "video_audio.py"
    spec = importlib.util.spec_from_file_location("video_audio_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    run = bench.RUNS[item]
    config = default_config(run["model"], dataset)
    assert {k: getattr(config, k) for k in run["train"]} == run["train"]
    if item == "wavenet":  # the README's command line for it trains that run: its model, data and settings
        import shlex

        from cnnatlas.cli import build_parser
        from cnnatlas.cli.train import config_from_args

        readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
        line = next(x for x in readme.splitlines() if x.startswith("cnnatlas train wavenet --data fsdd "))
        given = config_from_args(build_parser().parse_args(shlex.split(line)[1:]))
        assert given.model_kwargs == run["model_kwargs"]
        assert (given.sample_rate, given.image_size, given.mu_law) == tuple(
            run["data"][k] for k in ("sample_rate", "length", "mu_law")
        )
        assert {k: getattr(given, k) for k in run["train"]} == run["train"]
    if item == "video-3d":  # the README's command for that row trains on its clips: 8 frames of 32×32
        import inspect
        import re

        from cnnatlas.cli import build_parser
        from cnnatlas.cli.train import config_from_args
        from cnnatlas.data.moving_fashion import MOVING_FASHION_FRAMES, load_moving_fashion_splits
        from cnnatlas.train.loop import choose_image_size

        readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8").split())
        words = re.search(r"`cnnatlas train (lenet5 --data moving-fashion-mnist --frames \d+)`", readme).group(1)
        given = config_from_args(build_parser().parse_args(["train", *words.split()]))
        assert (given.frames, choose_image_size(given)) == (run["data"]["frames"], run["data"]["size"])
        assert {k: getattr(given, k) for k in run["train"]} == run["train"]
        defaults = inspect.signature(load_moving_fashion_splits).parameters
        assert (
            [defaults[k].default for k in ("train_clips", "test_clips")]
            == [4000, 1000]
            == [run["data"][k] for k in ("train_clips", "test_clips")]
        )
        assert f"frames per clip (default {MOVING_FASHION_FRAMES})" in _train_help()


def _train_help() -> str:
    """`cnnatlas train --help`, as one line."""
    import contextlib
    import io

    from cnnatlas.cli import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        build_parser().parse_args(["train", "--help"])
    return " ".join(out.getvalue().split())


@needs_fsdd
def test_predict_takes_a_recording_for_a_run_on_sound(tmp_path, fsdd_4k, capsys):
    """`cnnatlas predict RUN file.wav` for a run on FSDD: the recording is fed as the run's test set fed it
    (same window, rate and normalisation: here 4 kHz, 2,000 samples), so its probabilities are the model's
    on that test item; a 16 kHz copy is brought to the run's rate; an image is refused in one line."""
    from cnnatlas.cli import main
    from cnnatlas.data.fsdd import FSDD_TEST_TAKES, fsdd_files
    from cnnatlas.predict import read_run_recording
    from cnnatlas.train import load_run

    kwargs = {"backbone": "lenet5", "sample_rate": 4000, "n_fft": 128, "hop_length": 32}
    data = DataSplits(Subset(fsdd_4k.train, range(0, 2700, 9)), fsdd_4k.test, fsdd_4k.info, fsdd_4k.source)
    _learns(tmp_path / "run", data, "spectrogram_cnn", kwargs, epochs=1, lr=0.05, optimizer="sgd")
    run = load_run(tmp_path / "run")
    tests = [path for path, _, _, take in fsdd_files(FSDD) if take in FSDD_TEST_TAKES]  # the test set's order
    i = 7
    x, label = fsdd_4k.test[i]
    assert run.info.sample_rate == 4000  # the run records the rate it was trained at
    assert torch.equal(read_run_recording(run, tests[i]), x)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    del config["data"]["sample_rate"]  # a run kept before the rate was: its data source says it
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    assert torch.equal(read_run_recording(load_run(tmp_path / "run"), tests[i]), x)
    assert main(["predict", str(tmp_path / "run"), str(tests[i]), "--top", "10", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    with torch.no_grad():
        expected = run.model(x[None]).softmax(dim=1)[0]
    got = {t["index"]: t["probability"] for t in result["top"]}
    assert got == pytest.approx({c: float(p) for c, p in enumerate(expected)}, abs=1e-6)
    recordings = tmp_path / "recordings"  # a folder: its WAV files
    recordings.mkdir()
    (recordings / "take.wav").write_bytes(Path(tests[i]).read_bytes())
    (recordings / "notes.txt").write_text("not a recording")
    assert main(["predict", str(tmp_path / "run"), str(recordings), "--top", "10", "--json"]) == 0
    (in_folder,) = json.loads(capsys.readouterr().out)
    assert in_folder == {**result, "image": str(recordings / "take.wav")}

    from scipy.signal import resample_poly

    from cnnatlas.data.fsdd import read_wav

    samples, rate = read_wav(tests[i])
    _write_wav(tmp_path / "16k.wav", 0.9 * resample_poly(samples, 2, 1) / np.abs(samples).max(), rate=2 * rate)
    resampled = read_run_recording(run, tmp_path / "16k.wav")[0]
    assert torch.corrcoef(torch.stack([resampled, x[0]]))[0, 1] > 0.99
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.new("L", (8, 8)).save(image)
    assert main(["predict", str(tmp_path / "run"), str(image)]) == 2
    assert "digit.png: not a readable WAV file" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert "(300 test recordings)" in capsys.readouterr().out  # not "images"
    # eval reads the test recordings as the run heard them (4 kHz, 2,000 samples: from its data's source for
    # a run that did not record the rate), not FSDD's 8 kHz default
    from cnnatlas.train import evaluate

    measured, splits = load_run(tmp_path / "run").evaluate()
    assert splits.test.waves.shape == fsdd_4k.test.waves.shape and torch.equal(splits.test[i][0], x)
    direct = evaluate(run.model, torch.utils.data.DataLoader(fsdd_4k.test, batch_size=100), 10, torch.device("cpu"))
    assert torch.equal(measured.confusion, direct.confusion)
    # the pictures take the run's input, a recording's samples: the feature maps are those of a test
    # recording, beside the spectrogram the model makes of it (an image is refused by name), and the filters
    # shown are the backbone's first learnt ones, not the spectrogram's fixed STFT
    from cnnatlas.viz import plot_feature_maps

    fig = plot_feature_maps(str(tmp_path / "run"), layers=["backbone.features.c1"], sample=i, channels=2)
    assert f"test recording {i} of fsdd (labelled {run.info.classes[label]})" in " ".join(fig.get_suptitle().split())
    with torch.no_grad():
        spectrogram = run.model.frontend(x[None])[0, 0]
        first = run.model.backbone.features.c1(spectrogram[None, None])[0]
    shown, channel = (ax.images[0].get_array() for ax in fig.axes[:2])
    assert fig.axes[0].get_title() == "spectrogram"
    assert np.allclose(shown, ((spectrogram - spectrogram.min()) / (spectrogram.max() - spectrogram.min())).numpy())
    assert any(np.allclose(channel, m.numpy(), atol=1e-6) for m in first)
    assert main(["plot", "feature-maps", str(tmp_path / "run"), "--out", str(tmp_path / "maps.png")]) == 0
    for model in (str(tmp_path / "run"), "spectrogram_cnn"):
        assert main(["plot", "feature-maps", model, "--image", str(image), "--out", str(tmp_path / "m.png")]) == 2
        assert "takes sound: its feature maps are drawn for a recording of a run's test set" in capsys.readouterr().err
    from cnnatlas.viz.inside import first_conv

    for model in (str(tmp_path / "run"), "spectrogram_cnn"):
        assert main(["plot", "filters", model, "--out", str(tmp_path / "filters.png")]) == 0, model
        capsys.readouterr()
    assert first_conv(run.model, (1, *run.input_size))[0] == "backbone.features.c1.conv"
