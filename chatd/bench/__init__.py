"""``chatd bench``: the load tester for any protocol-v1 server. See docs/bench.md."""
