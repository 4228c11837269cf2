"""Known, harmless third-party warnings, silenced only around the one call that raises them.

torch's legacy (TorchScript) ONNX exporter, which we use on purpose (one file, real GRU/LSTM ops;
see ../shared/NOTES.md), warns on every export: that it is deprecated, that a helper "will be
removed", that a GRU exported with a variable batch may fail at another batch size (ours are
exported and checked at batch 1 and N), and that strided slices are not constant-folded (the
causal convolutions' padding). None of them is news to a user of `kws train` or `kws bench`.
Only these messages and categories are ignored, and only inside the `with` block; every other
warning still shows.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

# (category, start of the message): matched with warnings.filterwarnings (a regex from the start)
ONNX_EXPORT_WARNINGS = (
    (DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
    (DeprecationWarning, r"The feature will be removed\. Please remove usage of this function"),
    (UserWarning, r"Exporting a model to ONNX with a batch_size other than 1"),
    (UserWarning, r"Constant folding - Only steps=1 can be constant folded"),
)


@contextlib.contextmanager
def onnx_export_warnings() -> Iterator[None]:
    """`with onnx_export_warnings(): torch.onnx.export(...)` without the exporter's known warnings."""
    with warnings.catch_warnings():
        for category, message in ONNX_EXPORT_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
