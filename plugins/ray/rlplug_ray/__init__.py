"""rlplug on Ray: ``executor=ray`` runs one training run's workers as Ray actors anywhere in a Ray
cluster, around one hosted global model (see ``README.md``)."""

__version__ = "0.1.0"
