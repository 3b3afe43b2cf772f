"""The edge: WebSocket and REST glue between sockets and the Node. No chat rules live here."""
