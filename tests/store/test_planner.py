"""The append planner's decisions, alone: facts in, outcomes and writes out, no store (chatd.store.planner).

The store contract (test_store_contract.py) shows both stores act on these decisions; these tests pin the
decisions themselves, including the cases a store reaches only with a crafted batch (a key twice in one batch, a
reply to a change made earlier in the same batch).
"""

from __future__ import annotations

import pytest

from chatd.errors import Err
from chatd.protocol.frames import Edited, Message, TopicChanged
from chatd.store import room_events
from chatd.store.base import NewMessage, Outcome
from chatd.store.planner import (
    AppendPlan,
    Change,
    ChangeWrite,
    Facts,
    Insert,
    asks_admin,
    asks_tally,
    plan_change,
    reply_targets,
)

pytestmark = pytest.mark.fast  # in-process: ./scripts/test --fast runs it

ALICE, BOB, CAROL = 1, 2, 3
TS = 1_700_000_000_000
LIMITS = (3, 2)  # distinct emoji per message, reactions per user per message


def facts(**over: object) -> Facts:
    base: dict[str, object] = {
        "ts": TS,
        "last": {"lobby": 10, "dev": 0, "old": 4},
        "archived": {"old"},
        "private": {"dev"},
        "stored": {},
        "members": {("lobby", ALICE): "alice", ("lobby", BOB): "bob", ("dev", ALICE): "alice", ("old", ALICE): "alice"},
    }
    base.update(over)
    return Facts(**base)  # type: ignore[arg-type]


def msg(room: str = "lobby", sender: int = ALICE, cid: str = "c1", body: str = "hi", **kw: object) -> NewMessage:
    return NewMessage(room, sender, cid, body, **kw)  # type: ignore[arg-type]


def new(step: object) -> Insert:
    assert isinstance(step, Insert), step
    return step


def refused(step: object) -> str:
    assert isinstance(step, Outcome) and step.error, step
    return step.error


# --- the outcome ladder ------------------------------------------------------------------------------------------


def test_new_messages_take_each_rooms_next_seqs_and_the_rooms_are_updated_in_name_order() -> None:
    plan = AppendPlan(facts())
    a = new(plan.step(msg(cid="a", attachments=["u1"])))
    b = new(plan.step(msg("dev", cid="b", reply_to=0)))
    c = new(plan.step(msg(cid="c", body="again", reply_to=3)))
    assert (a.outcome.seq, b.outcome.seq, c.outcome.seq) == (11, 1, 12)
    assert a.outcome == Outcome(11, TS, name="alice")
    assert a.row == ("lobby", 11, ALICE, "a", "hi", TS, '["u1"]', None, None)
    assert c.row == ("lobby", 12, ALICE, "c", "again", TS, None, 3, None)
    assert plan.last_seqs() == [("dev", 1), ("lobby", 12)]


def test_a_resend_of_a_stored_key_is_answered_with_what_was_stored_even_where_it_would_now_be_refused() -> None:
    first = Outcome(3, TS - 5, True, stored=None, name="alice")
    plan = AppendPlan(facts(stored={("old", ALICE, "c1"): first}))
    assert plan.step(msg("old")) is first
    assert plan.last_seqs() == []


def test_a_key_repeated_in_the_batch_is_a_duplicate_of_its_first_send() -> None:
    plan = AppendPlan(facts())
    first = new(plan.step(msg(body="one")))
    again = plan.step(msg(body="two"))
    assert isinstance(again, Outcome) and again.duplicate and again.seq == first.outcome.seq
    assert isinstance(again.stored, Message) and again.stored.body == "one" and again.stored.from_ == "alice"
    assert plan.last_seqs() == [("lobby", 11)]


def test_a_bots_message_through_a_hook_keeps_the_name_it_came_under_and_says_it_is_a_bots() -> None:
    plan = AppendPlan(facts(bots={BOB}))
    first = new(plan.step(msg(sender=BOB, body="build green", via="ci")))
    assert first.row == ("lobby", 11, BOB, "c1", "build green", TS, None, None, "ci")
    assert first.outcome == Outcome(11, TS, name="bob", bot=True)
    again = plan.step(msg(sender=BOB, body="build green", via="ci"))
    assert isinstance(again, Outcome) and again.duplicate and again.bot
    assert isinstance(again.stored, Message) and again.stored.via == "ci" and again.stored.bot
    assert not new(plan.step(msg(cid="human"))).outcome.bot


@pytest.mark.parametrize(
    ("m", "code"),
    [
        (msg("nowhere"), Err.NOT_FOUND.code),  # no such room, whoever sends
        (msg("nowhere", CAROL), Err.NOT_FOUND.code),
        (msg(sender=CAROL), Err.NOT_MEMBER.code),
        (msg("old", CAROL), Err.NOT_MEMBER.code),  # a stranger learns no more than that
        (msg("dev", CAROL), Err.NOT_FOUND.code),  # nor that a private room exists
        (msg("old"), Err.ARCHIVED.code),
        (msg("old", kind=room_events.TOPIC), Err.ARCHIVED.code),
        (msg(reply_to=11), Err.NOT_FOUND.code),  # past the room's end
        (msg(reply_to=-1), Err.NOT_FOUND.code),
        (msg(reply_to=7), Err.NOT_FOUND.code),  # a room event (see facts.events below)
    ],
)
def test_refusals_take_no_seq(m: NewMessage, code: str) -> None:
    plan = AppendPlan(facts(events={("lobby", 7)}))
    assert refused(plan.step(m)) == code
    assert new(plan.step(msg(cid="next"))).outcome.seq == 11
    assert plan.last_seqs() == [("lobby", 11)]


def test_a_reply_may_quote_a_message_of_the_same_batch_but_not_a_change_of_it() -> None:
    plan = AppendPlan(facts())
    assert new(plan.step(msg(cid="m"))).outcome.seq == 11
    edit = msg(cid="e", body="hi!", kind=room_events.EDIT, target=11)
    step = plan.step(edit)
    assert step == Change(12, TS, "alice")
    plan.changed(edit, step)
    assert new(plan.step(msg(cid="r1", reply_to=11))).outcome.seq == 13
    assert refused(plan.step(msg(cid="r2", reply_to=12))) == Err.NOT_FOUND.code


def test_only_quoted_stored_entries_are_asked_about() -> None:
    batch = [
        msg(reply_to=4),
        msg(reply_to=4, cid="x"),
        msg(reply_to=11),
        msg("dev", reply_to=1),
        msg("gone", reply_to=1),
    ]
    assert reply_targets(batch, {"lobby": 10, "dev": 0}) == [("lobby", 4)]


def test_a_change_takes_its_seq_only_once_applied_and_its_key_then_repeats_as_a_duplicate() -> None:
    plan = AppendPlan(facts())
    topic = msg(kind=room_events.TOPIC, body="news")
    step = plan.step(topic)
    assert step == Change(11, TS, "alice")
    assert plan.last_seqs() == []  # refused (the store did not call changed): nothing moved
    out = plan.changed(topic, step)
    assert out == Outcome(11, TS, stored=TopicChanged("lobby", 11, "alice", "news", "c1", TS, ALICE), name="alice")
    again = plan.step(topic)
    assert isinstance(again, Outcome) and again.duplicate and again.seq == 11 and again.stored == out.stored
    assert new(plan.step(msg(cid="after"))).outcome.seq == 12
    assert plan.last_seqs() == [("lobby", 12)]


# --- room changes ------------------------------------------------------------------------------------------------

STEP = Change(20, TS, "bob")
MINE = room_events.Target(BOB, None, False)
HERS = room_events.Target(ALICE, None, False)


def change(kind: str, body: str = "", target: int = 5) -> NewMessage:
    return msg(sender=BOB, cid="k", body=body, kind=kind, target=target)


def test_an_edit_of_ones_own_message_rewrites_it() -> None:
    write = plan_change(change(room_events.EDIT, "fixed"), STEP, MINE, LIMITS)
    assert write == ChangeWrite(("lobby", 20, BOB, "k", "fixed", TS, room_events.EDIT, 5), edit=True)


@pytest.mark.parametrize(
    ("kind", "target", "admin", "code"),
    [
        (room_events.EDIT, HERS, False, Err.FORBIDDEN.code),
        (room_events.EDIT, HERS, True, Err.FORBIDDEN.code),  # not even an admin edits another's words
        (room_events.DELETE, HERS, False, Err.FORBIDDEN.code),
        (room_events.EDIT, None, False, Err.NOT_FOUND.code),
        (room_events.UNREACT, room_events.Target(BOB, room_events.TOPIC, False), False, Err.NOT_FOUND.code),  # an event
        (room_events.DELETE, room_events.Target(BOB, None, True), False, Err.GONE.code),
    ],
)
def test_changes_refused(kind: str, target: room_events.Target | None, admin: bool, code: str) -> None:
    out = plan_change(change(kind, "x"), STEP, target, LIMITS, admin)
    assert isinstance(out, Outcome) and out.error == code


def test_a_delete_by_its_sender_or_an_admin_empties_the_target_and_keeps_no_text() -> None:
    assert not asks_admin(change(room_events.DELETE), MINE)
    assert asks_admin(change(room_events.DELETE), HERS)
    assert not asks_admin(change(room_events.EDIT), HERS)
    for target, admin in ((MINE, False), (HERS, True)):
        write = plan_change(change(room_events.DELETE, "ignored"), STEP, target, LIMITS, admin)
        assert write == ChangeWrite(("lobby", 20, BOB, "k", "", TS, room_events.DELETE, 5), delete=True)


def test_a_reaction_is_decided_on_its_targets_tally() -> None:
    react = change(room_events.REACT, "+1")
    assert asks_tally(react, HERS, False)
    assert not asks_tally(react, None, False)  # refused before counting
    assert not asks_tally(change(room_events.UNREACT, "+1"), HERS, False)
    with pytest.raises(ValueError, match="tally"):
        plan_change(react, STEP, HERS, LIMITS)
    ok = room_events.Tally(emoji=1, present=False, mine=0, again=False)
    assert plan_change(react, STEP, HERS, LIMITS, tally=ok) == ChangeWrite(
        ("lobby", 20, BOB, "k", "+1", TS, room_events.REACT, 5), react=True
    )
    for full in (room_events.Tally(3, False, 0, False), room_events.Tally(1, True, 2, False)):
        out = plan_change(react, STEP, HERS, LIMITS, tally=full)
        assert isinstance(out, Outcome) and out.error == Err.TOO_MANY_REACTIONS.code
    # Adding one already there changes nothing, so no cap refuses it.
    assert isinstance(plan_change(react, STEP, HERS, LIMITS, tally=room_events.Tally(3, True, 2, True)), ChangeWrite)
    assert plan_change(change(room_events.UNREACT, "+1"), STEP, HERS, LIMITS) == ChangeWrite(
        ("lobby", 20, BOB, "k", "+1", TS, room_events.UNREACT, 5), react=False
    )


def test_a_topic_sets_the_rooms_topic_and_its_frame_names_the_changer() -> None:
    topic = change(room_events.TOPIC, "", target=0)
    write = plan_change(topic, STEP, None, LIMITS)
    assert write == ChangeWrite(("lobby", 20, BOB, "k", "", TS, room_events.TOPIC, None), topic="")
    plan = AppendPlan(facts())
    edit = msg(sender=BOB, cid="e", body="new", kind=room_events.EDIT, target=3)
    step = plan.step(edit)
    assert isinstance(step, Change)
    assert plan.changed(edit, step).stored == Edited("lobby", 11, "bob", 3, "new", "e", TS, BOB)


def test_a_delete_answers_with_the_uploads_it_released_and_a_repeat_of_it_releases_nothing_again() -> None:
    plan = AppendPlan(facts())
    delete = msg(cid="d", kind=room_events.DELETE, target=3)
    step = plan.step(delete)
    assert isinstance(step, Change)
    assert plan.changed(delete, step, released=["u1"]).released == ["u1"]
    again = plan.step(delete)
    assert isinstance(again, Outcome) and again.duplicate and again.released == []
