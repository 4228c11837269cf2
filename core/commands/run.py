"""Detect keywords in a wav file, several, a folder of wavs, or live from the microphone (ELL's
test_audio / run_classifier). Prints `<<< DETECTED (i) NN% label >>>` lines ("no detection in
FILE" when a file has none), then the average processing time per frame in milliseconds. With
several files or --wav-dir, files that cannot be read are skipped and listed at the end. The
model's background/unknown classes are not reported unless --ignore names what to leave out."""

from __future__ import annotations

import sys

from core.commands.common import add_model_arguments, resolve_models, time_text
from core.errors import AudioError, KwsError
from core.evaluate.calibrate import default_ignore
from core.pipeline import Detector, KeywordSpotter, detector_settings

SHOW_SKIPPED = 5  # unreadable files named at the end of a run over several files (the rest are counted)


def add_arguments(p):
    add_model_arguments(p)
    src = p.add_argument_group("input (default: the microphone)")
    ex = src.add_mutually_exclusive_group()
    ex.add_argument("--wav-file", "-w", metavar="W", help="a wav file")
    ex.add_argument("wavs", nargs="*", default=[], metavar="WAV",
                    help="wav files: one is --wav-file WAV; several run in turn as --wav-dir does")
    ex.add_argument("--wav-dir", metavar="D", help="a folder of wav files, processed in sorted order")
    src.add_argument("--reset", action="store_true",
                     help="with --wav-dir or several files: reset the model state between files")
    src.add_argument("--device", type=int, metavar="N", help="microphone device index (see --list-devices)")
    src.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    src.add_argument("--duration", type=float, metavar="S", help="microphone: stop after S seconds")
    src.add_argument("--sample-rate", "-sr", type=int, metavar="SR",
                     help="microphone rate to open (default: the featurizer's; audio is resampled to it)")
    post = p.add_argument_group("post-processing")
    post.add_argument("--threshold", "-t", type=float,
                      help="report above this (default: the model's stored one, from kws calibrate, else 0.6)")
    post.add_argument("--smoothing", type=int, metavar="N",
                      help="average the last N frames, 0: off (default: the model's stored one, else 0)")
    post.add_argument("--ignore", metavar="LABEL,...",
                      help="labels never reported (default: the model's background/unknown classes; '' for none)")
    p.add_argument("--verbose", "-v", action="store_true", help="print the best label of every frame")
    be = p.add_mutually_exclusive_group()
    be.add_argument("--compiled", dest="backend", action="store_const", const="compiled",
                    help="run native code from the compiler (default when the compiler supports the models)")
    be.add_argument("--interpreter", dest="backend", action="store_const", const="interpreter",
                    help="run the numpy reference interpreter")


def _report(spotter: KeywordSpotter, detector: Detector, blocks, verbose: bool, out=None) -> int:
    out = out or sys.stdout  # looked up per call: a default bound at import would outlive a replaced stdout
    count = 0
    for block in blocks:
        _, probs = spotter.step(block)
        if probs is None:
            continue
        det = detector.update(probs)
        if verbose:
            i = int(probs.argmax())
            print(f"frame {detector.frame - 1}: {detector.categories[i]} {probs[i]:.3f}", file=out)
        if det is not None:
            count += 1
            print(det.line(), file=out, flush=True)
    return count


def main(args) -> int:
    if args.list_devices:
        from core.audio.microphone import list_input_devices

        devices = list_input_devices()
        if not devices:
            print("no input devices found")
        for d in devices:
            print(f"{d.index}: {d.name} ({d.max_input_channels} ch, {d.default_sample_rate:.0f} Hz)")
        return 0
    featurizer, classifier, cats = resolve_models(args)
    if classifier is None:
        raise SystemExit("kws run: needs a classifier (--classifier C)")
    spotter = KeywordSpotter(featurizer, classifier, backend=args.backend or "auto")
    if spotter.fallback_reason:
        print(f"note: running the interpreter ({spotter.fallback_reason})", file=sys.stderr)
    ignore = default_ignore(cats) if args.ignore is None else [s for s in args.ignore.split(",") if s]
    settings = detector_settings(classifier, args.threshold, args.smoothing)
    if "from the model" in settings.source:
        print(f"note: {settings.source}", file=sys.stderr)
    detector = Detector(cats, settings.threshold, settings.smoothing, ignore)
    hop, rate = spotter.hop_length, spotter.sample_rate
    if len(args.wavs) == 1:
        args.wav_file = args.wavs[0]
    if args.wav_file:
        from core.audio.sources import WavSource

        src = WavSource(args.wav_file, rate)
        if not _report(spotter, detector, src.blocks(hop), args.verbose):
            print(f"no detection in {args.wav_file}")
    elif args.wav_dir or args.wavs:
        _run_folder(args, spotter, detector, hop, rate)
    else:
        from core.audio.microphone import MicrophoneSource

        mic = MicrophoneSource(device=args.device, sample_rate=rate, device_rate=args.sample_rate,
                               max_seconds=args.duration)
        print("listening... (Ctrl-C to stop)", file=sys.stderr)
        count = 0
        try:
            count = _report(spotter, detector, mic.blocks(hop), args.verbose)
        except KeyboardInterrupt:
            pass
        finally:
            mic.close()
        if mic.overflows:
            print(f"warning: {mic.overflows} input overflows (audio was dropped)", file=sys.stderr)
        if not count:
            print("no detection from the microphone")
    print(f"Average processing time: {time_text(spotter.average_time_s)}")
    return 0


def _run_folder(args, spotter: KeywordSpotter, detector: Detector, hop: int, rate: int) -> None:
    """Every wav of the folder in sorted order (or the files given, in their order); an unreadable
    file is skipped (and reported at the end), never the end of the run."""
    from pathlib import Path

    from core.audio.sources import FolderSource, WavSource
    from core.evaluate.passrate import skipped_summary

    files = FolderSource(args.wav_dir, rate).files if args.wav_dir else [Path(w) for w in args.wavs]
    skipped: list[str] = []
    quiet = detections = 0
    for i, path in enumerate(files):
        try:
            src = WavSource(path, rate)
        except KwsError as e:  # missing, unreadable or refused: counted, named at the end
            skipped.append(str(e))
            continue
        print(f"{path}")
        if args.reset and i:
            spotter.reset()
            detector.reset()
        n = _report(spotter, detector, src.blocks(hop), args.verbose)
        if not n:
            print(f"no detection in {path.name}")
        quiet += not n
        detections += n
    if len(skipped) == len(files):
        which = f"{args.wav_dir}: none of its" if args.wav_dir else "none of the"
        raise AudioError(f"{which} {len(files)} wav files could be read (first: {skipped[0]})")
    read = len(files) - len(skipped)
    print(f"{read} files, {detections} detections, {quiet} without any detection"
          + (f", {len(skipped)} unreadable files skipped" if skipped else ""))
    if skipped:
        print(skipped_summary(skipped, show=SHOW_SKIPPED, what="files"), file=sys.stderr)
