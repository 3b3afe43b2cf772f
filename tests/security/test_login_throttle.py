"""Round 2, finding 4: nobody can lock anyone out. Five wrong passwords from one address used to lock the account,
so its owner's right password from another address got 429 for a minute, again and again. Failed logins now slow
further guesses per (account, address) and per account with growing delays, checked before the password; an
address that has not failed for the account is always heard; every failure is logged."""

from __future__ import annotations

import time

from security.conftest import hardened, new_user, post

from harness import ChatdProcess


def login(server: ChatdProcess, name: str, password: str, ip: str):
    return post(server, "/api/auth/login", ip, json={"username": name, "password": password})


def test_the_owners_right_password_from_a_clean_address_is_never_refused(make_server) -> None:
    server: ChatdProcess = make_server(hardened({"auth": {"mode": "token", "attempts_per_minute": 100}})).start()
    new_user(server, "target", "the real password")
    codes = [login(server, "target", f"guess number {i}", "127.0.0.21").status_code for i in range(8)]
    assert codes[:5] == [401] * 5 and 429 in codes[5:]
    r = login(server, "TARGET", "the real password", "127.0.0.22")  # the owner, elsewhere, any spelling
    assert r.status_code == 200 and r.json()["user"]["name"] == "target", r.text
    log = server.log()
    assert log.count("login failed for 'target' from 127.0.0.21") == 5
    assert "login refused for 'target' from 127.0.0.21" in log
    assert "guess number" not in log and "the real password" not in log


def test_guesses_from_one_address_wait_longer_and_longer_but_are_heard_again(make_server) -> None:
    server: ChatdProcess = make_server(
        hardened({"auth": {"mode": "token", "login_failures": 2, "lockout_seconds": 4, "attempts_per_minute": 100}})
    ).start()
    new_user(server, "slowed", "the real password")
    ip = "127.0.0.31"
    assert [login(server, "slowed", f"guess {i}", ip).status_code for i in range(2)] == [401, 401]
    waits = []
    for i in range(4):
        r = login(server, "slowed", f"guess again {i}", ip)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited", r.text  # checked before the password
        waits.append(int(r.headers["retry-after"]))
        time.sleep(waits[-1] + 0.2)
        assert login(server, "slowed", f"guess again {i}", ip).status_code == 401  # heard after the wait
    assert waits == sorted(waits) and waits[0] < waits[-1] <= 4  # growing, up to auth.lockout_seconds
    time.sleep(4.2)
    assert login(server, "slowed", "the real password", ip).status_code == 200  # never locked, even from there
    assert login(server, "slowed", "wrong once more", ip).status_code == 401  # the success cleared its count


def test_failures_from_many_addresses_slow_each_of_them_but_not_a_clean_one(make_server) -> None:
    server: ChatdProcess = make_server(
        hardened(
            {
                "auth": {
                    "mode": "token",
                    "login_failures": 100,
                    "account_failures": 4,
                    "lockout_seconds": 600,
                    "attempts_per_minute": 100,
                }
            }
        )
    ).start()
    new_user(server, "popular", "the real password")
    botnet = [f"127.0.0.{40 + i}" for i in range(6)]
    assert [login(server, "popular", f"try from {ip}", ip).status_code for ip in botnet] == [401] * 6
    for ip in botnet:  # the account passed auth.account_failures: every address that failed now waits
        r = login(server, "popular", "another try", ip)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.text
    assert login(server, "popular", "a clean address guesses", "127.0.0.50").status_code == 401  # heard
    assert login(server, "popular", "the real password", "127.0.0.51").status_code == 200  # the owner signs in
    # an unknown name is throttled the same way, so the answers do not tell which names exist
    assert [login(server, "nobody-here", "whatever1", ip).status_code for ip in botnet] == [401] * 6
    assert login(server, "nobody-here", "whatever1", botnet[0]).status_code == 429
