"""The site configuration: every server, spare, licence and trusted key one master administers.

It is validated as a whole before it is used, because the rules that matter (one master, names and
camera ids unique across the site) span several servers; a node's own file cannot check them.
Every model forbids unknown fields so a typo is reported by its path (see `hotspare.site.load`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hotspare.config.models import (
    CameraConfig,
    Identifier,
    ProtectionMode,
    RecordingSettings,
    StrictModel,
)

DEFAULT_CAMERA_MBPS = 4.0
"""Mbit/s assumed for a camera whose `mbps` is unset (a 1080p H.264 stream, roughly)."""
DEFAULT_STANDBY_SESSIONS = 16
DEFAULT_STANDBY_MBPS = 100.0


def camera_mbps(camera: CameraConfig) -> float:
    """The bitrate gapless placement budgets for a camera: its stated `mbps`, else the default."""
    return camera.mbps if camera.mbps is not None else DEFAULT_CAMERA_MBPS


class Role(StrEnum):
    RECORDING = "recording"
    MASTER = "master"


class Platform(StrEnum):
    """Only NetBSD matters to eligibility today; the others are informational."""

    LINUX = "linux"
    WINDOWS = "windows"
    NETBSD = "netbsd"
    OTHER = "other"


TOKEN_SHA256_PATTERN = r"^[0-9a-f]{64}$"
TokenSha256 = Annotated[
    str | None,
    Field(
        pattern=TOKEN_SHA256_PATTERN,
        description="SHA-256 (64 lower-case hex digits) of this node's own credential, the token "
        "in its [api] node_token_file; the import route knows which node uploads by it "
        "(docs/site-config.md, \"Node identities\")",
    ),
]


def _check_host_port(value: str) -> str:
    """`host:port` (IPv6 in brackets); parsed the way a URL authority is, so IPv6 works."""
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"must be host:port, got {value!r} ({exc})") from None
    if not parts.hostname or port is None or "/" in value or "@" in value:
        raise ValueError(f"must be host:port, got {value!r}")
    return value


class SiteInfo(StrictModel):
    id: Identifier = Field(description="the site's id; every licence names it")
    name: str = ""
    tls: bool = Field(
        False,
        description="every node's API speaks HTTPS at its `address` (each node sets "
        "[api] tls_cert_file/tls_key_file); one flag for the site, so an address needs no scheme",
    )


ETCD_DEFAULT_MAX_REQUEST_BYTES = 1_572_864
"""etcd's own default for `--max-request-bytes` (1.5 MiB)."""


class EtcdSettings(StrictModel):
    endpoints: list[str] = Field(
        min_length=1, description="http(s)://host:port of each etcd member"
    )
    max_request_bytes: int = Field(
        default=ETCD_DEFAULT_MAX_REQUEST_BYTES, ge=65_536,
        description="bytes: the members' --max-request-bytes (etcd's default 1.5 MiB); the "
        "applied site configuration, compressed, must fit in one request")

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, endpoints: list[str]) -> list[str]:
        for endpoint in endpoints:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"{endpoint!r} must look like http://host:2379 or https://host:2379"
                )
        if len(set(endpoints)) != len(endpoints):
            raise ValueError("an endpoint is listed twice")
        return endpoints


class RecordingServerConfig(StrictModel):
    """A recording server as the site sees it: what eligibility needs lives here, not on a node."""

    name: Identifier
    address: str = Field(description="host:port of the server's HTTP API")
    token_sha256: TokenSha256 = None
    role: Role = Role.RECORDING
    platform: Platform = Platform.LINUX
    frame_grabber_inputs: int = Field(
        0, ge=0, description="analog capture inputs; any makes it ineligible"
    )
    cameras: list[CameraConfig] = Field(default_factory=list)
    recording: RecordingSettings = Field(
        default_factory=lambda: RecordingSettings.model_validate({})
    )
    protection: ProtectionMode = Field(
        ProtectionMode.STANDARD,
        description="default protection mode of this server's cameras (a camera may override it)",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_host_port(value)

    def camera_protection_mode(self, camera: CameraConfig) -> ProtectionMode:
        """The camera's effective mode: its own setting, else this server's default."""
        return camera.protection or self.protection

    def failover_cameras(self) -> list[CameraConfig]:
        """The cameras a spare records when it takes this server over (mode `none` left out)."""
        return [c for c in self.cameras
                if self.camera_protection_mode(c) is not ProtectionMode.NONE]

    def gapless_cameras(self) -> list[CameraConfig]:
        return [c for c in self.cameras if self.camera_protection_mode(c) is ProtectionMode.GAPLESS]


class FailoverServerConfig(StrictModel):
    """A spare. It records nothing of its own, so it needs no cameras, only where to reach it."""

    name: Identifier
    address: str = Field(description="host:port of the spare's HTTP API")
    token_sha256: TokenSha256 = None
    max_cameras: int | None = Field(
        None,
        ge=0,
        description="capacity hint; a spare never takes more cameras than this or its allotment",
    )
    # Standby capacity is stated rather than measured so that every node plans the same placement
    # from the same file. 16 sessions: one typical recording server's cameras, and most cameras
    # allow only a few concurrent RTSP sessions, so a spare should not ask for many more by
    # default. 100 Mbit/s: 16 cameras at the default 4 Mbit/s (64) with headroom, and a tenth of a
    # gigabit link, leaving the rest for recording a failed server and re-insert.
    standby_sessions: int = Field(
        DEFAULT_STANDBY_SESSIONS,
        ge=0,
        description=(
            "most hot-standby camera sessions (one RTSP session per gapless camera) this spare "
            "holds open at once, in sessions; 0 = it pre-buffers nothing"
        ),
    )
    standby_mbps: float = Field(
        DEFAULT_STANDBY_MBPS,
        ge=0,
        description="most total bitrate of the standby streams this spare holds, in Mbit/s",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_host_port(value)


class LicenceRef(StrictModel):
    """A licence either as a file next to site.toml or pasted inline (the file's whole text)."""

    file: Path | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> LicenceRef:
        if (self.file is None) == (self.text is None):
            raise ValueError("set exactly one of `file` and `text`")
        return self


class TrustedKey(StrictModel):
    """A key whose licence signatures the site accepts (PEM, or base64 of the 32 raw bytes)."""

    file: Path | None = None
    public_key: str | None = None
    comment: str = ""

    @model_validator(mode="after")
    def _exactly_one(self) -> TrustedKey:
        if (self.file is None) == (self.public_key is None):
            raise ValueError("set exactly one of `file` and `public_key`")
        return self


class SiteConfig(StrictModel):
    site: SiteInfo
    etcd: EtcdSettings
    recording_servers: list[RecordingServerConfig] = Field(min_length=1)
    failover_servers: list[FailoverServerConfig] = Field(default_factory=list)
    licences: list[LicenceRef] = Field(default_factory=list)
    trusted_keys: list[TrustedKey] = Field(default_factory=list)

    @field_validator("recording_servers")
    @classmethod
    def _servers(cls, servers: list[RecordingServerConfig]) -> list[RecordingServerConfig]:
        masters = [server.name for server in servers if server.role is Role.MASTER]
        if len(masters) != 1:
            found = ", ".join(masters) if masters else "none"
            raise ValueError(
                f'exactly one recording server must have role = "master" (found: {found})'
            )
        names: dict[str, int] = {}
        cameras: dict[str, str] = {}
        for index, server in enumerate(servers):
            if server.name in names:
                raise ValueError(
                    f"name {server.name!r} is used by servers [{names[server.name]}] and [{index}]"
                )
            names[server.name] = index
            for camera in server.cameras:
                if camera.id in cameras:
                    raise ValueError(
                        f"camera id {camera.id!r} appears on {cameras[camera.id]!r} "
                        f"and on {server.name!r}; "
                        "camera ids must be unique across the site"
                    )
                cameras[camera.id] = server.name
        return servers

    @field_validator("failover_servers")
    @classmethod
    def _spares(
        cls, spares: list[FailoverServerConfig], info: ValidationInfo
    ) -> list[FailoverServerConfig]:
        servers: list[RecordingServerConfig] = (info.data or {}).get("recording_servers") or []
        taken = {server.name for server in servers}
        seen: set[str] = set()
        for index, spare in enumerate(spares):
            if spare.name in taken:
                raise ValueError(
                    f"[{index}] name {spare.name!r} is already a recording server's name"
                )
            if spare.name in seen:
                raise ValueError(f"[{index}] name {spare.name!r} appears twice")
            seen.add(spare.name)
        return spares

    @model_validator(mode="after")
    def _distinct_identities(self) -> SiteConfig:
        """Two nodes with one credential could not be told apart, which is all the field is for."""
        seen: dict[str, str] = {}
        for node in self._nodes():
            if node.token_sha256 is None:
                continue
            if node.token_sha256 in seen:
                raise ValueError(f"token_sha256 of {node.name!r} is the same as that of "
                                 f"{seen[node.token_sha256]!r}: give every node its own token")
            seen[node.token_sha256] = node.name
        return self

    def node_identities(self) -> dict[str, str]:
        """SHA-256 hex of each node's own credential -> the node's name."""
        return {node.token_sha256: node.name for node in self._nodes()
                if node.token_sha256 is not None}

    def _nodes(self) -> list[RecordingServerConfig | FailoverServerConfig]:
        return [*self.recording_servers, *self.failover_servers]

    @property
    def master(self) -> RecordingServerConfig:
        return next(server for server in self.recording_servers if server.role is Role.MASTER)

    def recording_server(self, name: str) -> RecordingServerConfig | None:
        return next((server for server in self.recording_servers if server.name == name), None)

    def failover_server(self, name: str) -> FailoverServerConfig | None:
        return next((spare for spare in self.failover_servers if spare.name == name), None)
