"""Seeded fuzzing of every file format a user can hand us.

A case is a seed file (built at run time from what the code itself writes: a saved graph, the
bundled assets, our wav writer; nothing copied from ../shared/data) mutated by a seeded mutator
(mutate.py: byte flips, truncation, splices, JSON-tree mutations, .npy headers, zip members and
headers). runner.py runs the format's public loader on it in a forked worker with a per-case
timeout and an address-space cap (RLIMIT_AS) and sorts the outcome: loaded, refused (a KwsError),
or a failure: untyped (any other exception, MemoryError and RecursionError included), hang
(timeout) or crash (the worker died). Case i of format F with seed S uses
random.Random(f"{S}:{F}:{i}"), so a failure is reproduced from its number alone.

- `make test` runs test_fuzz.py: KWS_FUZZ_CASES (default 250) cases per format; it fails on any
  failure outcome, and if a format's mutations never load or never get refused (a mutator that
  does nothing useful).
- `make fuzz` runs scripts/fuzz.py: 10,000 cases per format (`--cases`, `--formats`, `--seed`,
  `--timeout`, `--mem-mib`), printing the counts per outcome and keeping failing inputs.

Adding a format (e.g. `ell`, `onnx`): create tests/fuzz/fmt_NAME.py beside this file:

    from .formats import Format, register
    from .mutate import mutate_json          # or mutate_bytes, or a mutator of your own

    def ell_seeds() -> list[bytes]:          # valid files, made by code at run time
        ...
    def load_ell(path: str) -> None:         # the public loader; must return or raise KwsError
        core.models.load_model(path)

    register(Format("ell", ".ell", ell_seeds, load_ell, mutate_json))

formats.all_formats() imports every fmt_*.py, so the new format is in `make test` and `make fuzz`
with no other edit. A mutator has the signature mutate(rng: random.Random, data: bytes,
seeds: list[bytes]) -> bytes; a protobuf format can wrap mutate_bytes or mutate a parsed message.
"""
