"""Opening a camera's RTSP stream with PyAV, and saying in plain words why it failed.

Credentials only ever live in the URL string handed to FFmpeg; everything that is logged or shown
uses `display_url`, and FFmpeg's own error texts (which quote the URL they were given) are scrubbed.
A password sealed with the site secret (`hotspare.site_secret`) is opened only at each connect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import av
import av.container

from hotspare.config.models import CameraConfig
from hotspare.recorder.read_interrupt import ReadInterrupt, open_interruptible
from hotspare.redact import redact_url
from hotspare.site_secret import SecretError, reveal_password, reveal_url

# Small probe. The SDP already names the codec (and usually carries its parameter sets), so
# FFmpeg's stream probe needs one frame of each stream, not FFmpeg's default ~1.2 s per connect.
# It never waits for a keyframe, and what it reads is kept (demux hands it over first). Without
# `max_ts_probe` it read on to `probesize` (FFmpeg waits up to 50 frames for a first timestamp):
# ~3 frames at 720p 2 Mbit/s (one session's open 0.27 -> 0.13 s), one 640x360 1 Mbit/s
# session's open 0.51 -> 0.08 s; with it, the probe ends at the first video frame
# (bench/README.md, *Session open*). `probesize` still caps a stream whose
# parameters come only in-band; a smaller one alone would end the probe at the first audio
# packet, before the video's parameters (e.g. whether it has B-frames) are known.
_PROBE_OPTIONS = {"analyzeduration": "0", "probesize": "32768", "fpsprobesize": "0",
                  "max_ts_probe": "1"}

OPEN_DEADLINE_FACTOR = 4
"""An interruptible open (UDP) is bounded by PyAV's clock at this many socket timeouts: an open is
several exchanges, each bounded by FFmpeg's socket timeout, which should fire first."""


@dataclass(frozen=True)
class CameraSource:
    """How to reach one camera: the secret URL for FFmpeg, the clean one for people."""

    camera_id: str
    display_url: str
    _camera: CameraConfig
    transport: str
    audio: bool = True

    @classmethod
    def from_config(cls, camera: CameraConfig) -> CameraSource:
        return cls(
            camera_id=camera.id,
            display_url=redact_url(camera.url),
            _camera=camera,
            transport=camera.transport,
            audio=camera.record_audio,
        )

    @property
    def _secret_url(self) -> str:
        """Raises SecretError when the camera's sealed password cannot be opened here."""
        return _with_credentials(self._camera)

    def __repr__(self) -> str:  # never show the secret URL, even in a traceback's locals
        return f"CameraSource({self.camera_id!r}, {self.display_url!r}, {self.transport})"

    def ffmpeg_options(self, io_timeout_s: float) -> dict[str, str]:
        """FFmpeg's own socket timeout, not PyAV's `timeout=` (that one holds the GIL per poll)."""
        return {
            "rtsp_transport": self.transport,
            "timeout": str(int(io_timeout_s * 1_000_000)),
            # Video, and audio unless the camera's `record_audio` is off (never data streams such
            # as ONVIF metadata). With both set up, FFmpeg times them from one RTCP-synchronised
            # origin, and the simulator sent no RTCP sender report to some video-only clients of
            # a camera with audio (docs/recorder.md, Audio).
            "allowed_media_types": "video+audio" if self.audio else "video",
            **_PROBE_OPTIONS,
        }

    def open(self, io_timeout_s: float) -> av.container.InputContainer:
        return self._open(io_timeout_s, interruptible=False)[0]

    def open_session(self, io_timeout_s: float
                     ) -> tuple[av.container.InputContainer, ReadInterrupt | None]:
        """Over UDP also a `ReadInterrupt` (None over TCP, or when this PyAV's layout is not
        the one `read_interrupt` knows): a stream restart can leave a UDP read blocked in
        FFmpeg for minutes, a TCP one cannot (docs/recorder.md, *Camera faults*)."""
        return self._open(io_timeout_s, interruptible=self.transport == "udp")

    def _open(self, io_timeout_s: float, *, interruptible: bool
              ) -> tuple[av.container.InputContainer, ReadInterrupt | None]:
        try:
            url = self._secret_url
        except SecretError as exc:
            raise SourceError(f"{exc} ({self.display_url})", "site_secret") from None
        options = self.ffmpeg_options(io_timeout_s)
        try:
            if interruptible:
                return open_interruptible(url, options, OPEN_DEADLINE_FACTOR * io_timeout_s)
            return av.open(url, options=options), None
        except av.FFmpegError as exc:
            raise SourceError(self.explain(exc, io_timeout_s), _kind(exc)) from None

    def scrub(self, text: str) -> str:
        """Replace the credential-bearing URL in any text with the display URL."""
        try:
            secret_url = self._secret_url
        except SecretError:
            return text  # nothing was opened, so no text can quote the password
        return text.replace(secret_url, self.display_url)

    def explain(self, exc: BaseException, io_timeout_s: float) -> str:
        """One operator-readable line: which camera, what happened, what to check."""
        what = self.scrub(_strip_errno(str(exc)))
        where = f"camera {self.camera_id} ({self.display_url}, RTSP over {self.transport})"
        hint = _hint(exc, io_timeout_s)
        return f"{where}: {what}. {hint}"


class SourceError(Exception):
    """A camera could not be opened; the message is already scrubbed and operator-readable.

    `kind` is for programs (`_kind`): e.g. `server_error` (the camera answered 5xx — busy, or out
    of streaming sessions), `unauthorized`, `timeout`, `other`."""

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


# FFmpeg's HTTP-status errors (RTSP answers), by the kind programs see; checked in this order.
_HTTP_KINDS = (
    ("HTTPUnauthorizedError", "unauthorized"),
    ("HTTPForbiddenError", "forbidden"),
    ("HTTPNotFoundError", "not_found"),
    ("HTTPServerError", "server_error"),
)


def _kind(exc: BaseException) -> str:
    """The one classification of a connect error; `_hint` words it for an operator."""
    for name, kind in _HTTP_KINDS:
        cls = getattr(av.error, name, None)
        if cls is not None and isinstance(exc, cls):
            return kind
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, TimeoutError | av.error.ExitError):  # ExitError: the open's deadline
        return "timeout"
    if isinstance(exc, EOFError):
        return "ended"
    return "other"


def _strip_errno(text: str) -> str:
    """PyAV prefixes FFmpeg's messages with '[Errno <AVERROR code>]': noise for an operator. It
    also appends FFmpeg's last error log line once FFmpeg's log is on (`rtp_loss`), and that line
    may come from another camera's thread: not this camera's story."""
    text = re.sub(r"; last error log: .*\Z", "", text, flags=re.DOTALL)
    return re.sub(r"^\[Errno -?\d+\] ", "", text)


_HINTS = {
    "unauthorized": "Check the camera's username and password in the configuration.",
    "forbidden": "The camera refused this user; check its user rights for streaming.",
    "not_found": "The camera does not know this stream path; check the URL's path.",
    "server_error": "The camera answered with a server error: it may be starting, busy, or out "
                    "of streaming sessions.",
    "connection_refused": "Nothing listens on that address and port; check the camera is on and "
                          "the port is right.",
    "ended": "The camera ended the stream; it may have rebooted or dropped us for another client.",
    "other": "Check that the camera is reachable and the URL opens in another RTSP client.",
}


def _hint(exc: BaseException, io_timeout_s: float) -> str:
    kind = _kind(exc)
    if kind == "timeout":
        return (f"No answer within {io_timeout_s:g} s; check power, network, firewall, or try the "
                "other RTSP transport (tcp/udp).")
    return _HINTS[kind]


def _with_credentials(camera: CameraConfig) -> str:
    url = reveal_url(camera.id, camera.url)
    parts = urlsplit(url)
    username = camera.username if camera.username is not None else parts.username
    if username is None:
        return url
    host_port = parts.netloc.rsplit("@", 1)[-1]
    userinfo = quote(username, safe="")
    if camera.password is not None:
        password = reveal_password(camera.id, camera.password.get_secret_value())
        userinfo += ":" + quote(password, safe="")
    return urlunsplit(
        (parts.scheme, f"{userinfo}@{host_port}", parts.path, parts.query, parts.fragment)
    )
