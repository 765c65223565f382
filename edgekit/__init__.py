"""edgekit: from a Keras definition to a measured, real-time camera app on small devices."""

__version__ = "0.1.0"
