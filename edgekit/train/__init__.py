"""Training: losses per head, the fit loop with resumable checkpoints, callbacks, distribution.

``from edgekit.train import TrainConfig, train`` (TensorFlow is imported when ``train`` runs).
"""

from edgekit.train.config import TrainConfig, load_yaml, make_config

__all__ = ["TrainConfig", "load_yaml", "make_config", "train"]


def train(config: TrainConfig, **kwargs):
    """See :func:`edgekit.train.fit.train`."""
    from edgekit.train.fit import train as _train

    return _train(config, **kwargs)
