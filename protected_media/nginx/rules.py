"""What may be written into the nginx config (pure): one rule per kind of
value, used by the renderer, the system checks and, through the renderer,
``protected_media_doctor``."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

# What nginx would read as syntax rather than as one plain word: whitespace
# ends a word, ";" a directive, braces open and close blocks, quotes and "\"
# change how a word is read, "$" makes it a variable, "#" comments out the
# rest of the line.
UNSAFE = re.compile(r"[\s;{}\"'$\\#]")
# An nginx rate: requests per second or per minute; nginx refuses "0r/s".
RATE_RE = re.compile(r"[1-9][0-9]*r/[sm]")


def is_writable(value: str) -> bool:
    """A value nginx reads as one plain word (an empty one would be no word)."""
    return bool(value) and UNSAFE.search(value) is None


def require_writable(name: str, value: str) -> None:
    if not is_writable(value):
        raise ValueError(f"{name} {value!r} cannot be written into an nginx config")


def is_count(value: object) -> bool:
    # bool is an int to Python, not to nginx, which refuses "burst=0" as it
    # refuses "0r/s" and 0 connections.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_rate_or_none(value: object) -> bool:
    return value is None or (isinstance(value, str) and RATE_RE.fullmatch(value) is not None)


def is_count_or_none(value: object) -> bool:
    return value is None or is_count(value)


@dataclass(frozen=True)
class LimitRule:
    valid: Callable[[object], bool]
    hint: str  # what the value must be, in the operator's words


# Each field of a rate or connection limit (nginx.limits.Limits) and of the
# PROTECTED_MEDIA_{MEDIA,UPLOAD}_{RATE,BURST,CONNECTIONS} settings.
LIMIT_RULES = {
    "rate": LimitRule(
        is_rate_or_none, "An nginx rate such as '30r/s' or '600r/m', or None for no limit."
    ),
    "burst": LimitRule(is_count, "Requests answered at once beyond the rate: an int, 1 or more."),
    "connections": LimitRule(
        is_count_or_none,
        "Requests at once per client address: an int, 1 or more, or None for no limit.",
    ),
}


# -- the object store (PROTECTED_MEDIA_STORAGE = "s3") ---------------------------------

# A host name as botocore signs it (lowercase, see store_endpoint): labels of
# letters, digits, "-" and "_", or a bracketed IPv6 address.
STORE_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
STORE_NAME_RE = re.compile(rf"(?:{STORE_LABEL}\.)*{STORE_LABEL}")
DEFAULT_PORTS = {"http": 80, "https": 443}
# A URL's host and optional port; the host is checked on its own below.
NETLOC_RE = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::(?P<port>[1-9][0-9]{0,4}))?")
# An internal prefix nginx can hold as a location: slashes at both ends,
# nothing nginx or a regex would read as syntax.
INTERNAL_PREFIX_RE = re.compile(r"/(?:[A-Za-z0-9._~-]+/)+")


@dataclass(frozen=True)
class StoreEndpoint:
    """Where nginx sends the presigned requests, from the endpoint URL."""

    scheme: str  # "http" or "https"
    host: str  # lowercase; an IPv6 address in brackets
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def name(self) -> str:
        """The host without IPv6 brackets: the name TLS asks for and checks."""
        return self.host.removeprefix("[").removesuffix("]")

    @property
    def server(self) -> str:
        """The upstream's ``server`` line: host and port, always."""
        return f"{self.host}:{self.port}"

    @property
    def host_header(self) -> str:
        """The Host header a presigned URL is signed for: botocore leaves out
        a default port (``botocore.auth._host_from_url``), and the store
        refuses a request whose Host differs by a character."""
        if self.port == DEFAULT_PORTS[self.scheme]:
            return self.host
        return self.server


def store_host_problem(host: str) -> str | None:
    """Why ``host`` (as written in an endpoint URL) cannot be the store's
    host, or None."""
    if host.startswith("["):
        # botocore signs the address lowercase, and a zone ("%eth0") names
        # an interface of this machine, not a store.
        address = host[1:-1]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return "is not an IPv6 address"
        if "%" in address or address != address.lower():
            return "must be a lowercase IPv6 address without a zone"
        return None
    if STORE_NAME_RE.fullmatch(host) is None:
        return "must be a lowercase host name or an IP address"
    if all(label.isdigit() for label in host.split(".")):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "is not an IPv4 address"
    return None


def store_endpoint(value: object) -> StoreEndpoint:
    """The endpoint URL (PROTECTED_MEDIA_S3_ENDPOINT_URL) as nginx needs it:
    ``http`` or ``https``, a host, an optional port, and nothing else.
    Raises ``ValueError`` saying why not."""
    if not isinstance(value, str) or not is_writable(value):
        raise ValueError(f"{value!r} must be a URL such as 'https://s3.example.com'")
    # No userinfo, query or fragment, and no path: nginx passes the signed
    # path as it is, so the store must answer at its root.
    try:
        parts = urlsplit(value)
    except ValueError as error:  # an unbalanced "[" or "]"
        raise ValueError(f"{value!r} is not a URL: {error}") from None
    if parts.scheme not in DEFAULT_PORTS or not value.startswith(f"{parts.scheme}://"):
        raise ValueError(f"{value!r} must start with http:// or https://")
    if "@" in parts.netloc or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError(f"{value!r} must be scheme, host and port only")
    netloc = NETLOC_RE.fullmatch(parts.netloc)
    if netloc is None:
        raise ValueError(f"{value!r}: its port must be a number from 1 to 65535")
    host, port_text = netloc["host"], netloc["port"]
    problem = store_host_problem(host)
    if problem is not None:
        raise ValueError(f"{value!r}: its host {host!r} {problem}")
    if port_text and int(port_text) > 65535:
        raise ValueError(f"{value!r}: its port must be a number from 1 to 65535")
    port = int(port_text) if port_text else DEFAULT_PORTS[parts.scheme]
    return StoreEndpoint(scheme=parts.scheme, host=host, port=port)


def store_endpoint_problem(value: object) -> str | None:
    """Why ``value`` cannot be PROTECTED_MEDIA_S3_ENDPOINT_URL, or None: the
    system check's reading of ``store_endpoint``."""
    try:
        store_endpoint(value)
    except ValueError as error:
        return str(error)
    return None


def internal_prefix_problem(value: object) -> str | None:
    """Why ``value`` cannot be an internal location's prefix
    (PROTECTED_MEDIA_S3_INTERNAL_URL), or None."""
    if not isinstance(value, str) or INTERNAL_PREFIX_RE.fullmatch(value) is None:
        return f"{value!r} must be a path with a slash at both ends, such as '/_protected_store/'"
    return None


def prefixes_overlap(first: str, second: str) -> bool:
    """Whether one URL prefix holds the other: nginx would send one's requests
    to the other's location."""
    return first.startswith(second) or second.startswith(first)
