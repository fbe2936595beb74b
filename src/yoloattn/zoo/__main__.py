"""Regenerate the bundled zoo YAMLs: ``python -m yoloattn.zoo``."""

from . import generate

if __name__ == "__main__":
    for p in generate():
        print(p)
