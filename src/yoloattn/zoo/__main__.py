"""Regenerate the bundled zoo YAMLs and, in a checkout, the rule x family table of docs/families.md:
``python -m yoloattn.zoo``."""

from pathlib import Path

from . import generate
from ..rules import with_families_table

# In a source checkout (src/yoloattn/zoo/__main__.py); an installed package has no docs to update.
DOCS = Path(__file__).resolve().parents[3] / "docs" / "families.md"

if __name__ == "__main__":
    for p in generate():
        print(p)
    if DOCS.is_file():
        text = DOCS.read_text()
        updated = with_families_table(text)
        if updated != text:
            DOCS.write_text(updated)
        print(DOCS)
