"""Parse: captions into tags of a vocabulary, and vocabularies mined from captions."""
