"""chatd: a self-hosted real-time chat server that never loses an acknowledged message."""

__version__ = "0.1.0"
