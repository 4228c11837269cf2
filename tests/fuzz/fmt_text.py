"""Text inputs: categories files (core.models.load_categories) and list files (core.data.lists.read_list)."""

from __future__ import annotations

from core.data.lists import read_list
from core.models import DEFAULT_CATEGORIES, load_categories

from .formats import Format, register


def categories_seeds() -> list[bytes]:
    return [DEFAULT_CATEGORIES.read_bytes(), b"yes\nno\n", "\ufeffja\nnein\n\u00fcber\n".encode()]


def list_seeds() -> list[bytes]:
    return [b"yes/a_nohash_0.wav\nno/b_nohash_1.wav\n", b"# comment\n\n/abs/yes/x.wav\r\nup/y.wav\n"]


register(Format("categories", ".txt", categories_seeds, load_categories))
register(Format("list", ".txt", list_seeds, read_list))
