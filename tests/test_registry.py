"""The registry: names, keyword validation, published figures with their sources."""

import json
from importlib import resources

import pytest
import torch

import cnnatlas
from cnnatlas import InvalidArgumentError, UnknownModelError
from cnnatlas.registry import register_model

ISSUE_2_MODELS = ["lenet5", "alexnet", "alexnet_2012"] + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]


def test_foundation_models_are_registered():
    names = cnnatlas.list_models()
    assert set(ISSUE_2_MODELS) <= set(names)
    assert names == sorted(names)


def test_list_models_pattern():
    assert cnnatlas.list_models("vgg1?_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert cnnatlas.list_models("no-such-*") == []


def test_unknown_name_lists_closest():
    with pytest.raises(UnknownModelError, match=r"unknown model 'vgg61'.*Did you mean.*'vgg16'"):
        cnnatlas.create_model("vgg61")
    with pytest.raises(UnknownModelError, match="'alexnet'"):
        cnnatlas.model_info("alexnt")


def test_unknown_keyword_is_named():
    with pytest.raises(
        InvalidArgumentError, match=r"unknown keyword argument 'num_clases'.*Did you mean 'num_classes'"
    ):
        cnnatlas.create_model("vgg16", num_clases=10)
    with pytest.raises(InvalidArgumentError, match="'batch_norm' \\(fixed by the model name\\)"):
        cnnatlas.create_model("vgg16", batch_norm=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": "ten"}, "'num_classes' must be int; got 'ten'"),
        ({"num_classes": 0}, "num_classes must be an integer ≥ 1; got 0"),
        ({"num_classes": True}, "'num_classes' must be int"),
        ({"drop_rate": 1.5}, "drop_rate must be a number in \\[0, 1\\); got 1.5"),
        ({"in_channels": -1}, "in_channels must be an integer ≥ 1"),
    ],
)
def test_invalid_keyword_values_are_named(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        cnnatlas.create_model("alexnet", **kwargs)


def test_invalid_choice():
    with pytest.raises(InvalidArgumentError, match="style must be one of 'classic', 'modern'; got 'retro'"):
        cnnatlas.create_model("lenet5", style="retro")


def test_model_info_has_published_figures_with_source():
    info = cnnatlas.model_info("vgg16")
    pub = info["published"]
    assert pub["params"] == 138_357_544 and pub["gmacs"] == 15.47 and pub["top1"] == 71.592
    assert pub["input_size"] == [3, 224, 224] and "torchvision" in pub["source"]
    assert info["arguments"] == {"num_classes": 1000, "in_channels": 3, "drop_rate": 0.5}
    assert info["torchvision"] == "vgg16"


def test_published_file_is_readable_and_sourced():
    data = json.loads(resources.files("cnnatlas").joinpath("published.json").read_text())
    for name, row in data["models"].items():
        assert row["source"] in data["sources"], f"{name}: source id {row['source']!r} has no citation"
        assert row["params"] is None or isinstance(row["params"], int)


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="registered twice"):
        register_model("vgg16", torch.nn.Identity, family="x", input_size=(3, 1, 1))


def test_agreement_rules():
    exact = cnnatlas.get_entry("vgg16").published
    assert exact.params_agreement(138_357_544).status == "exact"
    assert exact.params_agreement(138_357_545).status == "differs"
    rounded = cnnatlas.get_entry("alexnet_2012").published  # "60 million"
    assert rounded.params_agreement(60_965_224).status == "approx"
    assert rounded.params_agreement(70_000_000).status == "differs"
    assert exact.macs_agreement(15_470_264_320).status == "exact"  # 15.47 to 2 decimals
    assert exact.macs_agreement(15_480_000_000).status == "differs"
