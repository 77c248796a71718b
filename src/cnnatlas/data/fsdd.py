"""The Free Spoken Digit Dataset (FSDD; Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset,
Zenodo 10.5281/zenodo.1342401, CC BY-SA 4.0): 3,000 mono WAV recordings at 8 kHz of the digits 0–9,
six English speakers × 10 digits × 50 takes (release v1.0.10), named `{digit}_{speaker}_{index}.wav`.
`--data fsdd` reads $CNNATLAS_FSDD, else the copy in the data folder, downloaded there the first time
(`cnnatlas.data.fetch`: upstream's v1.0.10 archive, every recording checked against the release's git tree).

The official split is by take: indices 0–4 of every speaker and digit are the test set (300
recordings), 5–49 the training set (2,700). Any folder of files named that way loads (a `recordings/`
sub-folder is looked into). Each recording is scaled to a peak of 1 (the speakers' recording levels
differ by a factor of ~10), centred in a window of `length` samples (zero-padded; the ~1% longer
than 8,000 samples are centre-cropped) and standardised with the training set's mean and standard
deviation. Training items may be shifted at random inside the window (`shift=True`). For raw-waveform
models the recordings can be decimated (`sample_rate=4000`) and μ-law companded (`mu_law=True`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..download import data_dir
from .base import DataInfo, DatasetError, DataSplits
from .fetch import FSDD_FOLDER, fetch_fsdd

FSDD_CLASSES = tuple(str(d) for d in range(10))
FSDD_SAMPLE_RATE = 8000
FSDD_TEST_TAKES = range(0, 5)  # the official split: takes 0–4 are the test set
FILE_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def default_fsdd_dir() -> Path:
    """Where `--data fsdd` looks (downloading nothing): $CNNATLAS_FSDD if set, else DATA/fsdd in the
    data folder (`cnnatlas.download.data_dir()`)."""
    if os.environ.get("CNNATLAS_FSDD"):
        return Path(os.environ["CNNATLAS_FSDD"]).expanduser()
    return data_dir() / FSDD_FOLDER


def find_fsdd(root: str | Path | None = None) -> Path:
    """`root` if given; else `default_fsdd_dir()`, downloaded and checked into the data folder the
    first time when $CNNATLAS_FSDD is not set (`cnnatlas.data.fetch.fetch_fsdd`)."""
    if root is not None:
        return Path(root)
    if os.environ.get("CNNATLAS_FSDD"):
        return default_fsdd_dir()
    return fetch_fsdd()


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A WAV file as float32 samples in [−1, 1] (channels averaged) and its sample rate: integer PCM of
    8, 16, 24, 32 or 64 bits, or IEEE float (`scipy.io.wavfile`, which also reads WAVE_FORMAT_EXTENSIBLE)."""
    import warnings

    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():  # chunks it skips (LIST, cue, …) hold no samples
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(str(path))
    except (ValueError, OSError, EOFError, KeyError) as err:
        raise DatasetError(f"{path}: not a readable WAV file ({err})") from None
    if data.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        x = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.signedinteger):  # 24-bit arrives left-justified in int32
        x = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    elif np.issubdtype(data.dtype, np.floating):
        x = data.astype(np.float32)
    else:
        raise DatasetError(f"{path}: samples of type {data.dtype} are not supported (integer PCM or float)")
    return (x.reshape(len(x), -1).mean(axis=1) if x.ndim > 1 else x), int(rate)


def decimation_filter(factor: int, half_width: int = 10) -> np.ndarray:
    """Low-pass FIR for keeping every `factor`-th sample: a windowed sinc with its cut-off at the new
    Nyquist frequency, h[n] = sinc(n/factor)/factor · kaiser(β = 5), n = −10·factor … 10·factor
    (the design of scipy's resample_poly), scaled to unit gain at 0 Hz."""
    n = np.arange(-half_width * factor, half_width * factor + 1)
    h = np.sinc(n / factor) / factor * np.kaiser(len(n), 5.0)
    return (h / h.sum()).astype(np.float32)


def mu_law_compand(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """μ-law companding of samples in [−1, 1]: f(x) = sign(x)·ln(1 + μ|x|)/ln(1 + μ), μ = 255 (WaveNet
    §2.2, ITU-T G.711): quiet samples are spread out, loud ones compressed."""
    return (np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)).astype(np.float32)


def fit_length(x: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Centre `x` in a window of `length` samples: zero-pad or centre-crop. Returns the window and
    the number of real samples in it."""
    if len(x) >= length:
        start = (len(x) - length) // 2
        return x[start : start + length], length
    out = np.zeros(length, np.float32)
    start = (length - len(x)) // 2
    out[start : start + len(x)] = x
    return out, len(x)


def prepare_recording(
    path: str | Path, length: int, sample_rate: int = FSDD_SAMPLE_RATE, mu_law: bool = False
) -> np.ndarray:
    """A recording in any PCM WAV file as a model trained on FSDD sees it: brought to `sample_rate` (by
    an integer factor as the training data are, `decimation_filter`, else by scipy's polyphase
    resampling), peak-normalised, μ-law companded if asked, and centred in `length` samples."""
    from math import gcd

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: {'a folder' if path.is_dir() else 'file not found'}; expected a WAV recording")
    x, rate = read_wav(path)
    if x.size == 0:
        raise DatasetError(f"{path}: no samples; expected a recording")
    if rate % sample_rate == 0:
        factor = rate // sample_rate
        if factor > 1:
            x = np.convolve(x, decimation_filter(factor), mode="same")[::factor].astype(np.float32)
    else:
        from scipy.signal import resample_poly

        g = gcd(rate, sample_rate)
        x = resample_poly(x, sample_rate // g, rate // g).astype(np.float32)
    return _shaped(x, length, mu_law)[0]


def _shaped(x: np.ndarray, length: int, mu_law: bool) -> tuple[np.ndarray, int]:
    """Peak-normalised, μ-law companded if asked, fitted to `length` → (window, real length)."""
    x = x / max(float(np.abs(x).max()), 1e-8)
    if mu_law:
        x = mu_law_compand(x)
    return fit_length(x, length)


def fsdd_files(root: str | Path | None = None) -> list[tuple[Path, int, str, int]]:
    """(path, digit, speaker, take) of every recording in the folder (or its recordings/), sorted."""
    folder = find_fsdd(root)
    if (folder / "recordings").is_dir():
        folder = folder / "recordings"
    if not folder.is_dir():
        raise DatasetError(
            f"FSDD not found: {folder} is not a folder; give a folder of the recordings "
            f"({{digit}}_{{speaker}}_{{index}}.wav) with --data fsdd:DIR or $CNNATLAS_FSDD, or unset "
            f"$CNNATLAS_FSDD and use --data fsdd to download them into {data_dir()}"
        )
    found = []
    for path in sorted(folder.iterdir()):
        m = FILE_NAME.match(path.name)
        if m:
            found.append((path, int(m.group(1)), m.group(2), int(m.group(3))))
    if not found:
        raise DatasetError(f"{folder}: no recordings named {{digit}}_{{speaker}}_{{index}}.wav (e.g. 7_jackson_32.wav)")
    return found


class WaveformDataset(Dataset):
    """Fixed-length waveforms held in memory, (N, L) float; items are (1, L) standardised with
    (mean, std), and, with `shift`, moved by a random offset that keeps the whole recording inside."""

    def __init__(
        self,
        waves: torch.Tensor,
        labels: torch.Tensor,
        lengths: torch.Tensor,
        mean: float,
        std: float,
        shift: bool = False,
    ) -> None:
        self.waves, self.labels, self.lengths = waves, labels.long(), lengths
        self.mean, self.std, self.shift = mean, std, shift

    def __len__(self) -> int:
        return self.waves.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.waves[index]
        if self.shift:
            slack = (x.shape[0] - int(self.lengths[index])) // 2  # zeros on each side of the recording
            if slack:
                x = torch.roll(x, int(torch.randint(-slack, slack + 1, ())))
        return ((x - self.mean) / self.std).unsqueeze(0), int(self.labels[index])


def _prepared_recording(path: str | Path, length: int, factor: int, lowpass: np.ndarray, mu_law: bool) -> tuple:
    """One recording as the model sees it: decimated by `factor` after the low-pass, peak-normalised,
    μ-law companded if asked, then fitted to `length` → (window, real length)."""
    x, rate = read_wav(path)
    if rate != FSDD_SAMPLE_RATE:
        raise DatasetError(f"{path}: sample rate {rate} Hz; FSDD recordings are {FSDD_SAMPLE_RATE} Hz")
    if factor > 1:
        x = np.convolve(x, lowpass, mode="same")[::factor].astype(np.float32)
    return _shaped(x, length, mu_law)


def _split_recordings(files: list, length: int, factor: int, mu_law: bool) -> dict[str, tuple[list, list, list]]:
    """(waves, labels, lengths) of the test takes (0–4) and the train takes (5–49); neither may be empty."""
    lowpass = decimation_filter(factor)
    splits: dict[str, tuple[list, list, list]] = {"train": ([], [], []), "test": ([], [], [])}
    for path, digit, _speaker, take in files:
        window, real = _prepared_recording(path, length, factor, lowpass, mu_law)
        waves, labels, lengths = splits["test" if take in FSDD_TEST_TAKES else "train"]
        waves.append(window)
        labels.append(digit)
        lengths.append(real)
    for split, (waves, _, _) in splits.items():
        if not waves:
            raise DatasetError(
                f"FSDD: the {split} split is empty (takes {'0–4' if split == 'test' else '5–49'} "
                f"of each speaker and digit); is the folder complete?"
            )
    return splits


def load_fsdd_splits(
    root: str | Path | None = None,
    length: int = 8000,
    shift: bool = True,
    speakers: tuple[str, ...] | None = None,
    sample_rate: int = FSDD_SAMPLE_RATE,
    mu_law: bool = False,
) -> DataSplits:
    """FSDD's official split (takes 0–4 test, 5–49 train) as waveforms (1, `length`) at `sample_rate`
    (8 kHz, or 8 kHz divided by an integer: low-pass filtered by `decimation_filter`, then decimated).
    `mu_law=True` compands each peak-normalised recording with `mu_law_compand` (WaveNet §2.2).
    `speakers` keeps only those speakers (all by default)."""
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise DatasetError(f"FSDD: length must be a positive number of samples; got {length!r}")
    if not isinstance(sample_rate, int) or sample_rate < 1 or FSDD_SAMPLE_RATE % sample_rate:
        raise DatasetError(
            f"FSDD: sample_rate must divide {FSDD_SAMPLE_RATE} (8000, 4000, 2000 …); got {sample_rate!r}"
        )
    files = fsdd_files(root)
    if speakers is not None:
        files = [f for f in files if f[2] in speakers]
    splits = _split_recordings(files, length, FSDD_SAMPLE_RATE // sample_rate, mu_law)
    tensors = {k: (torch.from_numpy(np.stack(w)), torch.tensor(y), torch.tensor(n)) for k, (w, y, n) in splits.items()}
    x_train = tensors["train"][0]
    mean, std = round(float(x_train.mean()), 6), round(float(x_train.std()), 6)
    n_train, n_test = len(tensors["train"][1]), len(tensors["test"][1])
    return DataSplits(
        train=WaveformDataset(*tensors["train"], mean, std, shift=shift),
        test=WaveformDataset(*tensors["test"], mean, std),
        info=DataInfo(
            "fsdd",
            FSDD_CLASSES,
            1,
            length,
            length,
            (mean,),
            (std,),
            (("shift",) if shift else ()) + (("mu-law",) if mu_law else ()),
            sample_rate=sample_rate,
        ),
        source=f"FSDD WAV files in {Path(files[0][0]).parent} ({n_train:,} train / {n_test:,} test, "
        f"takes 0–4 test), {length} samples at {sample_rate / 1000:g} kHz" + (", μ-law companded" if mu_law else ""),
        folder=str(Path(files[0][0]).parent.resolve()),
    )


__all__ = [
    "FSDD_CLASSES",
    "FSDD_SAMPLE_RATE",
    "WaveformDataset",
    "default_fsdd_dir",
    "find_fsdd",
    "fsdd_files",
    "load_fsdd_splits",
    "prepare_recording",
    "read_wav",
]
