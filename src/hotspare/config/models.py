"""Configuration of one hotspare node, validated before anything starts.

Every model forbids unknown fields, so a typo is reported with its path instead of silently
ignored. `hotspare.config.load` turns pydantic's errors into one operator-readable message.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hotspare.config.timing import check_relations
from hotspare.etcd_security import EtcdSecurityError, EtcdTls, endpoint_scheme
from hotspare.redact import redact_url
from hotspare.signing_keys import KeyFileError, read_private_key, read_trust_roots
from hotspare.site_secret import read_site_secret
from hotspare.tls import check_server_files, client_context

# Ids end up in file paths, URLs and etcd keys: keep them to a portable, unambiguous alphabet.
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_ID_RE = re.compile(ID_PATTERN)

Identifier = Annotated[
    str,
    Field(pattern=ID_PATTERN, description="lower-case letters, digits, '-' and '_'; at most 63"),
]


def is_identifier(value: str) -> bool:
    """True when `value` may name a camera, server or run (safe in paths, URLs and etcd keys)."""
    return bool(_ID_RE.fullmatch(value))


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def beside_config(path: Path | None, info: ValidationInfo) -> Path | None:
    """A relative path resolves against node.toml's folder (`load_node_config` passes it as
    context `base_dir`), so files can be checked during validation, before anything starts."""
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if path is None or path.is_absolute() or base is None:
        return path
    return (Path(base) / path).resolve()


class ProtectionMode(StrEnum):
    """How a camera is protected when its recording server fails (docs/failover.md, "Gapless").

    `gapless`: a designated spare keeps its own session to the camera open before any failure and
    writes its pre-buffer from the failed server's commit watermark, so no frame is lost.
    `standard`: the spare connects after the claim; the takeover window (claim + one GOP) is lost.
    `none`: the camera is not failed over (and uses no failover camera licence).
    """

    GAPLESS = "gapless"
    STANDARD = "standard"
    NONE = "none"


class CameraConfig(StrictModel):
    """One IP camera as a recording server records it."""

    id: Identifier
    name: str = ""
    url: str = Field(description="rtsp:// or rtsps:// URL of the stream to record")
    transport: Literal["tcp", "udp"] = "tcp"
    username: str | None = None
    password: SecretStr | None = None
    protection: ProtectionMode | None = Field(
        None, description="gapless, standard or none; unset = the recording server's default"
    )
    mbps: float | None = Field(
        None, gt=0, le=1000,
        description="expected stream bitrate in Mbit/s, for gapless placement (unset: 4)",
    )
    record_audio: bool = Field(
        True,
        description="record the camera's audio with its video when it sends any (AAC copied, "
        "G.711 made AAC); false drops it",
    )

    @field_validator("url")
    @classmethod
    def _rtsp_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("rtsp", "rtsps"):
            raise ValueError(f"must start with rtsp:// or rtsps://, got {redact_url(value)!r}")
        if not parts.hostname:
            raise ValueError(f"has no host: {redact_url(value)!r}")
        if parts.password:
            raise ValueError("must not carry a password; put it in the camera's `password` field")
        return value


class RecordingSettings(StrictModel):
    """How the recorder cuts and retries; the same for a server and a spare standing in for it."""

    segment_seconds: float = Field(
        4.0,
        ge=0.5,
        le=60,
        description="target segment length; segments are cut on the first keyframe after it",
    )
    reconnect_initial_seconds: float = Field(0.5, gt=0, le=60)
    reconnect_max_seconds: float = Field(10.0, gt=0, le=600)
    open_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="RTSP connect/read timeout before a camera counts as failing"
    )
    stall_seconds: float = Field(
        10.0, ge=1, le=600,
        description="a connected camera that sends no video for this long counts as failing "
        "(its session may stay alive on RTCP alone, which no socket timeout notices); raise it "
        "for cameras that send less than a frame every few seconds",
    )

    flush_every_frame: bool = Field(
        True,
        description="hand each finished MP4 fragment to the OS at once (FFmpeg's flush_packets); "
        "off saves ~0.03 s CPU per camera-minute, but a crash then loses what sits in FFmpeg's "
        "I/O buffer (up to ~15 frames instead of 1, docs/recorder.md)",
    )
    fragment_seconds: float = Field(
        0.0, ge=0, le=2.0,
        description="0: one MP4 fragment per frame, so a crash loses at most the frame being "
        "written; > 0: one fragment per this much media time (e.g. 0.2), cheaper per frame but a "
        "crash loses up to this much video plus a frame (docs/recorder.md)",
    )

    @model_validator(mode="after")
    def _timing_relations(self) -> RecordingSettings:
        check_relations("recording", self)
        return self


class RetentionSettings(StrictModel):
    """Oldest-first deletion; segments still awaiting re-insert elsewhere are never deleted."""

    max_age_days: float | None = Field(
        30.0, gt=0, le=36_500, description="days to keep video; at most 100 years (unset: kept "
        "until space runs short)")
    min_free_bytes: int = Field(
        1 << 30,
        ge=0,
        description="delete oldest segments while the store's disk has less free space",
    )
    interval_seconds: float = Field(60.0, gt=0)


# The stored form of a user's token (see hotspare.api.tokens, which makes and checks it).
TOKEN_HASH_PATTERN = r"^scrypt\$\d{1,8}\$\d{1,3}\$\d{1,3}\$[A-Za-z0-9_-]{16,}\$[A-Za-z0-9_-]{32,}$"


class ApiUser(StrictModel):
    """A person or an API client (e.g. Prometheus) with its own token and role.

    Only a salted hash of the token is stored, so reading the config does not let anyone in;
    `hotspare user new-token NAME --role ROLE` prints a token and the lines to paste here.
    Users are per node: give every node of a site the same list, because whichever node serves
    the master's address (a spare covering it) answers the UI and the site API. The other nodes
    see only signed playback URLs (hotspare.api.grants), never the user's token.
    """

    name: Identifier
    role: Literal["viewer", "operator", "admin"] = Field(
        description="viewer reads, operator acts on recording, admin configures (docs/api.md)"
    )
    token_hash: str = Field(
        pattern=TOKEN_HASH_PATTERN, description="from `hotspare user new-token`; never the token"
    )

    @field_validator("name")
    @classmethod
    def _not_node(cls, value: str) -> str:
        if value == "node":
            raise ValueError("`node` is reserved for the node credential ([api] token)")
        return value


MIN_TOKEN_CHARS = 16
"""The node credential opens every route of every node: a short one could be guessed."""


def token_problem(token: str) -> str | None:
    """Why `token` may not be a node credential, or None."""
    if len(token) < MIN_TOKEN_CHARS:
        return (f"the token has {len(token)} character(s); use at least {MIN_TOKEN_CHARS} "
                "random ones, e.g. from "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if token != token.strip() or any(c.isspace() for c in token):
        return "the token must not contain white space"
    return None


class ApiSettings(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8600, ge=0, le=65535, description="0 picks a free port (tests)")
    token: SecretStr | None = Field(None, description="bearer token every request must carry")
    token_file: Path | None = Field(
        None, description="file holding the bearer token (preferred over `token`)"
    )
    users: list[ApiUser] = Field(
        default_factory=list,
        description="users and API clients, each with a role; the token above is the node "
        "credential (all rights), shared by the nodes of a site",
    )
    node_token_file: Path | None = Field(
        None,
        description="file holding this node's own credential (site mode): it signs the node's "
        "calls to other nodes, and its SHA-256 is the node's `token_sha256` in the site "
        "configuration, by which a recording server knows which node re-inserts video",
    )
    playback_url_seconds: int = Field(
        600, ge=30, le=86_400,
        description="how long the signed playback URLs in playlists and the live redirect stay "
        "valid (a VOD playlist's URLs also for its range's length); players renew them as they "
        "load the playlist again",
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) to serve HTTPS with; needs tls_key_file"
    )
    tls_key_file: Path | None = Field(
        None, description="unencrypted PEM private key of tls_cert_file"
    )

    @model_validator(mode="after")
    def _one_token(self) -> ApiSettings:
        if self.token is None and self.token_file is None:
            raise ValueError("set `token` or `token_file`: every route is authenticated")
        if self.token is not None and self.token_file is not None:
            raise ValueError("set only one of `token` and `token_file`")
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError(f"user names must be unique: {sorted(names)}")
        return self

    @field_validator("token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            problem = token_problem(value.get_secret_value())
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("tls_cert_file", "tls_key_file")
    @classmethod
    def _tls_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return beside_config(value, info)

    @field_validator("node_token_file")
    @classmethod
    def _node_token_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Read now, so a missing or weak credential stops `config check`, not the first upload."""
        path = beside_config(value, info)
        if path is not None:
            problem = token_problem(_read_token(path))
            if problem is not None:
                raise ValueError(f"{path}: {problem}")
        return path

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        """Loaded here, as the server will load them, so a wrong file stops `config check` and
        the node's start with the field's name instead of failing every client's handshake."""
        if self.tls_cert_file is None and self.tls_key_file is None:
            return self
        if self.tls_cert_file is None or self.tls_key_file is None:
            raise ValueError("set both `tls_cert_file` and `tls_key_file` to serve HTTPS, "
                             "or neither for plain HTTP")
        check_server_files(self.tls_cert_file, self.tls_key_file)
        return self

    @property
    def tls(self) -> bool:
        """True when the API serves HTTPS."""
        return self.tls_cert_file is not None

    def bearer_token(self) -> str:
        if self.token_file is not None:
            return self.token_file.read_text(encoding="utf-8").strip()
        assert self.token is not None
        return self.token.get_secret_value()

    def node_token(self) -> str | None:
        """This node's own credential, or None when it has none (a standalone node)."""
        return None if self.node_token_file is None else _read_token(self.node_token_file)

    def outgoing_token(self) -> str:
        """What this node presents to other nodes: its own credential when it has one."""
        return self.node_token() or self.bearer_token()


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _key_file_read(path: Path, read: Callable[[Path], object]) -> Path:
    """Read a key file at load, so a damaged one stops `config check` naming its field."""
    try:
        read(path)
    except KeyFileError as exc:
        raise ValueError(str(exc)) from None
    return path


class SiteMembership(StrictModel):
    """Present when the node belongs to a site: its role and cameras then come from etcd.

    The timings are checked against each other (`hotspare.config.timing.RELATIONS`) because
    detection, leases and etcd calls lean on each other; docs/configuration.md, "Timing
    relations", gives each rule and its reason.
    """

    id: Identifier = Field(description="the site's id (etcd key prefix /hotspare/<id>/)")
    etcd_endpoints: list[str] = Field(
        min_length=1, description="https://host:port of each etcd member (http:// only with "
        "etcd_insecure_plaintext)"
    )
    etcd_ca_file: Path | None = Field(
        None, description="PEM bundle of the CA that signed the etcd members' certificates "
        "(unset: the system's trust store)")
    etcd_cert_file: Path | None = Field(
        None, description="this node's client certificate for etcd (`hotspare pki issue-node`)")
    etcd_key_file: Path | None = Field(None, description="the key of etcd_cert_file (mode 0600)")
    etcd_insecure_plaintext: bool = Field(
        False, description="allow http:// etcd endpoints: no encryption, no authentication; "
        "local demos only, logged as a warning at start")
    lease_ttl_seconds: float = Field(
        3.0, ge=2, le=60, description="liveness lease; etcd grants at least ~2 s"
    )
    lease_keeper: Literal["process", "thread"] = Field(
        "process",
        description="what keeps the node's lease alive: `process`, a small helper process that "
        "the node beats a heartbeat to (a node busy with video keeps its lease; one silent for a "
        "TTL that did not run meanwhile, or silent for three, loses it), or `thread`, a thread "
        "of the node's own process, which a node wanting more than a core of Python can lose",
    )
    probe_interval_seconds: float = Field(
        0.25, gt=0, le=10,
        description="pause between the end of a spare's probe round and the next; a dead "
        "process is claimed after two refused probes, so about two of these"
    )
    probe_timeout_seconds: float = Field(
        0.5, gt=0, le=10,
        description="a probe slower than this counts as a timeout; a spare's next probe starts "
        "a probe interval after its last one ended, so this may exceed the interval",
    )
    startup_grace_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="how long a reachable server may be not recording before a takeover",
    )
    buffer_warn_seconds: float = Field(
        3600.0,
        ge=0,
        description="a spare warns (event `buffer_low`) when its data folder has room for less "
        "than this many seconds of covering the protected server with the most video; 0: off",
    )
    etcd_request_timeout_seconds: float = Field(
        1.0, ge=0.05, le=30,
        description="one HTTP request to one etcd member (a keepalive, a read, a claim); a "
        "member that does not answer within it is skipped for the next",
    )
    etcd_deadline_seconds: float = Field(
        3.0, ge=0.1, le=120,
        description="one etcd operation, retries over the members included; the node's loops "
        "log the failure and try again at their next tick",
    )
    reinsert_bytes_per_second: int = Field(
        50_000_000, ge=10_000, description="re-insert rate limit, so recording is not starved"
    )
    events_keep: int = Field(1000, ge=10, le=100_000, description="newest site events kept in etcd")
    tls_ca_file: Path | None = Field(
        None,
        description="PEM bundle of the CA that signed the other nodes' certificates, trusted for "
        "node-to-node HTTPS when the site has `tls = true` (unset: the system's trust store)",
    )

    licence_keys_file: Path = Field(
        Path("licence-keys.pem"),  # hotspare.signing_keys.TRUST_ROOTS_FILE
        validate_default=True,
        description="the licence signing keys this node trusts (PEM public keys, one after the "
        "other), beside node.toml unless absolute; never taken from the site configuration, "
        "which carries the licences. Missing: only built-in keys count (docs/site-config.md)",
    )

    export_signing_key_file: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs evidence exports made through this "
        "node's site API (`hotspare export keygen`); unset: exports are refused",
    )

    site_secret_file: Path = Field(
        Path("site-secret.key"),  # hotspare.site_secret.SITE_SECRET_FILE
        validate_default=True,
        description="the site secret camera passwords are sealed with in etcd (`hotspare pki "
        "site-secret`; the same file on every node and for `site apply`), beside node.toml "
        "unless absolute. Missing: cameras with a password report that they cannot connect",
    )

    @field_validator("licence_keys_file")
    @classmethod
    def _licence_keys(cls, value: Path, info: ValidationInfo) -> Path:
        """Read now when present, so a damaged file stops `config check` with its field name;
        a missing one is reported when the node starts (its licences then do not count)."""
        path = beside_config(value, info) or value
        return _key_file_read(path, read_trust_roots) if path.is_file() else path

    @field_validator("site_secret_file")
    @classmethod
    def _site_secret(cls, value: Path, info: ValidationInfo) -> Path:
        """Read now when present, so a damaged file stops `config check` with its field name."""
        path = beside_config(value, info) or value
        return _key_file_read(path, read_site_secret) if path.is_file() else path

    @field_validator("export_signing_key_file")
    @classmethod
    def _export_key(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Loaded now, so a wrong file stops `config check` rather than the first export."""
        path = beside_config(value, info)
        return None if path is None else _key_file_read(path, read_private_key)

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Loaded now: a bad bundle found at the first takeover would be found too late."""
        path = beside_config(value, info)
        if path is not None:
            client_context(path)
        return path

    @field_validator("etcd_ca_file", "etcd_cert_file", "etcd_key_file")
    @classmethod
    def _etcd_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        path = beside_config(value, info)
        if path is not None and not path.is_file():
            raise ValueError(f"{path} does not exist or is not a file; give the PEM file "
                             "(relative paths resolve against node.toml; `hotspare pki` makes "
                             "them)")
        return path

    @model_validator(mode="after")
    def _etcd_security(self) -> SiteMembership:
        """Checked now, with the files loaded as the client will load them, so a node that
        could not reach etcd securely never starts instead of failing at its first lease."""
        if (self.etcd_cert_file is None) != (self.etcd_key_file is None):
            raise ValueError("set both `etcd_cert_file` and `etcd_key_file` (the node's client "
                             "certificate for etcd), or neither")
        try:
            endpoint_scheme(self.etcd_endpoints, self.etcd_tls, self.etcd_insecure_plaintext)
        except EtcdSecurityError as exc:
            raise ValueError(f"etcd_endpoints / etcd_insecure_plaintext: {exc}") from None
        if not self.etcd_insecure_plaintext:
            try:
                self.etcd_tls.ssl_context()
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(
                    f"etcd_ca_file / etcd_cert_file / etcd_key_file: cannot load them: {exc}; "
                    "the CA must be PEM and the key the certificate's own, unencrypted"
                ) from None
        return self

    @property
    def etcd_tls(self) -> EtcdTls:
        return EtcdTls(self.etcd_ca_file, self.etcd_cert_file, self.etcd_key_file)

    @model_validator(mode="after")
    def _timing_relations(self) -> SiteMembership:
        check_relations("site", self)
        return self


class NodeConfig(StrictModel):
    """A recording server's own file: who it is, where it stores, which cameras it records."""

    name: Identifier
    data_dir: Path
    api: ApiSettings
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    cameras: list[CameraConfig] = Field(default_factory=list)
    site: SiteMembership | None = Field(
        None, description="site mode: cameras and role come from the site configuration in etcd"
    )

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        seen: set[str] = set()
        for camera in cameras:
            if camera.id in seen:
                raise ValueError(f"camera id {camera.id!r} appears twice")
            seen.add(camera.id)
        return cameras
