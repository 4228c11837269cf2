"""The registry of fuzzed formats: `register(Format(...))` in a `fmt_*.py` module of this package.

`all_formats()` imports every `fmt_*.py` beside this file, so a new format needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .mutate import Mutator, mutate_bytes


@dataclass(frozen=True)
class Format:
    """name: shown in reports and used to seed each case; suffix: the file name's suffix the loader
    sees; seeds(): valid files, built at run time from what the code makes (never copied data);
    load(path): the public reader, which must return or raise a KwsError; mutate(rng, data, seeds)."""

    name: str
    suffix: str
    seeds: Callable[[], list[bytes]]
    load: Callable[[str], object]
    mutate: Mutator = mutate_bytes


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    if fmt.name in FORMATS:
        raise ValueError(f"fuzz format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def all_formats() -> dict[str, Format]:
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("fmt_"):
            importlib.import_module(f"{__package__}.{info.name}")
    return dict(sorted(FORMATS.items()))
