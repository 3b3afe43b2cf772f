"""Round 2, finding 5: per-address limits are not escaped by claiming another address. docker-compose.yml trusted
every private network as a proxy, so a LAN client picked its own address with X-Forwarded-For (25 of 25
registrations against a limit of 20); ``chatd cluster up`` trusted nothing, so every client shared nginx's budget;
and each of the 2^64 addresses of one IPv6 /64 was a client of its own."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest
import yaml
from security.conftest import hardened, post

from chatd.deploy.local import LocalCluster
from chatd.deploy.procs import free_port
from harness import ROOT, ChatdProcess


def register(server: ChatdProcess, name: str, forwarded_for: str) -> int:
    body = {"username": name, "password": "correct horse"}
    return post(
        server, "/api/auth/register", "127.0.0.1", json=body, headers={"x-forwarded-for": forwarded_for}
    ).status_code


def test_an_ipv6_64_is_one_client_for_per_address_limits(make_server) -> None:
    server: ChatdProcess = make_server(
        hardened({"auth": {"mode": "token", "registrations_per_hour": 3}, "server": {"trusted_proxies": ["127.0.0.1"]}})
    ).start()
    one_64 = [f"2001:db8:1:2::{i:x}" for i in range(1, 6)] + ["2001:db8:1:2:ffff:ffff:ffff:ffff"]
    codes = [register(server, f"v6user{i}", addr) for i, addr in enumerate(one_64)]
    assert codes == [201, 201, 201, 429, 429, 429]
    assert register(server, "next64", "2001:db8:1:3::1") == 201  # the neighbouring /64 is another client
    assert register(server, "v4user", "192.0.2.7") == 201


def test_the_compose_file_trusts_only_nginxs_fixed_address() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["x-chatd-env"]
    trusted = [t.strip() for t in str(env["CHATD_SERVER_TRUSTED_PROXIES"]).split(",") if t.strip()]
    assert len(trusted) == 1 and ipaddress.ip_network(trusted[0]).num_addresses == 1, trusted
    nginx = compose["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    assert ipaddress.ip_address(trusted[0].split("/")[0]) == ipaddress.ip_address(nginx)
    [subnet] = [c["subnet"] for c in compose["networks"]["default"]["ipam"]["config"]]
    assert ipaddress.ip_address(nginx) in ipaddress.ip_network(subnet)


@pytest.fixture
def behind_nginx(tmp_path: Path, namespace: str, redis_url: str, pg_dsn: str, need_nginx: None):
    """One node behind nginx, started the way ``chatd cluster up`` starts them."""
    settings = hardened({"auth": {"mode": "token", "registrations_per_hour": 2}})
    run = LocalCluster(tmp_path / "c", 1, "redis", redis_url, pg_dsn, namespace, free_port(), settings)
    yield run.start()
    run.stop()


def test_cluster_up_counts_each_client_behind_nginx_and_believes_no_client(behind_nginx: LocalCluster) -> None:
    def register_via_nginx(ip: str, name: str, spoof: str | None = None) -> int:
        headers = {"x-forwarded-for": spoof} if spoof else {}
        with httpx.Client(transport=httpx.HTTPTransport(local_address=ip), timeout=10) as c:
            body = {"username": name, "password": "correct horse"}
            return c.post(behind_nginx.http + "/api/auth/register", json=body, headers=headers).status_code

    assert [register_via_nginx("127.0.2.1", f"a{i}") for i in range(2)] == [201, 201]
    spoofed = [register_via_nginx("127.0.2.1", f"s{i}", spoof=f"198.51.100.{i}") for i in range(3)]
    assert spoofed == [429, 429, 429]  # a client's own X-Forwarded-For buys it nothing
    assert register_via_nginx("127.0.2.2", "b0") == 201  # another client, behind the same nginx, has its own budget
