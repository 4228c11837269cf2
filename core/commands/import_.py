"""Import a model (ELL .ell, ONNX .onnx, or our .kwm) and write it as a .kwm model file.
With --summary, print the graph: nodes, shapes, parameters and multiply-adds per frame."""

from __future__ import annotations

import argparse
from pathlib import Path

from core import models
from core.errors import ModelFormatError
from core.graph import modelfile
from core.graph.summary import summary_text


def add_arguments(p):
    p.add_argument("model", help="model file (.ell, .onnx, .kwm)")
    p.add_argument("-o", "--output", metavar="OUT", help="write the imported model here (.kwm)")
    p.add_argument("--categories", metavar="T", help="store these categories in the model")
    p.add_argument("--summary", action="store_true", help="print the graph summary")
    p.add_argument("--softmax", action=argparse.BooleanOptionalAction, default=True,
                   help="ONNX: turn a final LogSoftmax into Softmax so the model emits probabilities, as ELL "
                        "does (default: on; --no-softmax keeps log-probabilities)")
    p.add_argument("--time-axis", type=int, metavar="N",
                   help="ONNX: which input axis is time (default: found from the model's RNN or conv ops)")


def main(args) -> int:
    if str(args.model).lower().endswith(".onnx"):
        from core.importers.onnx import load_onnx

        if not Path(args.model).exists():
            raise ModelFormatError(f"{args.model}: no such model file")
        graph = load_onnx(args.model, softmax=args.softmax, time_axis=args.time_axis)
    else:
        graph = models.load_model(args.model)
    if args.categories:
        graph.metadata["categories"] = models.load_categories(args.categories)
    if args.summary or not args.output:
        print(summary_text(graph))
    if args.output:
        modelfile.save(graph, args.output)
        print(f"wrote {args.output}")
    return 0
