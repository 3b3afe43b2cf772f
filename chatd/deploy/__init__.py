"""Running chatd as several nodes: the nginx configuration and a local deployment for trying it and testing it."""
