"""The New keyword job (Qt-free, run in a child process by the New keyword panel): core.train.custom's
build_custom with its stage / progress callbacks and Stop wired to the job context. A stopped run
writes nothing into OUTDIR (build_custom writes featurizer.kwm, classifier.kwm and categories.txt as
one output set at its very end); OUTDIR/work keeps the intermediate folders."""

from __future__ import annotations

import os
import time

from core.train.custom import CustomConfig, CustomResult

MODEL_FILES = ("featurizer.kwm", "classifier.kwm", "categories.txt")


def custom_job(words: tuple[str, ...], clips: str, outdir: str, noise: str, negatives: str | None,
               cfg: CustomConfig, ctx) -> CustomResult:
    import torch

    from core.train.custom import build_custom

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # leave a core to the GUI
    t0 = time.monotonic()

    def stage(text: str) -> None:
        s = int(time.monotonic() - t0)
        ctx.log(f"[{s // 60}:{s % 60:02d}] {text}")
        ctx.stage(text)

    return build_custom(list(words), clips, outdir, noise_dir=noise, negatives_dir=negatives or None, config=cfg,
                        stage=stage, progress=ctx.progress, cancel=ctx.cancel)
