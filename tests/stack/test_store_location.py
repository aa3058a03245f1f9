"""The store location, in front of the real object store: the real nginx,
rendered with a store, between a stand-in for the gateway (it answers every
media request with X-Accel-Redirect to a presigned URL) and SeaweedFS, with a
relay in between that writes down each request nginx sends the store.

SeaweedFS ignores a stray Authorization header next to a signed URL, where
AWS answers 400: what nginx sends is read at the relay, not guessed from the
store's answer.
"""

from __future__ import annotations

import dataclasses
import http.client
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import pytest

from gateway.seaweed import SeaweedStore, s3_client
from protected_media.nginx.from_settings import standalone_user
from protected_media.nginx.render import SiteConfig, StoreConfig, render_site, render_standalone
from protected_media.storage.accel import store_accel_target
from protected_media.storage.presign import Presigner

from ..store import AWKWARD_KEYS
from ..test_nginx_config import nginx_binary
from .harness import RawResponse, UnixServer, _exchange, free_port, nginx_listening

pytestmark = pytest.mark.stack

INTERNAL_URL = "/_protected_store/"
DATA = b"the private bytes, in the bucket: 0123456789\n"
# What the gateway's handoff sends with the redirect, as views.ahandoff does.
APP_HEADERS = {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Disposition": 'attachment; filename="notes.txt"',
    "Cache-Control": "private, no-store",
}
# What the store keeps with the object and would send: none of it may win.
STORED_AS = {
    "ContentType": "text/html",
    "ContentDisposition": "inline",
    "CacheControl": "public, max-age=31536000",
    "ContentLanguage": "fr",
}
MEDIA_SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}
# Every header a served file may carry: nginx's own, the gateway's, and the
# store's body's length, range and validators.
SERVED_HEADERS = {
    "server", "date", "connection", "content-length", "content-range", "accept-ranges",
    "etag", "last-modified", *(name.lower() for name in APP_HEADERS), *MEDIA_SECURITY_HEADERS,
}  # fmt: skip
# The client's headers the store must never see (nginx sends it the Host,
# and the range and validators when the client gave them).
CLIENT_SECRETS = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=attacker/20260101/us-east-1/s3/aws4_request",
    "Cookie": "sessionid=0123456789abcdef",
    "X-Amz-Security-Token": "stolen",
    "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD",
    "X-Amz-Date": "20260101T000000Z",
    "X-Amz-Server-Side-Encryption-Customer-Key": "a2V5",
    "X-Amz-Request-Payer": "requester",
    "Content-Type": "application/xml",
    "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==",
    "Origin": "https://evil.example",
    "Referer": "https://evil.example/page",
    "User-Agent": "curl/8",
    "X-Forwarded-For": "203.0.113.9",
    "Accept-Encoding": "gzip",
}


# -- the relay between nginx and the store ---------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    target: str
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.headers}


class Stream:
    """HTTP/1.1 messages read off a socket, one at a time."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.pending = b""

    def _fill(self) -> bool:
        chunk = self.connection.recv(65536)
        self.pending += chunk
        return bool(chunk)

    def head(self) -> tuple[bytes, str, list[tuple[str, str]]] | None:
        """The head's bytes, its first line and its headers (names
        lower-cased); None once the peer has closed."""
        while b"\r\n\r\n" not in self.pending:
            if not self._fill():
                return None
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        first, *lines = head.decode("latin-1").split("\r\n")
        headers = [
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in lines)
        ]
        return head + b"\r\n\r\n", first, headers

    def body(self, headers: list[tuple[str, str]]) -> bytes:
        # Content-Length only: nginx and SeaweedFS send no chunked messages here.
        assert "transfer-encoding" not in dict(headers)
        length = int(dict(headers).get("content-length") or 0)
        while len(self.pending) < length:
            if not self._fill():
                raise ConnectionError("closed in the middle of a body")
        body, self.pending = self.pending[:length], self.pending[length:]
        return body


@dataclass
class Relay:
    """Between nginx and the store: passes each request on and its answer
    back, and writes down the request as nginx sent it. With ``tls``, it
    speaks TLS to nginx (and notes the name nginx asks for)."""

    store: tuple[str, int]
    tls: ssl.SSLContext | None = None
    requests: list[Recorded] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    connections: int = 0  # accepted from nginx
    # When set, the relay answers each request with these bytes itself, as a
    # failing store would, and closes the connection if they are empty.
    answer: bytes | None = None

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        if self.tls is not None:
            self.tls.sni_callback = lambda _socket, name, _context: self.server_names.append(name)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        # TLS needs a name to check: "localhost", which nginx resolves when it starts.
        return f"https://localhost:{self.port}" if self.tls else f"http://127.0.0.1:{self.port}"

    def take(self) -> list[Recorded]:
        taken, self.requests = self.requests, []
        return taken

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            if self.tls is not None:
                client = self.tls.wrap_socket(client, server_side=True)
            with client, socket.create_connection(self.store) as store:
                self._relay(Stream(client), Stream(store))
        except (OSError, ConnectionError):
            pass  # nginx refused the certificate, or hung up

    def _relay(self, client: Stream, store: Stream) -> None:
        # One request at a time, then its whole answer: each socket is used
        # by one thread only, as an SSL socket must be.
        while (request := client.head()) is not None:
            head, request_line, headers = request
            body = client.body(headers)
            method, target, _ = request_line.split(" ")
            self.requests.append(Recorded(method, target, headers, body))
            if self.answer is not None:
                if not self.answer:
                    return
                client.connection.sendall(self.answer)
                continue
            store.connection.sendall(head + body)
            answer = store.head()
            if answer is None:
                return
            answer_head, status_line, answer_headers = answer
            status = int(status_line.split(" ")[1])
            bodiless = method == "HEAD" or status in (204, 304)
            client.connection.sendall(
                answer_head + (b"" if bodiless else store.body(answer_headers))
            )


# -- the gateway's stand-in, and nginx in front of it ----------------------------------


class Handoff(BaseHTTPRequestHandler):
    """Answers /media/<n> with the X-Accel-Redirect the test put in
    ``targets[n]``, and the headers the gateway sends with it."""

    protocol_version = "HTTP/1.1"
    targets: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("X-Accel-Redirect", self.targets[self.path.rsplit("/", 1)[1]])
        for name, value in APP_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()
        # nginx sends a body it should not pass on: read it off the connection.
        self.rfile.read(int(self.headers.get("Content-Length") or 0))

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def media_url(target: str) -> str:
    """A media URL that the stand-in answers with ``X-Accel-Redirect: target``."""
    name = str(len(Handoff.targets))
    Handoff.targets[name] = target
    return f"/media/{name}"


@dataclass(frozen=True)
class Gateway:
    port: int
    relay: Relay
    store: SeaweedStore  # reached through the relay: presigned URLs name it

    def presign(self, key: str, method: str = "GET", expires: int = 60) -> str:
        # Signed as the gateway signs (tests/test_presign.py pins it to
        # botocore's generate_presigned_url): the store checks every one.
        return Presigner(
            endpoint_url=self.store.endpoint_url,
            bucket=self.store.bucket,
            region=self.store.region,
            access_key_id=self.store.access_key_id,
            secret_access_key=self.store.secret_access_key,
            lifetime=expires,
        ).sign(key, method)

    def fetch(
        self,
        url: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> RawResponse:
        """``method`` on a media URL that the stand-in hands to ``url``."""
        return self.handoff(store_accel_target(url, INTERNAL_URL), method, headers, body)

    def handoff(
        self,
        target: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> RawResponse:
        """``method`` on a media URL that the stand-in answers with
        ``X-Accel-Redirect: target``."""
        self.relay.take()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        return _exchange(connection, method, media_url(target), headers, body)

    def direct(self, target: str) -> RawResponse:
        """A client's own request, straight to nginx."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        return _exchange(connection, "GET", target, None, None)


@contextmanager
def serving(seaweed: SeaweedStore, relay: Relay, ca_file: str | None = None) -> Iterator[Gateway]:
    """nginx, rendered with the relay as its store, in front of the stand-in."""
    folder = Path(tempfile.mkdtemp(prefix="gw-"))  # unix socket paths are short
    for name in ("private", "static", "nginx/tmp"):
        (folder / name).mkdir(parents=True)
    port = free_port()
    store = StoreConfig(endpoint_url=relay.url, internal_url=INTERNAL_URL)
    site = SiteConfig(
        listen=f"127.0.0.1:{port}",
        upstream=f"unix:{folder / 'app.sock'}",
        server_name="_",
        static_url="/static/",
        static_root=str(folder / "static"),
        media_url="/media/",
        internal_url="/_protected/",
        private_root=str(folder / "private"),
        max_body_size=1024 * 1024,
        log_dir=str(folder / "nginx"),
        store=dataclasses.replace(store, ca_file=ca_file) if ca_file else store,
    )
    state = folder / "nginx"
    conf = state / "nginx.conf"
    conf.write_text(
        render_standalone(render_site(site), state_dir=str(state), user=standalone_user())
    )
    app = UnixServer(str(folder / "app.sock"), Handoff)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    command = [nginx_binary(), "-p", str(state), "-e", str(state / "error.log"), "-c", str(conf)]
    try:
        with nginx_listening(command, state / "error.log", port):
            yield Gateway(port, relay, dataclasses.replace(seaweed, endpoint_url=relay.url))
    finally:
        app.shutdown()
        app.server_close()
        shutil.rmtree(folder, ignore_errors=True)


def store_address(seaweed: SeaweedStore) -> tuple[str, int]:
    endpoint = urlsplit(seaweed.endpoint_url)
    return str(endpoint.hostname), int(endpoint.port or 80)


@pytest.fixture(scope="module")
def stored(seaweed: SeaweedStore) -> SeaweedStore:
    """The store, with the objects the tests read."""
    client = s3_client(seaweed)
    for key in ["files/notes.txt", "files/report.pdf", *AWKWARD_KEYS]:
        client.put_object(Bucket=seaweed.bucket, Key=key, Body=DATA, **STORED_AS)
    return seaweed


@pytest.fixture(scope="module")
def gateway(stored: SeaweedStore) -> Iterator[Gateway]:
    relay = Relay(store_address(stored))
    try:
        with serving(stored, relay) as gateway:
            yield gateway
    finally:
        relay.close()


def signed_target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def count(response: RawResponse, name: str) -> int:
    return [header for header, _ in response.header_list].count(name)


def without_date(response: RawResponse) -> list[tuple[str, str]]:
    return [(name, value) for name, value in response.header_list if name != "date"]


def assert_the_one_refusal(response: RawResponse, refusal: RawResponse) -> None:
    """The site's one 404, byte for byte but the date, and nothing of the store's."""
    assert (response.status, response.body) == (404, b"Not Found\n")
    assert without_date(response) == without_date(refusal)


@pytest.fixture(scope="module")
def refusal(gateway: Gateway) -> RawResponse:
    # The local disk's answer when a handed-off file is not there: the store's
    # refusals must not tell the two apart.
    answer = gateway.handoff("/_protected/files/notes.txt")
    assert (answer.status, answer.body) == (404, b"Not Found\n")
    assert not [name for name in answer.headers if name.startswith(("x-amz", "seaweed"))]
    return answer


def test_a_client_asking_for_the_store_location_gets_the_404(gateway) -> None:
    gateway.relay.take()
    for target in (f"{INTERNAL_URL}{gateway.store.bucket}/files/notes.txt", INTERNAL_URL):
        response = gateway.direct(target)
        assert (response.status, response.body) == (404, b"Not Found\n")
    assert gateway.relay.take() == []  # nothing reached the store


# -- what nginx sends the store --------------------------------------------------------


def test_the_store_gets_the_signed_request_and_nothing_of_the_clients(gateway) -> None:
    url = gateway.presign("files/notes.txt")
    response = gateway.fetch(url, headers=CLIENT_SECRETS, body=b"x=1&y=2")
    assert (response.status, response.body) == (200, DATA)
    [sent] = gateway.relay.take()
    assert (sent.method, sent.target) == ("GET", signed_target(url))
    # The Host it was signed for, and nothing else: no body, no Content-Length.
    assert sent.headers == [("host", urlsplit(url).netloc)]
    assert sent.body == b""


def test_connections_to_the_store_are_kept_open(gateway) -> None:
    # Without keepalive every small file would pay a new connection (and a
    # TLS handshake with a real provider). One client connection: one nginx
    # worker, whose idle store connections are its own.
    client = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    opened = None
    for _ in range(6):
        client.request(
            "GET", media_url(store_accel_target(gateway.presign("files/notes.txt"), INTERNAL_URL))
        )
        response = client.getresponse()
        assert (response.status, response.read()) == (200, DATA)
        opened = opened or gateway.relay.connections
    client.close()
    assert gateway.relay.connections == opened


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_an_awkward_key_reaches_the_store_exactly_as_signed(gateway, key) -> None:
    url = gateway.presign(key)
    response = gateway.fetch(url)
    [sent] = gateway.relay.take()
    assert sent.target == signed_target(url)
    # and the store, which checks the signature against that path, serves it
    assert (response.status, response.body) == (200, DATA)


def test_head_with_a_head_signed_url(gateway) -> None:
    response = gateway.fetch(gateway.presign("files/notes.txt", "HEAD"), "HEAD")
    assert response.status == 200
    assert response.body == b""
    assert response.headers["content-length"] == str(len(DATA))
    [sent] = gateway.relay.take()
    assert sent.method == "HEAD"
    # A GET-signed URL does not open the object for HEAD (the gateway signs
    # for the request's method).
    response = gateway.fetch(gateway.presign("files/notes.txt"), "HEAD")
    assert response.status == 404
    assert response.body == b""


# -- what the client gets from the store -----------------------------------------------


def test_the_client_gets_the_gateways_headers_and_none_of_the_stores(gateway) -> None:
    response = gateway.fetch(gateway.presign("files/notes.txt"))
    assert (response.status, response.body) == (200, DATA)
    names = [name for name, _ in response.header_list]
    assert set(names) <= SERVED_HEADERS, set(names) - SERVED_HEADERS
    for name, value in APP_HEADERS.items():
        assert count(response, name.lower()) == 1
        assert response.headers[name.lower()] == value
    for name, value in MEDIA_SECURITY_HEADERS.items():
        assert count(response, name) == 1
        assert response.headers[name] == value
    assert response.headers["server"] == "nginx"
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] and response.headers["last-modified"]


def test_ranges_pass_through(gateway) -> None:
    url = gateway.presign("files/notes.txt")
    response = gateway.fetch(url, headers={"Range": "bytes=4-10"})
    assert (response.status, response.body) == (206, DATA[4:11])
    assert response.headers["content-range"] == f"bytes 4-10/{len(DATA)}"
    [sent] = gateway.relay.take()
    assert ("range", "bytes=4-10") in sent.headers

    # Past the end: the site's short 416, text whatever the key's extension,
    # with the size from the store's Content-Range and none of its XML.
    url = gateway.presign("files/report.pdf")
    response = gateway.fetch(url, headers={"Range": f"bytes={len(DATA) + 10}-"})
    assert (response.status, response.body) == (416, b"Range Not Satisfiable\n")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"
    assert set(response.headers) <= SERVED_HEADERS


def test_more_than_one_range_gets_the_whole_file(gateway) -> None:
    # As a local file with `max_ranges 1`: the store never sees the ranges.
    response = gateway.fetch(gateway.presign("files/notes.txt"), headers={"Range": "bytes=0-1,3-4"})
    assert (response.status, response.body) == (200, DATA)
    [sent] = gateway.relay.take()
    assert "range" not in sent.names


def test_validators_pass_through(gateway) -> None:
    url = gateway.presign("files/notes.txt")
    first = gateway.fetch(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    response = gateway.fetch(url, headers={"If-None-Match": etag})
    assert (response.status, response.body) == (304, b"")
    [sent] = gateway.relay.take()
    assert ("if-none-match", etag) in sent.headers
    response = gateway.fetch(url, headers={"If-Modified-Since": modified})
    assert response.status == 304
    # A resumed download. S3 stores do not evaluate If-Range (AWS documents
    # none, SeaweedFS ignores it): harmless here, where an object never
    # changes under its name, so the range always belongs to the same bytes.
    response = gateway.fetch(url, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert (response.status, response.body) == (206, DATA[:4])
    [sent] = gateway.relay.take()
    assert ("if-range", etag) in sent.headers


# -- the store's refusals and failures -------------------------------------------------


def test_a_missing_object_is_the_one_404(gateway, refusal) -> None:
    response = gateway.fetch(gateway.presign("files/never-stored.txt"))
    assert_the_one_refusal(response, refusal)


def test_a_bad_signature_is_the_one_404(gateway, refusal) -> None:
    url = gateway.presign("files/notes.txt")
    signature = url.rsplit("X-Amz-Signature=", 1)[1]
    forged = url.replace(signature, signature[::-1])
    response = gateway.fetch(forged)
    assert_the_one_refusal(response, refusal)
    [sent] = gateway.relay.take()
    assert sent.target == signed_target(forged)  # the store did refuse it


def test_an_expired_url_is_the_one_404(gateway, refusal) -> None:
    url = gateway.presign("files/notes.txt", expires=1)
    time.sleep(2.2)
    assert_the_one_refusal(gateway.fetch(url), refusal)


def store_answer(status: str, body: bytes, *headers: str) -> bytes:
    head = [
        f"HTTP/1.1 {status}",
        "Content-Type: application/xml",
        "x-amz-request-id: 4442587FB7D0A2F9",
        *headers,
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


XML = b'<?xml version="1.0"?>\n<Error><Code>%s</Code><RequestId>4442587F</RequestId></Error>'
ELSEWHERE = "Location: https://b.s3.eu-west-3.amazonaws.com/files/notes.txt?X-Amz-Signature=0"
# Each row: what the store answers, and what the client gets.
STORE_FAILURES = [
    (store_answer("500 Internal Server Error", XML % b"InternalError"), 502),
    (store_answer("503 Slow Down", XML % b"SlowDown", "Retry-After: 1"), 502),
    (store_answer("307 Temporary Redirect", XML % b"TemporaryRedirect", ELSEWHERE), 502),
    (store_answer("400 Bad Request", XML % b"AuthorizationQueryParametersError"), 502),
    (store_answer("504 Gateway Timeout", XML % b"Timeout"), 504),
    (b"", 502),  # the connection closed without an answer
]  # fmt: skip
FAILURE_PAGES = {
    502: b"Bad Gateway: the application is not answering; try again shortly.\n",
    504: b"Gateway Timeout: the application took too long; try again shortly.\n",
}


@pytest.mark.parametrize(("answer", "status"), STORE_FAILURES)
def test_a_failing_store_is_the_sites_short_5xx(gateway, answer, status) -> None:
    url = gateway.presign("files/notes.txt")
    gateway.relay.answer = answer
    try:
        response = gateway.fetch(url)
    finally:
        gateway.relay.answer = None
    assert response.status == status
    assert response.body == FAILURE_PAGES[status]
    assert response.headers["retry-after"] == "5"
    assert response.headers["cache-control"] == "no-store"
    assert not {"location", "x-amz-request-id"} & set(response.headers)


# -- an https store --------------------------------------------------------------------


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def certificate_authority(folder: Path, name: str) -> tuple[Path, Path]:
    """A throwaway CA's certificate, and one it signed for "localhost"."""
    folder.mkdir()
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *key, "-keyout", folder / "ca.key", "-out", folder / "ca.pem",
            "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl("req", *key, "-keyout", folder / "leaf.key", "-out", folder / "leaf.csr",
            "-subj", "/CN=localhost")  # fmt: skip
    (folder / "leaf.ext").write_text(
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    openssl("x509", "-req", "-in", folder / "leaf.csr", "-CA", folder / "ca.pem",
            "-CAkey", folder / "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", folder / "leaf.ext", "-out", folder / "leaf.pem")  # fmt: skip
    # The leaf and its key, in one file for the relay.
    (folder / "leaf-and-key.pem").write_bytes(
        (folder / "leaf.pem").read_bytes() + (folder / "leaf.key").read_bytes()
    )
    return folder / "ca.pem", folder / "leaf-and-key.pem"


@pytest.fixture(scope="module")
def tls_relay(stored: SeaweedStore, tmp_path_factory) -> Iterator[tuple[Relay, str]]:
    """A relay that speaks TLS with a certificate for "localhost", and the
    file of the authority that signed it."""
    ca, leaf = certificate_authority(tmp_path_factory.mktemp("tls") / "ca", "store CA")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf)
    relay = Relay(store_address(stored), tls=context)
    yield relay, str(ca)
    relay.close()


def test_an_https_store_is_named_and_its_certificate_checked(stored, tls_relay) -> None:
    relay, ca_file = tls_relay
    with serving(stored, relay, ca_file=ca_file) as gateway:
        url = gateway.presign("files/notes.txt")
        assert url.startswith(f"https://localhost:{relay.port}/")
        response = gateway.fetch(url)
    assert (response.status, response.body) == (200, DATA)
    # nginx asked for the endpoint's name (SNI), and sent the Host it was signed for.
    assert relay.server_names and set(relay.server_names) == {"localhost"}
    [sent] = relay.take()
    assert sent.headers == [("host", f"localhost:{relay.port}")]


def test_an_https_store_with_a_certificate_nginx_does_not_trust_is_a_502(
    stored, tls_relay, tmp_path
) -> None:
    # The same store, with the authorities of another CA: nginx hangs up
    # before it sends anything.
    relay, _ = tls_relay
    other_ca, _ = certificate_authority(tmp_path / "other", "another CA")
    relay.take()
    with serving(stored, relay, ca_file=str(other_ca)) as gateway:
        response = gateway.fetch(gateway.presign("files/notes.txt"))
    assert response.status == 502
    assert response.body == FAILURE_PAGES[502]
    assert relay.take() == []
