"""Chat features beside the message path: rooms and membership, per-user state, room change requests, uploads,
retention, and the incoming and outgoing webhooks."""
