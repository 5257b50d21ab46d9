"""tagmill.model: the tagger, the CLIP embedder, losses, training; never imports Beam."""
