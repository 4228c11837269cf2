"""Write a featurizer model (ELL's make_featurizer). Defaults are the tutorials' featurizer:
16 kHz, 512-sample window and hop, Hamming, |FFT|, 80 mel filters, log(x + 1)."""

from __future__ import annotations

from core.features.featurizer import FeaturizerConfig, build_featurizer
from core.graph import modelfile
from core.graph.summary import summary_text


def add_arguments(p):
    d = FeaturizerConfig()
    p.add_argument("-o", "--output", required=True, metavar="F", help="output model file (.kwm)")
    p.add_argument("--sample-rate", "-sr", type=int, default=d.sample_rate, help="audio sample rate in Hz")
    p.add_argument("--window-size", "-ws", type=int, default=d.window_size, help="samples per FFT frame")
    p.add_argument("--hop-length", "--input-buffer-size", "-ib", type=int, default=d.hop_length, dest="hop_length",
                   help="new samples per frame (ELL's input_buffer_size)")
    p.add_argument("--nfft", type=int, default=None, help="FFT size (default: next power of two >= window)")
    p.add_argument("--filterbank", "-fb", choices=["mel", "linear", "none"], default=d.filterbank,
                   help="filter bank applied to the FFT magnitude")
    p.add_argument("--filterbank-size", "-fs", type=int, default=d.n_filters, dest="n_filters",
                   help="number of filters (features per frame)")
    p.add_argument("--log", action="store_true", default=d.log, help="log(x + log_delta) (default on)")
    p.add_argument("--no-log", action="store_false", dest="log", help="no log: linear filter bank energies")
    p.add_argument("--log-delta", type=float, default=d.log_delta, help="added before the log: log(x + delta)")
    p.add_argument("--dct", action="store_true", help="DCT-II after the log (MFCC)")
    p.add_argument("--power-spec", action="store_true", help="|X|^2 / nfft instead of |X|")
    p.add_argument("--window", choices=["hamming", "hann", "none"], default=d.window,
                   help="window function (ELL: symmetric Hamming)")
    p.add_argument("--iir", action="store_true", help="pre-emphasis FIR x[n] - a x[n-1] before framing")
    p.add_argument("--pre-emphasis", "-pe", type=float, default=0.97, help="pre-emphasis coefficient (with --iir)")
    p.add_argument("--no-auto-scale", action="store_false", dest="auto_scale",
                   help="feed raw int16-scale samples instead of [-1, 1)")


def main(args) -> int:
    cfg = FeaturizerConfig(
        sample_rate=args.sample_rate, window_size=args.window_size, hop_length=args.hop_length, n_fft=args.nfft,
        filterbank=args.filterbank, n_filters=args.n_filters, log=args.log, log_delta=args.log_delta, dct=args.dct,
        power_spec=args.power_spec, window=args.window, preemphasis=args.pre_emphasis if args.iir else 0.0,
        auto_scale=args.auto_scale,
    )
    graph = build_featurizer(cfg)
    modelfile.save(graph, args.output)
    print(summary_text(graph))
    print(f"wrote {args.output}")
    return 0
