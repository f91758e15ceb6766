"""Every sandbox in one Starlette app, and a helper that serves it from a thread for tests.

Each sandbox module ``sandboxes.<name>`` exposes ``routes() -> list[BaseRoute]`` (its mounts and
its ``/_sandbox/<name>/...`` control routes) and ``reset() -> None`` (its reset hook, called by
``POST /_sandbox/reset``).
"""

import html
import importlib
import socket
import threading
import time
from collections.abc import Callable
from types import ModuleType

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from sandboxes import data

SANDBOX_MODULES = ["knowbe4", "connectwise", "autotask", "halo", "syncro"]


def _load_modules() -> dict[str, ModuleType]:
    return {name: importlib.import_module(f"sandboxes.{name}") for name in SANDBOX_MODULES}


def build_app(knowbe4_schema: str = "2023") -> Starlette:
    """The app serving every sandbox; ``knowbe4_schema`` is KnowBe4's default schema generation."""
    modules = _load_modules()

    async def reset_all(request: Request) -> Response:
        for module in modules.values():
            module.reset()
        return JSONResponse({"reset": list(modules)})

    async def index(request: Request) -> Response:
        return HTMLResponse(_index_page(app, str(request.base_url).rstrip("/"), list(modules)))

    routes = [
        Route("/", index),
        Route("/_sandbox/reset", reset_all, methods=["POST"]),
    ]
    for name, module in modules.items():
        if name == "knowbe4":
            routes += module.routes(default_schema=knowbe4_schema)
        else:
            routes += module.routes()
    app = Starlette(routes=routes)
    return app


def _index_page(app: Starlette, base: str, sandboxes: list[str]) -> str:
    served = []
    for route in app.routes:
        if isinstance(route, Mount):
            served.append(f"<li><code>{html.escape(base + route.path)}/…</code></li>")
        elif isinstance(route, Route):
            methods = ", ".join(sorted((route.methods or set()) - {"HEAD"}))
            served.append(f"<li>{methods} <code>{html.escape(base + route.path)}</code></li>")
    partners = "".join(
        f"<tr><td>{html.escape(p.slug)}</td><td>{html.escape(p.name)}</td><td>{p.region}</td>"
        f"<td>{p.size}</td><td><code>{html.escape(p.key)}</code></td></tr>"
        for p in data.PARTNERS.values()
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>TrueUp sandboxes</title></head>
<body>
<h1>TrueUp sandboxes</h1>
<p>Fake vendor and PSA APIs for development and tests. Loaded: {", ".join(sandboxes)}.</p>
<p>Demo KnowBe4 partner key: <code>{html.escape(data.DEMO_PARTNER_KEY)}</code></p>
<h2>KnowBe4 partners</h2>
<table>
<tr><th>slug</th><th>name</th><th>region</th><th>customers</th><th>partner key</th></tr>
{partners}
</table>
<h2>Served</h2>
<ul>
{chr(10).join(served)}
</ul>
</body>
</html>
"""


def serve_in_thread(port: int = 0, **options) -> tuple[str, Callable[[], None]]:
    """Serve ``build_app(**options)`` on 127.0.0.1 from a daemon thread.

    ``port=0`` picks a free port. Returns once the server accepts connections, with its base URL
    (the real bound port) and a function that stops it.
    """
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on connections accepted from such a
    # socket, and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(build_app(**options), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="sandboxes", daemon=True
    )
    thread.start()

    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    socket.create_connection(("127.0.0.1", bound_port), timeout=5).close()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return f"http://127.0.0.1:{bound_port}", stop
