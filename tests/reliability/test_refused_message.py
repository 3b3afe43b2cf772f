"""A message the store refuses outright is answered on its own: the rest of its batch and the batches after it are
stored, in the order they were sent."""

from __future__ import annotations

import sqlite3
import time

from harness import ChatdProcess, Client

SENDS = 60
POISON = 7  # the send the database refuses

# Slow (so later sends queue up while its batch commits), then refuse: a fault only this message meets.
POISON_TRIGGER = """
CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.client_id = 'm{poison}'
BEGIN
    SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000)
                          SELECT x FROM c);
    SELECT RAISE(ABORT, 'poisoned');
END
"""


async def test_a_refused_message_is_answered_alone_and_the_rest_are_stored_in_the_order_sent(make_server) -> None:
    server: ChatdProcess = make_server({"store": {"batch_max": 3}}).start()
    client = await Client.connect(server.ws, user="orderly")
    await client.join("pipeline")
    with sqlite3.connect(server.settings["store"]["path"]) as db:
        db.execute(POISON_TRIGGER.format(poison=POISON))

    for n in range(SENDS):
        await client.send({"type": "send", "room": "pipeline", "body": f"#{n}", "client_id": f"m{n}"})
    acked: dict[str, int] = {}
    refused: list[dict] = []
    deadline = time.monotonic() + 60
    while len(acked) + len(refused) < SENDS:
        frame = await client.recv(max(0.01, deadline - time.monotonic()))
        if frame["type"] == "ack":
            acked[frame["client_id"]] = frame["seq"]
        elif frame["type"] == "error":
            refused.append(frame)
    await client.close()

    assert [(f["ref"], f["code"]) for f in refused] == [(f"m{POISON}", "internal")]
    # Every other send was stored, in the order it was sent: neither the poisoned batch's other messages nor the
    # batches queued behind it were lost or overtaken.
    order = [f"m{n}" for n in range(SENDS) if n != POISON]
    assert sorted(acked, key=acked.__getitem__) == order
    assert sorted(acked.values()) == list(range(1, SENDS))
    with sqlite3.connect(server.settings["store"]["path"]) as db:
        stored = [r[0] for r in db.execute("SELECT client_id FROM messages WHERE room = 'pipeline' ORDER BY seq")]
    assert stored == order
