"""Architecture diagrams drawn from the analyser's traced operator graph with Graphviz.

Every node is a set of traced operators — one module call, or one functional operator (`x + y`,
`torch.cat`, the squeeze-and-excitation product) — and every edge a tensor that one node produced
and another consumed, so branches, skips and concatenations appear as the model really runs them.
Nodes carry the output shape, the parameters and the multiply–accumulates the analyser counted.

Two granularities:
* a whole model is drawn at the deepest module level that keeps the picture readable (at most
  `max_nodes` nodes): `stages.0.0` — a Bottleneck — is one node;
* a block (`block="stages.0.0"`, or a class name such as "InceptionA") is drawn operator by
  operator, with conv → norm → activation units fused into one node.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..analysis import Report, analyze
from ..errors import InvalidArgumentError, did_you_mean
from ..files import with_png_software, written_whole
from ..loading import LoadedModel
from ..units import axes_text, fmt_count
from .common import PICTURE_SOFTWARE, VizError, resolve_model

DIAGRAM_FORMATS = (".svg", ".png", ".dot", ".gv")

KIND_COLOURS = {
    "conv": "#cfe2ff",
    "norm": "#e9ecef",
    "act": "#fff3cd",
    "pool": "#d1e7dd",
    "merge": "#f8d7da",
    "linear": "#e2d9f3",
    "unit": "#dbeafe",
    "module": "#f1f5f9",
    "io": "#ffffff",
    "other": "#ffffff",
}
_MERGE = {
    "add": "add (+)",
    "add_": "add (+)",
    "cat": "concatenate",
    "mul": "multiply (×)",
    "mul_": "multiply (×)",
    "sub": "subtract",
    "stack": "stack",
}
_NORM = (
    "batch_norm",
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "group_norm",
    "native_group_norm",
    "layer_norm",
    "native_layer_norm",
    "instance_norm",
)
_ACT = {
    "relu": "ReLU",
    "relu_": "ReLU",
    "hardtanh": "ReLU6",
    "hardtanh_": "ReLU6",
    "silu": "SiLU",
    "silu_": "SiLU",
    "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid",
    "gelu": "GELU",
    "tanh": "tanh",
    "hardswish": "h-swish",
    "hardswish_": "h-swish",
    "hardsigmoid": "h-sigmoid",
    "leaky_relu": "LeakyReLU",
    "leaky_relu_": "LeakyReLU",
    "elu": "ELU",
    "elu_": "ELU",
    "softmax": "softmax",
    "_softmax": "softmax",
}
_NORM_SHORT = {
    "BatchNorm1d": "BN",
    "BatchNorm2d": "BN",
    "BatchNorm3d": "BN",
    "GroupNorm": "GN",
    "LayerNorm": "LN",
    "InstanceNorm2d": "IN",
}


class GraphvizMissingError(VizError):
    """Graphviz's `dot` program is not installed."""


@dataclass
class Node:
    key: tuple
    kind: str
    title: str
    path: str
    shape: tuple[int, ...]
    params: int = 0
    macs: int = 0
    records: list[int] = field(default_factory=list)

    @property
    def id(self) -> str:
        return "n" + re.sub(r"\W", "_", "_".join(str(k) for k in self.key))


@dataclass
class Diagram:
    """Nodes and edges of a traced model or block, ready for Graphviz."""

    title: str
    nodes: list[Node]
    edges: list[tuple[str, str]]
    depth: int | None = None  # module depth of a whole-model diagram; None for a block

    def to_dot(self) -> str:
        lines = [
            "digraph cnnatlas {",
            f'  comment="{PICTURE_SOFTWARE}";',
            '  graph [rankdir=TB, nodesep=0.25, ranksep=0.32, fontname="Helvetica", '
            f"fontsize=13, labelloc=t, label=<{_escape(self.title)}>];",
            '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, margin="0.12,0.05"];',
            '  edge [color="#555555", arrowsize=0.6];',
        ]
        for n in self.nodes:
            lines.append(
                f'  {n.id} [label=<{_label(n)}>, fillcolor="{KIND_COLOURS.get(n.kind, "#ffffff")}"'
                + (", shape=oval" if n.kind == "io" else "")
                + "];"
            )
        for a, b in self.edges:
            lines.append(f"  {a} -> {b};")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape[1:] if len(shape) > 1 else shape))


def _label(n: Node) -> str:
    parts = [f"<B>{_escape(n.title)}</B>"]
    if n.path:
        parts.append(f'<FONT POINT-SIZE="8" COLOR="#555555">{_escape(n.path)}</FONT>')
    if n.shape:
        parts.append(_escape(_shape(n.shape)))
    cost = [
        f"params {fmt_count(n.params, compact=True)}" if n.params else "",
        f"MACs {fmt_count(n.macs, compact=True)}" if n.macs else "",
    ]
    if any(cost):
        parts.append(f'<FONT POINT-SIZE="8">{" · ".join(c for c in cost if c)}</FONT>')
    return "<BR/>".join(parts)


# -- describing operators -----------------------------------------------------------------------


def _kind(op: str, module_type: str) -> str:
    if op == "convolution":
        return "linear" if module_type == "Linear" else "conv"
    if op in ("addmm", "mm", "linear", "matmul", "bmm"):
        return "linear"
    if op in _NORM:
        return "norm"
    if op in _ACT:
        return "act"
    if "pool" in op or op == "mean":
        return "pool"
    if op in _MERGE:
        return "merge"
    return "other"


def _conv_text(rec, module: nn.Module | None) -> str:
    """'conv 3×3 /2, 64→128, depthwise' from the weight shape and the module's settings."""
    w = rec.input_shapes[1] if len(rec.input_shapes) > 1 else None
    if w is None or len(w) < 3:
        return "conv"
    kernel, cout = "×".join(map(str, w[2:])), w[0]
    cin = rec.input_shapes[0][1] if rec.input_shapes and len(rec.input_shapes[0]) > 1 else w[1]
    text = f"conv {kernel}"
    if module is not None:
        stride = getattr(module, "stride", 1)
        stride = stride if isinstance(stride, tuple) else (stride,)
        if any(s != 1 for s in stride):
            text += f" /{axes_text(stride)}"
        dil = getattr(module, "dilation", 1)
        dil = dil if isinstance(dil, tuple) else (dil,)
        if any(d != 1 for d in dil):
            text += f" dil {axes_text(dil)}"
    groups = cin // w[1] if w[1] else 1
    text += f", {cin}→{cout}"
    if groups > 1:
        text += ", depthwise" if groups == cin == cout or groups == cin else f", {groups} groups"
    return text


def _op_text(rec, module: nn.Module | None) -> str:
    op, mtype = rec.op, rec.module_type
    kind = _kind(op, mtype)
    if kind == "conv":
        return _conv_text(rec, module)
    if kind == "linear":
        if module is not None and hasattr(module, "in_features"):
            return f"linear {module.in_features}→{module.out_features}"
        x = rec.input_shapes[1] if op == "addmm" and len(rec.input_shapes) > 1 else rec.input_shapes[0]
        return f"linear {x[-1]}→{rec.output_shape[-1]}"
    if kind == "norm":
        return _NORM_SHORT.get(mtype, mtype or op)
    if kind == "act":
        return _ACT.get(op, op)
    if kind == "pool":
        if op == "mean" or "adaptive" in op:
            return "global average pool" if all(s == 1 for s in rec.output_shape[2:]) else "adaptive pool"
        name = "max pool" if "max" in op else "average pool"
        if module is not None and hasattr(module, "kernel_size"):
            k = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,)
            s = module.stride if isinstance(module.stride, tuple) else (module.stride,)
            name += f" {'×'.join(map(str, k * (len(rec.output_shape) - 2 if len(k) == 1 else 1)))}" + (
                f" /{axes_text(s)}" if any(x != 1 for x in s) else ""
            )
        return name
    if kind == "merge":
        return _MERGE[op]
    return op


# -- grouping records into nodes ----------------------------------------------------------------


class _Index:
    """What the grouping needs to know about the traced modules."""

    def __init__(self, report: Report, model: nn.Module | None) -> None:
        self.report = report
        self.calls: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for m in report.modules:
            self.calls[m.name].append((m.first, m.last))
        self.types = {m.name: m.module_type for m in report.modules}
        self.children: dict[str, set[str]] = defaultdict(set)
        for name in self.types:
            if name:
                parent = name.rsplit(".", 1)[0] if "." in name else ""
                self.children[parent].add(name)
        self.owners = {r.name for r in report.layers}  # modules that run operators themselves
        self.modules = dict(model.named_modules()) if model is not None else {}

    def is_leaf(self, name: str) -> bool:
        return not self.children.get(name)

    def fusable(self, name: str) -> bool:
        """A conv–norm–activation style unit: 2–8 leaf children, no operator of its own."""
        kids = self.children.get(name, set())
        return (
            2 <= len(kids) <= 8
            and all(self.is_leaf(k) for k in kids)
            and not any(r.name == name for r in self.report.layers)
        )

    def call_of(self, name: str, index: int) -> int:
        for first, last in self.calls.get(name, ()):
            if first <= index <= last:
                return first
        return index


def _in_scope(name: str, block: str | None) -> bool:
    return block is None or block == "" or name == block or name.startswith(block + ".")


def _group_key(rec, index: _Index, block: str | None, depth: int | None) -> tuple:
    name = rec.name
    if depth is not None:
        parts = name.split(".") if name else []
        if not name or (len(parts) < depth and not index.is_leaf(name)):
            return ("op", rec.index)
        k = depth
        group = ".".join(parts[:k])
        while group not in index.calls and k < len(parts):  # a ModuleList never runs: go one level down
            k += 1
            group = ".".join(parts[:k])
        parent = group.rsplit(".", 1)[0] if "." in group else ""
        if index.is_leaf(group) and parent and index.fusable(parent):
            group = parent
        return (group, index.call_of(group, rec.index))
    if not index.is_leaf(name) or not name or name == block:
        return ("op", rec.index)
    parent = name.rsplit(".", 1)[0] if "." in name else ""
    if parent and parent != block and _in_scope(parent, block) and index.fusable(parent):
        return (parent, index.call_of(parent, rec.index))
    return (name, index.call_of(name, rec.index))


def _consumers(layers) -> dict[int, list[int]]:
    """For each record, the records that read its output."""
    consumers: dict[int, list[int]] = defaultdict(list)
    for r in layers:
        for i in r.inputs:
            if i >= 0:
                consumers[i].append(r.index)
    return consumers


def _group_nodes(scope, layers, index: _Index, block: str | None, depth: int | None) -> tuple[dict, dict[int, Node]]:
    """The records in scope gathered into nodes (one per module at `depth`, or per operator), each described."""
    nodes: dict[tuple, Node] = {}
    node_of: dict[int, Node] = {}
    for r in scope:
        key = _group_key(r, index, block, depth)
        node = nodes.get(key)
        if node is None:
            node = nodes[key] = Node(key, "", "", "" if key[0] == "op" else key[0], r.output_shape)
        node.records.append(r.index)
        node.params += r.params
        node.macs += r.macs
        node.shape = r.output_shape
        node_of[r.index] = node
    for node in nodes.values():
        _describe(node, layers, index, collapsed=depth is not None)
    return nodes, node_of


class _Edges(list):
    """Edges as (from id, to id), each once, in the order first added; no self-loops."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def add(self, a: Node, b: Node) -> None:
        """Join `a` to `b` unless they are one node or already joined."""
        if a is not b and (a.id, b.id) not in self.seen:
            self.seen.add((a.id, b.id))
            self.append((a.id, b.id))


def _wire_inputs(scope, layers, in_scope: set[int], node_of: dict[int, Node], model_input, edges: _Edges) -> list:
    """Edges between nodes in scope; an input from outside the scope (or the model's input) gets an input node."""
    inputs: dict[int, Node] = {}
    for r in scope:
        for k, i in enumerate(r.inputs):
            if i in in_scope:
                edges.add(node_of[i], node_of[r.index])
            elif i >= 0 or (k == 0 and tuple(r.input_shapes[0]) == tuple(model_input or ())):
                src = inputs.get(i)
                if src is None:
                    shape = layers[i].output_shape if i >= 0 else tuple(model_input)
                    src = inputs[i] = Node(("in", len(inputs)), "io", "input", "", shape)
                edges.add(src, node_of[r.index])
    return list(inputs.values())


def _wire_outputs(scope, layers, in_scope: set[int], node_of: dict[int, Node], nodes: dict, edges: _Edges) -> list:
    """An output node after each node read from outside the scope (or holding the model's last record)."""
    consumers = _consumers(layers)
    outs = [
        r.index
        for r in scope
        if any(c not in in_scope for c in consumers[r.index]) or (not consumers[r.index] and r is layers[-1])
    ]
    out_nodes: list[Node] = []
    for i in dict.fromkeys(node_of[i].id for i in outs):
        src = next(n for n in nodes.values() if n.id == i)
        out = Node(("out", len(out_nodes)), "io", "output", "", src.shape)
        out_nodes.append(out)
        edges.add(src, out)
    return out_nodes


def build_diagram(
    report: Report,
    model: nn.Module | None = None,
    *,
    block: str | None = None,
    depth: int | None = None,
    title: str = "",
) -> Diagram:
    """The graph of `report` (whole model collapsed to module `depth`, or `block` operator by operator)."""
    index = _Index(report, model)
    layers = report.layers
    scope = [r for r in layers if _in_scope(r.name, block)]
    if not scope:
        raise InvalidArgumentError(f"no traced operator runs in {block!r}")
    in_scope = {r.index for r in scope}
    nodes, node_of = _group_nodes(scope, layers, index, block, depth)
    edges = _Edges()
    model_input = report.input_shapes[0] if report.input_shapes else None
    in_nodes = _wire_inputs(scope, layers, in_scope, node_of, model_input, edges)
    out_nodes = _wire_outputs(scope, layers, in_scope, node_of, nodes, edges)
    return Diagram(title, in_nodes + list(nodes.values()) + out_nodes, list(edges), depth)


def _describe(node: Node, layers, index: _Index, collapsed: bool) -> None:
    recs = [layers[i] for i in node.records]
    first = recs[0]
    if node.key[0] == "op":
        node.kind = _kind(first.op, first.module_type)
        node.title = _op_text(first, None)
        node.path = first.name
        return
    name = node.key[0]
    module = index.modules.get(name)
    mtype = index.types.get(name, "")
    if collapsed and not index.is_leaf(name) and not index.fusable(name):
        node.kind, node.title = "module", mtype or (type(module).__name__ if module is not None else "module")
        return
    if index.is_leaf(name):  # described by its main operator (a causal conv pads first)
        main = next((r for r in recs if _kind(r.op, r.module_type) != "other"), first)
        node.kind = _kind(main.op, main.module_type)
        node.title = _op_text(main, module)
        return
    # a fused unit: its operators in order, joined by arrows
    items = []
    for r in recs:
        text = _op_text(r, index.modules.get(r.name))
        if not items or items[-1] != text:
            items.append(text)
    node.kind = "unit"
    node.title = " → ".join(items)


# -- choosing what to draw ------------------------------------------------------------------------


def resolve_block(report: Report, block: str) -> str:
    """A module path of the trace, or the first module whose class is named `block`."""
    names = [m.name for m in report.modules if m.name]
    if block in names:
        return block
    for m in report.modules:
        if m.module_type == block and m.name:
            return m.name
    ends = [n for n in dict.fromkeys(names) if n.endswith("." + block)]
    if len(ends) == 1:
        return ends[0]
    types = sorted({m.module_type for m in report.modules})
    raise InvalidArgumentError(
        f"{report.model} has no module or module class {block!r}."
        f"{did_you_mean(block, names + types)} Give a dotted path such as "
        f"{names[min(3, len(names) - 1)]!r} or a class name such as {types[0]!r}."
    )


def representative_blocks(report: Report, limit: int = 2) -> list[str]:
    """The first module of each kind that joins paths (adds, concatenates or multiplies tensors:
    residual, Inception, dense, squeeze-and-excitation blocks), outermost first, at most `limit`."""
    owners = []
    for r in report.layers:
        tensors = [i for i in r.inputs if i >= 0]
        if r.op in _MERGE and len(tensors) >= 2 and r.name and r.name not in owners:
            owners.append(r.name)
    owner_set = set(owners)
    maximal = []
    for name in owners:
        parts = name.split(".")
        if any(".".join(parts[:k]) in owner_set for k in range(1, len(parts))):
            continue
        maximal.append(name)
    types = {m.name: m.module_type for m in report.modules}
    chosen, kinds = [], set()
    for name in maximal:
        if types.get(name) not in kinds:
            kinds.add(types.get(name))
            chosen.append(name)
        if len(chosen) == limit:
            break
    return chosen


def auto_depth(report: Report, model: nn.Module | None, max_nodes: int = 48) -> int:
    """The deepest module level whose whole-model diagram has at most `max_nodes` nodes."""
    deepest = max((m.depth for m in report.modules), default=1)
    best = 1
    for d in range(1, deepest + 1):
        nodes = len(build_diagram(report, model, depth=d).nodes)
        if nodes > max_nodes:
            break
        best = d
    return best


def model_diagram(
    model: str | nn.Module | LoadedModel,
    *,
    block: str | None = None,
    depth: int | None = None,
    input_size: tuple[int, ...] | None = None,
    max_nodes: int = 48,
    report: Report | None = None,
    label: str | None = None,
) -> Diagram:
    """The diagram of a model (a registry name, torchvision:NAME, ... or a module) or of one block."""
    module, found, default = resolve_model(model)
    label = label or found
    if report is None:
        size = tuple(input_size) if input_size is not None else default
        if size is None:
            raise InvalidArgumentError(f"{label}: no default input size is known; give --input")
        report = analyze(module, size, training_memory=False)
    shape = _shape(report.input_shapes[0])
    if block is not None:
        path = resolve_block(report, block)
        title = f"{label}: {path} ({dict((m.name, m.module_type) for m in report.modules)[path]}), input {shape}"
        return build_diagram(report, module, block=path, title=title)
    if depth is None:
        depth = auto_depth(report, module, max_nodes)
    elif depth < 1:
        raise InvalidArgumentError(f"--depth must be ≥ 1; got {depth}")
    title = (
        f"{label}: input {shape}, {fmt_count(report.params, compact=True)} parameters, "
        f"{fmt_count(report.macs, compact=True)} MACs (modules to depth {depth})"
    )
    return build_diagram(report, module, depth=depth, title=title)


# -- rendering -----------------------------------------------------------------------------------


def dot_program() -> str:
    path = shutil.which("dot")
    if path is None:
        raise GraphvizMissingError(
            "drawing a diagram needs Graphviz's `dot` program, which is not installed: "
            "run `apt-get install graphviz` (Debian/Ubuntu) or `brew install graphviz`, "
            "or write the DOT source with --out FILE.dot"
        )
    return path


def render(diagram: Diagram | str, out: str | Path, timeout: float = 120) -> Path:
    """Write the diagram to `out`: .svg or .png through Graphviz's dot, .dot/.gv as DOT source."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in DIAGRAM_FORMATS:
        raise InvalidArgumentError(f"--out must end in {', '.join(DIAGRAM_FORMATS)}; got {str(out)!r}")
    source = diagram if isinstance(diagram, str) else diagram.to_dot()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".dot", ".gv"):
        with written_whole(path) as tmp:
            tmp.write_text(source, encoding="utf-8")
        return path
    args = [dot_program(), f"-T{suffix[1:]}"] + (["-Gdpi=96"] if suffix == ".png" else [])
    try:
        done = subprocess.run(args, input=source.encode("utf-8"), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise VizError(
            f"Graphviz took more than {timeout:.0f} s on this diagram; draw one block with --block"
        ) from None
    if done.returncode != 0:
        raise VizError(f"Graphviz failed: {done.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    # an SVG carries the DOT comment's mark; dot writes none of its own into a PNG: the text chunk of every
    # cnnatlas picture goes in before the file is written, once and whole
    drawn = with_png_software(done.stdout, PICTURE_SOFTWARE) if suffix == ".png" else done.stdout
    with written_whole(path) as tmp:
        tmp.write_bytes(drawn)
    return path


def plot_diagram(
    model: str | nn.Module | LoadedModel,
    block: str | None = None,
    *,
    depth: int | None = None,
    input_size: tuple[int, ...] | None = None,
    out: str | Path | None = None,
) -> Diagram:
    """Draw `model` (or its `block`) from the traced graph; write it to `out` when given."""
    diagram = model_diagram(model, block=block, depth=depth, input_size=input_size)
    if out is not None:
        render(diagram, out)
    return diagram
