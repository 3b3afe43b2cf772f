"""The PostgreSQL append's lookups stay index lookups in the plan a prepared statement settles on.

asyncpg prepares every statement, and after five runs PostgreSQL may keep a generic plan, made without the
parameters' values. A lookup that is an index probe with the values known can become a scan of the whole table
without them, and then every append costs more as history grows (issue 23: PostgreSQL CPU per stored message).
The test forces the generic plan and reads it. Real PostgreSQL, the test's own database.
"""

from __future__ import annotations

import asyncpg
import pytest

from chatd.config import StoreConfig
from chatd.registry import load
from plugins.postgres_store import RESENT


@pytest.mark.asyncio
async def test_the_resend_lookup_probes_the_index_in_its_generic_plan(pg_dsn: str) -> None:
    store = load("stores", "postgres")(StoreConfig(backend="postgres", dsn=pg_dsn, pool_size=2))
    await store.open()
    try:
        alice = await store.create_user("alice", None)
        await store.create_room("lobby", False, alice.id)
        await store.add_member("lobby", alice.id)
        conn = await asyncpg.connect(pg_dsn)
        try:
            # A node prepares its statements when the table is new; the plan it keeps must still be right when
            # the table has grown and nothing has analyzed it since.
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE resent(text[], bigint[], text[]) AS {RESENT}")
            probe = f"EXECUTE resent('{{lobby}}', '{{{alice.id}}}', '{{c7}}')"
            await conn.fetch(probe)
            await conn.execute(
                "INSERT INTO messages (room, seq, sender, client_id, body, ts) "
                "SELECT 'lobby', n, $1, 'c' || n, 'hello', 0 FROM generate_series(1, 20000) AS n",
                alice.id,
            )
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {probe}"))
        finally:
            await conn.close()
    finally:
        await store.close()
    assert "Seq Scan on messages" not in plan, plan
    assert "messages_idem" in plan, plan
