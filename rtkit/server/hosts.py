"""Which ``Host`` a request may name: the defence against DNS rebinding.

A web page the user opens can make its own domain resolve to 127.0.0.1 (DNS
rebinding) and then talk to the kernel's server as a same-origin page: the
``Origin`` and ``Host`` it sends both say ``evil.example:PORT``, so comparing
them proves nothing. What the attacker cannot choose is a loopback *name*: a
request is served only when its ``Host`` names ``127.0.0.1``, ``localhost`` or
``[::1]`` (with any port, or none), the address the server was told to bind
(when it is a specific one), or a name in ``ServerConfig(allowed_hosts=...)``
(``"name"`` for any port, ``"name:port"`` for one), such as the host of a
JupyterHub whose proxy forwards ``/proxy/PORT/`` here with its own ``Host``.

RFC 9110 §7.2: "A user agent MUST generate a Host header field in a request";
one without it (an HTTP/1.0 tool) cannot be a browser's and is served.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LOOPBACK_NAMES", "HostCheck", "split_host"]

#: The names every server accepts.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_BINDS = ("", "0.0.0.0", "::")


def split_host(value: str) -> tuple[str, int | None]:
    """``"Name:8080"`` -> ``("name", 8080)``; ``"[::1]"`` -> ``("[::1]", None)``;
    the port is None when absent or not a number (the name is lower-cased)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name, rest = (value[: end + 1], value[end + 1 :]) if end != -1 else (value, "")
        port_text = rest[1:] if rest.startswith(":") else None
    elif value.count(":") == 1:
        name, port_text = value.split(":")
    else:
        name, port_text = value, None
    port = int(port_text) if port_text and port_text.isdigit() and len(port_text) <= 5 else None
    return name, port


class HostCheck:
    """The allowed names of one server (see the module docstring)."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str]) -> None:
        names = set(LOOPBACK_NAMES)
        bound = bind_host.strip().lower()
        if bound not in _WILDCARD_BINDS:
            names.add(f"[{bound}]" if ":" in bound else bound)
        self._any_port = names
        self._with_port: set[tuple[str, int]] = set()
        self.allowed_hosts = tuple(allowed_hosts)
        for entry in self.allowed_hosts:
            name, port = split_host(entry)
            if port is None:
                self._any_port.add(name)
            else:
                self._with_port.add((name, port))

    def allows(self, host: str | None) -> bool:
        """Whether a request whose ``Host`` header is ``host`` may be served."""
        if host is None:
            return True  # not a browser (see the module docstring)
        name, port = split_host(host)
        return name in self._any_port or (port is not None and (name, port) in self._with_port)

    def refusal(self, host: str) -> str:
        """The error for a refused ``host``: what is allowed and how to add one."""
        shown = host if len(host) <= 80 else host[:80] + "..."
        extra = ", ".join(self.allowed_hosts) or "none"
        name, _ = split_host(host)
        return (
            f"Host {shown!r} is not allowed (a defence against DNS rebinding); accepted: "
            f"{', '.join(LOOPBACK_NAMES)} (any port) and allowed_hosts ({extra}); to serve it, "
            f"start the server with allowed_hosts=[{name!r}] (or '{name}:PORT')"
        )
