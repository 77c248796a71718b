"""Pictures drawn from what cnnatlas measures: receptive-field growth, accuracy against MACs, the
effective receptive field, feature maps, filters, equivariance, training curves, confusion matrices,
architecture diagrams (Graphviz) and the static HTML atlas. Matplotlib draws on the Agg canvas
(no display needed); every plot function takes `out=` a .png or .svg path and returns the figure."""

from .common import VizError
from .diagram import GraphvizMissingError, build_diagram, plot_diagram, render
from .fields import pareto_points, plot_erf, plot_pareto, plot_rf_growth, rf_growth_data
from .inside import equivariance_data, plot_equivariance, plot_feature_maps, plot_filters
from .runs import plot_confusion, plot_training, run_confusion

__all__ = [
    "GraphvizMissingError",
    "VizError",
    "build_diagram",
    "equivariance_data",
    "pareto_points",
    "plot_confusion",
    "plot_diagram",
    "plot_equivariance",
    "plot_erf",
    "plot_feature_maps",
    "plot_filters",
    "plot_pareto",
    "plot_rf_growth",
    "plot_training",
    "render",
    "rf_growth_data",
    "run_confusion",
]
