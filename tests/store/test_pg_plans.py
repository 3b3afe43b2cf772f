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
from plugins.postgres_store import QUOTED_EVENTS, RESENT


async def generic_plan(pg_dsn: str, types: str, statement: str, args: str) -> str:
    """The plan PostgreSQL keeps for ``statement`` (parameters of ``types``), run with ``args`` (``{alice}``: a
    user's id), when it was prepared on a new table and the table has since grown with nothing analyzing it: what a
    node that started early runs."""
    store = load("stores", "postgres")(StoreConfig(backend="postgres", dsn=pg_dsn, pool_size=2))
    await store.open()
    try:
        alice = await store.create_user("alice", None)
        await store.create_room("lobby", False, alice.id)
        await store.add_member("lobby", alice.id)
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE probed({types}) AS {statement}")
            probe = f"EXECUTE probed({args.format(alice=alice.id)})"
            await conn.fetch(probe)
            await conn.execute(
                "INSERT INTO messages (room, seq, sender, client_id, body, ts) "
                "SELECT 'lobby', n, $1, 'c' || n, 'hello', 0 FROM generate_series(1, 20000) AS n",
                alice.id,
            )
            return "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {probe}"))
        finally:
            await conn.close()
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_the_resend_lookup_probes_the_index_in_its_generic_plan(pg_dsn: str) -> None:
    plan = await generic_plan(pg_dsn, "text[], bigint[], text[]", RESENT, "'{{lobby}}', '{{{alice}}}', '{{c7}}'")
    assert "Seq Scan on messages" not in plan, plan
    assert "messages_idem" in plan, plan


@pytest.mark.asyncio
async def test_the_quoted_events_lookup_probes_the_primary_key_in_its_generic_plan(pg_dsn: str) -> None:
    # A batch's replies ask which quoted entries are room events (chatd.store.planner.reply_targets): one index
    # probe per entry. (PostgreSQL's generic plan may probe messages_idem by room rather than the primary key, as it
    # does for the single-entry lookup this replaced; what matters here is that it never reads the whole table.)
    plan = await generic_plan(pg_dsn, "text[], bigint[]", QUOTED_EVENTS, "'{{lobby}}', '{{7}}'")
    assert "Seq Scan on messages" not in plan, plan
    assert "Index Scan" in plan, plan
