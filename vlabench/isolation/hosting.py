"""A WebSocket server run from a blocking call or a daemon thread.

The base of :class:`~vlabench.isolation.serve.Server` (vlabench's own protocol) and
:class:`~vlabench.isolation.foreign.servers.ForeignServer` (openpi's and vla-eval's): a
subclass gives :meth:`WebSocketHost.serve_async` its handler and options and answers plain
HTTP requests (health checks, refusals) in ``_process_request``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any

Started = Callable[[Any], None]


class WebSocketHost:
    """Listening state shared by vlabench's WebSocket servers."""

    host: str
    port: int

    def __init__(self) -> None:
        self.ready = threading.Event()
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _process_request(self, connection: Any, request: Any) -> Any:
        return None  # every request is a WebSocket handshake

    async def serve_async(self, started: Started | None = None) -> None:
        raise NotImplementedError

    async def _listen(
        self, handler: Callable[[Any], Awaitable[None]], started: Started | None, **options: Any
    ) -> None:
        """Serve ``handler`` until closed; ``options`` go to websockets' ``serve``."""
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        async with serve(
            handler, process_request=self._process_request, compression=None, **options
        ) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            if started is not None:
                started(self)
            await server.serve_forever()

    def serve_forever(self, started: Started | None = None) -> None:
        """Serve until interrupted (blocking)."""
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(self.serve_async(started))

    def start_in_thread(self, timeout: float = 10.0) -> Any:
        """Serve from a daemon thread (tests, benchmarks); returns once it is listening."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        if not self.ready.wait(timeout):
            raise TimeoutError("server did not start")
        return self

    def stop(self) -> None:
        if self._server is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._server.close)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"
