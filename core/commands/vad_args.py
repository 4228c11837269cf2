"""Command-line flags for VAD parameters, shared by add-vad, vad, vad-tune and eval."""

from __future__ import annotations

import argparse

from core.features.vad import RESET_ON
from core.vad.params import PARAM_NAMES, VadParams, load_params

_HELP = {
    "tau_up": "time constant (s) of the noise floor rising",
    "tau_down": "time constant (s) of the noise floor falling",
    "large_input": "level/floor ratio above which the floor rises gain_att times slower",
    "gain_att": "attenuation of the floor's rise on large inputs",
    "threshold_up": "voice on when level > threshold_up * floor (and > level_threshold)",
    "threshold_down": "voice off when level < threshold_down * floor",
    "level_threshold": "minimum level for voice",
}


def add_vad_param_arguments(p: argparse.ArgumentParser, params_flag: str = "--params",
                            title: str = "VAD parameters (default: ELL's)") -> None:
    g = p.add_argument_group(title)
    g.add_argument(params_flag, dest="vad_params", metavar="JSON",
                   help="VAD parameters from a JSON file (as written by kws vad-tune); flags override it")
    for name in PARAM_NAMES:
        g.add_argument("--" + name.replace("_", "-"), dest=f"vad_{name}", type=float, metavar="X",
                       help=_HELP[name])
    g.add_argument("--reset-on", dest="vad_reset_on", choices=RESET_ON,
                   help="reset the recurrent state when the VAD turns off (offset, ELL) or on (onset)")
    g.add_argument("--hold-frames", dest="vad_hold_frames", type=int, metavar="N",
                   help="hangover: the VAD stays on N frames after the voice ends (default 0)")


def vad_flags_given(args) -> bool:
    return bool(getattr(args, "vad_params", None)) or any(
        getattr(args, f"vad_{k}", None) is not None for k in (*PARAM_NAMES, "reset_on", "hold_frames"))


def vad_params_from_args(args, base: VadParams | None = None) -> VadParams:
    """`base` (default ELL's), then the JSON file, then the individual flags; a bad value raises
    a ValueError naming the parameter."""
    params = base or VadParams()
    if getattr(args, "vad_params", None):
        params = load_params(args.vad_params, params)
    over = {k: getattr(args, f"vad_{k}") for k in (*PARAM_NAMES, "reset_on", "hold_frames")
            if getattr(args, f"vad_{k}", None) is not None}
    return params.with_values(**over) if over else params
