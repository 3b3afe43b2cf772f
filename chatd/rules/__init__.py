"""Pure rules (no I/O) that the stores and the features share: DM room names, ``@name`` mentions, search terms,
bot scopes."""
