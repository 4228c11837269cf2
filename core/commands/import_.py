"""Import a model (ELL .ell, ONNX .onnx, or our .kwm) and write it as a .kwm model file.
With --summary, print the graph: nodes, shapes, parameters and multiply-adds per frame."""

from __future__ import annotations

from core import models
from core.graph import modelfile
from core.graph.summary import summary_text


def add_arguments(p):
    p.add_argument("model", help="model file (.ell, .onnx, .kwm)")
    p.add_argument("-o", "--output", metavar="OUT", help="write the imported model here (.kwm)")
    p.add_argument("--categories", metavar="T", help="store these categories in the model")
    p.add_argument("--summary", action="store_true", help="print the graph summary")


def main(args) -> int:
    graph = models.load_model(args.model)
    if args.categories:
        graph.metadata["categories"] = models.load_categories(args.categories)
    if args.summary or not args.output:
        print(summary_text(graph))
    if args.output:
        modelfile.save(graph, args.output)
        print(f"wrote {args.output}")
    return 0
