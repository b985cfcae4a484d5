"""Playback URLs never carry a user's token: playlists and the live redirect hand out grants
(hotspare.api.grants), scoped to one camera and time range, that every node of the site accepts
for exactly that and nothing else.

The site is the in-process one of tests.support.site_api (rec-2 down, covered by spare-1; three
real node apps with the same users), asked by a viewer with a real scrypt-hashed token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from hotspare.api.app import API_PREFIX
from hotspare.api.grants import GrantRefused, GrantSigner
from hotspare.api.tokens import hash_token, new_token
from hotspare.config.models import ApiUser
from hotspare.site_secret import create_site_secret
from tests.support.api_node import T0, TOKEN, record_run
from tests.support.site_api import REC1, REC2, SEG_US, SPARE, Site, open_site

VIEWER = new_token("viewer-1")
RANGE = {"from": T0, "to": T0 + 3_000_000}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    users = [ApiUser(name="viewer-1", role="viewer", token_hash=hash_token(VIEWER))]
    with open_site(tmp_path, users=users) as state:
        yield state


def _uris(text: str) -> list[str]:
    """Every URL a player fetches from a playlist: media URIs and EXT-X-MAP URIs."""
    maps = [line.split('URI="')[1].split('"')[0] for line in text.splitlines()
            if line.startswith("#EXT-X-MAP")]
    media = [line for line in text.splitlines() if line and not line.startswith("#")]
    return maps + media


def _fetch(site: Site, url: str) -> tuple[int, bytes, str]:
    """GET an absolute URL of the site with no credential but what the URL carries (a client of
    its own: the site's node clients hold the node credential the master calls them with)."""
    base, _, rest = url.partition("/api/")
    response = TestClient(site.nodes[base].app, base_url=base).get("/api/" + rest)
    error = response.json().get("error", "") if response.status_code >= 400 else ""
    return response.status_code, response.content, error


def _grant(url: str) -> str:
    return url.split("grant=")[1].split("&")[0]


def _with_grant(url: str, grant: str) -> str:
    return url.replace(_grant(url), grant)


def _site_playlist(site: Site, **params: int) -> str:
    response = site.master.get(API_PREFIX + "/site/cameras/cam-1/playback.m3u8",
                               params={**params, "token": VIEWER})
    assert response.status_code == 200, response.text
    return response.text


def test_site_playlist_carries_grants_that_play_on_every_node_never_the_token(
        site: Site) -> None:
    text = _site_playlist(site, **RANGE)
    assert VIEWER not in text and "token=" not in text
    assert VIEWER.split(".")[1] not in text  # not even the secret half
    urls = _uris(text)
    assert len(urls) == 12  # 6 segments, each a map and a media URI
    assert {u.split("/api/")[0] for u in urls} == {REC2, SPARE}
    grants = {_grant(u) for u in urls}
    assert len(grants) == 1
    assert next(iter(grants)).startswith(f"v1.cam-1.{T0}.{T0 + 3_000_000}.")
    assert next(iter(grants)).split(".")[5] == "viewer-1"
    for url in urls:
        status, body, error = _fetch(site, url)
        assert status == 200, (url, error)
        assert body[4:8] == b"ftyp"  # raw=1: the stored file, playable from its start


def test_live_redirect_carries_a_grant_and_the_live_playlist_plays(site: Site) -> None:
    response = site.master.get(API_PREFIX + "/site/cameras/cam-1/live.m3u8",
                               params={"token": VIEWER}, follow_redirects=False)
    assert response.status_code == 307
    location = response.headers["location"]
    assert VIEWER not in location and "token=" not in location
    assert location.startswith(f"{SPARE}/api/v1/cameras/cam-1/live.m3u8?grant=v1.cam-1.")
    status, body, error = _fetch(site, location)
    assert status == 200, error
    text = body.decode()
    assert VIEWER not in text and "token=" not in text
    urls = [urljoin(location, u) for u in _uris(text)]
    assert len(urls) == 6  # the spare's 3 segments of cam-1
    for url in urls:
        assert _fetch(site, url)[0] == 200
    # The playlist's grants are new ones, inside the redirect's grant.
    outer = _grant(location).split(".")
    inner = _grant(urls[0]).split(".")
    assert int(inner[2]) >= int(outer[2]) and int(inner[3]) <= int(outer[3])
    assert int(inner[4]) <= int(outer[4])


@pytest.mark.parametrize("field", [1, 2, 3, 4, 5, 6],
                         ids=["camera", "from", "to", "expiry", "user", "signature"])
def test_a_changed_grant_is_refused(site: Site, field: int) -> None:
    url = _uris(_site_playlist(site, **RANGE))[-1]
    parts = _grant(url).split(".")
    parts[field] = {1: "cam-m", 2: str(T0 - 3_600_000_000), 3: str(T0 + 86_400_000_000),
                    4: str(int(parts[4]) + 86_400_000_000), 5: "admin-1",
                    6: parts[6][:-2] + ("AA" if parts[6][-2:] != "AA" else "BB")}[field]
    status, _, error = _fetch(site, _with_grant(url, ".".join(parts)))
    assert (status, error) == (403, "grant_invalid")


@pytest.mark.parametrize("text", ["", "v1", "v2.cam-1.1.2.3.x.sig", "x" * 1000,
                                  "v1.cam-1.1.2.3.viewer-1.sig.extra", "v1.CAM.a.b.c.d.e",
                                  "v1.c%C3%A4m.1.2.3.viewer-1.sig", "v1.cam-1.1.2.3.v.%FF"])
def test_a_malformed_grant_is_refused(site: Site, text: str) -> None:
    assert _fetch(site, f"{REC2}/api/v1/segments/1/file?grant={text}")[:3:2] == (
        403, "grant_invalid")


def test_an_expired_grant_and_another_sites_grant_are_refused(site: Site) -> None:
    url = _uris(_site_playlist(site, **RANGE))[-1]
    # Signed with the site's key an hour before the nodes' clock: valid but expired.
    old = GrantSigner(TOKEN, 600, clock=lambda: T0 - 3_600_000_000)
    expired = old.issue("cam-1", T0, T0 + 3_000_000, "viewer-1")
    assert _fetch(site, _with_grant(url, expired))[2] == "grant_expired"
    other = GrantSigner("another-sites-token-0123", 600, clock=lambda: T0)
    assert _fetch(site, _with_grant(url, other.issue("cam-1", T0, T0 + 3_000_000,
                                                     "viewer-1")))[2] == "grant_invalid"


def test_a_valid_grant_reads_only_its_camera_and_range(site: Site) -> None:
    _, segments = record_run(site.stores["rec-1"], "cam-m", T0, 1)
    # A grant for cam-1's first segment only.
    text = _site_playlist(site, **{"from": T0, "to": T0 + SEG_US // 2})
    urls = _uris(text)
    grant = _grant(urls[0])
    assert _fetch(site, urls[-1])[0] == 200
    # cam-m's segment on rec-1: another camera.
    other_camera = f"{REC1}/api/v1/segments/{segments[0].segment_id}/file?grant={grant}"
    assert _fetch(site, other_camera)[:3:2] == (403, "grant_wrong_camera")
    # rec-2's third segment of cam-1: outside the range.
    later = site.stores["rec-2"].list_segments("cam-1", T0, T0 + 3_000_000, limit=10)[2]
    outside = f"{REC2}/api/v1/segments/{later.segment_id}/file?grant={grant}&raw=1"
    assert _fetch(site, outside)[:3:2] == (403, "grant_outside_range")
    # Playlists of the node under the grant: inside it, yes; reaching past it, or another
    # camera's, no.
    base = f"{REC2}/api/v1/cameras/cam-1/playback.m3u8?grant={grant}"
    inside = _fetch(site, f"{base}&from={T0}&to={T0 + SEG_US // 2}")
    assert inside[0] == 200 and b"grant=v1.cam-1." in inside[1]
    assert _fetch(site, f"{base}&from={T0}&to={T0 + 3_000_000}")[2] == "grant_outside_range"
    assert _fetch(site, f"{REC1}/api/v1/cameras/cam-m/live.m3u8?grant={grant}")[2] == \
        "grant_wrong_camera"
    # The live playlist needs a grant covering now, which a past range does not.
    assert _fetch(site, f"{REC2}/api/v1/cameras/cam-1/live.m3u8?grant={grant}")[2] == \
        "grant_outside_range"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/cameras/cam-1/segments"),
    ("GET", "/api/v1/cameras/cam-1/timeline"),
    ("GET", "/api/v1/segments/1"),
    ("GET", "/api/v1/site/cameras"),
    ("GET", "/api/v1/site/cameras/cam-1/playback.m3u8"),
    ("GET", "/api/v1/site/cameras/cam-1/live.m3u8"),
    ("POST", "/api/v1/site/cameras/cam-1/exports"),
    ("PUT", "/api/v1/cameras/cam-1/segments/import"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/no-such-route"),
])
def test_a_grant_opens_no_other_route(site: Site, method: str, path: str) -> None:
    grant = _grant(_uris(_site_playlist(site, **RANGE))[0])
    response = TestClient(site.master.app, base_url=REC1).request(method, path,
                                                                 params={"grant": grant})
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "grant_not_for_route"


def test_a_header_token_wins_over_a_grant_and_header_callers_get_bare_urls(site: Site) -> None:
    response = site.master.get(API_PREFIX + "/site/cameras/cam-1/playback.m3u8", params=RANGE,
                               headers={"Authorization": f"Bearer {VIEWER}"})
    assert "grant=" not in response.text and VIEWER not in response.text
    # A wrong grant beside a right header: the header decides.
    health = site.master.get(API_PREFIX + "/health", params={"grant": "v1.x"},
                             headers={"Authorization": f"Bearer {VIEWER}"})
    assert health.status_code == 200


def test_signer_round_trip_and_nesting() -> None:
    signer = GrantSigner(TOKEN, 600, clock=lambda: T0)
    grant = signer.verify(signer.issue("cam-1", T0, T0 + 10, "viewer-1", extra_us=5))
    assert (grant.camera, grant.from_us, grant.to_us, grant.principal) == (
        "cam-1", T0, T0 + 10, "viewer-1")
    assert grant.expires_us == T0 + 600_000_000 + 5
    nested = signer.verify(signer.issue("cam-1", T0 - 100, T0 + 100, "viewer-1",
                                        extra_us=10**12, within=grant))
    assert (nested.from_us, nested.to_us, nested.expires_us) == (T0, T0 + 10, grant.expires_us)
    with pytest.raises(GrantRefused) as refused:
        GrantSigner(TOKEN, 600, clock=lambda: grant.expires_us).verify(
            signer.issue("cam-1", T0, T0 + 10, "viewer-1", extra_us=5))
    assert refused.value.error == "grant_expired"


def test_a_signer_keyed_by_the_site_secret_refuses_grants_of_the_shared_token(
        tmp_path: Path) -> None:
    """Site nodes key grants from the site secret: the shared node credential signs nothing."""
    secret = create_site_secret(tmp_path / "site-secret.key")
    site_signer = GrantSigner(TOKEN, 600, clock=lambda: T0)
    site_signer.use_key(secret.derive(b"playback grants"))
    other_node = GrantSigner(TOKEN, 600, clock=lambda: T0)
    other_node.use_key(secret.derive(b"playback grants"))
    grant = site_signer.issue("cam-1", T0, T0 + 1_000_000, "viewer")
    assert other_node.verify(grant).camera == "cam-1"  # same file, same key on every node
    token_signed = GrantSigner(TOKEN, 600, clock=lambda: T0).issue("cam-1", T0, T0 + 1, "viewer")
    with pytest.raises(GrantRefused) as caught:
        site_signer.verify(token_signed)
    assert caught.value.error == "grant_invalid"
