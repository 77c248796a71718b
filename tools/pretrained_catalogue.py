"""Write src/cnnatlas/pretrained.json: the published pretrained weights of the zoo's models.

Run once, with the torchvision and timm to take the catalogue from installed:

    PYTHONPATH=src python tools/pretrained_catalogue.py

Nothing is downloaded. From torchvision, each `*_Weights` enum of a builder the zoo reproduces
(a registered name with `torchvision=`) gives the URL (whose file name carries the SHA-256 prefix),
the categories, the preprocessing (`.transforms()`) and the published metrics (`.meta`). From timm,
`get_arch_pretrained_cfgs` gives the Hugging Face repository, mean/std, input size, crop fraction and
interpolation of each pretrained tag; the timm package carries no accuracy, so none is stored for them.
Segmentation weights (`SemanticSegmentation` preprocessing) resize only, without a crop (`"crop": []`),
and publish mean IoU and pixel accuracy instead of top-1/top-5.
Weights without categories (VGG-16's `IMAGENET1K_FEATURES`, a feature extractor only) are left out.
From PyTorchVideo's model zoo (`PYTORCHVIDEO`, written out here from its docs/source/model_zoo.md), the
Kinetics-400 SlowFast R50 checkpoints of the two configurations the zoo builds (`model_args`: the 4x16
default and 8x8): their URLs and published accuracy; PyTorchVideo publishes no checksum, so none is stored.
From chenyaofo/pytorch-cifar-models (`CIFAR`, written out here from its README), the CIFAR-10 and
CIFAR-100 weights of the CIFAR ResNets 20–56: projection shortcuts (`model_args`: shortcut B), the
SHA-256 prefix in each file's name as torchvision's, the published top-1/top-5, the test preprocessing
of the training code (chenyaofo/image-classification-codebase, conf/cifar10.conf and cifar100.conf).
From timm's ImageNetInfo (timm/data/_info/imagenet_synsets.txt), the WordNet IDs of ImageNet-1K's classes
in class-index order (`synsets`), which name the class folders of ImageNet's usual on-disk layout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import timm
import torchvision
from timm.models._registry import get_arch_pretrained_cfgs
from torchvision.models import get_model_weights

from cnnatlas import get_entry, list_models
from cnnatlas.models.slowfast import SLOWFAST_CONFIGS

OUT = Path(__file__).resolve().parents[1] / "src" / "cnnatlas" / "pretrained.json"

# torchvision's googlenet and inception_v3 builders set transform_input=True whenever weights are
# given (torchvision/models/googlenet.py, inception.py): the ported TensorFlow weights expect inputs
# in [-1, 1], and the model re-maps the ImageNet-normalised input itself.
TRANSFORM_INPUT = {"googlenet", "inception_v3"}
# The zoo names whose weights come from timm, and the timm architecture of each.
TIMM = {"mobilenet_v1": "mobilenetv1_100", "seresnet50": "seresnet50"}
# PyTorchVideo's model zoo (facebookresearch/pytorchvideo, docs/source/model_zoo.md at commit
# 366138bc36e636816e28a4204d9c2c38285128c1): the Kinetics-400 SlowFast R50 rows, 4x16 (the configuration
# slowfast_r50 builds by default, its 34.48 M parameters) and 8x8 (`config="8x8"`, 34.57 M). PySlowFast
# trained them (configs/Kinetics/pytorchvideo/SLOWFAST_{4x16,8x8}_R50.yaml, model PTVSlowFast, whose
# checkpoint names start "model."); their test preprocessing (those files and slowfast/config/defaults.py):
# the shorter side scaled to 256 (bilinear, no antialiasing), a 256×256 crop, mean 0.45 and std 0.225 on
# every channel. Their labels are Kinetics-400's classes in alphabetical order, as torchvision's video
# weights number them.
PYTORCHVIDEO = {
    "slowfast_r50": {
        "KINETICS400_4X16": {
            "config": "4x16",
            "url": "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOWFAST_4x16_R50.pyth",
            "top1": 75.34,
            "top5": 91.89,
            "params_millions": 34.48,
            "about": "α = 8, β = 1/8, fusion kernel 5",
        },
        "KINETICS400_8X8": {
            "config": "8x8",
            "url": "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/SLOWFAST_8x8_R50.pyth",
            "top1": 76.94,
            "top5": 92.69,
            "params_millions": 34.57,
            "about": "α = 4, β = 1/8, fusion kernel 7",
        },
    }
}


# chenyaofo/pytorch-cifar-models (README.md at commit 786c16252c0fc58ee9adac063f8337cc4a7a497a,
# BSD-3-Clause): the CIFAR ResNets of He et al. with projection shortcuts (a 1×1 conv and BN where the
# shape changes: option B, torchvision's `downsample`), trained 200 epochs by
# chenyaofo/image-classification-codebase (commit 610e6523ab462351700aaf629e6c739a9a30e903), whose test
# transform is ToTensor and Normalize with the dataset's mean and std below, on 32×32 images.
# Rows: model → dataset → (file's hash prefix, top-1, top-5).
CIFAR_RELEASE = "https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/"
CIFAR = {
    "resnet20": {"cifar10": ("4118986f", 92.60, 99.81), "cifar100": ("23dac2f1", 68.83, 91.01)},
    "resnet32": {"cifar10": ("ef93fc4d", 93.53, 99.77), "cifar100": ("84213ce6", 70.16, 90.89)},
    "resnet44": {"cifar10": ("2a3cabcb", 94.01, 99.77), "cifar100": ("ffe32858", 71.63, 91.58)},
    "resnet56": {"cifar10": ("187c023a", 94.37, 99.83), "cifar100": ("f2eff4c8", 72.63, 91.94)},
}
CIFAR_DATA = {  # tag, dataset name, categories id, mean, std (conf/cifar10.conf, conf/cifar100.conf)
    "cifar10": ("CIFAR10", "CIFAR-10", "cifar-10", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ("CIFAR100", "CIFAR-100", "cifar-100", (0.5070, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761)),
}
# The classes in label order (the datasets' batches.meta / meta files: CIFAR-100's fine labels are sorted).
CIFAR_CATEGORIES = {
    "cifar-10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "cifar-100": (
        "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel "
        "can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur "
        "dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion "
        "lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree "
        "pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea "
        "seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank "
        "telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
    ).split(),
}


def _categories_id(categories: list[str], known: dict[str, list[str]]) -> str:
    for key, names in known.items():
        if names == categories:
            return key
    key = {1000: "imagenet-1k", 400: "kinetics-400", 21: "voc-21"}.get(len(categories), str(len(known)))
    known[key] = list(categories)
    return key


def torchvision_entries(name: str, builder: str, categories: dict[str, list[str]]) -> tuple[str, dict]:
    enum = get_model_weights(builder)
    entries = {}
    for w in enum:
        meta = w.meta
        if not meta.get("categories"):
            continue
        t = w.transforms()
        video = type(t).__name__ == "VideoClassification"
        dense = type(t).__name__ == "SemanticSegmentation"  # resize only: no crop, per-pixel metrics
        ((dataset, metrics),) = meta["_metrics"].items()
        entries[w.name] = {
            "source": "torchvision",
            "url": w.url,
            "file": w.url.rsplit("/", 1)[1],
            "sha256": w.url.rsplit("-", 1)[1].split(".")[0],  # torchvision's names end in -<sha256 prefix>.pth
            "categories": _categories_id(meta["categories"], categories),
            "transforms": {
                "kind": "video" if video else "image",
                "resize": list(t.resize_size),
                "crop": [] if dense else list(t.crop_size),
                "interpolation": t.interpolation.value,
                "antialias": bool(getattr(t, "antialias", False)) if not video else False,
                "mean": list(t.mean),
                "std": list(t.std),
            },
            "transform_input": builder in TRANSFORM_INPUT,
            "metrics": (
                {"dataset": dataset, "miou": metrics["miou"], "pixel_acc": metrics["pixel_acc"]}
                if dense
                else {"dataset": dataset, "top1": metrics["acc@1"], "top5": metrics["acc@5"]}
            ),
            "num_params": meta.get("num_params"),
            "recipe": meta.get("recipe"),
            "docs": " ".join((meta.get("_docs") or "").split()) or None,
            "source_ref": f"torchvision {torchvision.__version__}: torchvision.models.{type(w).__name__}.{w.name}",
        }
    return enum.DEFAULT.name, entries


def timm_entries(name: str, arch: str, categories: dict[str, list[str]]) -> tuple[str, dict]:
    entries = {}
    for full_tag, cfg in get_arch_pretrained_cfgs(arch).items():
        tag = full_tag.split(".", 1)[1]
        crop = cfg.input_size[-1]
        entries[tag] = {
            "source": "timm",
            "hf_repo": cfg.hf_hub_id,
            "hf_file": cfg.hf_hub_filename or "model.safetensors",
            "url": f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/{cfg.hf_hub_filename or 'model.safetensors'}",
            "file": cfg.hf_hub_filename or "model.safetensors",
            "sha256": None,  # published by the hub with the file (its LFS ETag), checked at download
            "categories": "imagenet-1k",
            "transforms": {
                "kind": "image",
                "resize": [math.floor(crop / cfg.crop_pct)],  # timm's eval transform: shorter side crop / crop_pct
                "crop": [crop, crop],
                "interpolation": cfg.interpolation,
                "antialias": True,
                "mean": list(cfg.mean),
                "std": list(cfg.std),
            },
            "transform_input": False,
            "metrics": None,
            "num_params": None,
            "recipe": cfg.origin_url,
            "docs": (
                f"timm pretrained tag {full_tag} (licence {cfg.license}"
                + (f", paper {cfg.paper_ids}" if cfg.paper_ids else "")
                + "); "
                f"timm also evaluates at {cfg.test_input_size} with crop fraction {cfg.test_crop_pct}"
                if cfg.test_input_size
                else f"timm pretrained tag {full_tag} (licence {cfg.license})"
            ),
            "source_ref": f"timm {timm.__version__}: pretrained_cfg {full_tag}; the timm package carries no "
            "accuracy for it (timm's published results tables list them)",
        }
    first = next(iter(get_arch_pretrained_cfgs(arch)))
    return first.split(".", 1)[1], entries


def pytorchvideo_entries(name: str) -> tuple[str, dict]:
    entries = {}
    for tag, row in PYTORCHVIDEO[name].items():
        config = row["config"]
        alpha = SLOWFAST_CONFIGS[config].alpha
        entries[tag] = {
            "source": "pytorchvideo",
            "url": row["url"],
            "file": row["url"].rsplit("/", 1)[1],
            "sha256": None,  # PyTorchVideo publishes none: the file is checked by loading (names and shapes)
            "categories": "kinetics-400",
            "transforms": {
                "kind": "video",
                "resize": [256],
                "crop": [256, 256],
                "interpolation": "bilinear",
                "antialias": False,
                "mean": [0.45, 0.45, 0.45],
                "std": [0.225, 0.225, 0.225],
            },
            "transform_input": False,
            "metrics": {"dataset": "Kinetics-400", "top1": row["top1"], "top5": row["top5"]},
            "num_params": None,  # published in millions only: 34.48 and 34.57 (ours: 34,480,216 and 34,566,488)
            "recipe": "https://github.com/facebookresearch/SlowFast/blob/main/configs/Kinetics/pytorchvideo/"
            f"SLOWFAST_{config}_R50.yaml",
            "docs": f"PyTorchVideo's SlowFast R50 {config} ({row['about']}) trained on Kinetics-400 with "
            "PySlowFast; accuracy over 3 spatial crops × 10 clips of 32 frames sampled every 2nd. The model takes "
            f"one 32-frame clip; its Slow pathway reads every {alpha}th frame (PyTorchVideo's own pipeline picks "
            f"the Slow frames with a linspace instead). {row['params_millions']} M parameters published.",
            "model_args": {"config": config},
            "source_ref": "facebookresearch/pytorchvideo docs/source/model_zoo.md, commit "
            "366138bc36e636816e28a4204d9c2c38285128c1 (top-1, top-5, parameters in millions)",
        }
    return next(iter(entries)), entries


def cifar_entries(name: str, categories: dict[str, list[str]]) -> tuple[str, dict]:
    entries = {}
    for data, (sha, top1, top5) in CIFAR[name].items():
        tag, dataset, cats, mean, std = CIFAR_DATA[data]
        categories[cats] = CIFAR_CATEGORIES[cats]
        file = f"{data}_{name}-{sha}.pt"
        entries[tag] = {
            "source": "pytorch-cifar-models",
            "url": CIFAR_RELEASE + file,
            "file": file,
            "sha256": sha,
            "categories": cats,
            "transforms": {
                "kind": "image",
                "resize": [32],  # a CIFAR image as it is; a photo's shorter side scaled to 32, then the centre
                "crop": [32, 32],
                "interpolation": "bilinear",
                "antialias": True,
                "mean": list(mean),
                "std": list(std),
            },
            "transform_input": False,
            "metrics": {"dataset": dataset, "top1": top1, "top5": top5},
            "num_params": None,  # published rounded (0.27–0.86 M)
            "recipe": f"https://github.com/chenyaofo/image-classification-codebase/blob/master/conf/{data}.conf",
            "docs": f"{name} with projection shortcuts (option B: a 1×1 conv and BN where the shape changes) "
            f"trained on {dataset} by chenyaofo/pytorch-cifar-models: 200 epochs of SGD (Nesterov, cosine), "
            "random crops with 4-pixel padding and horizontal flips; accuracy on the 10,000 test images at 32×32.",
            "model_args": {"shortcut": "B"},
            "source_ref": "chenyaofo/pytorch-cifar-models README.md, commit "
            "786c16252c0fc58ee9adac063f8337cc4a7a497a (top-1, top-5, URL); chenyaofo/image-classification-codebase "
            "conf/*.conf, commit 610e6523ab462351700aaf629e6c739a9a30e903 (mean, std)",
        }
    return "CIFAR10", entries


def timm_keys(arch: str) -> list[str]:
    """The order of a timm model's state dict (a safetensors file keeps only the names, sorted), which
    the in-order loader pairs with ours."""
    import torch

    with torch.device("meta"):
        return list(timm.create_model(arch, pretrained=False).state_dict())


def main() -> None:
    categories: dict[str, list[str]] = {}
    models = {}
    for name in list_models():
        entry = get_entry(name)
        if entry.torchvision:
            default, weights = torchvision_entries(name, entry.torchvision, categories)
        elif name in TIMM:
            default, weights = timm_entries(name, TIMM[name], categories)
        elif name in PYTORCHVIDEO:
            default, weights = pytorchvideo_entries(name)
        elif name in CIFAR:
            default, weights = cifar_entries(name, categories)
        else:
            continue
        if weights:
            models[name] = {"default": default, "weights": weights}
    gnet = models["googlenet"]
    models["i3d"] = {
        "default": "IMAGENET1K_V1_INFLATED",
        "weights": {
            "IMAGENET1K_V1_INFLATED": {
                "source": "inflated",
                "from": ["googlenet", gnet["default"]],
                "categories": gnet["weights"][gnet["default"]]["categories"],
                "transforms": {**gnet["weights"][gnet["default"]]["transforms"], "kind": "frames"},
                "transform_input": True,
                "metrics": None,
                "docs": "GoogLeNet's ImageNet weights inflated to 3-D (Carreira & Zisserman 2017, §2.4): each 2-D "
                "filter repeated T times along time and divided by T. No accuracy is published for them.",
                "source_ref": "cnnatlas.inflate of the googlenet entry",
            }
        },
    }
    catalogue = {
        "about": __doc__.split("\n\n")[0],
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "categories": categories,
        "synsets": {"imagenet-1k": list(timm.data.ImageNetInfo("imagenet-1k").label_names())},
        "timm_keys": {name: timm_keys(arch) for name, arch in TIMM.items()},
        "models": models,
    }
    OUT.write_text(json.dumps(catalogue, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(models)} models, {sum(len(m['weights']) for m in models.values())} weights")


if __name__ == "__main__":
    main()
