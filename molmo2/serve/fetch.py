"""Fetching ``http(s)`` media URLs for ``molmo2 serve``: the standard library only (``http.client``), so that
every limit is ours to enforce.

Why it is built this way:

* **Bounded in bytes.** A ``Content-Length`` over the cap is refused (413) before the body is read; a body
  without one is read in pieces and refused as soon as it passes the cap; the connection is then closed,
  so the rest is never downloaded.
* **Bounded in time.** ``timeout`` covers the whole fetch (connecting, waiting for the answer, reading
  it, every redirect): each socket operation gets what is left of it, so a server trickling a byte a
  second cannot hold a request longer. Past it: 504.
* **No requests into the server's own network unless allowed.** The host name is resolved here and the
  connection goes to the address that was checked (a second DNS answer cannot swap in another: no
  rebinding); loopback, private, link-local, multicast and reserved addresses are refused (403) unless
  ``allow_private``. Redirects (at most ``max_redirects``) are followed by hand and each hop is checked
  again, scheme included (http and https only).
* **Clear failures.** A host that cannot be resolved or reached, a TLS error, a non-2xx answer: 400 with
  the URL and what happened (the status and reason the remote server gave).

Blocking: the handler runs it on a worker thread, never on the event loop.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit, urlunsplit

REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 1 << 16


class FetchError(Exception):
    """A URL that could not be fetched: ``status`` (400, 403, 413 or 504) and a message naming the URL."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def shown(url: str) -> str:
    """The URL as error messages show it: without user:password and cut to 200 characters."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        parts = parts._replace(netloc=host + (f":{parts.port}" if parts.port else ""))
    text = urlunsplit(parts)
    return text if len(text) <= 200 else text[:197] + "..."


def fetch(url: str, *, max_bytes: int, timeout: float, max_redirects: int = 3, allow_private: bool = False) -> bytes:
    """The body of ``url`` (http or https), or ``FetchError``; see the module docstring for the limits."""
    deadline = time.monotonic() + timeout
    first = url
    for _ in range(max_redirects + 1):
        status, location, body = _get(url, first, max_bytes, timeout, deadline, allow_private)
        if status not in REDIRECTS:
            return body
        url = urljoin(url, location)
    raise FetchError(400, f"{shown(first)} redirected more than {max_redirects} times; send the final URL")


def _get(url: str, first: str, max_bytes: int, timeout: float, deadline: float,
         allow_private: bool) -> tuple[int, str, bytes]:
    """(status, redirect location, body) of one GET; the body is read only for a 2xx answer."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    where = shown(url) if url == first else f"{shown(url)} (redirected from {shown(first)})"
    if scheme not in ("http", "https"):
        raise FetchError(400, f"{where}: only http and https URLs are fetched")
    try:
        host, port = parts.hostname, parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchError(400, f"{where}: the port is not a number") from None
    if not host:
        raise FetchError(400, f"{where}: the URL has no host")

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    conn: http.client.HTTPConnection | None = None
    response: http.client.HTTPResponse | None = None
    try:
        address = _address(host, port, allow_private, where)
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=left(), context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=left())
        # connect to the address checked above, not to whatever a second lookup of the name gives
        conn._create_connection = lambda _addr, t, source=None: socket.create_connection((address, port), t, source)
        target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        conn.request("GET", target, headers={"User-Agent": "molmo2-serve", "Accept": "*/*",
                                             "Accept-Encoding": "identity"})
        sock = conn.sock  # (the response keeps reading from it after a close-delimited answer drops it from conn)
        sock.settimeout(left())
        response = conn.getresponse()
        if response.status in REDIRECTS:
            location = response.getheader("Location")
            if not location:
                raise FetchError(400, f"{where} answered {response.status} {response.reason} without a Location")
            return response.status, location, b""
        if not 200 <= response.status < 300:
            raise FetchError(400, f"fetching {where} failed: the server answered {response.status} "
                                  f"{response.reason}".rstrip())
        declared = response.getheader("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
            raise FetchError(413, f"{where} is {int(declared)} bytes; this server fetches at most {max_bytes} "
                                  "bytes of media per request")
        body = bytearray()
        while True:
            sock.settimeout(left())
            piece = response.read1(CHUNK)
            if not piece:
                break
            body += piece
            if len(body) > max_bytes:
                raise FetchError(413, f"{where} is over {max_bytes} bytes, the most this server fetches of media "
                                      "per request")
        return response.status, "", bytes(body)
    except TimeoutError:
        raise FetchError(504, f"fetching {where} took longer than {timeout:g} s; send the media as a data: URL "
                              "or from a faster host") from None
    except ssl.SSLError as e:
        raise FetchError(400, f"could not fetch {where}: TLS error ({e.reason or e})") from None
    except socket.gaierror:
        raise FetchError(400, f"could not fetch {where}: the host {host!r} could not be resolved") from None
    except (OSError, http.client.HTTPException) as e:
        raise FetchError(400, f"could not fetch {where}: {type(e).__name__}: {e}".rstrip(": ")) from None
    finally:
        if response is not None:
            response.close()
        if conn is not None:
            conn.close()


def _address(host: str, port: int, allow_private: bool, where: str) -> str:
    """The first address of ``host`` that may be fetched from (all of them when ``allow_private``)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    refused = []
    for *_, sockaddr in infos:
        address = sockaddr[0]
        if allow_private or _public(address):
            return address
        refused.append(address)
    raise FetchError(403, f"{where}: {host} resolves to {', '.join(sorted(set(refused)))}, an address in a private, "
                          "loopback or reserved range; this server does not fetch from such addresses (start it "
                          "with --allow-private-media-urls to allow it)")


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast
