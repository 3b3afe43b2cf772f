"""The nginx configuration that puts several chatd nodes behind one address.

The same text serves two purposes: ``config/nginx.conf`` is this template rendered for the example deployment (an
operator copies and edits it), and ``chatd cluster up`` renders it for the nodes it starts. What matters for chatd:

- WebSockets need the ``Upgrade``/``Connection`` headers passed on, HTTP/1.1 to the upstream, no buffering, and a
  read timeout longer than chatd's heartbeat interval (30 s), or nginx cuts quiet but healthy sockets.
- ``least_conn`` spreads long-lived sockets by how many each node holds, not by how many were opened.
- ``proxy_next_upstream``: a node that refuses the connection (it is down) is skipped, so clients of a dead node
  reconnect to the others at once.
- ``Host`` is passed with its port (``$http_host``): chatd compares a browser's Origin with it.
- The access log leaves out query strings, where a ``?token=`` may be.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE = """\
# nginx in front of {count} chatd nodes. {purpose}
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log warn;

events {{
    worker_connections 20000;
}}

http {{
    # Query strings can carry a ?token=; never write them to a log.
    log_format chatd '$remote_addr [$time_local] "$request_method $uri" $status $body_bytes_sent '
                     '$request_time $upstream_addr';
    access_log {access_log};
    client_body_temp_path {run}/tmp/body;
    proxy_temp_path {run}/tmp/proxy;
    fastcgi_temp_path {run}/tmp/fastcgi;
    uwsgi_temp_path {run}/tmp/uwsgi;
    scgi_temp_path {run}/tmp/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream chatd {{
        least_conn;
{servers}
        keepalive 64;
    }}

    server {{
        listen {listen};
        # REST sends and uploads above this are refused here; keep it at or above [uploads] max_bytes.
        client_max_body_size 12m;
        proxy_connect_timeout 2s;
        proxy_next_upstream error timeout;

        location /ws {{
            proxy_pass http://chatd;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # chatd pings quiet clients every 30 s, so 120 s never cuts a live socket.
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
            proxy_buffering off;
        }}

        location / {{
            proxy_pass http://chatd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""


def render(
    upstreams: list[str],
    listen: str,
    run_dir: str | Path,
    access_log: str | None = None,
    purpose: str = "Rendered by chatd cluster up.",
) -> str:
    """An nginx.conf balancing ``upstreams`` ("host:port") behind ``listen``; state files go in ``run_dir``."""
    run = str(run_dir)
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=2s;" for u in upstreams)
    return TEMPLATE.format(
        count=len(upstreams),
        purpose=purpose,
        run=run,
        servers=servers,
        listen=listen,
        access_log=f"{access_log} chatd" if access_log else "off",
    )


def prepare_run_dir(run_dir: Path) -> None:
    """nginx refuses to start if its temp directories are missing."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)


EXAMPLE_UPSTREAMS = ["10.0.0.11:8000", "10.0.0.12:8000", "10.0.0.13:8000"]
EXAMPLE_RUN_DIR = "/var/lib/chatd-nginx"


def example() -> str:
    """``config/nginx.conf``: the template for three nodes on three machines (a test keeps the file in step)."""
    return render(
        EXAMPLE_UPSTREAMS,
        "80",
        EXAMPLE_RUN_DIR,
        access_log="/var/log/nginx/chatd-access.log",
        purpose="Copy it, set the node addresses, and add TLS (listen 443 ssl; ssl_certificate …).",
    )


COMPOSE_UPSTREAMS = ["chatd-1:8000", "chatd-2:8000"]
COMPOSE_RUN_DIR = "/var/cache/chatd-nginx"


def compose() -> str:
    """``config/nginx-compose.conf``: nginx in docker-compose.yml, in front of its two nodes (a test keeps it in
    step)."""
    return render(
        COMPOSE_UPSTREAMS,
        "80",
        COMPOSE_RUN_DIR,
        purpose="Used by docker-compose.yml; the node names are its service names.",
    )
