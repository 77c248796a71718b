"""The claims of the notes, measured: each sentence becomes an experiment on real modules that
returns what it measured, what the notes predict, and whether the sentence held.

>>> from cnnatlas.claims import run_claim
>>> result = run_claim("stacked-3x3")
>>> result.passed, result.measured

`cnnatlas verify [ID ...] [--json] [--quick]` runs them from the command line. Modules, one per
group of related claims: convolution, receptive_field, pooling, separable, normalization,
equivariance, residual, activations, backprop, architectures, video, dense (segmentation and transfer,
trained on Fashion-MNIST).
"""

# importing each claims module registers its claims with base.CLAIMS
from . import (  # noqa: F401
    activations,
    architectures,
    backprop,
    convolution,
    dense,
    equivariance,
    normalization,
    pooling,
    receptive_field,
    residual,
    separable,
    video,
)
from .base import (
    CLAIM_ORDER,
    CLAIMS,
    Claim,
    ClaimResult,
    ClaimSkipped,
    Measurement,
    UnknownClaimError,
    claim,
    get_claim,
    list_claims,
    require_models,
    run_claim,
    run_claims,
)

__all__ = [
    "CLAIMS",
    "CLAIM_ORDER",
    "Claim",
    "ClaimResult",
    "ClaimSkipped",
    "Measurement",
    "UnknownClaimError",
    "claim",
    "get_claim",
    "list_claims",
    "require_models",
    "run_claim",
    "run_claims",
]
