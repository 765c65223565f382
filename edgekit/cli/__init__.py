"""edgekit.cli."""
