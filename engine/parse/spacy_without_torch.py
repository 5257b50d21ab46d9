"""spaCy, imported without torch and without its command line.

spaCy's machine-learning library, thinc, imports torch whenever torch is installed, for pipelines
with torch layers that tagmill's parsing and mining never use; in a parse-only worker that costs
about 700 MB and seconds of start-up. Imported from here (the parse package does it first), thinc
finds no torch while spaCy loads, and torch stays importable for whatever asks for it afterwards.
A process that has imported torch already loads spaCy as usual.

spaCy's package also imports its whole command line (typer, weasel, requests: half a second) for
`spacy.info` alone. While spaCy loads, that module is a stand-in whose `info` imports the real one
when called; afterwards `spacy.cli` imports as usual, also when first asked for as `spacy.cli`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import types

COMMAND_LINE = ("spacy.cli", "spacy.cli.info")


class _HideTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"{name} is not loaded with spaCy", name=name)
        return None


def _info(*args, **kwargs):
    """spaCy's `spacy.info`, from its command line, imported when first called."""
    from spacy.cli.info import info

    return info(*args, **kwargs)


def _command_line(name: str):
    """The `spacy` package's attributes that its import no longer sets: `cli`, imported when asked for."""
    if name == "cli":
        return importlib.import_module("spacy.cli")
    raise AttributeError(f"module 'spacy' has no attribute {name!r}")


def _import_spacy():
    if "spacy" in sys.modules:
        import spacy
        return spacy
    stand_ins = {name: types.ModuleType(name) for name in COMMAND_LINE}
    stand_ins["spacy.cli.info"].info = _info
    hide = _HideTorch()
    if "torch" not in sys.modules:
        sys.meta_path.insert(0, hide)
    sys.modules.update(stand_ins)
    try:
        import spacy
    finally:
        for name in COMMAND_LINE:
            sys.modules.pop(name, None)
        if hide in sys.meta_path:
            sys.meta_path.remove(hide)
    spacy.__getattr__ = _command_line
    return spacy


spacy = _import_spacy()
