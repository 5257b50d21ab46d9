"""tagmill.engine: records, vocabulary, caption parsing, synthetic data; no torch, no Beam."""
