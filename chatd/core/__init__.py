"""The node's message path: what carries a message from a sender's ``submit`` to every subscriber's outbox.

``node`` composes the rest and offers the chat actions; ``worker`` takes batches from the broker and commits them;
``feed`` orders each room's committed entries by seq and fills gaps; ``hub`` fans them into bounded per-connection
outboxes; ``cluster`` applies the actions every node must apply; ``presence`` knows who is in which room.
"""
