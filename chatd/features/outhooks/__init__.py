"""Outgoing webhooks: a room's events POSTed, signed, to URLs its admins subscribed.

The outbox is the room's own stored stream. Each webhook keeps a cursor (the last seq it has handled) in the store,
and delivery reads the stream past it, so nothing is written on the send path, an event is never lost between a
commit and an outbox row, and the events of a room come out in seq order by construction. A webhook is delivered
by the one node holding its lease in the store (``Store.lease_webhooks``); the cursor moves only after a POST is
answered 2xx, so a node that dies mid-POST leaves the event to be POSTed again: at least once.

- ``signing``: the payload, its signature and the rules for URLs and event kinds (no I/O);
- ``deliverer``: the node's background task that leases webhooks and POSTs their events.
"""
