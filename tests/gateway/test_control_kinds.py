"""The control route acts on every kind of event the CLI may sign, and on nothing else (no I/O)."""

from __future__ import annotations

import pytest

from chatd.gateway.control import APPLY
from chatd.signing import KINDS

pytestmark = pytest.mark.fast


def test_every_kind_the_signature_admits_has_an_action_and_no_other_does() -> None:
    assert set(APPLY) == set(KINDS)
