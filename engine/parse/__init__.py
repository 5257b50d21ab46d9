"""Parse: captions into tags of a vocabulary, and vocabularies mined from captions."""

from tagmill.engine.parse import spacy_without_torch  # noqa: F401  (first: spaCy loads without torch)
