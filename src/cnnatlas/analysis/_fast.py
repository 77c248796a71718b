"""The analyser's fast path: every use of PyTorch's private internals (and of CPython tricks on its
objects) lives here, behind a switch. Without it the trace takes the public path: the same operators
through PyTorch's own meta kernels, modules' attributes set through `nn.Module.__setattr__`, the cyclic
garbage collector left alone — the same report, a few times slower (a test compares the two on the zoo).

What the fast path adds, each for milliseconds on ResNet-50:
- `fastmeta.FAST`: output shapes of the hottest operators in a line of arithmetic instead of their
  Python meta kernels; and leaf modules recorded from their one ATen call (`fastmeta.MODULE_CALLS`),
  which needs `torch._C._ExcludeDispatchKeyGuard` to run outside the dispatch mode;
- `TorchDispatchMode._should_skip_dynamo` overridden: no torch.compile wrapper around each operator;
- `object.__setattr__` for `training` and direct writes to `_parameters` / `_buffers`;
- `gc.disable()` while the trace allocates thousands of objects it frees only at the end.

The fast path is on when these internals exist in the installed torch (they do from 2.4 to 2.14 at
least) and the environment variable CNNATLAS_ANALYSIS_FAST is not "0"; `set_enabled(False)` turns it
off for this process. Both paths still use `torch.utils._python_dispatch.TorchDispatchMode` (the
mechanism of torch.utils.flop_counter, which has no public twin) and `OpOverload._schema`.
"""

from __future__ import annotations

import contextlib
import gc
import os
from typing import Any, Callable

import torch

ENV = "CNNATLAS_ANALYSIS_FAST"


def _internals_present() -> bool:
    c = torch._C
    return (
        hasattr(c, "_ExcludeDispatchKeyGuard")
        and hasattr(c, "DispatchKeySet")
        and hasattr(c.DispatchKey, "Python")
        and hasattr(c.DispatchKey, "PythonTLSSnapshot")
    )


AVAILABLE = _internals_present()
_enabled: bool | None = None  # None: follow the environment


def set_enabled(flag: bool | None) -> None:
    """Force the fast path on (where available) or off; None: follow CNNATLAS_ANALYSIS_FAST again."""
    global _enabled
    _enabled = flag


def enabled() -> bool:
    """Whether this analysis takes the fast path."""
    if not AVAILABLE:
        return False
    if _enabled is not None:
        return _enabled
    return os.environ.get(ENV, "1") != "0"


if AVAILABLE:
    _PYTHON_KEYS = torch._C.DispatchKeySet(torch._C.DispatchKey.Python) | torch._C.DispatchKeySet(
        torch._C.DispatchKey.PythonTLSSnapshot
    )


def outside_mode():
    """As inside __torch_dispatch__: operators skip the Python dispatch mode (for a module's one call)."""
    return torch._C._ExcludeDispatchKeyGuard(_PYTHON_KEYS)


def fast_mode_class(base: type, dispatch: Callable) -> type:
    """A subclass of the tracing mode without the torch.compile wrapper TorchDispatchMode puts around
    each `__torch_dispatch__` call (a few microseconds an operator): nothing in a trace compiles."""
    return type(
        "_FastTrace",
        (base,),
        {
            "_should_skip_dynamo": classmethod(lambda cls: False),
            "__torch_dispatch__": dispatch,
            "__module__": base.__module__,
        },
    )


set_plain_attribute: Callable[[Any, str, Any], None] = object.__setattr__  # `training` is a plain attribute


@contextlib.contextmanager
def cyclic_gc_paused():
    """The trace allocates thousands of objects and frees none of them before it ends, so Python's
    cyclic collector would only walk them (and the whole model) again and again meanwhile."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parameters(m: torch.nn.Module) -> dict:
    return m._parameters


def buffers(m: torch.nn.Module) -> dict:
    return m._buffers


def children(m: torch.nn.Module) -> dict:
    return m._modules
