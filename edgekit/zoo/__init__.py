"""edgekit.zoo."""
