"""chatd's optional backends, each imported only when ``chatd.toml`` selects it (see ``chatd/registry.py``)."""
