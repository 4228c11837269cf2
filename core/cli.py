"""The `kws` command line: one subcommand per job, each in core/commands/<name>.py."""

from __future__ import annotations

import argparse
import importlib
import sys

from core.errors import KwsError

# subcommand -> module in core.commands; each module has add_arguments(parser) and main(args) -> int
COMMANDS = {
    "run": ("run", "detect keywords in wav files or from the microphone (ELL test_audio)"),
    "featurizer": ("featurizer", "write a featurizer model (ELL make_featurizer)"),
    "import": ("import_", "import an ELL or ONNX model into a .kwm model file"),
    "lists": ("lists", "training/validation/testing lists from folders of wavs (ELL make_training_list)"),
    "dataset": ("dataset", "featurize listed wavs into training rows, with augmentation (ELL make_dataset)"),
    "segment": ("segment", "cut the words of a long recording into 1 s clips in DIR/LABEL/ (Speech Commands layout)"),
    "synth": ("synth", "spoken keywords from offline speech engines (espeak-ng, flite, festival, Piper)"),
    "train": ("train", "train a keyword spotter with PyTorch (ELL train_classifier)"),
    "custom": ("custom", "a spotter for your own word from a few recordings (synthetic voices, negatives, calibrated)"),
    "add-vad": ("add_vad", "add a VAD that resets recurrent state at word ends (ELL add_vad)"),
    "vad": ("vad", "show the VAD's level, noise floor and segments on a wav, --plot (ELL vad_test)"),
    "vad-tune": ("vad_tune", "tune the VAD's parameters for continuous-stream keyword accuracy"),
    "eval": ("eval", "pass rate, confusion matrix and stream metrics over labelled clips (ELL eval_test)"),
    "calibrate": ("calibrate", "choose threshold + smoothing for a target false accepts/hour (DET curve), store them"),
    "versus": ("versus", "two models side by side on held-out lists (e.g. ours vs the ELL DevKit)"),
    "quantize": ("quantize", "int8 post-training quantization calibrated on real clips; float vs int8 pass rate"),
    "compile": ("compile", "compile models to native code and export a folder to build on a device (ELL wrap)"),
    "bench": ("bench", "time our runtimes beside the peers (onnxruntime, PyTorch)"),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, when it has one worth showing (a help text that
    already talks about its default is left alone; a bare "(40)" at its end becomes
    "(default: 40)"); descriptions keep their line breaks."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        d = action.default
        if (d is None or d is False or d == "" or d is argparse.SUPPRESS or not action.option_strings
                or action.nargs == 0 or "default" in text.lower()):
            return text
        bare = f"({d})".replace("%", "%%")
        if text.endswith(bare):
            text = text[: -len(bare)].rstrip()
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kws", description="kwsgui keyword spotting workbench")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(f"core.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip(),
                           formatter_class=HelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.main(args) or 0)
    except KwsError as e:
        print(f"kws {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # config validation: the message names the bad value
        print(f"kws {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kws {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
