"""Protocol v1: frame types, decoding and per-connection state. No I/O and no asyncio in here."""
