"""Pretrained weights of the zoo: the published checkpoints, where they are cached, how they load.

The catalogue, `pretrained.json` beside this file, was written once from the installed torchvision's
`*_Weights` enums and timm's pretrained configurations by `tools/pretrained_catalogue.py` (it records
their versions): each model's weights tags with URL, checksum, categories, preprocessing and the
published accuracy. timm's package carries no accuracy, so its entries have none.

Files are cached where their ecosystem keeps them, so a file torchvision or timm already fetched is
used as it is:

* torchvision's checkpoints in `torch.hub.get_dir()/checkpoints` (`$TORCH_HOME/hub/checkpoints`, by
  default `~/.cache/torch/hub/checkpoints`), checked against the SHA-256 prefix in their names, and
  there too PyTorchVideo's (which publishes no checksum) and pytorch-cifar-models' (the CIFAR ResNets,
  torchvision's names and hash prefixes);
* timm's on the Hugging Face hub, in its cache layout (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, by
  default `~/.cache/huggingface/hub`: `models--timm--NAME/blobs/<sha256>` and
  `snapshots/<commit>/model.safetensors`), checked against the SHA-256 the hub publishes with the
  file (the LFS ETag of its answer).

Every download goes through `cnnatlas.download.download` (progress bar, nothing partial or corrupt
left behind, an offline message naming the file, its URL and the folder to put it in). Files are
read with `torch.load(weights_only=True)` or safetensors: never as arbitrary pickles.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .download import TIMEOUT_S, DownloadError, download, resolve_url
from .errors import InvalidArgumentError, WeightsError, did_you_mean
from .registry import build_model, get_entry, list_models

WEIGHT_SUFFIXES = (".pth", ".pt", ".pyth", ".bin", ".safetensors")
# The sources that publish one file per weights, kept in torch.hub's checkpoints folder (torchvision's,
# PyTorchVideo's and pytorch-cifar-models'); timm's come through the Hugging Face hub cache.
HUB_FILE_SOURCES = ("torchvision", "pytorchvideo", "pytorch-cifar-models")
# torchvision's googlenet and inception_v3 re-map ImageNet-normalised inputs to [-1, 1] when built with
# weights (`transform_input=True`): the ported TensorFlow weights expect that range.
_TF_MEAN, _TF_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """The preprocessing of a weights entry, as torchvision's `ImageClassification`,
    `SemanticSegmentation` and `VideoClassification` presets do it: resize (the shorter side to
    `resize[0]`, or to `resize` = (h, w)), centre crop to `crop` (segmentation: no crop, `crop` is
    empty), scale to [0, 1], normalise by `mean`, `std`.

    kind "image": a (C, H, W) or (N, C, H, W) uint8 image → float of the same rank. kind "video"
    (torchvision's video weights, resized without antialiasing as torchvision does) and "frames" (the
    image preprocessing on every frame): a (T, C, H, W) or (N, T, C, H, W) uint8 clip →
    (C, T, h, w) or (N, C, T, h, w).
    """

    kind: str
    resize: tuple[int, ...]
    crop: tuple[int, ...]
    interpolation: str
    antialias: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8:
            raise InvalidArgumentError(
                f"preprocessing expects a uint8 tensor; got "
                f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}"
            )
        mode = InterpolationMode(self.interpolation)
        if self.kind == "image":
            x = F.resize(x, list(self.resize), interpolation=mode, antialias=self.antialias)
            x = F.center_crop(x, list(self.crop)) if self.crop else x
            return F.normalize(F.convert_image_dtype(x, torch.float), mean=list(self.mean), std=list(self.std))
        squeeze = x.ndim < 5
        if squeeze:
            x = x.unsqueeze(0)
        n, t, c = x.shape[:3]
        x = F.resize(x.reshape(-1, c, *x.shape[3:]), list(self.resize), interpolation=mode, antialias=self.antialias)
        x = F.center_crop(x, list(self.crop))
        x = F.normalize(F.convert_image_dtype(x, torch.float), mean=list(self.mean), std=list(self.std))
        x = x.view(n, t, c, *x.shape[-2:]).permute(0, 2, 1, 3, 4)
        return x.squeeze(0) if squeeze else x

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "resize": list(self.resize),
            "crop": list(self.crop),
            "interpolation": self.interpolation,
            "antialias": self.antialias,
            "mean": list(self.mean),
            "std": list(self.std),
        }


@dataclass(frozen=True)
class Weights:
    """One published set of weights of a zoo model (a row of the catalogue), or a local file."""

    model: str
    tag: str
    source: str  # "torchvision", "timm", "pytorchvideo", "pytorch-cifar-models", "inflated" or "file"
    categories: tuple[str, ...] | None
    transforms: Preprocess | None
    transform_input: bool = False
    url: str | None = None
    file: str | None = None
    sha256: str | None = None  # the published SHA-256 (torchvision: its prefix); timm's comes from the hub
    hf_repo: str | None = None
    metrics: dict[str, Any] | None = None
    num_params: int | None = None
    recipe: str | None = None
    docs: str | None = None
    source_ref: str | None = None
    inflated_from: tuple[str, str] | None = None
    default: bool = False
    model_args: tuple[tuple[str, Any], ...] = ()  # the model the weights fit, where not the default build
    path: Path | None = field(default=None, compare=False)  # a local file given as weights=PATH

    def as_dict(self) -> dict[str, Any]:
        """The entry as `model_info(name)["weights"][tag]` shows it."""
        return {
            "tag": self.tag,
            "default": self.default,
            "source": self.source,
            "url": self.url,
            "file": self.file,
            "sha256": self.sha256,
            "hf_repo": self.hf_repo,
            "cache": str(self.cache_path()) if self.url else None,
            "categories": list(self.categories) if self.categories else None,
            "num_classes": len(self.categories) if self.categories else None,
            "transforms": self.transforms.as_dict() if self.transforms else None,
            "transform_input": self.transform_input,
            "metrics": self.metrics,
            "num_params": self.num_params,
            "recipe": self.recipe,
            "docs": self.docs,
            "source_ref": self.source_ref,
            "inflated_from": list(self.inflated_from) if self.inflated_from else None,
            "model_args": dict(self.model_args),
        }

    def cache_path(self) -> Path:
        """Where the file is (or will be) cached: torch.hub's checkpoints folder, or the Hugging Face
        hub cache folder of its repository (the file itself lies under snapshots/)."""
        if self.source in HUB_FILE_SOURCES:
            return torch_checkpoints_dir() / self.file
        if self.source == "timm":
            return hf_repo_dir(self.hf_repo)
        raise InvalidArgumentError(f"{self.model} {self.tag}: {self.source} weights have no file of their own")


# -- the catalogue ---------------------------------------------------------------------------------


@cache
def catalogue() -> dict[str, Any]:
    """pretrained.json as written by tools/pretrained_catalogue.py (read once)."""
    return json.loads(resources.files("cnnatlas").joinpath("pretrained.json").read_text(encoding="utf-8"))


def category_synsets(categories) -> list[str] | None:
    """The WordNet IDs of `categories` where they are ImageNet-1K's, in class order (the names of the
    class folders of ImageNet's own layout), else None."""
    known = catalogue()
    if list(categories) != known["categories"].get("imagenet-1k"):
        return None
    return known["synsets"]["imagenet-1k"]


def _entry_from_row(model: str, tag: str, row: dict[str, Any], default: bool) -> Weights:
    cats = catalogue()["categories"].get(row.get("categories"))
    t = row.get("transforms")
    pre = (
        None
        if t is None
        else Preprocess(
            t["kind"],
            tuple(t["resize"]),
            tuple(t["crop"]),
            t["interpolation"],
            bool(t["antialias"]),
            tuple(t["mean"]),
            tuple(t["std"]),
        )
    )
    return Weights(
        model,
        tag,
        row["source"],
        tuple(cats) if cats else None,
        pre,
        bool(row.get("transform_input")),
        row.get("url"),
        row.get("file"),
        row.get("sha256"),
        row.get("hf_repo"),
        row.get("metrics"),
        row.get("num_params"),
        row.get("recipe"),
        row.get("docs"),
        row.get("source_ref"),
        tuple(row["from"]) if row.get("from") else None,
        default,
        tuple(row.get("model_args", {}).items()),
    )


def available_weights(name: str) -> dict[str, Weights]:
    """The published weights of zoo model `name`, tag → entry (empty when it has none)."""
    model = catalogue()["models"].get(name)
    if model is None:
        return {}
    return {tag: _entry_from_row(name, tag, row, tag == model["default"]) for tag, row in model["weights"].items()}


def list_pretrained(pattern: str = "*") -> list[str]:
    """The registered names matching `pattern` that have published weights, sorted."""

    return [n for n in list_models(pattern) if n in catalogue()["models"]]


def get_weights(name: str, weights: bool | str | os.PathLike = True) -> Weights:
    """The weights entry `weights` names for model `name`: True → the default published ones; a tag
    the catalogue lists ("IMAGENET1K_V1"); or a path to a local .pth/.pt/.safetensors state dict."""

    get_entry(name)  # an unknown model name fails here, with its hint
    tags = available_weights(name)
    if weights is True:
        if not tags:
            raise WeightsError(
                f"{name} has no published weights; `cnnatlas models --pretrained` lists the "
                f"{len(catalogue()['models'])} models that do (or pass weights=PATH to a state dict)"
            )
        return next(w for w in tags.values() if w.default)
    if isinstance(weights, str) and weights in tags:
        return tags[weights]
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights).expanduser()
        if path.suffix in WEIGHT_SUFFIXES or path.exists() or os.sep in str(weights):
            if not path.is_file():
                raise WeightsError(f"{name}: weights file {path} not found")
            return _local_entry(name, path, tags)
        listed = f"its tags: {', '.join(tags)}" if tags else "it has no published weights"
        raise WeightsError(
            f"{name}: unknown weights {weights!r} ({listed}).{did_you_mean(weights, tags)} "
            f"A file path must end in {', '.join(WEIGHT_SUFFIXES)}"
        )
    raise InvalidArgumentError(
        f"{name}: weights must be True, a tag or a path; got {weights!r} ({type(weights).__name__})"
    )


def _local_entry(name: str, path: Path, tags: dict[str, Weights]) -> Weights:
    """A local file: a published file under its own name keeps that entry's categories, preprocessing,
    transform_input and model arguments; any other file takes the default entry's categories and
    preprocessing, and fits the model the arguments given build."""
    from dataclasses import replace

    same = next((w for w in tags.values() if w.file == path.name and w.source in HUB_FILE_SOURCES), None)
    base = same or next((w for w in tags.values() if w.default), None)
    if base is None:
        return Weights(name, str(path), "file", None, None, path=path)
    return replace(
        base,
        tag=str(path),
        source="file",
        path=path,
        default=False,
        transform_input=base.transform_input if same else False,
        metrics=base.metrics if same else None,
        model_args=base.model_args if same else (),
    )


# -- caches and downloads ----------------------------------------------------------------------------


def torch_checkpoints_dir() -> Path:
    """torch.hub's checkpoints folder (`torch.hub.get_dir()/checkpoints`, honouring $TORCH_HOME), where
    torchvision caches its weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub resolves it: $HF_HUB_CACHE, else
    $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub (by default ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "huggingface" / "hub"


def hf_repo_dir(repo: str) -> Path:
    """The cache folder of a model repository: models--{owner}--{name}."""
    return hf_hub_cache() / ("models--" + repo.replace("/", "--"))


def weights_file(w: Weights, progress: bool | None = None) -> Path:
    """The file of published weights `w` in its cache, downloaded first if it is not there."""
    if w.path is not None:
        return w.path
    what = f"{w.model} {w.tag} weights"
    if w.source in HUB_FILE_SOURCES:  # PyTorchVideo publishes no checksum: its sha256 is None
        return download(w.url, torch_checkpoints_dir() / w.file, sha256=w.sha256, progress=progress, what=what)
    if w.source == "timm":
        return _hf_file(w, progress, what)
    raise InvalidArgumentError(f"{w.model} {w.tag}: {w.source} weights have no file of their own")


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


HF_HUB = "https://huggingface.co"


def hf_url(w: Weights) -> str:
    """The URL of a hub file, on `$HF_ENDPOINT` when that is set (as huggingface_hub does)."""
    endpoint = os.environ.get("HF_ENDPOINT", "").rstrip("/")
    return endpoint + w.url[len(HF_HUB) :] if endpoint and w.url.startswith(HF_HUB) else w.url


def _hf_file(w: Weights, progress: bool | None, what: str) -> Path:
    """A file of a Hugging Face model repository, in the hub's cache layout: the blob named by its
    SHA-256 under blobs/, the name under snapshots/<commit>/ pointing at it, refs/main the commit."""
    from dataclasses import replace

    w = replace(w, url=hf_url(w))
    repo_dir = hf_repo_dir(w.hf_repo)
    cached = _hf_cached(repo_dir, w.file)
    if cached is not None:
        blob = cached.resolve()
        if _SHA256.match(blob.name):  # checked against its blob name, fetched again only when corrupt
            download(w.url, blob, sha256=blob.name, progress=progress, what=what)
        return cached  # else a file put there by hand, with nothing published to check it against offline
    commit, sha = _hf_metadata(w, repo_dir, what)
    blob = download(w.url, repo_dir / "blobs" / sha, sha256=sha, progress=progress, what=what)
    snapshot = repo_dir / "snapshots" / commit / w.file
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    if not snapshot.exists():
        try:
            snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
        except OSError:  # no symlinks (Windows without developer mode): the hub then keeps a copy too
            import shutil

            shutil.copyfile(blob, snapshot)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot


def _hf_cached(repo_dir: Path, filename: str) -> Path | None:
    """The cached file: under the snapshot refs/main names, else under any snapshot (one put by hand)."""
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        path = repo_dir / "snapshots" / ref.read_text().strip() / filename
        if path.is_file():
            return path
    found = sorted((repo_dir / "snapshots").glob(f"*/{filename}"))
    return next((p for p in found if p.is_file() and _SHA256.match(p.resolve().name)), None) or (
        found[0] if found and found[0].is_file() else None
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # the hub's own headers are on its redirect
        return None


def _hf_metadata(w: Weights, repo_dir: Path, what: str) -> tuple[str, str]:
    """(commit, sha256) of a hub file, from the headers the hub answers a HEAD request with:
    X-Repo-Commit, and X-Linked-Etag (ETag) — the SHA-256 of a file stored with git LFS."""
    fetched = resolve_url(w.url)
    request = urllib.request.Request(fetched, method="HEAD", headers={"User-Agent": "cnnatlas"})
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=TIMEOUT_S) as response:
            headers = response.headers
    except urllib.error.HTTPError as err:
        if err.code not in (301, 302, 303, 307, 308):
            raise DownloadError(
                f"could not download {what} {w.file}: {fetched} answered HTTP {err.code} ({err.reason})"
            ) from None
        headers = err.headers
    except (urllib.error.URLError, OSError) as err:
        via = f" (through $CNNATLAS_MIRROR: {fetched})" if fetched != w.url else ""
        raise DownloadError(
            f"could not download {what} {w.file} from {w.url}{via}: {getattr(err, 'reason', None) or err}. "
            f"Without a network, download it elsewhere and put it in {repo_dir / 'snapshots' / 'main'}/ as "
            f"{w.file}, or load it with weights=PATH"
        ) from None
    sha = (headers.get("X-Linked-Etag") or headers.get("ETag") or "").strip().removeprefix("W/").strip('"').lower()
    commit = (headers.get("X-Repo-Commit") or "").strip()
    if not _SHA256.match(sha) or not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise DownloadError(
            f"{what} {w.file}: {fetched} did not publish the file's SHA-256 and commit "
            f"(ETag {sha or 'missing'}, commit {commit or 'missing'}); nothing was downloaded"
        )
    return commit, sha


# -- loading -----------------------------------------------------------------------------------------


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file, or of a .pth/.pt/.pyth/.bin file read with
    `torch.load(weights_only=True)` (a checkpoint dict's "state_dict", "model" or, PyTorchVideo's and
    PySlowFast's, "model_state" entry is taken)."""
    path = Path(path)
    if path.suffix not in WEIGHT_SUFFIXES:
        raise WeightsError(f"{path}: expected a {', '.join(WEIGHT_SUFFIXES)} file of weights; got {path.suffix!r}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 — unpickling, truncated file, safetensors header: one message
        raise WeightsError(
            f"{path}: cannot be read as weights ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'})"
        ) from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path}: expected a state dict (names → tensors); got {type(data).__name__}")
    return data


def reference_orders(name: str) -> list[list[str]]:
    """The state-dict orders of the reference models of zoo model `name`: timm's (stored in the
    catalogue) and torchvision's (built on the meta device, with and without auxiliary heads).
    A safetensors file keeps names but not their order, which the in-order loaders need."""

    orders = [catalogue().get("timm_keys", {}).get(name) or []]
    builder = get_entry(name).torchvision
    if builder:
        from torchvision.models import get_model

        aux = builder in ("googlenet", "inception_v3")  # their checkpoints carry the auxiliary heads
        variants = [{}, {"aux_logits": True, "init_weights": False}] if aux else [{}]
        if get_entry(name).family == "segmentation":  # no ImageNet backbone to fetch; COCO weights carry aux
            variants = [{"weights_backbone": None, "aux_loss": True}, {"weights_backbone": None}]
        for kwargs in variants:
            with torch.device("meta"):
                orders.append(list(get_model(builder, weights=None, **kwargs).state_dict()))
    return [o for o in orders if o]


def _in_reference_order(name: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state_dict` reordered as the reference model whose names it has (unchanged when none)."""
    for order in reference_orders(name):
        if set(order) == set(state_dict):
            return {k: state_dict[k] for k in order}
    return state_dict


def load_state_dict_into(
    model: nn.Module, state_dict: dict[str, torch.Tensor], source: str, name: str | None = None
) -> nn.Module:
    """Load a state dict from `source` ("torchvision" or "pytorch-cifar-models", "timm", "pytorchvideo", or
    "file": ours, torchvision's, timm's or PyTorchVideo's, whichever fits) into zoo model `name`. Given
    `name`, the names are put back in the reference's order first (a safetensors file sorts them; a
    torch.save'd dict keeps its order: name=None)."""
    from .weights import load_pytorchvideo_weights, load_torchvision_weights
    from .weights_timm import load_timm_weights

    if set(state_dict) == set(model.state_dict()):  # saved from a cnnatlas model: loaded by name
        try:
            model.load_state_dict(state_dict, strict=True)
            return model
        except RuntimeError as err:
            raise WeightsError(f"{type(model).__name__}: {str(err).splitlines()[0]}") from None
    if name is not None:
        state_dict = _in_reference_order(name, state_dict)
    if source in ("torchvision", "pytorch-cifar-models"):  # the CIFAR ResNets': torchvision's names
        return load_torchvision_weights(model, state_dict)
    if source == "timm":
        return load_timm_weights(model, state_dict)
    if source == "pytorchvideo":
        return load_pytorchvideo_weights(model, state_dict)
    errors = []
    for loader in (load_torchvision_weights, load_timm_weights, load_pytorchvideo_weights):
        try:
            return loader(model, state_dict)
        except WeightsError as err:
            errors.append(str(err))
    raise WeightsError(f"the file fits neither as cnnatlas's nor as a reference's state dict: {errors[0]}")


def _transform_input(module: nn.Module, args: tuple) -> tuple:
    """torchvision's `transform_input` (googlenet.py, inception.py): ImageNet-normalised input → the
    [−1, 1] range of the ported TensorFlow weights, x_c · (σ_c / 0.5) + (μ_c − 0.5) / 0.5."""
    x = args[0]
    channels = [torch.unsqueeze(x[:, c], 1) * (_TF_STD[c] / 0.5) + (_TF_MEAN[c] - 0.5) / 0.5 for c in range(3)]
    return (torch.cat(channels, 1), *args[1:])


def create_pretrained(
    name: str, weights: bool | str | os.PathLike = True, progress: bool | None = None, **kwargs: Any
) -> nn.Module:
    """Zoo model `name` with the weights `weights` names (see `get_weights`), in eval mode. The number
    of classes defaults to the weights' categories, and the other arguments to those the weights were
    trained with (`Weights.model_args`, e.g. SlowFast's `config`); `model.pretrained_weights` is the entry."""

    w = get_weights(name, weights)
    for arg, value in w.model_args:
        if kwargs.setdefault(arg, value) != value:
            others = [t for t, o in available_weights(name).items() if dict(o.model_args).get(arg) == kwargs[arg]]
            fits = f"; weights={others[0]!r} fit {arg}={kwargs[arg]!r}" if others else ""
            raise InvalidArgumentError(
                f"{name}: the {w.tag} weights fit {arg}={value!r}; got {arg}={kwargs[arg]!r}{fits}"
            )
    if w.categories and w.path is None:
        n = kwargs.setdefault("num_classes", len(w.categories))
        if n != len(w.categories):
            raise InvalidArgumentError(
                f"{name}: the {w.tag} weights classify {len(w.categories)} categories; got "
                f"num_classes={n} (load them as they are, then replace the head)"
            )
    if w.source == "inflated":
        model = _inflated(w, progress, **kwargs)
    else:
        model = build_model(name, **kwargs)
        path = weights_file(w, progress)
        load_state_dict_into(
            model, load_state_dict_file(path), w.source, name if path.suffix == ".safetensors" else None
        )
    if w.transform_input:
        model.register_forward_pre_hook(_transform_input)
    model.transform_input = w.transform_input
    model.pretrained_weights = w
    return model.eval()


def _inflated(w: Weights, progress: bool | None, **kwargs: Any) -> nn.Module:
    """I3D from GoogLeNet's ImageNet weights: the 2-D network inflated with I3D's recipe, its state
    loaded into the I3D built with `kwargs`."""
    from .inflate import inflate
    from .models.video import I3D_INFLATION

    source, tag = w.inflated_from
    model_2d = create_pretrained(source, tag, progress, num_classes=kwargs.get("num_classes", 1000))
    model = build_model(w.model, **kwargs)
    inflated = inflate(model_2d, time_padding=getattr(model, "time_padding", "zeros"), **I3D_INFLATION)
    try:
        model.load_state_dict(inflated.state_dict(), strict=True)
    except RuntimeError as err:
        raise WeightsError(f"{w.model}: the inflated {source} does not fit: {str(err).splitlines()[0]}") from None
    return model
