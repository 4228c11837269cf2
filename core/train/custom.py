"""A detector for your own word(s) from a handful of recordings (`kws custom`), built from what is on
this machine and nothing that already knows the word:

1. your clips (or long takes) cut into 1 s words (core.data.segment), each heavily augmented
   (`user_copies` copies: noise, reverb, speed, pitch, level, band and microphone colouring);
2. the word spoken by every offline voice (core.data.synth: espeak-ng, flite, festival, Piper);
3. negatives, all labelled `unknown`: other words and sound-alikes of the keyword (its onset or
   ending swapped or its vowel changed, "hello" -> "jello", "hellot", "hallo"; never one that espeak-ng
   says as the word) spoken by the same voices, real clips of other
   words from `negatives_dir`, a word of two syllables or more cut off part-way ("ha-" is not
   "happy"), and background rows of the noise recordings (class `background`);
4. `members` runs of the one trainer (a small GRU; optionally a teacher) from different seeds on the
   same rows, validated on voices they did not train on, their probabilities averaged in one graph
   (core.graph.ensemble);
5. the threshold and smoothing chosen by `kws calibrate`'s rule (core.evaluate.calibrate) on a
   stream of held-out voices saying the keyword and the negatives over the noise, stored in the
   classifier.

OUTDIR gets featurizer.kwm, classifier.kwm (classes: background, unknown, the words) and
categories.txt as one set (core.outputs); OUTDIR/work keeps the intermediate folders.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from core.errors import DataError

BACKGROUND, UNKNOWN = "background", "unknown"
OTHER_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "one", "two", "three",
               "four", "five", "six", "seven", "eight", "nine", "zero", "bed", "bird", "cat", "dog", "happy",
               "house", "marvin", "sheila", "tree", "wow", "hello", "okay", "water", "music", "light", "open",
               "close", "time", "play", "next", "back", "phone", "morning", "thanks", "please", "computer",
               "window", "table", "yellow", "button")
ONSETS = ("b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "w", "sh", "ch", "st", "br")
CODAS = ("t", "n", "s", "d", "k")
VOWELS = set("aeiouy")
VOWEL_SPELLINGS = ("a", "e", "i", "o", "u", "ee", "oo", "ai", "oa", "ir", "ou", "aw")
# levels of the augmented copies: up to 20 dB above the recording, clipped at full scale (loud,
# clipped takes were a third of the unseen speakers' 'bed' clips a detector missed), and down to
# 24 dB below it: the featurizer's log(mel + 1) flattens quiet speech towards its floor, and with
# copies at most 12 dB quieter a detector found 58 % of unseen speakers' 'bed' played 20 dB quieter
# (81 % with these levels and the warps below); the noise rows reach as loud, so loudness or
# clipping alone never says "word"
SPEECH_GAIN_DB = (-24.0, 20.0)
# vocal tract length warp (core.data.augment.vtlp) of 4 copies in 5, formants and pitch x 0.85-1.15:
# ten clips from two or three people are few voices (with 0.9-1.1 on 2 copies in 5, unseen
# speakers' 'bed' found at 2 % false accepts averaged over words: 92 / 83 % for seeds 0 / 1; now 90 / 90 %)
VTLP_FACTOR = (0.85, 1.15)
NOISE_GAIN_DB = (-20.0, 20.0)


@dataclass(frozen=True)
class CustomConfig:
    synth_per_word: int = 300  # synthetic takes of each keyword (voices x rates x pitches, spread)
    negative_takes: int = 12  # synthetic takes of each other word and sound-alike
    user_copies: int = 40  # augmented copies of each of your clips
    # augmented copies of each of your clips played backwards, as `unknown`: your voice, your
    # microphone and your room without your word, so the detector cannot fire on those instead
    reversed_copies: int = 20
    # words of two syllables or more: augmented copies of each of your clips cut off part-way through
    # the word (its first 30-65 %), as `unknown`: "ha-" is not yet "happy", so a word that starts
    # alike ("house") must not fire it (a one-syllable word cut so is most of the word: none)
    partial_copies: int = 20
    partial_synth: float = 0.3  # the same for this share of the synthetic takes of such a keyword
    partial_others: float = 0.0  # this share of the other words' training takes cut off part-way too
    synth_copies: int = 1  # augmented copies of each synthetic or negative clip
    background_rows: int = 600  # rows of pure noise (class background)
    held_out_percent: float = 20.0  # synthetic voices kept for validation + calibration
    real_held_out_percent: float = 20.0  # speakers of your --negatives kept for validation + calibration
    engines: tuple[str, ...] | None = None  # None: every speech engine found
    hidden_size: int = 64
    num_layers: int = 2
    # start from the recurrent layers of a model trained on many real speakers (a new output layer:
    # nothing it knows about your word, if it knew it, is used): "default" = assets/custom_init.kwm
    # (the DevKit fine-tuned with last-frame targets: the bundled classifier lets a word go at once,
    # which found 65 % of unseen speakers' 'bed' where this finds 86 %),
    # a path = that model, "" = train from scratch (then hidden_size / num_layers apply)
    init: str = "default"
    epochs: int = 8
    # detectors trained from as many seeds (same data), their probabilities averaged in one graph
    # (core.graph.ensemble): builds vary a lot with the seed, their mean about as good as the best
    members: int = 2
    # which frames carry the word (TrainConfig.target_frame): peak fires on the word and lets go
    target_frame: str = "last"
    # weight of "no word" at other words' rows' likeliest frame (TrainConfig.quiet_unknown; 0: off)
    quiet_unknown: float = 0.0
    teacher: str = ""  # a model whose soft targets help (it must not be what the word is learnt from)
    target_fa_per_hour: float = 1.0
    # the stored threshold allows false accepts on at most this share of held-out other words' clips
    # (and none on the noise recordings); the DET stream above reports, this rule chooses
    target_fa_clips: float = 0.01
    calibration_minutes: float = 60.0  # the held-out stream: long enough that one false accept is ~1/h
    seed: int = 0
    jobs: int = 2

    def __post_init__(self):
        for name in ("synth_per_word", "negative_takes", "epochs", "members", "hidden_size", "num_layers", "jobs"):
            if getattr(self, name) < 1:
                raise ValueError(f"custom {name} must be >= 1, got {getattr(self, name)}")
        for name in ("user_copies", "reversed_copies", "partial_copies", "synth_copies", "background_rows",
                     "quiet_unknown"):
            if getattr(self, name) < 0:
                raise ValueError(f"custom {name} must be >= 0, got {getattr(self, name)}")
        if not self.calibration_minutes > 0:
            raise ValueError(f"custom calibration_minutes must be > 0, got {self.calibration_minutes}")
        if not 0 <= self.target_fa_clips < 1:
            raise ValueError(f"custom target_fa_clips must be in [0, 1), got {self.target_fa_clips}")
        for name in ("partial_synth", "partial_others"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"custom {name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("held_out_percent", "real_held_out_percent"):
            if not 0 < getattr(self, name) < 100:
                raise ValueError(f"custom {name} must be in (0, 100), got {getattr(self, name)}")


@dataclass(frozen=True)
class CustomResult:
    outputs: dict  # name -> path
    words: tuple[str, ...]
    user_clips: dict  # word -> clips cut from your recordings
    rows: dict  # split -> rows
    val_accuracy: float | None
    threshold: float
    smoothing: int
    calibration: dict

    def summary(self) -> tuple[str, str]:
        """(the headline, the details) of a finished run: what `kws custom` prints and the app shows."""
        c, r = self.calibration, self.calibration["clip_rule"]
        head = (f"threshold {self.threshold:g}, smoothing {self.smoothing}: finds {100 * r['found']:.0f} % of "
                f"{r['positives']} held-out keyword clips; fires on {100 * r['fa_clips']:.1f} % of "
                f"{r['other_words']} other words' clips (target {100 * r['target_fa_clips']:g} %), never on "
                f"{r['noise_s'] / 60:.1f} min of noise")
        val = f"; validation accuracy {100 * self.val_accuracy:.1f} %" if self.val_accuracy is not None else ""
        detail = ("held-out voices are synthetic: check on real people too (kws calibrate). Your clips: "
                  + ", ".join(f"{w} {n}" for w, n in self.user_clips.items())
                  + f"; rows: {self.rows['training']} training, {self.rows['validation']} validation{val}; "
                  f"on a {c['stream_s'] / 60:.1f} min stream of them over noise, kws calibrate's rule would miss "
                  f"{100 * c['frr']:.0f} % at {c['fa_per_hour']:.2f} false accepts/h")
        return head, detail


def sound_alikes(word: str, limit: int = 10, seed: int = 0, vowels: int = 5) -> list[str]:
    """Pseudo-words that sound like `word`: `limit` with its onset swapped, its ending changed or one
    end dropped, and `vowels` more with its first vowel changed ("bed" -> "bid", "bird": the vowel
    alone must not make the keyword)."""
    w = word.lower()
    i = next((k for k, ch in enumerate(w) if ch in VOWELS), 0)
    onset, rest = w[:i], w[i:]
    out = [o + rest for o in ONSETS if o != onset]
    j = len(w)
    while j > i and w[j - 1] not in VOWELS:
        j -= 1
    out += [w[:j] + c for c in CODAS if w[:j] + c != w]
    if len(w) > 3:
        out += [w[1:], w[:-1]]
    k = i
    while k < len(w) and w[k] in VOWELS:
        k += 1
    swapped = [w[:i] + v + w[k:] for v in VOWEL_SPELLINGS if v != w[i:k]]
    same = homophones(w, out + swapped)
    rng = np.random.default_rng([seed, len(w)])

    def pick(cands: list[str], n: int, taken: set) -> list[str]:
        skip = taken | same | {w}
        uniq = [x for x in dict.fromkeys(cands) if x.isalpha() and x not in skip]
        return [uniq[m] for m in sorted(rng.permutation(len(uniq))[:n])]

    first = pick(out, limit, set())
    return first + pick(swapped, vowels, set(first))


def syllables(word: str) -> int:
    """How many syllables `word` has: vowel groups of espeak-ng's phonemes ("h'api": 2, "h'aUs": 1),
    else of its spelling (a final "e" silent, "y" a vowel)."""
    from core.data.speech.espeak import phonemes

    said = phonemes([word])
    text, vowels = (said[0], "aAeEiIoOuUVY@3") if said else (word.lower().removesuffix("e") or word, "aeiouy")
    groups, inside = 0, False
    for ch in text:
        if ch in vowels:
            groups += not inside
            inside = True
        elif ch not in ":#":  # length and variant marks stay inside a vowel
            inside = False
    return max(1, groups)


def homophones(word: str, candidates: Sequence[str]) -> set[str]:
    """The candidates espeak-ng (en-us) says as `word` ("kat" for "cat"): labelled `unknown` they would
    teach a detector that its own word is not it. Empty when espeak-ng is not installed."""
    from core.data.speech.espeak import phonemes

    said = phonemes([word, *candidates]) if candidates else None
    return {x for x, ph in zip(candidates, said[1:]) if ph == said[0]} if said else set()


def user_folders(clips_dir: str | os.PathLike, words: Sequence[str]) -> dict[str, list[Path]]:
    """Your recordings: DIR/*.wav for one word, DIR/WORD/*.wav for each of several (or for one)."""
    from core.audio.sources import list_wavs

    d = Path(clips_dir)
    if not d.is_dir():
        raise DataError(f"{d}: not a folder of clips")
    out = {}
    for w in words:
        sub = d / w
        files = list_wavs(sub) if sub.is_dir() else (list_wavs(d) if len(words) == 1 else [])
        if not files:
            raise DataError(f"{d}: no recordings of '{w}' (put them in {sub}/)")
        out[w] = files
    return out


def _split(paths: Sequence[Path], percent: float) -> tuple[list[Path], list[Path]]:
    """(training, held out) by speaker (the name before _nohash_), Speech Commands' hash rule."""
    from core.data.lists import which_split

    train, held = [], []
    for p in paths:
        (held if which_split(p.name, percent, 0.0) == "validation" else train).append(p)
    return train, held


def augmentation() -> object:
    from core.data.augment import AugmentConfig

    return AugmentConfig(noise_fraction=0.8, snr_db=(0.0, 20.0), time_shift_ms=100.0, gain_db=SPEECH_GAIN_DB,
                         speed=(0.9, 1.1), reverb_fraction=0.3, pitch_fraction=0.8, pitch_factor=VTLP_FACTOR,
                         band_fraction=0.2, eq_fraction=0.3)


def reversed_clips(paths: Sequence[Path], outdir: Path, sample_rate: int) -> list[Path]:
    """Each clip played backwards (same voice, level and spectrum; no word), written to outdir."""
    from core.audio.wav import read_wav, write_wav

    outdir.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        x, _ = read_wav(p, sample_rate)
        dest = outdir / f"{Path(p).stem}_reversed.wav"
        write_wav(dest, x[::-1].copy(), sample_rate)
        out.append(dest)
    return out


def share_of(items: Sequence, share: float, seed) -> list:
    """A seeded random `share` of `items`, in their order."""
    pick = np.random.default_rng(seed).permutation(len(items))[: int(round(share * len(items)))]
    return [items[i] for i in sorted(pick)]


def word_extent(x: np.ndarray, hop: int) -> tuple[int, int]:
    """(first, end) samples of a clip's word: the hops louder than halfway (in dB) between its
    quietest and loudest hop."""
    n = max(1, len(x) // hop)
    db = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(db > (db.min() + db.max()) / 2)
    if not len(loud):
        return 0, len(x)
    return int(loud[0]) * hop, int(loud[-1] + 1) * hop


def partial_clips(paths: Sequence[Path], outdir: Path, sample_rate: int, seed: int = 0,
                  keep: tuple[float, float] = (0.3, 0.65), fade_s: float = 0.02) -> list[Path]:
    """Each clip with its word cut off after a random `keep` share of it (faded out, then silence),
    written to outdir: the start of the word without its end."""
    from core.audio.wav import read_wav, write_wav

    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    hop = max(1, int(round(0.016 * sample_rate)))
    fade = max(1, int(fade_s * sample_rate))
    out = []
    for p in paths:
        x, _ = read_wav(p, sample_rate)
        a, b = word_extent(x, hop)
        cut = a + int(rng.uniform(*keep) * (b - a))
        y = x.copy()
        y[cut: cut + fade] *= np.linspace(1.0, 0.0, len(y[cut: cut + fade]), dtype=np.float32)
        y[cut + fade:] = 0.0
        dest = outdir / f"{len(out):05d}_{Path(p).stem}_partial.wav"
        write_wav(dest, y, sample_rate)
        out.append(dest)
    return out


def clip_rule(spotter, categories: Sequence[str], words: Sequence[str], held: Sequence[tuple[Path, str]],
              noise_files: Sequence[Path], target_fa_clips: float, smoothings: Sequence[int] = (0, 2, 4),
              real: frozenset = frozenset(), cancel=None) -> dict:
    """The threshold and smoothing a custom detector stores: per smoothing, the lowest threshold that
    fires (as core.pipeline.Detector: the keyword is the top class and above the threshold) on at
    most `target_fa_clips` of the held-out other words' clips (reset per clip) and never on the
    noise recordings played end to end; then the smoothing that finds the most held-out keyword
    clips. Other words' clips, not a dense stream of them, are what the false-accept target counts.
    Real recordings among them (`real`: your --negatives) count on their own: the threshold meets the
    target on them and on the synthetic voices separately (voices of people fire differently)."""
    from core.audio.wav import read_wav
    from core.evaluate.calibrate import smoothed
    from core.progress import check_cancel

    kw = np.array([categories.index(w) for w in words])

    def score(probs: np.ndarray, n: int, only: int | None = None) -> float:
        p = smoothed(probs, n)
        top = p.argmax(axis=1)
        ok = np.isin(top, kw) if only is None else top == only
        return float(p[np.arange(len(p)), top][ok].max()) if ok.any() else 0.0

    runs = []
    for path, label in held:
        check_cancel(cancel)
        spotter.reset()
        runs.append((label, spotter.process(read_wav(path, spotter.sample_rate)[0])[1], path in real))
    spotter.reset()
    noise = [spotter.process(read_wav(f, spotter.sample_rate)[0])[1] for f in noise_files]
    best = None
    for n in smoothings:
        pos = np.array([score(p, n, categories.index(lab)) for lab, p, _ in runs if lab in words])
        t = max(0.5, max((score(p, n) for p in noise), default=0.0))
        for group in (False, True):  # synthetic voices, then your real recordings
            g = np.sort([score(p, n) for lab, p, r in runs if lab not in words and r == group])[::-1]
            k = int(np.floor(target_fa_clips * len(g)))
            t = max(t, float(g[k]) if k < len(g) else 0.0)
        neg = np.array([score(p, n) for lab, p, _ in runs if lab not in words])
        t = min(math.ceil(t * 1000) / 1000, 0.999)  # up to what the live view's 3 decimals show
        found = float(np.mean(pos > t)) if len(pos) else 0.0
        rule = {"threshold": round(t, 6), "smoothing": n, "found": round(found, 4), "positives": len(pos),
                "other_words": len(neg), "fa_clips": round(float(np.mean(neg > t)) if len(neg) else 0.0, 4),
                "target_fa_clips": target_fa_clips, "noise_s": round(sum(len(p) for p in noise)
                                                                      * spotter.frame_duration_s, 1)}
        if best is None or found > best["found"]:
            best = rule
    return best


def build_custom(words: Sequence[str], clips_dir: str | os.PathLike, outdir: str | os.PathLike, *,
                 noise_dir: str | os.PathLike, featurizer_path: str | os.PathLike | None = None,
                 negatives_dir: str | os.PathLike | None = None, config: CustomConfig = CustomConfig(),
                 stage: Callable[[str], None] | None = None, progress: Callable[[int, int], None] | None = None,
                 cancel=None) -> CustomResult:
    from core import models
    from core.audio.sources import list_wavs
    from core.data.augment import NoiseBank
    from core.data.dataset import Dataset, DatasetConfig, build_dataset, featurizer_info
    from core.data.segment import Framing, collect_words, file_chunks, safe_label
    from core.data.synth import SynthConfig, synthesize
    from core.evaluate.calibrate import calibrate_on_clips, with_detector
    from core.graph import modelfile
    from core.graph.ensemble import average_graphs
    from core.outputs import output_set
    from core.pipeline import DETECTOR_KEY, KeywordSpotter
    from core.progress import check_cancel
    from core.train.config import TrainConfig
    from core.train.teacher import same_features
    from core.train.trainer import Splits, Trainer

    say = stage or (lambda _t: None)
    words = [safe_label(w.lower()) for w in words]
    if len(set(words)) != len(words) or {BACKGROUND, UNKNOWN} & set(words):
        raise DataError(f"keywords must differ from each other and from {BACKGROUND}/{UNKNOWN}: {', '.join(words)}")
    cfg = config
    out, work = Path(outdir), Path(outdir) / "work"
    fpath = Path(featurizer_path) if featurizer_path else models.DEFAULT_FEATURIZER
    featurizer = models.load_model(fpath)
    fmeta = featurizer_info(featurizer, fpath)
    framing = Framing.of(featurizer, fmeta["sample_rate"])
    noise_files = list_wavs(noise_dir)
    if not noise_files:
        raise DataError(f"{noise_dir}: no noise recordings")
    cats = [BACKGROUND, UNKNOWN, *words]

    say("cutting your recordings into words")
    user: dict[str, list[Path]] = {}
    for w, files in user_folders(clips_dir, words).items():
        dest = work / "user"
        user[w] = []
        for f in files:
            check_cancel(cancel)
            found = collect_words(file_chunks(f, framing), framing, outdir=dest, label=w, speaker=Path(f).stem)
            user[w] += [p for _, p in found]
        if len(user[w]) < 3:
            raise DataError(f"{clips_dir}: only {len(user[w])} words of '{w}' found in the recordings (at least 3)")

    say(f"speaking {', '.join(words)} with every offline voice")
    synth_cfg = SynthConfig(per_word=cfg.synth_per_word, engines=cfg.engines, seed=cfg.seed)
    synthesize(words, work / "synth", synth_cfg, jobs=cfg.jobs, progress=progress, cancel=cancel)
    others = [x for x in OTHER_WORDS if x not in words and not any(x in w or w in x for w in words)]
    alikes = [a for w in words for a in sound_alikes(w, seed=cfg.seed) if a not in words]
    say(f"speaking {len(others)} other words and {len(alikes)} sound-alikes")
    synthesize(others + alikes, work / "negatives", replace(synth_cfg, per_word=cfg.negative_takes), jobs=cfg.jobs,
               progress=progress, cancel=cancel)

    def wavs(folder: Path) -> list[Path]:
        return list_wavs(folder) if folder.is_dir() else []

    train_e: list[tuple[Path, str]] = []
    held_e: list[tuple[Path, str]] = []
    for w in words:
        t, h = _split(wavs(work / "synth" / w), cfg.held_out_percent)
        train_e += [(p, w) for p in t]
        held_e += [(p, w) for p in h]
    # sound-alikes only train (they sharpen the word's edges); the threshold is chosen on other words:
    # what a detector hears around it, not near-misses made on purpose
    neg: list[Path] = [p for x in others for p in wavs(work / "negatives" / x)]
    train_e += [(p, UNKNOWN) for x in alikes for p in wavs(work / "negatives" / x)]
    real_neg: list[Path] = []
    if negatives_dir:
        from core.evaluate.passrate import labelled_clips

        real_neg = [p for p, lab in labelled_clips(negatives_dir) if lab not in words]
    for group, percent in ((neg, cfg.held_out_percent), (real_neg, cfg.real_held_out_percent)):
        t, h = _split(group, percent)
        train_e += [(p, UNKNOWN) for p in t]
        held_e += [(p, UNKNOWN) for p in h]
    if not any(lab in words for _, lab in held_e):
        raise DataError("no held-out voice says the keyword: install more speech engines or raise --synth-per-word")

    say("featurizing: your clips, augmented")
    bank = NoiseBank.load(noise_dir, framing.sample_rate)
    aug = augmentation()
    mine = [(p, w) for w, ps in user.items() for p in ps]
    parts = [build_dataset(mine, cats, featurizer, fmeta, config=DatasetConfig(seed=cfg.seed),
                           augment_config=replace(aug, copies=cfg.user_copies), noise=bank, jobs=cfg.jobs,
                           progress=progress, cancel=cancel).dataset]
    if cfg.reversed_copies:  # your voice and your room without your word: the word, not you, fires it
        backwards = reversed_clips([p for p, _ in mine], work / "user_reversed", framing.sample_rate)
        parts.append(build_dataset([(p, UNKNOWN) for p in backwards], cats, featurizer, fmeta,
                                   config=DatasetConfig(seed=cfg.seed + 5),
                                   augment_config=replace(aug, copies=cfg.reversed_copies), noise=bank,
                                   jobs=cfg.jobs, progress=progress, cancel=cancel).dataset)
    if cfg.partial_others:  # other words begun: "hap-" of "happy" is not "cat" either
        takes = share_of([p for p, lab in train_e if lab == UNKNOWN], cfg.partial_others, [cfg.seed, 8])
        train_e += [(p, UNKNOWN) for p in partial_clips(takes, work / "partial_others", framing.sample_rate,
                                                        seed=cfg.seed + 1)]
    longer = {w for w in words if syllables(w) >= 2}
    if longer and (cfg.partial_copies or cfg.partial_synth):  # the word begun, not finished: not the word
        say(f"cutting {', '.join(sorted(longer))} off part-way (unknown)")
        takes = share_of([p for p, lab in train_e if lab in longer], cfg.partial_synth, [cfg.seed, 7])
        yours = [p for p, w in mine if w in longer] if cfg.partial_copies else []
        cut = partial_clips(yours + takes, work / "partial", framing.sample_rate, seed=cfg.seed)
        n_user = len(yours)
        if n_user:
            parts.append(build_dataset([(p, UNKNOWN) for p in cut[:n_user]], cats, featurizer, fmeta,
                                       config=DatasetConfig(seed=cfg.seed + 6),
                                       augment_config=replace(aug, copies=cfg.partial_copies), noise=bank,
                                       jobs=cfg.jobs, progress=progress, cancel=cancel).dataset)
        train_e += [(p, UNKNOWN) for p in cut[n_user:]]
    say("featurizing: synthetic words, negatives and background")
    parts.append(build_dataset(train_e, cats, featurizer, fmeta,
                               config=DatasetConfig(seed=cfg.seed + 1, background_rows=cfg.background_rows,
                                                    background_label=BACKGROUND, background_gain_db=NOISE_GAIN_DB),
                               augment_config=replace(aug, copies=cfg.synth_copies), noise=bank, jobs=cfg.jobs,
                               progress=progress, cancel=cancel).dataset)
    val = build_dataset(held_e, cats, featurizer, fmeta,
                        config=DatasetConfig(seed=cfg.seed + 2, background_rows=max(1, cfg.background_rows // 5),
                                             background_label=BACKGROUND),
                        noise=bank, jobs=cfg.jobs, progress=progress, cancel=cancel).dataset
    train = Dataset(np.concatenate([d.features for d in parts]), np.concatenate([d.labels for d in parts]),
                    tuple(cats), parts[0].featurizer, {"recipe": "kws custom", "parts": [len(d) for d in parts]})

    say("training")
    init = cfg.init
    if init == "default":  # the bundled layers hear the bundled featurizer's features
        same = featurizer_path is None or same_features(featurizer, models.load_model(models.DEFAULT_FEATURIZER))
        init = str(models.CUSTOM_INIT) if same else ""
        if not same:
            say("this featurizer differs from the bundled one: training from scratch")
    tcfg = TrainConfig(architecture="gru", num_layers=cfg.num_layers, hidden_size=cfg.hidden_size, epochs=cfg.epochs,
                       batch_size=128, optimizer="adam", learning_rate=1e-3 if init else 3e-3, scheduler="cosine",
                       normalize=True, spec_augment=True, context_prob=0.3,
                       dropout=0.1 if cfg.num_layers > 1 else 0.0, teacher=cfg.teacher, seed=cfg.seed,
                       init=init, init_outputs=False, target_frame=cfg.target_frame, quiet_background=True,
                       quiet_unknown=cfg.quiet_unknown)
    members, val_accs = [], []
    for k in range(cfg.members):  # member 0 is the single-seed recipe; the others differ only in seed
        if cfg.members > 1:
            say(f"training ({k + 1} of {cfg.members})")
        on_batch = (lambda epoch, batch, batches, k=k: progress((k * cfg.epochs + epoch) * batches + batch,
                                                               cfg.members * cfg.epochs * batches)) \
            if progress else None
        run_dir = work / ("train" if k == 0 else f"train{k}")
        trainer = Trainer(replace(tcfg, seed=cfg.seed + 1000 * k), Splits(train, val, None), run_dir,
                          on_progress=on_batch, stop=cancel)
        trainer.fit()
        check_cancel(cancel)
        result = trainer.finish()
        members.append(modelfile.load(run_dir / "model.kwm"))
        if result.log:
            val_accs.append(float(result.log[-1]["val_accuracy"]))
    classifier = average_graphs(members)

    say("calibrating the threshold on held-out voices")
    spotter = KeywordSpotter(featurizer, classifier)
    # long gaps: `calibration_minutes` of background around the held-out words (an hour: one false
    # accept is about 1 FA/h; the compiled models run it in seconds)
    gap = max(1.0, 2 * 60.0 * cfg.calibration_minutes / max(1, len(held_e)) - 1.0)
    cal = calibrate_on_clips(spotter, cats, held_e, noise_files=noise_files, snr_db=10.0, gap_s=(1.0, gap),
                             seed=cfg.seed, target_fa_per_hour=cfg.target_fa_per_hour, ignore=(BACKGROUND, UNKNOWN),
                             progress=progress, cancel=cancel)
    say("choosing the threshold on held-out other words and the noise recordings")
    rule = clip_rule(spotter, cats, words, held_e, noise_files, cfg.target_fa_clips, real=frozenset(real_neg),
                     cancel=cancel)
    classifier = with_detector(classifier, cal, cats)
    det = classifier.metadata[DETECTOR_KEY]
    det["threshold"], det["smoothing"] = rule["threshold"], rule["smoothing"]
    det["calibration"]["clip_rule"] = rule
    classifier.metadata["provenance"] = {"recipe": "kws custom", "words": words, "config": asdict(cfg),
                                         "user_clips": {w: len(p) for w, p in user.items()},
                                         "synthetic_held_out_percent": cfg.held_out_percent}
    names = ("featurizer.kwm", "classifier.kwm", "categories.txt")
    with output_set(out, names) as s:
        modelfile.save(featurizer, s.path(names[0]))
        modelfile.save(classifier, s.path(names[1]))
        s.path(names[2]).write_text("".join(f"{c}\n" for c in cats), encoding="utf-8")
        final = {n: str(s.final(n)) for n in names}
    val_acc = float(np.mean(val_accs)) if val_accs else None
    return CustomResult(final, tuple(words), {w: len(p) for w, p in user.items()},
                        {"training": len(train), "validation": len(val)}, val_acc, rule["threshold"],
                        rule["smoothing"], det["calibration"])
