"""Real nodes hand out signed playback URLs, never the user's token: a viewer asks the master
(rec-1) for the site playlist and the live redirect of rec-2's camera; the URLs point at rec-2, a
process of its own that never saw the token, and play there with the grant they carry; changed,
other-camera and other-route uses are refused (docs/design.md, decision 16).
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urljoin

import httpx

from hotspare.api.tokens import hash_token, new_token
from tests.support.site import FailoverSite, wait_for

VIEWER = new_token("viewer-1")


def _uris(text: str, base: str) -> list[str]:
    maps = [line.split('URI="')[1].split('"')[0] for line in text.splitlines()
            if line.startswith("#EXT-X-MAP")]
    media = [line for line in text.splitlines() if line and not line.startswith("#")]
    return [urljoin(base, u) for u in maps + media]


def _grant(url: str) -> str:
    return url.split("grant=")[1].split("&")[0]


def test_site_playlist_and_live_redirect_hand_out_grants_that_play(tmp_path: Path) -> None:
    users = [{"name": "viewer-1", "role": "viewer", "token_hash": hash_token(VIEWER)}]
    with FailoverSite(tmp_path, servers={"rec-1": 1, "rec-2": 1}, spares=[],
                      users=users) as site, httpx.Client(timeout=10.0) as http:
        site.start_all()
        master, rec2 = site.node("rec-1").url, site.node("rec-2").url
        assert master and rec2
        camera = site.cameras["rec-2"][0]
        site_url = f"{master}/api/v1/site/cameras/{camera}"
        start = int(time.time() * 1_000_000)

        def playlist() -> httpx.Response | None:
            answer = http.get(f"{site_url}/playback.m3u8",
                              params={"from": start - 60_000_000,
                                      "to": int(time.time() * 1_000_000), "token": VIEWER})
            assert answer.status_code == 200, answer.text
            return answer if answer.text.count("#EXTINF") >= 2 else None

        answer = wait_for("two committed segments of rec-2's camera", playlist, 30, 0.5)
        assert VIEWER not in answer.text and "token=" not in answer.text
        urls = _uris(answer.text, str(answer.url))
        assert urls and all(u.startswith(f"{rec2}/api/v1/segments/") for u in urls)
        for url in urls:  # no header, no token: only the grant in the URL
            got = http.get(url)
            assert got.status_code == 200, (url, got.text)
            assert len(got.content) > 0

        grant = _grant(urls[0])
        tampered = grant[:-1] + ("A" if grant[-1] != "A" else "B")
        refused = http.get(urls[0].replace(grant, tampered))
        assert (refused.status_code, refused.json()["error"]) == (403, "grant_invalid")
        other_camera = http.get(f"{rec2}/api/v1/cameras/{site.cameras['rec-1'][0]}/live.m3u8",
                                params={"grant": grant})
        assert (other_camera.status_code, other_camera.json()["error"]) == (
            403, "grant_wrong_camera")
        wrong_route = http.get(f"{rec2}/api/v1/health", params={"grant": grant})
        assert (wrong_route.status_code, wrong_route.json()["error"]) == (
            403, "grant_not_for_route")

        redirect = http.get(f"{site_url}/live.m3u8", params={"token": VIEWER},
                            follow_redirects=False)
        assert redirect.status_code == 307
        location = redirect.headers["location"]
        assert VIEWER not in location and "token=" not in location
        assert location.startswith(f"{rec2}/api/v1/cameras/{camera}/live.m3u8?grant=v1.")
        live = http.get(location)
        assert live.status_code == 200, live.text
        assert VIEWER not in live.text and "token=" not in live.text
        live_urls = _uris(live.text, location)
        assert live_urls
        for url in live_urls:
            assert http.get(url).status_code == 200, url
