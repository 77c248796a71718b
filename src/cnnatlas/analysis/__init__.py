"""The analyser: shapes, parameters, MACs, memory and receptive field of any nn.Module, traced on
meta tensors (no real arithmetic, no activation memory)."""

from .erf import EffectiveReceptiveField, effective_receptive_field, gradient_map
from .report import LayerRecord, ModuleRecord, ReceptiveField, Report
from .trace import AnalysisError, analyze

__all__ = [
    "AnalysisError",
    "EffectiveReceptiveField",
    "effective_receptive_field",
    "gradient_map",
    "LayerRecord",
    "ModuleRecord",
    "ReceptiveField",
    "Report",
    "analyze",
]
