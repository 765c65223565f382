"""edgekit.eval."""
