"""Add a voice activity detector to a classifier (ELL's add_vad): one VAD node on the classifier's
input features feeds the reset trigger of every GRU/LSTM, so the recurrent state is zeroed when a
word ends. An existing VAD is replaced, not stacked. The frame duration is the featurizer's hop /
sample rate, from the model's metadata or from --featurizer (needed for ELL and ONNX imports).
Parameters: ELL's defaults, a JSON file (--params, e.g. from kws vad-tune), the VAD already in the
model (--from-model), then individual flags on top."""

from __future__ import annotations

from core import models
from core.commands.vad_args import add_vad_param_arguments, vad_params_from_args
from core.errors import KwsError
from core.graph import modelfile
from core.vad.model import add_vad, frame_timing, model_vad, recurrent_nodes


def add_arguments(p):
    p.add_argument("classifier", metavar="CLASSIFIER", help="classifier model (.kwm, .ell or .onnx)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="write the model with the VAD here (.kwm)")
    p.add_argument("--featurizer", "-f", metavar="F",
                   help="the featurizer the classifier runs behind (gives hop and sample rate)")
    p.add_argument("--from-model", action="store_true",
                   help="start from the parameters of the VAD the classifier already has")
    add_vad_param_arguments(p)


def main(args) -> int:
    classifier = models.load_model(args.classifier)
    featurizer = models.load_model(args.featurizer) if args.featurizer else None
    rnns = recurrent_nodes(classifier)
    if not rnns:
        raise KwsError(f"{args.classifier}: the model has no GRU or LSTM layer; "
                       "a VAD reset would change nothing")
    existing = model_vad(classifier)
    if args.from_model and existing is None:
        raise KwsError(f"{args.classifier}: --from-model, but the model has no VAD")
    params = vad_params_from_args(args, existing[0] if args.from_model else None)
    try:
        frame_s, sample_rate = frame_timing(classifier, featurizer, args.featurizer)
    except KwsError as e:
        raise KwsError(f"{args.classifier}: {e}") from None
    out = add_vad(classifier, params, frame_s, sample_rate)
    what = "Replacing the VAD" if existing else "Adding a VAD node"
    print(f"{what} (frame {1000 * frame_s:g} ms, sample rate {sample_rate}) feeding the reset trigger of "
          f"{len(rnns)} recurrent layer(s): {', '.join(n.id for n in rnns)}")
    for k, v in params.to_dict().items():
        print(f"  {k:<16} {v}")
    modelfile.save(out, args.output)
    print(f"wrote {args.output}")
    return 0
