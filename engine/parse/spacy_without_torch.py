"""spaCy, imported without torch.

spaCy's machine-learning library, thinc, imports torch whenever torch is installed, for pipelines
with torch layers that tagmill's parsing and mining never use; in a parse-only worker that costs
about 700 MB and seconds of start-up. Imported from here (the parse package does it first), thinc
finds no torch while spaCy loads, and torch stays importable for whatever asks for it afterwards.
A process that has imported torch already loads spaCy as usual.
"""

from __future__ import annotations

import importlib.abc
import sys


class _HideTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"{name} is not loaded with spaCy", name=name)
        return None


def _import_spacy():
    if "torch" in sys.modules or "spacy" in sys.modules:
        import spacy
        return spacy
    hide = _HideTorch()
    sys.meta_path.insert(0, hide)
    try:
        import spacy
    finally:
        sys.meta_path.remove(hide)
    return spacy


spacy = _import_spacy()
