"""The tour's last section: LeNet-5 learns scikit-learn's digits in a few seconds, live."""

from __future__ import annotations

import tempfile

from rich.console import Console

TOUR_EPOCHS = 8
TOUR_PASS = 0.90  # a short cosine run clears this comfortably; below it something is broken


def lenet_digits_demo(console: Console, epochs: int = TOUR_EPOCHS) -> bool:
    """Train LeNet-5 on the digits for `epochs` epochs with a progress bar; True if test accuracy ≥ 90%."""
    from .config import default_config
    from .loop import train

    console.print(
        f"LeNet-5 (LeCun et al. 1998) on scikit-learn's 1,797 handwritten 8×8 digits, upsampled to "
        f"32×32; {epochs} epochs here (the full default, `cnnatlas train lenet5`, runs "
        f"{default_config('lenet5').epochs})."
    )
    with tempfile.TemporaryDirectory(prefix="cnnatlas-tour-") as out:
        metrics = train(default_config("lenet5", "digits", epochs=epochs, out=out), console=console)
    ok = metrics["test_acc"] >= TOUR_PASS
    colour = "green" if ok else "red"
    console.print(
        f"[{colour}]LeNet-5 test accuracy on the 360 held-out digits: {metrics['test_acc']:.1%}[/] "
        f"(top-5 {metrics['test_top5']:.1%}) after {epochs} epochs in {metrics['seconds']:.1f} s — "
        + ("it learned." if ok else f"below the {TOUR_PASS:.0%} this run should reach.")
    )
    return ok
