"""Pretrained weights: the catalogue against the installed torchvision and timm, every download path
for real against a server on 127.0.0.1, loading, preprocessing, I3D from ImageNet, and `predict`.

The files served are state dicts of torchvision's and timm's randomly initialised models. A real
torchvision file name carries its SHA-256 prefix, which such a file does not match: the production
catalogue entries are used as they are for the failure paths, and a test-made copy of the catalogue
(the entry's URL, file and checksum only) for the paths that must succeed.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import socket
import urllib.parse

import numpy as np
import pytest
import torch
import torchvision
from equivalence import randomize_norm_stats
from mirror import Mirror, _Handler
from PIL import Image
from torchvision.models import get_model_weights

import cnnatlas
from cnnatlas import pretrained
from cnnatlas.cli import main
from cnnatlas.data.cifar import CIFAR10_CLASSES
from cnnatlas.download import DownloadError
from cnnatlas.errors import InvalidArgumentError, WeightsError


class _HubHandler(_Handler):
    """The mirror's handler, adding the headers the Hugging Face hub answers with (X-Linked-Etag…)."""

    def end_headers(self):
        path = urllib.parse.urlsplit(self.path).path.lstrip("/")
        for key, value in self.server.mirror.hub_headers.get(path, {}).items():
            self.send_header(key, value)
        super().end_headers()


@pytest.fixture
def caches(monkeypatch, tmp_path):
    """TORCH_HOME and HF_HOME in a temporary folder; returns (torch checkpoints, HF hub cache)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints", tmp_path / "hf" / "hub"


@pytest.fixture
def mirror(monkeypatch, caches):
    with Mirror() as m:
        m.hub_headers = {}
        m.server.RequestHandlerClass = lambda *a, **k: _HubHandler(*a, directory=str(m.root), **k)
        monkeypatch.setenv("CNNATLAS_MIRROR", m.url)
        yield m


@pytest.fixture
def catalogue(monkeypatch):
    """A copy of the catalogue the product reads during the test, for test-made entries."""
    cat = copy.deepcopy(pretrained.catalogue())
    monkeypatch.setattr(pretrained, "catalogue", lambda: cat)
    return cat


def serve_torchvision(mirror, cat, model: str, tag: str, state_dict) -> str:
    """Serve `state_dict` as torchvision would name it, and point the catalogue's entry at it."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    sha = hashlib.sha256(buffer.getvalue()).hexdigest()
    file = f"{model}-test-{sha[:8]}.pth"
    url = f"https://download.pytorch.org/models/{file}"
    mirror.put(url, buffer.getvalue())
    cat["models"][model]["weights"][tag].update(url=url, file=file, sha256=sha[:8])
    return file


def serve_timm(mirror, model: str, tag: str, state_dict, etag: str | None = None) -> tuple[str, str]:
    """Serve `state_dict` where the hub keeps the (production) entry's file, with the hub's headers."""
    from safetensors.torch import save

    data = save({k: v.contiguous() for k, v in state_dict.items()})
    sha = hashlib.sha256(data).hexdigest()
    url = pretrained.available_weights(model)[tag].url
    mirror.put(url, data)
    parts = urllib.parse.urlsplit(url)
    commit = hashlib.sha1(tag.encode()).hexdigest()
    mirror.hub_headers[parts.netloc + parts.path] = {"X-Linked-Etag": f'"{etag or sha}"', "X-Repo-Commit": commit}
    return sha, commit


def same_outputs(a, b, x, atol=1e-5):
    a.eval(), b.eval()
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=atol, rtol=1e-4)


# -- the catalogue -------------------------------------------------------------------------------------


def test_catalogue_is_torchvisions_and_timms_own():
    cat = pretrained.catalogue()
    assert cat["torchvision"] and cat["timm"]
    tv_models = [n for n in cnnatlas.list_models() if cnnatlas.get_entry(n).torchvision]
    others = {"mobilenet_v1", "seresnet50", "i3d", "slowfast_r50", "resnet20", "resnet32", "resnet44", "resnet56"}
    assert set(tv_models) | others == set(cat["models"])
    slowfast = pretrained.available_weights("slowfast_r50")  # PyTorchVideo's model zoo
    assert list(slowfast) == ["KINETICS400_4X16", "KINETICS400_8X8"] and slowfast["KINETICS400_4X16"].default
    zoo = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/"
    for w, config, (top1, top5) in zip(slowfast.values(), ("4x16", "8x8"), ((75.34, 91.89), (76.94, 92.69))):
        assert w.source == "pytorchvideo" and w.sha256 is None and w.model_args == (("config", config),)
        assert w.url == f"{zoo}SLOWFAST_{config}_R50.pyth"
        assert w.metrics == {"dataset": "Kinetics-400", "top1": top1, "top5": top5}
        assert w.categories == pretrained.available_weights("r3d_18")["KINETICS400_V1"].categories
    for name in tv_models:
        enum = get_model_weights(cnnatlas.get_entry(name).torchvision)
        ours = pretrained.available_weights(name)
        assert next(t for t, w in ours.items() if w.default) == enum.DEFAULT.name
        for tag, w in ours.items():
            theirs = enum[tag]
            assert w.url == theirs.url and w.url.endswith(f"-{w.sha256}.pth") and len(w.sha256) >= 8
            assert list(w.categories) == theirs.meta["categories"]
            ((dataset, metrics),) = theirs.meta["_metrics"].items()
            t = theirs.transforms()
            if cnnatlas.get_entry(name).family == "segmentation":  # resize only; per-pixel metrics
                assert w.metrics == {"dataset": dataset, "miou": metrics["miou"], "pixel_acc": metrics["pixel_acc"]}
                assert not hasattr(t, "crop_size") and (list(w.transforms.crop), list(w.transforms.resize)) == (
                    [],
                    list(t.resize_size),
                )
            else:
                assert w.metrics == {"dataset": dataset, "top1": metrics["acc@1"], "top5": metrics["acc@5"]}
                assert (list(w.transforms.crop), list(w.transforms.resize)) == (list(t.crop_size), list(t.resize_size))
            assert (list(w.transforms.mean), list(w.transforms.std)) == (list(t.mean), list(t.std))
            assert w.transforms.interpolation == t.interpolation.value
    pytest.importorskip("timm")
    from timm.models._registry import get_arch_pretrained_cfgs

    for name, arch in (("mobilenet_v1", "mobilenetv1_100"), ("seresnet50", "seresnet50")):
        cfgs = get_arch_pretrained_cfgs(arch)
        ours = pretrained.available_weights(name)
        assert [f"{arch}.{t}" for t in ours] == list(cfgs)
        for tag, w in ours.items():
            cfg = cfgs[f"{arch}.{tag}"]
            assert w.hf_repo == cfg.hf_hub_id and w.metrics is None and "no accuracy" in w.source_ref
            assert (w.transforms.mean, w.transforms.std) == (tuple(cfg.mean), tuple(cfg.std))


def test_model_info_weights_and_models_pretrained(capsys):
    info = cnnatlas.model_info("resnet50")["weights"]
    assert set(info) == {"IMAGENET1K_V1", "IMAGENET1K_V2"} and info["IMAGENET1K_V2"]["default"]
    v2 = info["IMAGENET1K_V2"]
    assert v2["metrics"] == {"dataset": "ImageNet-1K", "top1": 80.858, "top5": 95.434}
    assert v2["categories"][0] == "tench" and v2["num_classes"] == 1000
    assert v2["transforms"]["resize"] == [232] and v2["transforms"]["crop"] == [224]
    assert cnnatlas.model_info("lenet5")["weights"] == {}
    assert main(["models", "--pretrained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert names == set(pretrained.list_pretrained()) and {"mobilenet_v1", "seresnet50", "i3d"} <= names
    assert "lenet5" not in names and "resnet110" not in names and "resnet20" in names
    assert main(["models", "--pretrained", "resnet5*"]) == 0
    out = capsys.readouterr().out
    assert "IMAGENET1K_V2 *" in out and "80.858" in out and "resnet18" not in out


@pytest.mark.parametrize(
    "builder, tag",
    [
        ("resnet50", "IMAGENET1K_V1"),
        ("resnet50", "IMAGENET1K_V2"),
        ("inception_v3", "IMAGENET1K_V1"),
        ("efficientnet_b3", "IMAGENET1K_V1"),
        ("r3d_18", "KINETICS400_V1"),
        ("deeplabv3_resnet50", "COCO_WITH_VOC_LABELS_V1"),
    ],
)
def test_preprocessing_equals_torchvisions(builder, tag):
    ours = pretrained.available_weights(builder)[tag].transforms
    theirs = get_model_weights(builder)[tag].transforms()
    g = torch.Generator().manual_seed(0)
    shape = (8, 3, 150, 200) if ours.kind == "video" else (3, 310, 420)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    assert torch.equal(ours(x), theirs(x))


def test_frames_preprocessing_is_the_image_one_on_every_frame():
    ours = pretrained.available_weights("i3d")["IMAGENET1K_V1_INFLATED"].transforms
    theirs = get_model_weights("googlenet")["IMAGENET1K_V1"].transforms()
    clip = torch.randint(0, 256, (5, 3, 140, 180), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    assert torch.equal(ours(clip), torch.stack([theirs(frame) for frame in clip], dim=1))


@pytest.mark.parametrize("name, arch", [("mobilenet_v1", "mobilenetv1_100"), ("seresnet50", "seresnet50")])
def test_timm_preprocessing_sizes_are_timms(name, arch):
    """timm's eval transform (on PIL images) resizes the shorter side to crop / crop_pct, centre-crops,
    normalises; ours does the same on tensors (sizes and constants equal, pixels within resampling)."""
    timm = pytest.importorskip("timm")
    from torchvision import transforms as T

    ours = pretrained.available_weights(name)[next(iter(pretrained.available_weights(name)))].transforms
    with torch.device("meta"):
        config = timm.data.resolve_data_config({}, model=timm.create_model(arch))
    steps = {type(t): t for t in timm.data.create_transform(**config).transforms}
    assert steps[T.Resize].size == ours.resize[0] and list(steps[T.CenterCrop].size) == list(ours.crop)
    assert steps[T.Resize].interpolation.value == ours.interpolation
    assert tuple(steps[T.Normalize].mean.tolist()) == pytest.approx(ours.mean)
    assert tuple(steps[T.Normalize].std.tolist()) == pytest.approx(ours.std)


# -- torchvision's weights -------------------------------------------------------------------------------


def test_pretrained_downloads_checks_caches_and_loads(mirror, catalogue, caches):
    reference = randomize_norm_stats(torchvision.models.resnet18())
    file = serve_torchvision(mirror, catalogue, "resnet18", "IMAGENET1K_V1", reference.state_dict())
    model = cnnatlas.create_model("resnet18", pretrained=True)
    assert not model.training and model.pretrained_weights.tag == "IMAGENET1K_V1"
    assert same_outputs(model, reference, torch.randn(2, 3, 64, 64))
    assert (caches[0] / file).is_file()  # torch.hub's own checkpoints folder, under $TORCH_HOME
    assert sorted(p.name for p in caches[0].iterdir()) == [file, file + ".lock"]
    again = cnnatlas.create_model("resnet18", weights="IMAGENET1K_V1")
    assert len(mirror.requests) == 1  # cached: checked, not downloaded again
    assert same_outputs(again, reference, torch.randn(1, 3, 64, 64))
    features = cnnatlas.create_model("resnet18", pretrained=True, features_only=True).eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        assert torch.allclose(features(x)[-1], again.forward_features(x), atol=1e-5)


def test_checksum_mismatch_on_the_published_entry_keeps_nothing(mirror, caches):
    w = pretrained.available_weights("resnet18")["IMAGENET1K_V1"]
    buffer = io.BytesIO()
    torch.save(torchvision.models.resnet18().state_dict(), buffer)  # not the published file
    mirror.put(w.url, buffer.getvalue())
    with pytest.raises(DownloadError, match=f"published one is {w.sha256}.*not kept"):
        cnnatlas.create_model("resnet18", pretrained=True)
    assert [p.name for p in caches[0].iterdir()] == [w.file + ".lock"]


def test_offline_error_names_file_url_and_folder(monkeypatch, caches, tmp_path, capsys):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CNNATLAS_MIRROR", f"http://127.0.0.1:{port}")
    w = pretrained.available_weights("resnet18")["IMAGENET1K_V1"]
    with pytest.raises(DownloadError) as err:
        cnnatlas.create_model("resnet18", pretrained=True)
    assert w.url in str(err.value) and w.file in str(err.value) and str(caches[0]) in str(err.value)
    assert isinstance(err.value, cnnatlas.UnavailableError)
    # the command line: one line, and exit 3 (unavailable now), not 2 (a usage error), so a script can retry
    capsys.readouterr()
    assert main(["predict", "resnet18", _photo(tmp_path / "photo.png")]) == 3
    message = capsys.readouterr().err.strip()
    assert message.startswith("cnnatlas: error: could not download") and len(message.splitlines()) == 1
    assert w.file in message
    assert main(["predict", "resnet18", str(tmp_path / "missing.png")]) == 2  # bad input stays a usage error
    t = pretrained.available_weights("mobilenet_v1")["ra4_e3600_r224_in1k"]
    with pytest.raises(DownloadError) as err:
        cnnatlas.create_model("mobilenet_v1", pretrained=True)
    assert (
        t.url in str(err.value)
        and str(caches[1] / "models--timm--mobilenetv1_100.ra4_e3600_r224_in1k") in str(err.value)
        and "weights=PATH" in str(err.value)
    )


def test_tag_picks_its_weights(mirror, catalogue):
    ref = {
        tag: randomize_norm_stats(torchvision.models.mobilenet_v2(), seed=i)
        for i, tag in enumerate(("IMAGENET1K_V1", "IMAGENET1K_V2"))
    }
    for tag, model in ref.items():
        serve_torchvision(mirror, catalogue, "mobilenet_v2", tag, model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    assert same_outputs(cnnatlas.create_model("mobilenet_v2", weights="IMAGENET1K_V1"), ref["IMAGENET1K_V1"], x)
    default = cnnatlas.create_model("mobilenet_v2", pretrained=True)
    assert default.pretrained_weights.tag == "IMAGENET1K_V2" and same_outputs(default, ref["IMAGENET1K_V2"], x)


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_inception_weights_take_torchvisions_transform_input(mirror, catalogue, name):
    builder = getattr(torchvision.models, name)
    reference = builder(weights=None, aux_logits=True, transform_input=True, init_weights=True)
    serve_torchvision(mirror, catalogue, name, "IMAGENET1K_V1", randomize_norm_stats(reference).state_dict())
    model = cnnatlas.create_model(name, pretrained=True)
    assert model.transform_input and same_outputs(model, reference, torch.randn(2, 3, 96, 96), atol=1e-4)


def test_i3d_from_imagenet_gives_googlenets_output_on_a_boring_video(mirror, catalogue):
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=True)
    serve_torchvision(mirror, catalogue, "googlenet", "IMAGENET1K_V1", randomize_norm_stats(reference).state_dict())
    i3d = cnnatlas.create_model("i3d", pretrained=True, time_padding="replicate")
    assert i3d.pretrained_weights.inflated_from == ("googlenet", "IMAGENET1K_V1") and i3d.fc.out_features == 1000
    image = torch.randn(1, 3, 96, 96)
    boring = image.unsqueeze(2).expand(-1, -1, 8, -1, -1).contiguous()
    with torch.no_grad():
        assert torch.allclose(i3d(boring), reference.eval()(image), atol=1e-4, rtol=1e-4)
    assert len(mirror.requests) == 1
    assert cnnatlas.create_model("i3d", pretrained=True).time_padding == "zeros"


# -- timm's weights, in the Hugging Face hub's cache ---------------------------------------------------


@pytest.mark.parametrize(
    "tag, config, fusion, slow_step",
    [("KINETICS400_4X16", "4x16", 5, 8), ("KINETICS400_8X8", "8x8", 7, 4)],
)
def test_slowfast_weights_from_pytorchvideo(mirror, caches, tag, config, fusion, slow_step):
    """The SlowFast R50 checkpoints as PyTorchVideo's model zoo serves them (PySlowFast's .pyth: a dict
    whose "model_state" has PyTorchVideo's names behind "model."): downloaded, cached, loaded into the
    configuration they were trained in (the 8x8 weights build `config="8x8"` themselves), and our model
    then gives the reference's output (its Slow pathway fed every α-th frame, as ours reads it)."""
    pytest.importorskip("pytorchvideo")
    from pytorchvideo.models.slowfast import create_slowfast

    torch.manual_seed(0)
    # the configuration's fusion; the head's average pools sized for a 32×64×64 clip (2×2 maps at the end)
    reference = create_slowfast(
        slowfast_fusion_conv_kernel_size=(fusion, 1, 1),
        slowfast_fusion_conv_stride=(slow_step, 1, 1),
        head_pool_kernel_sizes=((32 // slow_step, 2, 2), (32, 2, 2)),
    )
    for m in reference.modules():  # statistics a fresh model does not have, so that every BN counts
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 1.5), m.weight.data.uniform_(0.5, 1.5)
    checkpoint = {"epoch": 196, "model_state": {f"model.{k}": v for k, v in reference.state_dict().items()}}
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    w = pretrained.available_weights("slowfast_r50")[tag]
    assert w.model_args == (("config", config),) and w.file == f"SLOWFAST_{config}_R50.pyth"
    mirror.put(w.url, buffer.getvalue())

    model = cnnatlas.create_model("slowfast_r50", weights=tag)
    assert (caches[0] / w.file).is_file() and model.pretrained_weights == w and model.config == config
    clip = torch.randn(1, 3, 32, 64, 64)
    with torch.no_grad():
        expected = reference.eval()([clip[:, :, ::slow_step], clip])
        assert torch.allclose(model(clip), expected, rtol=1e-4, atol=1e-4 * expected.abs().max())
    again = cnnatlas.create_model("slowfast_r50", weights=str(caches[0] / w.file))
    assert again.pretrained_weights.categories == w.categories  # the published file under its own name
    assert again.config == config  # … builds the configuration it was trained in
    with torch.no_grad():
        assert torch.equal(again(clip), model(clip))


def cifar_resnet_reference(blocks: int, num_classes: int) -> torch.nn.Module:
    """The CIFAR ResNet of pytorch-cifar-models' resnet.py: a 3×3 stem of 16 channels, three stages of
    torchvision's BasicBlock (16, 32, 64 channels; a 1×1 conv + BN `downsample` where the shape changes),
    global average pooling and `fc`: torchvision's names, without the ImageNet stem's pooling."""
    from torch import nn
    from torchvision.models.resnet import BasicBlock

    model = nn.Module()
    model.conv1, model.bn1 = nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
    c_in = 16
    for i, (c, stride) in enumerate(((16, 1), (32, 2), (64, 2)), 1):
        down = None if stride == 1 else nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False), nn.BatchNorm2d(c))
        layer = [BasicBlock(c_in, c, stride, down)] + [BasicBlock(c, c) for _ in range(blocks - 1)]
        setattr(model, f"layer{i}", nn.Sequential(*layer))
        c_in = c
    model.fc = nn.Linear(64, num_classes)

    def forward(x):
        x = torch.relu(model.bn1(model.conv1(x)))
        x = model.layer3(model.layer2(model.layer1(x)))
        return model.fc(x.mean((2, 3)))

    model.forward = forward
    return randomize_norm_stats(model).eval()


@pytest.mark.parametrize(
    "name, blocks, tag, classes", [("resnet20", 3, "CIFAR10", 10), ("resnet56", 9, "CIFAR100", 100)]
)
def test_cifar_resnet_weights_from_pytorch_cifar_models(mirror, catalogue, caches, name, blocks, tag, classes):
    """pytorch-cifar-models' CIFAR ResNets: projection shortcuts, so the weights build shortcut B
    themselves; served, downloaded (the hash prefix checked), cached, and equal to the reference's
    output; the published file's own checksum is enforced."""
    published = pretrained.available_weights(name)[tag]
    assert published.source == "pytorch-cifar-models" and published.model_args == (("shortcut", "B"),)
    assert published.url.startswith("https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/")
    reference = cifar_resnet_reference(blocks, classes)
    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer)
    mirror.put(published.url, buffer.getvalue())  # not the published file: its hash prefix differs
    with pytest.raises(DownloadError, match=f"but the published one is {published.sha256}; the file was not kept"):
        cnnatlas.create_model(name, weights=tag)
    assert not (caches[0] / published.file).exists()

    file = serve_torchvision(mirror, catalogue, name, tag, reference.state_dict())
    model = cnnatlas.create_model(name, weights=tag)
    assert (caches[0] / file).is_file() and list(model.state_dict()) == list(
        cnnatlas.create_model(name, shortcut="B", num_classes=classes).state_dict()
    )  # projection shortcuts, as the weights were trained
    assert len(model.pretrained_weights.categories) == classes
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-5)


def test_export_a_zoo_model_with_its_published_weights(mirror, catalogue, tmp_path, capsys):
    """`export MODEL --weights TAG` loads the published weights (the model arguments they carry
    included) before writing: onnxruntime on the file gives the reference's output."""
    ort = pytest.importorskip("onnxruntime")
    reference = cifar_resnet_reference(3, 10)
    serve_torchvision(mirror, catalogue, "resnet20", "CIFAR10", reference.state_dict())
    onnx_file = tmp_path / "resnet20-cifar10.onnx"
    assert main(["export", "resnet20", "--weights", "CIFAR10", "--onnx", str(onnx_file)]) == 0
    x = torch.randn(2, 3, 32, 32)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(session.run(None, {"input": x.numpy()})[0]), reference(x), atol=1e-4)
    capsys.readouterr()
    assert main(["export", "resnet20", "--weights", "V9", "--onnx", str(onnx_file)]) == 2
    assert "unknown weights 'V9' (its tags: CIFAR10, CIFAR100)" in capsys.readouterr().err


def _cifar10_folder(folder, n_test: int = 60):
    """CIFAR-10's binary batches (a label byte, then the R, G and B planes) with random images; returns
    the test images (N, 3, 32, 32) uint8 and labels."""
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for file, n in [(f"data_batch_{i}.bin", 4) for i in range(1, 6)] + [("test_batch.bin", n_test)]:
        labels = torch.randint(0, 10, (n, 1), generator=g, dtype=torch.uint8)
        images = torch.randint(0, 256, (n, 3 * 32 * 32), generator=g, dtype=torch.uint8)
        (folder / file).write_bytes(torch.cat([labels, images], 1).numpy().tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")
    return images.view(n_test, 3, 32, 32), labels.view(-1).long()


@pytest.mark.parametrize("reverse", [False, True])
def test_eval_measures_published_weights_on_the_test_set(mirror, catalogue, tmp_path, capsys, reverse):
    """`cnnatlas eval MODEL --data cifar10:DIR`: the published weights on CIFAR-10's test batch, each image
    normalised with the weights' mean and std: the accuracy and confusion matrix of the reference's own
    predictions, the published figures beside them. Weights whose categories come in another order than
    the dataset's classes (`reverse`) are scored by name."""
    if reverse:
        catalogue["categories"]["cifar-10"] = list(reversed(catalogue["categories"]["cifar-10"]))
    reference = cifar_resnet_reference(3, 10)
    serve_torchvision(mirror, catalogue, "resnet20", "CIFAR10", reference.state_dict())
    images, labels = _cifar10_folder(tmp_path / "cifar")
    w = pretrained.available_weights("resnet20")["CIFAR10"]
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (w.transforms.mean, w.transforms.std))
    with torch.no_grad():
        predicted = reference((images.float() / 255 - mean) / std).argmax(1)
    truth = 9 - labels if reverse else labels  # each label as an index of the weights' categories
    assert main(["eval", "resnet20", "--data", f"cifar10:{tmp_path / 'cifar'}", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 60 and report["weights"] == "CIFAR10" and report["classes"] == list(w.categories)
    assert report["test_acc"] == pytest.approx((predicted == truth).float().mean().item())
    assert report["confusion"][truth[0]][predicted[0]] >= 1 and sum(map(sum, report["confusion"])) == 60
    assert report["published"] == {"dataset": "CIFAR-10", "top1": 92.6, "top5": 99.81}
    assert main(["eval", "resnet20", "--data", f"cifar10:{tmp_path / 'cifar'}"]) == 0
    out = capsys.readouterr().out
    assert "resnet20 with its CIFAR10 weights" in out and "published: top-1 92.6%, top-5 99.81% on CIFAR-10" in out
    assert main(["eval", "resnet20", "--data", "digits"]) == 2  # other classes: refused, naming both
    err = capsys.readouterr().err
    assert "digits has 10 classes that the resnet20 CIFAR10 weights do not classify: 0, 1, 2, 3, …" in err
    assert main(["eval", "resnet20", "--checkpoint", str(tmp_path)]) == 2
    assert "--checkpoint is for a run folder" in capsys.readouterr().err


def test_eval_measures_imagenet_weights_on_a_folder_as_they_were_published(mirror, catalogue, tmp_path, capsys):
    """`cnnatlas eval resnet18 --data DIR`: a folder in ImageNet's own layout (DIR/val/<WordNet ID>/…, a subset
    of the 1000 classes, as Imagenette's), every image through the weights' preprocessing (resize 256, centre
    crop 224, bilinear) as torchvision's own transforms give it: the reference's loss, accuracy and confusion
    matrix. Classes named as the categories read the same; a class the weights do not know is refused."""
    from torchvision.io import read_image

    ids = pretrained.category_synsets(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    # ImageFolder numbers synset folders in name order, which is ImageNet-1K's class order
    assert len(ids) == len(set(ids)) == 1000 and ids == sorted(ids) and ids[0] == "n01440764"  # tench
    assert pretrained.category_synsets(CIFAR10_CLASSES) is None
    reference = randomize_norm_stats(torchvision.models.resnet18()).eval()
    serve_torchvision(mirror, catalogue, "resnet18", "IMAGENET1K_V1", reference.state_dict())
    synsets = {"n01440764": 0, "n01443537": 1, "n01484850": 2}  # tench, goldfish, great white shark
    (tmp_path / "net" / "train" / "n01440764").mkdir(parents=True)  # a train/ beside val/: not read
    _photo(tmp_path / "net" / "train" / "n01440764" / "0.png", seed=99)
    paths, labels = [], []
    for wnid, label in synsets.items():
        (tmp_path / "net" / "val" / wnid).mkdir(parents=True)
        for i, size in enumerate([(90, 120), (300, 250)]):  # neither square nor 224: the crop matters
            paths.append(_photo(tmp_path / "net" / "val" / wnid / f"{i}.png", seed=10 * label + i, size=size))
            labels.append(label)
    preprocess = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    with torch.no_grad():  # torchvision's own preprocessing and model, independently
        logits = reference(torch.stack([preprocess(read_image(p)) for p in paths]))
    truth = torch.tensor(labels)
    expected = torch.zeros(1000, 1000, dtype=torch.long)
    expected.index_put_((truth, logits.argmax(1)), torch.ones(len(paths), dtype=torch.long), accumulate=True)

    assert main(["eval", "resnet18", "--data", str(tmp_path / "net"), "--json"]) == 0
    text = capsys.readouterr().out
    report = json.loads(text)
    assert len(text.splitlines()) < 1100  # one line per row of the 1000 × 1000 matrix, not per count
    assert report["images"] == 6 and report["data"] == f"folder:{tmp_path / 'net'}"
    assert report["test_loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, truth).item(), rel=1e-4)
    assert report["test_acc"] == pytest.approx((logits.argmax(1) == truth).float().mean().item())
    assert torch.equal(torch.tensor(report["confusion"]), expected)
    assert main(["eval", "resnet18", "--data", str(tmp_path / "net")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"image folder {tmp_path / 'net' / 'val'} (6 images)" in out
    assert "confusion matrix (1000 × 1000 categories): in --json" in out and "true \\ predicted" not in out

    names = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    for wnid, label in synsets.items():  # the categories' own names read the same
        (tmp_path / "net" / "val" / wnid).rename(tmp_path / "net" / "val" / names[label])
    assert main(["eval", "resnet18", "--data", str(tmp_path / "net" / "val"), "--json"]) == 0
    assert torch.equal(torch.tensor(json.loads(capsys.readouterr().out)["confusion"]), expected)
    (tmp_path / "net" / "val" / "n99999999").mkdir()
    _photo(tmp_path / "net" / "val" / "n99999999" / "0.png")
    assert main(["eval", "resnet18", "--data", str(tmp_path / "net")]) == 2
    err = capsys.readouterr().err
    assert "has 1 class that the resnet18 IMAGENET1K_V1 weights do not classify: n99999999" in err
    assert "or their WordNet IDs (n01440764, …)" in err


def test_cifar_weights_name_the_datasets_classes():
    from cnnatlas.data.cifar import CIFAR10_CLASSES

    ten, hundred = (pretrained.available_weights("resnet44")[t] for t in ("CIFAR10", "CIFAR100"))
    assert ten.default and ten.categories == CIFAR10_CLASSES  # as `--data cifar10` numbers them
    assert len(set(hundred.categories)) == 100 and list(hundred.categories) == sorted(hundred.categories)
    assert hundred.categories[:3] == ("apple", "aquarium_fish", "baby") and hundred.categories[-1] == "worm"
    assert ten.transforms.crop == (32, 32) and ten.metrics == {"dataset": "CIFAR-10", "top1": 94.01, "top5": 99.77}


def test_weights_refuse_a_model_argument_they_were_not_trained_with():
    """SlowFast's 4x16 weights do not fit the 8x8 model: the call is refused before anything is
    downloaded, naming the weights that do fit."""
    default = pretrained.available_weights("slowfast_r50")["KINETICS400_4X16"]
    assert default.default and default.as_dict()["model_args"] == {"config": "4x16"}
    with pytest.raises(InvalidArgumentError) as err:
        cnnatlas.create_model("slowfast_r50", pretrained=True, config="8x8")
    assert str(err.value) == (
        "slowfast_r50: the KINETICS400_4X16 weights fit config='4x16'; got config='8x8'; "
        "weights='KINETICS400_8X8' fit config='8x8'"
    )
    with pytest.raises(InvalidArgumentError, match="KINETICS400_8X8 weights fit config='8x8'; got config='4x16';"):
        cnnatlas.create_model("slowfast_r50", weights="KINETICS400_8X8", config="4x16")


def test_timm_weights_through_the_hub_cache(mirror, caches):
    timm = pytest.importorskip("timm")
    reference = randomize_norm_stats(timm.create_model("mobilenetv1_100"))
    sha, commit = serve_timm(mirror, "mobilenet_v1", "ra4_e3600_r224_in1k", reference.state_dict())
    model = cnnatlas.create_model("mobilenet_v1", pretrained=True)
    assert same_outputs(model, reference, torch.randn(1, 3, 64, 64))
    repo = caches[1] / "models--timm--mobilenetv1_100.ra4_e3600_r224_in1k"
    snapshot = repo / "snapshots" / commit / "model.safetensors"
    assert snapshot.resolve() == repo / "blobs" / sha and (repo / "refs" / "main").read_text() == commit
    hub = pytest.importorskip("huggingface_hub")  # the hub's own client finds the file where we put it
    found = hub.try_to_load_from_cache(
        "timm/mobilenetv1_100.ra4_e3600_r224_in1k", "model.safetensors", cache_dir=caches[1]
    )
    assert found is not None and str(found) == str(snapshot)
    n = len(mirror.requests)
    cnnatlas.create_model("mobilenet_v1", pretrained=True)
    assert len(mirror.requests) == n  # from the cache, no request at all


def test_timm_weights_from_hf_endpoint(mirror, caches, monkeypatch):
    timm = pytest.importorskip("timm")
    reference = randomize_norm_stats(timm.create_model("mobilenetv1_100"), seed=2)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub-mirror.example.org/")
    url = pretrained.available_weights("mobilenet_v1")["ra4_e3600_r224_in1k"].url
    from safetensors.torch import save

    data = save(reference.state_dict())
    mirror.put(url.replace("https://huggingface.co", "https://hub-mirror.example.org"), data)
    path = "hub-mirror.example.org" + urllib.parse.urlsplit(url).path
    mirror.hub_headers[path] = {"X-Linked-Etag": hashlib.sha256(data).hexdigest(), "X-Repo-Commit": "c" * 40}
    assert same_outputs(cnnatlas.create_model("mobilenet_v1", pretrained=True), reference, torch.randn(1, 3, 64, 64))
    assert mirror.requests == [path]


def test_timm_checksum_mismatch_keeps_nothing(mirror, caches):
    timm = pytest.importorskip("timm")
    state = timm.create_model("mobilenetv1_100").state_dict()
    serve_timm(mirror, "mobilenet_v1", "ra4_e3600_r224_in1k", state, etag="0" * 64)
    with pytest.raises(DownloadError, match="published one is 0{64}"):
        cnnatlas.create_model("mobilenet_v1", pretrained=True)
    repo = caches[1] / "models--timm--mobilenetv1_100.ra4_e3600_r224_in1k"
    assert [p.name for p in repo.rglob("*") if p.is_file()] == ["0" * 64 + ".lock"]


def test_seresnet50_tag_from_timm(mirror):
    timm = pytest.importorskip("timm")
    reference = randomize_norm_stats(timm.create_model("seresnet50"), seed=3)
    serve_timm(mirror, "seresnet50", "ra2_in1k", reference.state_dict())
    model = cnnatlas.create_model("seresnet50", weights="ra2_in1k")
    assert model.pretrained_weights.transforms.resize == (256,)  # 224 / crop_pct 0.875
    assert same_outputs(model, reference, torch.randn(1, 3, 64, 64), atol=1e-4)


# -- local files and bad input -------------------------------------------------------------------------


def test_weights_from_local_files(tmp_path, caches):
    from safetensors.torch import save_file

    tv = randomize_norm_stats(torchvision.models.resnet18())
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    ours = cnnatlas.create_model("resnet18", num_classes=1000)
    randomize_norm_stats(ours, seed=5)
    save_file(ours.state_dict(), tmp_path / "ours.safetensors")
    x = torch.randn(1, 3, 64, 64)
    assert same_outputs(cnnatlas.create_model("resnet18", weights=tmp_path / "tv.pth"), tv, x)
    assert same_outputs(cnnatlas.create_model("resnet18", weights=str(tmp_path / "ours.safetensors")), ours, x)
    save_file(tv.state_dict(), tmp_path / "tv.safetensors")  # names sorted: put back in torchvision's order
    assert same_outputs(cnnatlas.create_model("resnet18", weights=tmp_path / "tv.safetensors"), tv, x)
    torch.save({"state_dict": tv.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")  # a training checkpoint
    assert same_outputs(cnnatlas.create_model("resnet18", weights=tmp_path / "ckpt.pt"), tv, x)
    timm = pytest.importorskip("timm")
    tm = randomize_norm_stats(timm.create_model("mobilenetv1_100"))
    save_file(tm.state_dict(), tmp_path / "timm.safetensors")
    assert same_outputs(cnnatlas.create_model("mobilenet_v1", weights=tmp_path / "timm.safetensors"), tm, x)


def test_bad_weights_arguments(tmp_path, caches):
    with pytest.raises(WeightsError, match="lenet5 has no published weights.*--pretrained"):
        cnnatlas.create_model("lenet5", pretrained=True)
    with pytest.raises(WeightsError, match=r"unknown weights 'IMAGENET1K_V3' \(its tags: IMAGENET1K_V1, IMAGENET1K_V2"):
        cnnatlas.create_model("resnet50", weights="IMAGENET1K_V3")
    with pytest.raises(InvalidArgumentError, match="classify 1000 categories; got num_classes=10"):
        cnnatlas.create_model("resnet18", pretrained=True, num_classes=10)
    with pytest.raises(InvalidArgumentError, match="pretrained must be True or False"):
        cnnatlas.create_model("resnet18", pretrained="IMAGENET1K_V1")
    with pytest.raises(WeightsError, match="not found"):
        cnnatlas.create_model("resnet18", weights=tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth: cannot be read as weights"):
        cnnatlas.create_model("resnet18", weights=tmp_path / "junk.pth")
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(WeightsError, match="fits neither"):
        cnnatlas.create_model("resnet18", weights=tmp_path / "r34.pth")


# -- cnnatlas predict MODEL --------------------------------------------------------------------------


def _photo(path, seed=0, size=(90, 120)):
    g = torch.Generator().manual_seed(seed)
    Image.fromarray(torch.randint(0, 256, (*size, 3), generator=g, dtype=torch.uint8).numpy()).save(path)
    return str(path)


def test_predict_a_photo_with_a_zoo_model(mirror, catalogue, tmp_path, capsys):
    from torchvision.io import read_image

    reference = randomize_norm_stats(torchvision.models.resnet18()).eval()
    serve_torchvision(mirror, catalogue, "resnet18", "IMAGENET1K_V1", reference.state_dict())
    photo = _photo(tmp_path / "photo.png")
    assert main(["predict", "resnet18", photo, "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    with torch.no_grad():  # torchvision's own preprocessing and model, independently
        probs = reference(weights.transforms()(read_image(photo))[None]).softmax(-1)[0]
    top = probs.topk(5)
    assert [t["index"] for t in result["top"]] == top.indices.tolist()
    assert [t["class"] for t in result["top"]] == [weights.meta["categories"][i] for i in top.indices]
    assert [t["probability"] for t in result["top"]] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert main(["predict", "resnet18", photo, "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{photo}: {result['top'][0]['class']}") and len(lines) == 3
    _photo(tmp_path / "another.png", seed=1)
    assert main(["predict", "resnet18", str(tmp_path), "--json"]) == 0  # a folder: its photographs, by name
    both = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in both] == [str(tmp_path / "another.png"), photo] and both[1] == result


def test_predict_a_clip_as_a_folder_of_frames(mirror, catalogue, tmp_path, capsys):
    reference = randomize_norm_stats(torchvision.models.video.r3d_18()).eval()
    serve_torchvision(mirror, catalogue, "r3d_18", "KINETICS400_V1", reference.state_dict())
    clip = tmp_path / "clip"
    clip.mkdir()
    frames = [_photo(clip / f"{i:03d}.png", seed=i, size=(60, 80)) for i in range(4)]
    assert main(["predict", "r3d_18", str(clip), "--json", "--top", "3"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    from torchvision.io import read_image

    video = torch.stack([read_image(f) for f in frames])
    weights = torchvision.models.video.R3D_18_Weights.KINETICS400_V1
    with torch.no_grad():
        probs = reference(weights.transforms()(video)[None]).softmax(-1)[0]
    assert [t["index"] for t in result["top"]] == probs.topk(3).indices.tolist()
    assert result["top"][0]["class"] == weights.meta["categories"][probs.argmax()]


def test_predict_a_long_clip_slides_the_window(mirror, catalogue, tmp_path, capsys):
    """20 frames through r3d_18's 16-frame window at stride 4: windows 0–15 and 4–19, averaged."""
    reference = randomize_norm_stats(torchvision.models.video.r3d_18()).eval()
    serve_torchvision(mirror, catalogue, "r3d_18", "KINETICS400_V1", reference.state_dict())
    clip = tmp_path / "long"
    clip.mkdir()
    frames = [_photo(clip / f"{i:03d}.png", seed=i, size=(60, 80)) for i in range(20)]
    assert main(["predict", "r3d_18", str(clip), "--json", "--top", "3", "--stride", "4"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    from torchvision.io import read_image

    x = torchvision.models.video.R3D_18_Weights.KINETICS400_V1.transforms()(
        torch.stack([read_image(f) for f in frames])
    )
    with torch.no_grad():  # by hand: each window through torchvision's model, then the mean of the probabilities
        windows = [reference(x[:, s : s + 16][None]).softmax(-1)[0] for s in (0, 4)]
    mean = (windows[0] + windows[1]) / 2
    assert result["window"] == 16 and result["stride"] == 4 and result["frames"] == 20
    assert [w["frames"] for w in result["windows"]] == [[0, 15], [4, 19]]
    for got, want in zip(result["windows"], windows):
        assert [t["index"] for t in got["top"]] == want.topk(3).indices.tolist()
    assert [t["index"] for t in result["top"]] == mean.topk(3).indices.tolist()
    assert [t["probability"] for t in result["top"]] == pytest.approx(mean.topk(3).values.tolist(), abs=1e-5)
    assert main(["predict", "r3d_18", str(clip), "--top", "3", "--stride", "4"]) == 0  # the same, for people
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"{result['top'][0]['class']}  (r3d_18 {result['weights']})")
    assert [line.split("%", 1)[1].strip() for line in lines[1:4]] == [t["class"] for t in result["top"]]
    assert lines[4].strip() == "20 frames, 2 windows of 16 frames, stride 4; the prediction above is their average"
    for line, win in zip(lines[5:], result["windows"]):
        first, last = win["frames"]
        assert line.split() == [
            "frames",
            f"{first}–{last}",
            f"{win['top'][0]['probability']:.2%}",
            *win["top"][0]["class"].split(),
        ]
    assert len(lines) == 7
    assert main(["predict", "r3d_18", str(clip), "--stride", "0"]) == 2


def test_predict_usage_errors(mirror, tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    (tmp_path / "clip.mp4").write_bytes(b"not a video")
    assert main(["predict", "r3d_18", str(tmp_path / "clip.mp4")]) == 2  # read before any weights are fetched
    err = capsys.readouterr().err
    assert "clip.mp4" in err and len(err.strip().splitlines()) == 1 and mirror.requests == []
    assert main(["predict", "lenet5", photo]) == 2  # no published weights: the way to weights of one's own
    err = capsys.readouterr().err
    assert "lenet5 has no published weights" in err and "train it (`cnnatlas train lenet5`)" in err
    state = tmp_path / "lenet5.pt"
    torch.save(cnnatlas.create_model("lenet5").state_dict(), state)
    for command in ("predict", "eval"):  # a bare state dict: the same way, naming the file
        assert main([command, "lenet5", *([photo] if command == "predict" else []), "--weights", str(state)]) == 2
        err = capsys.readouterr().err
        assert f"a state dict alone ({state}) carries neither" in err and "cnnatlas train lenet5" in err
    assert main(["predict", "lenet5", photo, "--weights", "V1"]) == 2  # a tag it does not have, named as such
    assert "lenet5: unknown weights 'V1' (it has no published weights)" in capsys.readouterr().err
    assert main(["predict", "resnet18", photo, "--checkpoint", "x"]) == 2
    assert "--checkpoint is for a run folder" in capsys.readouterr().err
    assert main(["predict", "resnet18", photo, "--weights", "V9"]) == 2
    err = capsys.readouterr().err
    assert "unknown weights 'V9'" in err and len(err.strip().splitlines()) == 1
    frames = tmp_path / "frames"
    frames.mkdir()
    _photo(frames / "0001.png")
    assert main(["predict", "r3d_18", photo]) == 2  # an image where a clip belongs, named as such
    assert "p.png: an image; expected a clip" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()  # a folder stands for its images for an image model: none is refused
    assert main(["predict", "resnet18", str(tmp_path / "empty")]) == 2
    assert "empty: a folder without image files" in capsys.readouterr().err
    assert mirror.requests == []  # each refused before any weights are fetched


def test_segmentation_weights_load_with_and_without_the_auxiliary_head(mirror, catalogue):
    reference = randomize_norm_stats(
        torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=True)
    ).eval()
    serve_torchvision(mirror, catalogue, "deeplabv3_resnet50", "COCO_WITH_VOC_LABELS_V1", reference.state_dict())
    x = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        expected = reference(x)["out"]
    for aux_loss in (True, False):  # the COCO weights carry aux_classifier; without the head it is dropped
        model = cnnatlas.create_model("deeplabv3_resnet50", pretrained=True, aux_loss=aux_loss)
        assert model.pretrained_weights.categories[0] == "__background__" and model.num_classes == 21
        with torch.no_grad():
            assert torch.allclose(model(x), expected, atol=1e-4)


@pytest.mark.slow  # ResNet-50 at 520 px, six forwards: about 40 s
def test_predict_a_photo_with_a_zoo_segmentation_model(mirror, catalogue, tmp_path, capsys):
    """deeplabv3_resnet50 with its (served) COCO weights: the mask beside the photo is torchvision's own
    model on its own preprocessing, upsampled to the photo's size, one VOC class per pixel in its colour."""
    from torchvision.io import read_image

    from cnnatlas.predict import mask_palette

    reference = randomize_norm_stats(
        torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=True)
    ).eval()
    serve_torchvision(mirror, catalogue, "deeplabv3_resnet50", "COCO_WITH_VOC_LABELS_V1", reference.state_dict())
    photo = _photo(tmp_path / "street.png", size=(30, 40))
    assert main(["predict", "deeplabv3_resnet50", photo, "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    weights = torchvision.models.segmentation.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1
    with torch.no_grad():
        logits = reference(weights.transforms()(read_image(photo))[None])["out"]
    expected = torch.nn.functional.interpolate(logits, size=(30, 40), mode="bilinear", align_corners=False)[0]
    expected = expected.argmax(0)
    categories = weights.meta["categories"]
    assert result["mask"] == str(tmp_path / "street.mask.png") and result["weights"] == "COCO_WITH_VOC_LABELS_V1"
    palette = mask_palette(categories)
    assert palette[0] == (0, 0, 0) and len(set(palette)) == 21  # background black, every class its own colour
    with Image.open(result["mask"]) as png:
        assert png.size == (40, 30)
        pixels = torch.from_numpy(np.asarray(png.convert("RGB"))).reshape(-1, 3)
    classes = torch.tensor([palette.index(tuple(p)) for p in pixels.tolist()]).view(30, 40)
    assert (classes == expected).float().mean() > 0.99, (classes == expected).float().mean()  # rounding at ties
    share = torch.bincount(expected.flatten(), minlength=21) / expected.numel()
    assert len(result["classes"]) >= 2  # a mask of one class everywhere would test little
    assert result["classes"] == pytest.approx({categories[i]: float(share[i]) for i in share.nonzero().flatten()})

    assert main(["predict", "deeplabv3_resnet50", photo, "--shift-average"]) == 0
    assert "street.mask.png" in capsys.readouterr().out
    assert main(["predict", "deeplabv3_resnet50", photo, "--stride", "2"]) == 2
    assert "--stride is for a video model" in capsys.readouterr().err
    assert main(["predict", "resnet18", photo, "--shift-average"]) == 2
    assert "resnet18 is a zoo classifier" in capsys.readouterr().err
