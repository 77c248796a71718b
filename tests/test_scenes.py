"""Segmentation training: the Fashion-MNIST scenes, the trainer's per-pixel loss and metrics, eval, predict's
mask PNG, and the sliding window of long clips."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from cnnatlas.data import DataSplits
from cnnatlas.data.fashion_mnist import default_fashion_mnist_dir, has_idx_files
from cnnatlas.data.scenes import (
    BACKGROUND,
    ITEM_THRESHOLD,
    SCENE_CLASSES,
    load_scene_splits,
    make_scenes,
    split_seeds,
)
from cnnatlas.models.segmentation import ONE_PIXEL_SHIFTS, ShiftAveraged
from cnnatlas.train import TrainConfig, evaluate, iou_from_confusion, list_checkpoints, load_run, mean_iou, train

HAS_FASHION = has_idx_files(default_fashion_mnist_dir())
needs_fashion = pytest.mark.skipif(not HAS_FASHION, reason="Fashion-MNIST not installed (dataset-fashion-mnist)")


class TinyFCN(nn.Module):
    """A small fully convolutional net (output stride 2, one dilated layer): logits at input size."""

    def __init__(self, num_classes: int = 11, in_channels: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=2, dilation=2),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=4, dilation=4),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.body(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


@pytest.fixture
def tiny_fcn_registered(monkeypatch) -> str:
    """TinyFCN in the registry for one test, so that a run folder of it can be read back by eval and predict;
    the registry is as it was afterwards (other tests list every registered model)."""
    from cnnatlas import registry

    monkeypatch.setitem(registry._REGISTRY, "test_tiny_fcn", None)
    del registry._REGISTRY["test_tiny_fcn"]  # monkeypatch now removes whatever is registered under it at teardown
    registry.register_model("test_tiny_fcn", TinyFCN, family="test_tiny_fcn", input_size=(1, 64, 64))
    return "test_tiny_fcn"


# -- the dataset ----------------------------------------------------------------------------------


def test_scene_masks_follow_the_item_on_top():
    a = torch.zeros(28, 28, dtype=torch.uint8)
    a[:, :] = 200  # an item that fills its square
    b = torch.zeros(28, 28, dtype=torch.uint8)
    b[10:20, 10:20] = 100
    b[0, 0] = ITEM_THRESHOLD  # at the threshold: not part of the item
    g = torch.Generator().manual_seed(3)
    images, masks, used = make_scenes(torch.stack([a, b]), torch.tensor([4, 7]), 50, 40, 3, g)
    assert images.shape == (50, 1, 40, 40) and masks.shape == (50, 40, 40)
    for img, mask, items in zip(images[:, 0], masks, used):
        # every pixel: background exactly where nothing was pasted; the label is that of the last item there
        assert torch.equal(mask == BACKGROUND, img == 0)
        assert set(mask[img == 200].tolist()) <= {4} and set(mask[img == 100].tolist()) <= {7}
        assert (items[0] >= 0) and all(i in (-1, 0, 1) for i in items.tolist())


@needs_fashion
def test_scenes_are_deterministic_and_splits_separate():
    one = load_scene_splits(train_scenes=40, test_scenes=20, seed=5)
    two = load_scene_splits(train_scenes=40, test_scenes=20, seed=5)
    other = load_scene_splits(train_scenes=40, test_scenes=20, seed=6)
    assert torch.equal(one.train.images, two.train.images) and torch.equal(one.test.masks, two.test.masks)
    assert not torch.equal(one.train.images, other.train.images)
    assert one.info.task == "segmentation" and one.info.classes == SCENE_CLASSES and len(SCENE_CLASSES) == 11
    x, y = one.train[0]
    assert x.shape == (1, 64, 64) and y.shape == (64, 64) and y.dtype == torch.int64
    # the items come from their own split: every test scene is made of test images only
    from cnnatlas.data.fashion_mnist import find_fashion_mnist, read_idx_split

    folder = find_fashion_mnist()
    x_train, y_train = read_idx_split(folder, "train")
    x_test, y_test = read_idx_split(folder, "test")
    train_seed, test_seed = split_seeds(5)
    train_images, _, used_train = make_scenes(x_train, y_train, 40, 64, 4, torch.Generator().manual_seed(train_seed))
    _, masks, used_test = make_scenes(x_test, y_test, 20, 64, 4, torch.Generator().manual_seed(test_seed))
    # the loader draws exactly these, from these images
    assert torch.equal(train_images, one.train.images) and torch.equal(masks, one.test.masks)
    assert used_test.max() < len(x_test) and used_train.max() >= len(x_test)  # train indices span 60k


@needs_fashion
def test_test_scenes_do_not_depend_on_the_number_of_training_scenes():
    few = load_scene_splits(train_scenes=10, test_scenes=30, seed=2)
    many = load_scene_splits(train_scenes=300, test_scenes=30, seed=2)
    assert torch.equal(few.test.images, many.test.images) and torch.equal(few.test.masks, many.test.masks)
    assert len({*split_seeds(0), *split_seeds(1), *split_seeds(2)}) == 6


# -- metrics --------------------------------------------------------------------------------------


def test_iou_against_a_hand_computation():
    # rows: true class, columns: predicted
    confusion = torch.tensor([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    # class 0: TP 5, FP 2, FN 1 → 5/8; class 1: TP 3, FP 1, FN 2 → 3/6; class 2 absent → NaN, left out
    iou = iou_from_confusion(confusion)
    assert iou[:2] == pytest.approx([5 / 8, 3 / 6]) and math.isnan(iou[2])
    assert mean_iou(confusion) == pytest.approx((5 / 8 + 3 / 6) / 2)


def test_evaluate_counts_every_pixel():
    class Fixed(nn.Module):
        def forward(self, x):  # predicts class 1 on the left half, 0 on the right half
            logits = torch.zeros(x.shape[0], 2, 2, 2)
            logits[:, 1, :, 0] = 1.0
            logits[:, 0, :, 1] = 1.0
            return logits

    masks = torch.tensor([[[1, 0], [0, 0]]])  # true: one pixel of class 1
    loader = [(torch.zeros(1, 1, 2, 2), masks)]
    result = evaluate(Fixed(), loader, 2, torch.device("cpu"))
    assert result.count == 4 and result.acc == pytest.approx(3 / 4)
    assert result.confusion.tolist() == [[2, 1], [0, 1]]
    assert result.miou == pytest.approx((2 / 3 + 1 / 2) / 2)


# -- training -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes() -> DataSplits:
    if not HAS_FASHION:
        pytest.skip("Fashion-MNIST not installed")
    return load_scene_splits(train_scenes=2000, test_scenes=200, max_items=3, seed=0)


def _config(tmp_path, epochs: int, **kw) -> TrainConfig:
    return TrainConfig(
        "lenet5",
        data="fashion-mnist-scenes",
        epochs=epochs,
        batch_size=32,
        optimizer="adamw",
        lr=5e-3,
        weight_decay=1e-4,
        warmup_epochs=0.2,
        device="cpu",
        quiet=True,
        out=str(tmp_path / "run"),
        **kw,
    )


@pytest.mark.slow
def test_short_training_learns_and_resumes(tmp_path, scenes):
    background_only = torch.zeros(11, 11, dtype=torch.long)
    counts = torch.bincount(scenes.test.masks.flatten(), minlength=11)
    background_only[:, BACKGROUND] = counts  # predicting background everywhere
    baseline = mean_iou(background_only)
    assert baseline < 0.1

    torch.manual_seed(0)
    first = train(_config(tmp_path, 3), data=scenes, model=TinyFCN())
    assert first["task"] == "segmentation" and len(first["test_iou"]) == 11
    # resume to 6 epochs: the same run folder, trained on from its checkpoint
    done = train(_config(tmp_path, 6), resume=True, data=scenes, model=TinyFCN())
    assert done["test_miou"] > max(0.3, 3 * baseline) and done["test_miou"] > first["test_miou"], done
    assert done["test_pixel_acc"] == done["test_acc"] > 0.85
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6] and all("test_miou" in h for h in history)
    assert len(list_checkpoints(tmp_path / "run")) >= 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["task"] == "segmentation" and config["resumes"][0]["after_epoch"] == 3


@needs_fashion
def test_the_result_line_names_what_the_task_measures(tmp_path, colour_folder):
    """The last line of a run: mean IoU and pixel accuracy for segmentation (no top-5 of pixels), top-1 and
    top-5 for classification (top-3 of 3 classes); "1 epoch", not "1 epochs". Neither it nor an epoch's line
    wraps in a log."""
    import io

    from rich.console import Console

    from cnnatlas.train import default_config

    def result_line(config, epoch_says: str = "", **kw) -> str:
        out = io.StringIO()
        train(config, console=Console(file=out, width=60), **kw)  # a log file: narrow, no terminal to wrap
        lines = out.getvalue().strip().splitlines()
        epochs = [line for line in lines if line.startswith("epoch ") and "  test " in line]  # not the bar
        assert epochs and all(line.rstrip().endswith(" s") for line in epochs), lines  # each epoch one line
        assert all(epoch_says in line for line in epochs), (epoch_says, epochs)
        assert "1 epochs" not in out.getvalue(), lines  # the header and the result line alike
        return " ".join(lines[-1].split())

    small = load_scene_splits(train_scenes=64, test_scenes=32, max_items=2, seed=0)
    config = dataclasses.replace(_config(tmp_path / "seg", 1), quiet=False)
    dense = result_line(config, data=small, model=TinyFCN())
    assert dense.startswith("test mean IoU ") and "(pixel accuracy " in dense and "after 1 epoch, " in dense, dense
    assert "top-5" not in dense and "test accuracy" not in dense, dense

    digits = result_line(default_config("lenet5", "digits", epochs=2, out=str(tmp_path / "cls")), "  top-5 ")
    assert digits.startswith("test accuracy ") and "(top-5 " in digits and "after 2 epochs, " in digits, digits

    # three classes: what test_top5 counts is the top 3, and the lines say so
    rgb = default_config("lenet5", str(colour_folder), epochs=1, out=str(tmp_path / "rgb-run"))
    three = result_line(rgb, "  top-3 ")
    assert "(top-3 " in three and "top-5" not in three and "after 1 epoch, " in three, three


@pytest.mark.slow  # the atlas evaluates the run on the 2,000 test scenes
@needs_fashion
def test_the_pictures_and_the_atlas_show_a_segmentation_runs_mean_iou(tmp_path):
    """A segmentation run's curves are pixel accuracy and mean IoU (no top-5 of pixels), and the atlas's
    runs table gives its mean IoU and no top-5."""
    import re

    from cnnatlas.viz.atlas import build_atlas
    from cnnatlas.viz.runs import plot_training

    small = load_scene_splits(train_scenes=64, test_scenes=32, max_items=2, seed=0)
    run = tmp_path / "runs" / "seg"
    config = dataclasses.replace(_config(tmp_path, 2), model="deeplabv3", out=str(run), batch_size=16)
    metrics = train(config, data=small)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    acc_ax = plot_training(run, out=tmp_path / "train.png").axes[1]
    lines = {line.get_label(): line for line in acc_ax.get_lines()}
    assert set(lines) == {"training pixel accuracy", "test pixel accuracy", "test mean IoU"}
    assert list(lines["test mean IoU"].get_ydata()) == pytest.approx([100 * h["test_miou"] for h in history])
    assert f"last test mean IoU {100 * metrics['test_miou']:.2f}%" == acc_ax.get_title()

    build_atlas(tmp_path / "atlas", models="lenet5", runs=tmp_path / "runs", claims="none", erf=False, diagrams=False)
    page = (tmp_path / "atlas" / "runs.html").read_text()
    row = re.search(r'<tr><td><a href="#seg">.*?</tr>', page).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[4:7] == [f"{100 * metrics['test_acc']:.2f}", "—", f"{100 * metrics['test_miou']:.2f}"], cells
    assert "test mean IoU %" in page and "Loss, pixel accuracy and mean IoU per epoch" in page


def test_a_classifier_on_scenes_is_refused(tmp_path):
    from cnnatlas import InvalidArgumentError
    from cnnatlas.zoo import create_model

    images, masks, _ = make_scenes(
        torch.randint(0, 255, (4, 28, 28), dtype=torch.uint8),
        torch.arange(4),
        8,
        64,
        2,
        torch.Generator().manual_seed(0),
    )
    from cnnatlas.data.base import DataInfo
    from cnnatlas.data.scenes import SceneDataset

    ds = SceneDataset(images, masks, (0.1,), (0.3,))
    info = DataInfo("fashion-mnist-scenes", SCENE_CLASSES, 1, 64, 64, (0.1,), (0.3,), task="segmentation")
    data = DataSplits(ds, ds, info, "four random items")
    with pytest.raises(InvalidArgumentError, match="segmentation"):
        train(_config(tmp_path, 1), data=data, model=create_model("lenet5", num_classes=11, in_channels=1))


def test_a_dense_model_on_a_classification_dataset_is_refused(tmp_path, capsys):
    """One class per image meets a map of class scores: one line naming both, exit 2, nothing written
    (the loss would otherwise fail mid-epoch with a traceback about target dimensions)."""
    from cnnatlas.cli import main

    run = tmp_path / "run"
    assert main(["train", "deeplabv3", "--data", "digits", "--epochs", "1", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "digits is a classification dataset" in err and "deeplabv3 gives a map of class scores" in err
    assert "(10, 64, 64)" in err and "Traceback" not in err and not run.exists()


def test_mask_palette_gives_background_black_and_every_class_its_own_colour():
    from cnnatlas.predict import TAB10, mask_palette, voc_colour

    assert mask_palette(SCENE_CLASSES) == (*TAB10, (0, 0, 0))  # the items in tab10's order, background last
    voc = ("__background__", *(f"c{i}" for i in range(20)))
    assert mask_palette(voc)[0] == (0, 0, 0) and len(set(mask_palette(voc))) == 21
    many = ("background", *(f"c{i}" for i in range(40)))
    assert len(set(mask_palette(many))) == 41 and mask_palette(many)[1] == voc_colour(1)
    assert [voc_colour(i) for i in (1, 2, 3, 15)] == [(128, 0, 0), (0, 128, 0), (128, 128, 0), (192, 128, 128)]


def test_a_mask_replaces_only_a_mask_predict_wrote(tmp_path, monkeypatch):
    """write_masks tags each PNG as predict's; an existing file without the tag is the user's: nothing is
    written and it stays as it was. A write that fails leaves the earlier mask whole and no temporary file."""
    from PIL import Image

    from cnnatlas import InvalidArgumentError
    from cnnatlas.predict import is_predicted_mask, mask_palette, write_masks

    classes = SCENE_CLASSES
    mask = torch.full((8, 8), 10)  # background
    mask[2:5, 3:7] = 4  # a Coat
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    [result] = write_masks([str(first)], [mask], classes)
    out = tmp_path / "a.mask.png"
    assert result["mask"] == str(out) and is_predicted_mask(out)
    assert result["classes"] == {"Coat": 12 / 64, "background": 52 / 64}
    assert list(result["classes"]) == ["background", "Coat"]  # the largest share first
    with Image.open(out) as png:
        assert png.getpixel((3, 2)) == mask_palette(classes)[4] and png.getpixel((0, 0)) == (0, 0, 0)
    write_masks([str(first)], [torch.zeros(8, 8, dtype=torch.long)], classes)  # its own mask: replaced
    all_tshirt = [(64, mask_palette(classes)[0])]
    with Image.open(out) as png:
        assert png.getcolors() == all_tshirt

    theirs = tmp_path / "b.mask.png"  # a ground-truth mask of the user's, named as predict names its own
    Image.new("RGB", (8, 8), (9, 9, 9)).save(theirs)
    before = theirs.read_bytes()
    with pytest.raises(InvalidArgumentError, match=r"b\.mask\.png exists and is not a mask predict wrote"):
        write_masks([str(first), str(second)], [mask, mask], classes)
    assert theirs.read_bytes() == before and not is_predicted_mask(theirs)
    with Image.open(out) as png:  # and nothing else was written either
        assert png.getcolors() == all_tshirt

    # out_dir: the masks go there; two images of one name from two folders would collide there
    [moved] = write_masks([str(second)], [mask], classes, out_dir=tmp_path / "masks")
    assert moved["mask"] == str(tmp_path / "masks" / "b.mask.png") and theirs.read_bytes() == before
    other = tmp_path / "other" / "b.png"
    with pytest.raises(InvalidArgumentError, match="would both write their mask to"):
        write_masks([str(second), str(other)], [mask, mask], classes, out_dir=tmp_path / "masks")

    def broken_save(self, fp, *args, **kwargs):  # the disk fills up halfway through the PNG
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        write_masks([str(first)], [mask], classes)
    monkeypatch.undo()
    with Image.open(out) as png:  # the earlier mask, whole
        assert png.getcolors() == all_tshirt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mask.png", "b.mask.png", "masks"]


@pytest.mark.slow
def test_eval_and_predict_commands(tmp_path, scenes, capsys, tiny_fcn_registered):
    from PIL import Image

    from cnnatlas import InvalidArgumentError
    from cnnatlas.cli import main
    from cnnatlas.predict import mask_palette, run_masks, run_predictions

    name = tiny_fcn_registered
    small = DataSplits(scenes.train, torch.utils.data.Subset(scenes.test, range(50)), scenes.info, "scenes")
    config = TrainConfig(
        name,
        data="fashion-mnist-scenes",
        epochs=2,
        batch_size=32,
        optimizer="adamw",
        lr=5e-3,
        warmup_epochs=0.2,
        device="cpu",
        quiet=True,
        out=str(tmp_path / "run"),
    )
    train(config, data=small)
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    confusion = torch.tensor(report["confusion"])
    assert report["task"] == "segmentation" and report["images"] == 2000 and report["pixels"] == 2000 * 64 * 64
    assert confusion.sum() == report["pixels"]
    assert report["test_pixel_acc"] == pytest.approx(float(confusion.diag().sum() / confusion.sum()))
    assert report["test_miou"] == pytest.approx(mean_iou(confusion))
    assert list(report["test_iou"]) == list(SCENE_CLASSES)
    # the confusion picture evaluates the run as eval does (normalised as the run's inputs were), over pixels
    from cnnatlas.viz import plot_confusion, run_confusion

    pictured = run_confusion(tmp_path / "run")
    assert pictured["confusion"].tolist() == report["confusion"]
    assert pictured["miou"] == pytest.approx(report["test_miou"]) and pictured["images"] == 2000
    title = " ".join(plot_confusion(tmp_path / "run", result=pictured).get_suptitle().split())
    assert f"test mean IoU {100 * report['test_miou']:.2f}%" in title and f"{2000 * 64 * 64:,} pixels of 2,000" in title
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert "IoU per class" in capsys.readouterr().out
    # --shift-average: the same test set, the prediction averaged over ONE_PIXEL_SHIFTS
    assert main(["eval", str(tmp_path / "run"), "--json", "--shift-average"]) == 0
    averaged = json.loads(capsys.readouterr().out)
    assert averaged["shift_average"] == [list(s) for s in ONE_PIXEL_SHIFTS] and averaged["images"] == 2000
    run = load_run(tmp_path / "run")
    test = load_scene_splits(train_scenes=1).test  # the run's test scenes: the default 2,000
    test.mean, test.std = (torch.tensor(v).view(-1, 1, 1) for v in (run.info.mean, run.info.std))
    loader = torch.utils.data.DataLoader(test, batch_size=256)
    expected = evaluate(ShiftAveraged(run.model, ONE_PIXEL_SHIFTS), loader, 11, torch.device("cpu"))
    assert averaged["test_miou"] == pytest.approx(mean_iou(expected.confusion))
    assert averaged["test_miou"] != pytest.approx(report["test_miou"], abs=1e-9)  # another prediction
    assert main(["eval", str(tmp_path / "run"), "--shift-average"]) == 0
    assert "moved one pixel down, right and both" in " ".join(capsys.readouterr().out.split())  # lines wrap

    # a test scene as a PNG, enlarged to 128×128: its mask comes back at that size, beside it
    image = tmp_path / "scene.png"
    Image.fromarray(scenes.test.images[0, 0].numpy()).resize((128, 128)).save(image)
    assert main(["predict", str(tmp_path / "run"), str(image), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    out = tmp_path / "scene.mask.png"
    assert result["mask"] == str(out) and out.is_file()
    with Image.open(out) as mask:
        assert mask.size == (128, 128) and mask.mode == "RGB"
        colours = {c for _, c in mask.getcolors(10_000)}
    assert colours <= set(mask_palette(SCENE_CLASSES)) and (0, 0, 0) in colours  # background is black
    assert sum(result["classes"].values()) == pytest.approx(1.0)
    assert main(["predict", str(tmp_path / "run"), str(image)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "scene.mask.png" in printed
    for name, share in result["classes"].items():  # a class on a pixel or two reads "<0.1%", not "0.0%"
        assert f"{name} {share:.1%}" in printed if share >= 0.0005 else f"{name} <0.1%" in printed
    assert main(["predict", str(tmp_path / "run"), str(image), "--json", "--shift-average"]) == 0
    shifted_result = json.loads(capsys.readouterr().out)[0]
    assert shifted_result["mask"] == str(out) and sum(shifted_result["classes"].values()) == pytest.approx(1.0)
    # the classes come largest share first; --top K keeps the K largest
    shares = list(result["classes"].values())
    assert len(shares) >= 2 and shares == sorted(shares, reverse=True)
    assert main(["predict", str(tmp_path / "run"), str(image), "--json", "--top", "1"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["classes"] == dict(list(result["classes"].items())[:1])
    # the library call behind the command: the same mask and shares
    assert run_masks(run, [str(image)]) == [{**result, "classes": pytest.approx(result["classes"])}]
    with pytest.raises(InvalidArgumentError, match="segmentation run: run_masks gives its masks"):
        run_predictions(run, [str(image)])
    # a file of the user's where the mask would go is left alone, and predict says so (exit 2)
    out.unlink()
    out.write_bytes(b"the user's own annotation")
    assert main(["predict", str(tmp_path / "run"), str(image)]) == 2
    assert "scene.mask.png exists and is not a mask predict wrote" in capsys.readouterr().err
    assert out.read_bytes() == b"the user's own annotation"
    assert main(["predict", str(tmp_path / "run"), str(image), "--out-dir", str(tmp_path / "masks"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["mask"] == str(tmp_path / "masks" / "scene.mask.png")
    assert out.read_bytes() == b"the user's own annotation"
    # a folder stands for its images, by name; the masks predict wrote there are not predicted the next time
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in (1, 0):
        Image.fromarray(scenes.test.images[i, 0].numpy()).save(folder / f"scene{i}.png")
    (folder / "notes.txt").write_text("not an image")
    for _ in range(2):
        assert main(["predict", str(tmp_path / "run"), str(folder), "--json"]) == 0
        done = json.loads(capsys.readouterr().out)
        assert [r["image"] for r in done] == [str(folder / "scene0.png"), str(folder / "scene1.png")]
    assert sorted(p.name for p in folder.iterdir()) == [
        "notes.txt",
        "scene0.mask.png",
        "scene0.png",
        "scene1.mask.png",
        "scene1.png",
    ]
    assert run_masks(run, [str(folder / "scene1.png")])[0]["classes"] == pytest.approx(done[1]["classes"])
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "empty")]) == 2
    assert "empty: a folder without image files (jpg, jpeg, png" in capsys.readouterr().err


@needs_fashion
def test_the_command_line_sets_the_number_of_training_scenes(tmp_path, capsys, tiny_fcn_registered):
    """--train-scenes N: the run draws N training scenes (recorded in config.json), the test scenes stay those
    of the default; a resume cannot change N, and a dataset other than the scenes refuses it, leaving nothing."""
    from cnnatlas.cli import main
    from cnnatlas.data import load_dataset

    data = load_dataset("fashion-mnist-scenes", 64, train_scenes=48)
    default_test = load_scene_splits(train_scenes=1).test
    assert len(data.train) == 48 and torch.equal(data.test.images, default_test.images)
    assert "48 train / 2,000 test scenes" in data.source

    run = tmp_path / "run"
    common = ["--data", "fashion-mnist-scenes", "--batch-size", "16", "--device", "cpu", "--quiet", "--out", str(run)]
    assert main(["train", tiny_fcn_registered, *common, "--train-scenes", "48", "--epochs", "1"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["train_scenes"] == 48
    assert "48 train / 2,000 test scenes" in config["data_origin"]["source"]

    capsys.readouterr()
    assert main(["train", tiny_fcn_registered, *common, "--train-scenes", "96", "--epochs", "2", "--resume"]) == 2
    assert "train_scenes 48 → 96" in capsys.readouterr().err
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]

    other = tmp_path / "digits"
    assert main(["train", "lenet5", "--train-scenes", "48", "--epochs", "1", "--quiet", "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert "train_scenes=48 is for --data fashion-mnist-scenes" in err and "got --data digits" in err
    assert not other.exists()
    assert main(["train", "lenet5", "--data", "fashion-mnist-scenes", "--train-scenes", "0", "--out", str(other)]) == 2
    assert "train_scenes must be a positive integer; got 0" in capsys.readouterr().err


@needs_fashion
def test_a_run_with_tuples_in_its_model_args_resumes(tmp_path, capsys):
    """`--model-arg "backbone_args={'blocks': (1, 3, 5)}"`: the lean model of the README is built and
    trained; config.json keeps the counts as a list, and the same command line resumes the run (a tuple
    equals the list it was saved as) where other counts are refused; a backbone_args that is not a dict
    is refused in one line."""
    from cnnatlas.cli import main
    from cnnatlas.train import load_run

    run = tmp_path / "lean"
    common = ["--data", "fashion-mnist-scenes", "--train-scenes", "32", "--batch-size", "16", "--device", "cpu"]
    lean = [*common, "--model-arg", "backbone_args={'blocks': (1, 3, 5)}", "--model-arg", "channels=32"]
    lean += ["--quiet", "--out", str(run)]
    assert main(["train", "deeplabv3plus", *lean, "--epochs", "1"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["model_kwargs"]["backbone_args"] == {
        "blocks": [1, 3, 5]
    }
    assert main(["train", "deeplabv3plus", *lean, "--epochs", "2", "--resume"]) == 0
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert load_run(run).model.backbone.blocks == (1, 3, 5)
    capsys.readouterr()
    other = [a.replace("(1, 3, 5)", "(1, 2, 6)") for a in lean]
    assert main(["train", "deeplabv3plus", *other, "--epochs", "3", "--resume"]) == 2
    assert "--resume cannot change model_kwargs" in capsys.readouterr().err
    bad = tmp_path / "bad"
    args = [*common, "--model-arg", "backbone_args=[1, 3, 5]", "--epochs", "1", "--out", str(bad)]
    assert main(["train", "deeplabv3plus", *args]) == 2
    assert "backbone_args must be a dict of the backbone's arguments" in capsys.readouterr().err
    assert not bad.exists()


# -- long clips -----------------------------------------------------------------------------------


def test_window_starts_cover_the_clip():
    from cnnatlas.windows import window_starts

    assert window_starts(16, 16, 8) == [0]
    assert window_starts(40, 16, 8) == [0, 8, 16, 24]
    assert window_starts(37, 16, 8) == [0, 8, 16, 21]  # the last window ends on the last frame
    assert window_starts(5, 16, 4) == [0]


def test_sliding_window_averages_the_window_scores():
    from cnnatlas.windows import sliding_window

    # a "model" whose logits are (mean of the window's frame values, 0): frames numbered 0…9
    clip = torch.arange(10.0).view(1, 10, 1, 1)  # (C, T, H, W)

    def scores(x):
        return torch.stack([x.mean(dim=(1, 2, 3, 4)), torch.zeros(x.shape[0])], dim=1)

    starts, per_window, mean = sliding_window(scores, clip, window=4, stride=3)
    assert starts == [0, 3, 6]
    # windows 0–3, 3–6, 6–9: means 1.5, 4.5, 7.5; probability of class 0 = sigmoid(mean)
    by_hand = [1 / (1 + math.exp(-m)) for m in (1.5, 4.5, 7.5)]
    assert per_window[:, 0].tolist() == pytest.approx(by_hand)
    assert mean.tolist() == pytest.approx([sum(by_hand) / 3, 1 - sum(by_hand) / 3])
    # a clip shorter than the window is looped to fill it: frames 0, 1, 2, 0
    starts, per_window, mean = sliding_window(scores, torch.arange(3.0).view(1, 3, 1, 1), window=4, stride=2)
    assert starts == [0] and mean[0] == pytest.approx(1 / (1 + math.exp(-0.75)))


# -- the claims, on quick budgets ------------------------------------------------------------------


@needs_fashion
@pytest.mark.slow
@pytest.mark.parametrize("claim_id", ["gap-dense", "dilation-resolution", "inflation-transfer"])
def test_dense_claims_hold_on_quick_budgets(claim_id):
    from cnnatlas.claims import dense, get_claim

    assert get_claim(claim_id).slow
    measure = {
        "gap-dense": dense.measure_gap_dense,
        "dilation-resolution": dense.measure_dilation_resolution,
        "inflation-transfer": dense.measure_inflation_transfer,
    }[claim_id]
    m = measure(dense.QUICK[claim_id])
    assert m.passed, m.measured
    v = m.values
    if claim_id == "gap-dense":
        assert v["gap_miou"] < v["dense_miou"] - 0.15 and v["params_gap"] < v["params_dense"]
    elif claim_id == "dilation-resolution":
        a, b = v["rows"]["8"], v["rows"]["32"]
        assert a["params"] == b["params"] and a["feature_map"] == [8, 8] and b["feature_map"] == [2, 2]
        assert a["macs"] > 2 * b["macs"] and a["test_miou"] > b["test_miou"]
    else:
        assert all(g > 0 for g in v["first_epoch_gain"] + v["last_epoch_gain"]) and len(v["runs"]) == 2


def test_scenes_defaults_and_data_lookup():
    from cnnatlas.data import dataset_kind
    from cnnatlas.train import default_config
    from cnnatlas.train.loop import choose_image_size

    assert dataset_kind("fashion-mnist-scenes") == "fashion-mnist-scenes"
    assert dataset_kind("fashion-mnist-scenes:/somewhere") == "fashion-mnist-scenes"
    assert dataset_kind("fashion-mnist:/somewhere") == "fashion-mnist"
    config = default_config("deeplabv3", "fashion-mnist-scenes")
    assert config.optimizer == "adamw" and config.augment == "none" and choose_image_size(config) == 64


def test_an_auxiliary_head_is_trained_too(tmp_path):
    """A model that returns (out, aux) in training mode (torchvision's aux_loss) trains; eval uses out."""
    from cnnatlas.data.base import DataInfo
    from cnnatlas.data.scenes import SceneDataset
    from cnnatlas.zoo import create_model

    images, masks, _ = make_scenes(
        torch.randint(0, 255, (8, 28, 28), dtype=torch.uint8),
        torch.arange(8),
        32,
        64,
        2,
        torch.Generator().manual_seed(0),
    )
    ds = SceneDataset(images, masks, (0.1,), (0.3,))
    info = DataInfo("fashion-mnist-scenes", SCENE_CLASSES, 1, 64, 64, (0.1,), (0.3,), task="segmentation")
    model = create_model("fcn", backbone="resnet20", num_classes=11, in_channels=1, aux_loss=True)
    aux_before = [p.clone() for p in model.aux_head.parameters()]
    metrics = train(_config(tmp_path, 1), data=DataSplits(ds, ds, info, "random items"), model=model)
    assert 0 <= metrics["test_miou"] <= 1
    assert any(not torch.equal(a, b) for a, b in zip(aux_before, model.aux_head.parameters()))


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((16, 16), (301, 411)),
        ((37, 53), (300, 200)),
        ((500, 300), (77, 91)),
        ((65, 97), (1000, 1500)),
        ((1, 5), (50, 7)),
    ],
)
def test_the_mask_upsampled_in_bands_is_the_mask_upsampled_whole(source, target, monkeypatch):
    """upsampled_argmax, band by band of output rows (up- and downsampling, one row a band up to all of
    them), gives the argmax of F.interpolate's whole (C, H, W) scores; no band holds more than its rows."""
    from cnnatlas.predict import upsampled_argmax

    torch.manual_seed(0)
    logits = torch.randn(1, 11, *source)
    whole = torch.nn.functional.interpolate(logits, size=target, mode="bilinear", align_corners=False)[0].argmax(0)
    height, width = target
    interpolate, largest = torch.nn.functional.interpolate, []

    def recorded(*args, **kwargs):
        out = interpolate(*args, **kwargs)
        largest.append(out.shape[-2] * out.shape[-1])
        return out

    monkeypatch.setattr(torch.nn.functional, "interpolate", recorded)
    for band_rows in (1, 7, height):
        largest.clear()
        assert torch.equal(upsampled_argmax(logits, target, band_pixels=band_rows * width), whole)
        rows_needed = band_rows * source[0] / height + 2  # the source rows of band_rows output rows, at most
        assert max(largest) <= max(band_rows, rows_needed) * width
