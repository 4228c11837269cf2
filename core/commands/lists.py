"""Make training, validation and testing lists plus categories.txt from folders of wavs in
Speech Commands layout (ELL's make_training_list). Word folders starting with `_` are skipped.
A folder's own testing_list.txt / validation_list.txt are honoured; otherwise files are split by
speaker (the name before `_nohash_`), so no speaker is in two splits. Several AUDIO_DIRs are
merged (e.g. real recordings plus `kws synth` output). The lists go to -o OUTDIR; nothing is
written into a data folder unless --in-place asks for it (a dataset's own lists are then kept once
as *.orig.txt). List lines are paths relative to the folder holding the list (`word/file.wav` when
the lists sit in AUDIO_DIR)."""

from __future__ import annotations

from core.data.lists import ListsConfig, check_output_dir, default_output, make_lists, write_lists
from core.errors import DataError


def add_arguments(p):
    p.add_argument("audio_dirs", nargs="+", metavar="AUDIO_DIR", help="folder(s) of word sub-folders of wavs")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="OUTDIR", help="where the lists go (required unless --in-place)")
    out.add_argument("--in-place", action="store_true",
                     help="write the lists into the one AUDIO_DIR itself (replacing its own lists, "
                          "which are kept once as *.orig.txt)")
    p.add_argument("--max-files-per-dir", "-max", type=int, metavar="N",
                   help="at most N training files per word, chosen at random (seeded)")
    p.add_argument("--bad-list", "-b", metavar="FILE",
                   help="files to leave out of every list: lines word/file.wav (relative to "
                        "AUDIO_DIR) or absolute paths")
    p.add_argument("--validation-percent", type=float, default=10.0, metavar="P",
                   help="for folders without their own lists: share of speakers for validation")
    p.add_argument("--testing-percent", type=float, default=10.0, metavar="P",
                   help="for folders without their own lists: share of speakers for testing")
    p.add_argument("--background-class", metavar="LABEL",
                   help="add LABEL as class 0 of categories.txt (filled by `kws dataset --background-rows`)")
    p.add_argument("--seed", type=int, default=0, help="random seed for --max-files-per-dir")


def main(args) -> int:
    cfg = ListsConfig(max_files_per_dir=args.max_files_per_dir, seed=args.seed,
                      validation_percent=args.validation_percent, testing_percent=args.testing_percent,
                      bad_list=args.bad_list, background_class=args.background_class)
    if args.output:
        outdir = check_output_dir(args.output)
    elif args.in_place:
        outdir = default_output(args.audio_dirs)
    else:
        raise DataError("say where the lists go: -o OUTDIR (or --in-place to write them into AUDIO_DIR itself)")
    lists = make_lists(args.audio_dirs, cfg)
    for root, src in lists.sources.items():
        c = src["counts"]
        how = "its own testing/validation lists" if src["split"] == "dataset lists" else "split by speaker"
        print(f"{root}: {how}: {c['training']} training, {c['validation']} validation, "
              f"{c['testing']} testing")
    if lists.bad_removed:
        print(f"removed {lists.bad_removed} bad files listed in {args.bad_list}")
    elif args.bad_list:
        print(f"none of the files listed in {args.bad_list} is present")
    for word, (kept, available) in sorted(lists.capped.items()):
        print(f"choosing {kept} random files from {available} in {word}")
    paths = write_lists(lists, outdir, cfg)
    print(f"{len(lists.categories)} categories: {', '.join(lists.categories)}")
    for split in ("training", "validation", "testing"):
        print(f"Created {paths[split]} containing {len(getattr(lists, split))} wav files")
    print(f"Created {paths['categories']}")
    if not lists.training:
        print("warning: the training list is empty")
    return 0
