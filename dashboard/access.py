"""Who may use a served lab: the host names it answers to, and the access gate for a server others can reach.

On this machine's loopback (the default, ``.streamlit/config.toml``) nobody else can reach the lab, and no gate is
needed. Bound to any other address, anyone who reaches the port could queue unlimited runs, delete and import: the
app then refuses to start unless ``CARTPOLE_LAB_TOKEN`` is set, and every session must give that token once before
any page draws. The live endpoint, fetched by the browser without the session, is checked by a signature: the page
signs each live URL with the token (HMAC), and the endpoint recomputes it.

Every request to the live endpoint must also name, in its ``Host`` header, a host this server answers to: an IP
address, ``localhost``, the server's own address or a name listed in ``CARTPOLE_LAB_ALLOWED_HOSTS``. A page on another
site that points its own DNS name at this address (DNS rebinding) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os

TOKEN_ENV = "CARTPOLE_LAB_TOKEN"
HOSTS_ENV = "CARTPOLE_LAB_ALLOWED_HOSTS"
LOOPBACK_NAMES = ("localhost",)
MIN_TOKEN_CHARS = 16


def token() -> str:
    return os.environ.get(TOKEN_ENV, "")


def gated() -> bool:
    """Whether sessions and live requests must prove they know the token."""
    return bool(token())


def _server_address() -> str:
    from streamlit import config

    return str(config.get_option("server.address") or "")


def is_loopback(address: str) -> bool:
    """``127.x``, ``::1`` or ``localhost``. An empty address is not: Streamlit then listens on every interface."""
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_problem(address: str | None = None) -> str | None:
    """Why this server must not start (bound beyond loopback with no gate, or with a guessable token), or None."""
    address = _server_address() if address is None else address
    if token() and len(token()) < MIN_TOKEN_CHARS:
        return f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters (e.g. `python -c 'import secrets; " \
               "print(secrets.token_urlsafe(24))'`)"
    if is_loopback(address) or token():
        return None
    where = f"address {address!r}" if address else "every network interface (no server.address set)"
    return (f"CartPole Lab would listen on {where}, where anyone who reaches the port could queue runs, delete and "
            f"import. Set {TOKEN_ENV} to a secret of at least {MIN_TOKEN_CHARS} characters (every browser session "
            f"then asks for it), or serve on 127.0.0.1 (the default in .streamlit/config.toml).")


def allowed_hosts() -> list[str]:
    """Host names (besides IP addresses, always allowed) that the live endpoint answers to."""
    names = ["localhost"]
    address = _server_address()
    if address and not _is_ip(address):
        names.append(address.lower())
    names += [name.strip().lower() for name in os.environ.get(HOSTS_ENV, "").split(",") if name.strip()]
    return names


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
        return True
    except ValueError:
        return False


def host_allowed(host_header: str) -> bool:
    """Whether a request's ``Host`` (``name[:port]`` or ``[v6]:port``) is one this server answers to."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return bool(host) and (_is_ip(host) or host in allowed_hosts())


def sign(query: str) -> str:
    """The key the page appends to a live URL's query when the gate is on."""
    return hmac.new(token().encode(), query.encode(), hashlib.sha256).hexdigest()[:32]


def signed_query(query: str) -> str:
    return f"{query}&key={sign(query)}" if gated() else query


def request_allowed(raw_query: str, key: str) -> bool:
    """Whether a live request may be answered: always without the gate; with it, when ``key`` signs the query that
    came before it."""
    if not gated():
        return True
    query = raw_query.rsplit("&key=", 1)[0] if "&key=" in raw_query else raw_query
    return bool(key) and hmac.compare_digest(key, sign(query))


def session_allowed(given: str) -> bool:
    return gated() and hmac.compare_digest(given.encode(), token().encode())
