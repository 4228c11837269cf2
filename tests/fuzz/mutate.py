"""Seeded mutators: every function takes a `random.Random` and returns new bytes (never in place).

- `mutate_bytes`: bit flips, interesting bytes and integers, inserts, deletes, duplicated runs,
  truncation, splices with another seed.
- `mutate_json`: parse, change one place in the tree (a value of another type, an absurd number,
  a deleted or added key, a duplicated list entry, a 5000-deep nesting), serialise; text that
  does not parse gets `mutate_bytes`.
- `mutate_npy`: a new header (dtype, shape, fortran_order, broken literal) or body.
- `mutate_zip`: mutate one member with the mutator for its kind, drop / add / rename members,
  change a member's compression, patch header fields (encrypted flag, method, sizes, CRC) in the
  raw archive, or mutate the archive's bytes.
"""

from __future__ import annotations

import copy
import io
import json
import random
import struct
import warnings
import zipfile
from collections.abc import Callable

Mutator = Callable[[random.Random, bytes, list[bytes]], bytes]

INTERESTING_INTS = [0, 1, -1, 2, 7, 255, 256, 32767, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**36, 2**40,
                    2**63 - 1, -5, 10**7, 10**12]
DEEP = "\u0000deep\u0000"  # replaced by a 5000-deep nested list after serialising
INTERESTING_VALUES = [None, True, False, 0, -5, 1, -1, 0.5, 1e12, 2**36, 10**7, 1e308, -1e308, "", "abc", "512",
                      "1e12", [], {}, [1, 2, 3], [[0, 0]], {"a": 1}, "x" * 1000, DEEP, float("nan"), float("inf")]


# ------------------------------------------------------------------ bytes
def _one_byte_op(rng: random.Random, b: bytearray, seeds: list[bytes]) -> bytearray:
    k = rng.randrange(9)
    n = len(b)
    if n == 0 or k == 0:  # insert random bytes
        pos = rng.randrange(n + 1)
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 16))))
    elif k == 1:  # flip bits
        for _ in range(rng.randrange(1, 9)):
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif k == 2:  # interesting byte
        b[rng.randrange(n)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
    elif k == 3:  # interesting little-endian integer
        width, fmt = rng.choice(((2, "<H"), (4, "<I"), (8, "<Q")))
        pos = rng.randrange(max(n - width, 0) + 1)
        v = rng.choice(INTERESTING_INTS) % (1 << (8 * width))
        b[pos : pos + width] = struct.pack(fmt, v)[: max(0, n - pos)]
    elif k == 4:  # delete a run
        pos = rng.randrange(n)
        del b[pos : pos + rng.choice((1, 2, 4, 16, 256))]
    elif k == 5:  # duplicate a run
        pos = rng.randrange(n)
        run = b[pos : pos + rng.choice((1, 4, 16, 256))]
        at = rng.randrange(n + 1)
        b[at:at] = run * rng.choice((1, 2, 8))
    elif k == 6:  # truncate
        del b[rng.randrange(n) :]
    elif k == 7 and seeds:  # splice: our head, another seed's tail
        other = rng.choice(seeds)
        cut = rng.randrange(n + 1)
        b = b[:cut] + bytearray(other[rng.randrange(len(other) + 1) :])
    else:  # overwrite a run with one repeated byte
        pos = rng.randrange(n)
        ln = rng.choice((4, 64, 1024))
        b[pos : pos + ln] = bytes([rng.choice((0, 0xFF, 0x41))]) * len(b[pos : pos + ln])
    return b


def mutate_bytes(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 4))):
        b = _one_byte_op(rng, b, seeds)
    return bytes(b)


# ------------------------------------------------------------------ JSON
def _slots(doc, limit: int = 5000) -> list[tuple[object, object]]:
    """(container, key) for every value in the tree, breadth first, without recursion."""
    out, todo = [], [doc]
    while todo and len(out) < limit:
        c = todo.pop()
        keys = list(c.keys()) if isinstance(c, dict) else range(len(c))
        for k in keys:
            out.append((c, k))
            if isinstance(c[k], (dict, list)):
                todo.append(c[k])
    return out


def _random_value(rng: random.Random, old):
    r = rng.random()
    if r < 0.5:
        return copy.deepcopy(rng.choice(INTERESTING_VALUES))
    if r < 0.7 and isinstance(old, (int, float)) and not isinstance(old, bool):
        return rng.choice((old * 1e6, -old, old + 1, 0, old * 2**20, int(old) if old == old else 0, str(old)))
    if r < 0.8 and isinstance(old, list):
        return old[::-1] if rng.random() < 0.5 else [old]
    return rng.choice(INTERESTING_INTS)


def mutate_json_value(rng: random.Random, doc):
    """A mutated deep copy of a parsed JSON document."""
    doc = copy.deepcopy(doc)
    slots = _slots(doc) if isinstance(doc, (dict, list)) else []
    if not slots or rng.random() < 0.03:
        return _random_value(rng, doc)
    for _ in range(rng.choice((1, 1, 2, 3))):
        slots = _slots(doc)
        if not slots:
            break
        c, k = rng.choice(slots)
        op = rng.randrange(6)
        if op <= 2:
            c[k] = _random_value(rng, c[k])
        elif op == 3:  # delete
            del c[k]
        elif op == 4:  # add or duplicate
            if isinstance(c, dict):
                c[rng.choice(("id", "op", "inputs", "attrs", "params", "size", "x", str(rng.random())))] = (
                    _random_value(rng, None))
            else:
                c.insert(rng.randrange(len(c) + 1), copy.deepcopy(c[k]))
        else:  # swap with another value of the tree
            c2, k2 = rng.choice(slots)
            c[k], c2[k2] = copy.deepcopy(c2[k2]), copy.deepcopy(c[k])
    return doc


def dumps(doc) -> bytes:
    text = json.dumps(doc)  # NaN and Infinity stay as written: the reader must refuse them
    return text.replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000).encode("utf-8")


def mutate_json(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    try:
        doc = json.loads(data)
    except ValueError:
        return mutate_bytes(rng, data, seeds)
    if rng.random() < 0.1:
        return mutate_bytes(rng, data, seeds)
    return dumps(mutate_json_value(rng, doc))


# ------------------------------------------------------------------ .npy
_DESCRS = ["<f4", "<f8", ">f4", "<c8", "|O", "<U4", "|S3", "<i1", "|b1", "<i8", "V8", "f4", "<f2", "", "<f4<f4"]
_SHAPES = ["()", "(0,)", "(3,)", "(-1,)", "(1099511627776,)", "(4294967296, 4294967296)", "(1, 2, 3, 4, 5, 6, 7, 8, 9)",
           "(2.5,)", "('a',)", "(True,)", "None", "[3]", "(" * 300 + ")" * 300, "(1,"]


_BROKEN_HEADERS = ["{", "{'descr': '<f4'", "{" * 200, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,}",
                   "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1}", "\x00" * 10,
                   "[1, 2]", "{1: 2}", "'''", "{'descr': '\\", "{'descr': 1e999999, 'x': 9**9**9}"]


def npy_bytes(header: str, body: bytes, version: int = 1) -> bytes:
    h = header.encode("latin-1", "replace")
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h) % 65536) + h + body
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(h)) + h + body


def mutate_npy(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    body_at = 10 + struct.unpack("<H", data[8:10])[0] if len(data) >= 10 and data[6] == 1 else len(data)
    body = data[body_at:]
    k = rng.randrange(6)
    if k == 0:
        return mutate_bytes(rng, data, seeds)
    descr = rng.choice(_DESCRS) if k in (1, 4) else "<f4"
    shape = rng.choice(_SHAPES) if k in (2, 4) else f"({len(body) // 4},)"
    fortran = rng.choice(("False", "True", "1", "None", "'x'")) if k == 3 else "False"
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    if k == 5:
        header = rng.choice(_BROKEN_HEADERS)
    if rng.random() < 0.3:
        body = body[: rng.randrange(len(body) + 1)]
    return npy_bytes(header, body, rng.choice((1, 1, 1, 2, 3)))


# ------------------------------------------------------------------ zip
def zip_members(data: bytes) -> list[tuple[str, bytes]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [(i.filename, z.read(i)) for i in z.infolist()]
    except Exception:  # noqa: BLE001 - a seed that is no zip gets byte mutations
        return None


def build_zip(members: list[tuple[str, bytes]], methods: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        warnings.simplefilter("ignore")  # duplicate names are one of the mutations
        for name, data in members:  # a fixed timestamp: the same case gives the same bytes
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data, compress_type=(methods or {}).get(name, zipfile.ZIP_DEFLATED))
    return buf.getvalue()


def _patch_headers(rng: random.Random, data: bytes) -> bytes:
    """Change one field of one local or central header: flags, method, CRC or sizes."""
    b = bytearray(data)
    spots = [i for i in range(len(b) - 4) if b[i : i + 2] == b"PK" and b[i + 2 : i + 4] in (b"\x03\x04", b"\x01\x02")]
    if not spots:
        return mutate_bytes(rng, data, [])
    at = rng.choice(spots)
    central = b[at + 2 : at + 4] == b"\x01\x02"
    base = at + (2 if central else 0)  # central headers have one more 2-byte field before flags
    field = rng.choice(("flags", "method", "crc", "csize", "usize"))
    off, fmt = {"flags": (6, "<H"), "method": (8, "<H"), "crc": (14, "<I"), "csize": (18, "<I"),
                "usize": (22, "<I")}[field]
    value = {"flags": lambda: struct.unpack_from("<H", b, base + off)[0] | rng.choice((1, 8, 0x40, 0x2000)),
             "method": lambda: rng.choice((12, 14, 93, 95, 98, 99, 7, 255)),
             "crc": lambda: rng.randrange(1 << 32),
             "csize": lambda: rng.choice((0, 1, 0xFFFFFFFF, 1 << 30, rng.randrange(1 << 20))),
             "usize": lambda: rng.choice((0, 1, 0xFFFFFFFF, 1 << 30, 1 << 28, rng.randrange(1 << 20)))}[field]()
    if base + off + struct.calcsize(fmt) <= len(b):
        struct.pack_into(fmt, b, base + off, value)
    return bytes(b)


def mutate_zip(rng: random.Random, data: bytes, seeds: list[bytes],
               by_suffix: dict[str, Mutator] | None = None) -> bytes:
    """One structural mutation of a zip; members are mutated with by_suffix[their suffix] (else bytes)."""
    members = zip_members(data)
    k = rng.randrange(10)
    if members is None or k == 0:
        return mutate_bytes(rng, data, seeds)
    if k == 1:
        return _patch_headers(rng, data)
    methods: dict[str, int] = {}
    if k <= 5 or not members:  # mutate one member
        if members:
            i = rng.randrange(len(members))
            name, body = members[i]
            suffix = name.rsplit(".", 1)[-1] if "." in name else ""
            fn = (by_suffix or {}).get(suffix, mutate_bytes)
            members[i] = (name, fn(rng, body, [b for _, b in members]))
    elif k == 6:  # drop
        members.pop(rng.randrange(len(members)))
    elif k == 7:  # add or duplicate
        name, body = rng.choice(members)
        members.append((rng.choice((name, "extra.bin", "../escape.npy", "arrays/99.npy")), body))
    elif k == 8:  # rename
        i = rng.randrange(len(members))
        members[i] = (rng.choice(("model.JSON", "x/model.json", "arrays/0.npy", "")), members[i][1])
    else:  # another compression method
        name = rng.choice(members)[0]
        methods[name] = rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA))
    try:
        return build_zip(members, methods)
    except (ValueError, OSError, IndexError):  # an unwritable name, e.g. ""
        return data
