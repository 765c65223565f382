"""edgekit.compress."""
