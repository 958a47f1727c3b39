"""Envs and policies in another process or on another host: the wire codec (wire, decode), the
worker that hosts one (worker), the proxies that call it (proxies), and WebSocket serving
(serve) with its client side (remote)."""
