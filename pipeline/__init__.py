"""tagmill.pipeline: Beam sources, transforms, sinks, the graph and the CLI."""
