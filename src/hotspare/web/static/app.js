// hotspare web UI: plain ES module, no framework. It polls the master's site API
// (docs/site-api.md) once a second and draws what it gets; the token the operator types is kept
// in sessionStorage (this tab only) and sent as a bearer header on every data call. Playlists are
// loaded from the master with ?token= because a video player cannot add headers; the URLs in them
// (and the live redirect) carry short-lived signed grants for that camera, never the token.

const TOKEN_KEY = "hotspare-token";
const UTC_KEY = "hotspare-utc";     // localStorage: a display preference, kept across tabs
const ENDPOINTS_KEY = "hotspare-endpoints";
const GRID_KEY = "hotspare-grid";   // localStorage: the live grid's layout and cameras per tile
const GRID_LAYOUTS = [1, 4, 9];
const TILE_RETRY_MS = 2000;
// A live tile whose node stopped answering gives up after one quick retry and asks the site for
// the camera's owner again (hls.js's defaults retry the dead node for tens of seconds).
const QUICK_RETRY = { maxNumRetry: 1, retryDelayMs: 300, maxRetryDelayMs: 300 };
const QUICK_GIVE_UP = { default: { maxTimeToFirstByteMs: 4000, maxLoadTimeMs: 8000,
  timeoutRetry: QUICK_RETRY, errorRetry: QUICK_RETRY } };
const CALL_TIMEOUT_MS = 2500;
// The API's read limits (hotspare/wire.py, docs/api.md "Read limits"): a playlist covers at most
// a day, a timeline answer at most a week and may be cut (`truncated`, `next_from_wall_us`).
const MAX_PLAYLIST_RANGE_US = 24 * 3600 * 1e6;
const MAX_TIMELINE_PAGES = 8;

const $ = (sel) => document.querySelector(sel);
const state = {
  base: location.origin,            // the node we talk to: the master, or whoever serves it now
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  endpoints: JSON.parse(sessionStorage.getItem(ENDPOINTS_KEY) || "null"),
  lastEvent: null,
  events: [],                       // the newest 200 site events, oldest first
  cameras: [],
  timelines: new Map(),
  hls: null,
  hlsLoaded: null,
  polling: false,
  servers: new Map(),
  serverNames: [],
  spareNames: [],
  tiles: [],                        // the live grid: {camera, video, hls, status, retry}
  playback: null,                   // {camera, from, end, next}: the range the player is on
  selection: null,                  // {camera, from, to}: the range to export
  exporting: false,
};

class AuthError extends Error {}

async function call(path, base = state.base) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), CALL_TIMEOUT_MS);
  try {
    const res = await fetch(base + path, {
      headers: { Authorization: `Bearer ${state.token}` }, signal: ctl.signal, cache: "no-store",
    });
    if (res.status === 401) throw new AuthError("the token was refused");
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Error(body.detail || `HTTP ${res.status}`);
    }
    return await res.json();
  } finally {
    clearTimeout(timer);
  }
}

// Calls that are not a plain GET of JSON (the export): same token, the API's error text on failure.
async function request(path, { method = "GET", as = "json" } = {}) {
  const res = await fetch(state.base + path, {
    method, headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store",
  });
  if (res.status === 401) throw new AuthError("the token was refused");
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    const err = new Error(body.detail || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return as === "blob" ? res.blob() : res.json();
}

// The master may move (a spare assumes its identity): when our node stops answering, ask every
// node we know for the endpoint list and follow its master URL.
async function api(path) {
  try {
    const data = await call(path);
    setConn(`connected to ${state.base}`, false);
    return data;
  } catch (err) {
    if (err instanceof AuthError) throw err;
    if (await findMaster()) return call(path);
    setConn(`lost ${state.base}: ${err.message}; retrying`, true);
    throw err;
  }
}

async function findMaster() {
  const known = state.endpoints;
  if (!known) return false;
  const urls = [known.master.url, ...known.nodes.map((n) => n.url)];
  for (const url of [...new Set(urls)]) {
    if (url === state.base) continue;
    try {
      const list = await call("/api/v1/site/endpoints", url);
      const master = list.master.url;
      await call("/api/v1/site/endpoints", master);
      state.base = master;
      saveEndpoints(list);
      return true;
    } catch (err) {
      if (err instanceof AuthError) throw err;
    }
  }
  return false;
}

function saveEndpoints(list) {
  state.endpoints = list;
  sessionStorage.setItem(ENDPOINTS_KEY, JSON.stringify(list));
}

function setConn(text, lost) {
  const el = $("#conn");
  el.textContent = text;
  el.classList.toggle("lost", lost);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

const stateClass = (s) => "state state-" + String(s).replace(/-by-.*$/, "");
const stateText = (s) => String(s).replace(/^covered-by-/, "covered by ");

// ---------------------------------------------------------------- overview

function drawServers(data) {
  $("#site-id").textContent = `· site ${data.site_id} · master ${data.master}`;
  state.serverNames = data.servers.map((s) => s.name);
  state.spareNames = data.spares.map((s) => s.name);
  state.servers = new Map(data.servers.map((s) => [s.name, s]));
  const rows = data.servers.map((s) => {
    const warnings = s.protection && s.protection.warnings ? s.protection.warnings : [];
    const prot = s.protection
      ? (s.protection.protected ? "protected"
        : "unprotected: " + s.protection.reasons.map((r) => r.message).join("; "))
        + (warnings.length ? " · degraded: " + warnings.map((w) => w.message).join("; ") : "")
        + gaplessText(s.protection)
      : "unknown";
    const protClass = s.protection && !s.protection.protected ? "error"
      : warnings.length ? "warn" : "";
    const reinsert = s.reinsert.map((r) => {
      const bar = el("progress", { max: r.total || 1, value: r.done || 0 });
      return el("span", {}, bar, ` ${r.done}/${r.total} from ${r.spare}`);
    });
    return el("tr", { "data-server": s.name, "data-state": s.state },
      el("td", {}, s.name), el("td", {}, s.role),
      el("td", { class: stateClass(s.state) }, stateText(s.state)),
      el("td", {}, `${s.owner.node} (${s.owner.url})`),
      el("td", { class: protClass, "data-degraded": warnings.length ? "yes" : "no" }, prot),
      el("td", {}, ...reinsert));
  });
  $("#servers tbody").replaceChildren(...rows);
  const spares = data.spares.map((s) => el("tr", { "data-spare": s.name, "data-state": s.state },
    el("td", {}, s.name),
    el("td", { class: stateClass(s.state) },
      stateText(s.state) + (s.covering ? ` ${s.covering}` : "") + (s.leftover ? ` (leftover ${s.leftover})` : "")),
    el("td", {}, s.licensed ? "yes" : "no"),
    el("td", {}, `${s.allotment} cameras` + (s.standby && s.standby.sessions
      ? ` · standby ${s.standby.sessions}/${s.standby.max_sessions} sessions,`
        + ` ${s.standby.mbps}/${s.standby.max_mbps} Mbit/s` : "")),
    el("td", { class: s.room && s.room.low ? (s.room.level === "no_room" ? "error" : "warn") : "",
      "data-room": s.room ? s.room.level : "unknown", title: s.room ? s.room.message : "" },
    roomText(s.room))));
  $("#spares tbody").replaceChildren(...spares);
}

// A spare's buffer room, in cover of the server with the most video (the whole sentence on hover).
function roomText(room) {
  if (!room) return "unknown";
  const gb = (room.free_bytes / 1e9).toFixed(2) + " GB free";
  if (room.level === "no_room") return `NO ROOM (${gb}): leaves failed servers to other spares`;
  const cover = room.seconds === null ? "" : `, ${Math.round(room.seconds / 60)} min of ${room.server}`;
  return (room.level === "low" ? "LOW: " : "") + gb + cover;
}

// Gapless cameras: how many are pre-buffered, where, and which fall back (with why, on hover).
function gaplessText(p) {
  const cams = p.gapless_cameras || [];
  if (!cams.length) return "";
  const back = cams.filter((c) => c.fallback);
  let text = ` · gapless ${cams.length - back.length}/${cams.length}`
    + (p.standby_spare ? ` on ${p.standby_spare}` : "");
  if (back.length) {
    text += ` (standard: ${back.map((c) => `${c.camera} – ${c.fallback.code}`).join(", ")})`;
  }
  return text;
}

// ---------------------------------------------------------------- cameras and timelines

// Recording servers in cool colours, spares in warm ones, each fixed by its place in the site
// configuration, so a spare's stretch stands out on a server's timeline.
const SERVER_COLOURS = ["#1e88e5", "#3949ab", "#00897b", "#5e35b1", "#039be5", "#43a047"];
const SPARE_COLOURS = ["#fb8c00", "#e53935", "#d81b60", "#f4511e", "#c0ca33"];

function colour(node) {
  const spare = state.spareNames.indexOf(node);
  if (spare >= 0) return SPARE_COLOURS[spare % SPARE_COLOURS.length];
  const server = state.serverNames.indexOf(node);
  if (server >= 0) return SERVER_COLOURS[server % SERVER_COLOURS.length];
  return "#757575";
}

function drawCameras() {
  const box = $("#cameras");
  const have = new Set([...box.querySelectorAll(".camera")].map((c) => c.dataset.camera));
  const want = state.cameras.map((c) => c.id);
  if (want.join() !== [...have].join()) {
    box.replaceChildren(...state.cameras.map((c) => {
      const bar = el("div", { class: "timeline", "data-camera": c.id,
        title: "click to play from here; shift-drag to choose a range to export" });
      bar.addEventListener("click", (ev) => { if (!ev.shiftKey) playFromClick(c.id, bar, ev); });
      bar.addEventListener("mousedown", (ev) => { if (ev.shiftKey) startSelect(c.id, bar, ev); });
      const live = el("button", { class: "small", type: "button" }, "live");
      live.addEventListener("click", () => playLive(c.id));
      return el("div", { class: "camera", "data-camera": c.id },
        el("div", { class: "name" }, `${c.id} `, live, el("small", { class: "where" })), bar);
    }));
  }
  drawCameraLabels();
}

// Labels follow the server list polled every second, not the slower camera list.
function drawCameraLabels() {
  for (const c of state.cameras) {
    const row = document.querySelector(`.camera[data-camera="${c.id}"]`);
    if (!row) continue;
    const server = state.servers.get(c.server);
    const now = server ? stateText(server.state) : stateText(c.server_state);
    const owner = server ? server.owner.node : c.owner.node;
    const tl = state.timelines.get(c.id);
    const missing = tl && tl.partial
      ? ` · not answering: ${tl.sources.filter((s) => !s.ok).map((s) => s.node).join(", ")}` +
        " (its video is not shown)"
      : "";
    row.querySelector(".where").textContent = `${c.server}: ${now}; served by ${owner}${missing}`;
  }
}

function drawTimeline(camera, tl) {
  const bar = document.querySelector(`.timeline[data-camera="${camera}"]`);
  if (!bar) return;
  const span = tl.to_wall_us - tl.from_wall_us;
  const pct = (t) => Math.max(0, Math.min(100, ((t - tl.from_wall_us) / span) * 100));
  const parts = [];
  for (const run of tl.runs) {
    const left = pct(run.start_wall_us), width = pct(run.end_wall_us) - left;
    parts.push(el("div", {
      class: "run", "data-recorded-by": run.recorded_by, "data-held-by": run.held_by,
      "data-start": run.start_wall_us, "data-end": run.end_wall_us,
      title: `${run.recorded_by} (held by ${run.held_by}): ${fmt(run.start_wall_us)} – ${fmt(run.end_wall_us)}`,
    }));
    Object.assign(parts.at(-1).style, { left: `${left}%`, width: `${Math.max(width, 0.2)}%`,
      background: colour(run.recorded_by) });
  }
  for (const gap of tl.gaps) {
    const left = pct(gap.start_wall_us), width = pct(gap.end_wall_us) - left;
    const g = el("div", { class: "gap", title: `gap ${(gap.length_us / 1e6).toFixed(1)} s` });
    Object.assign(g.style, { left: `${left}%`, width: `${width}%` });
    parts.push(g);
  }
  bar.replaceChildren(...parts);
  bar.classList.toggle("partial", tl.partial);
  bar.title = tl.partial
    ? "partial: " + tl.sources.filter((s) => !s.ok).map((s) => `${s.node} ${s.error}`).join("; ")
    : "click to play from here";
  bar.dataset.from = tl.from_wall_us;
  bar.dataset.to = tl.to_wall_us;
  drawSelection();
  drawLegend();
}

function drawLegend() {
  const names = new Set();
  for (const tl of state.timelines.values()) for (const r of tl.runs) names.add(r.recorded_by);
  $("#legend").replaceChildren(...[...names].sort().map((n) => {
    const swatch = el("i");
    swatch.style.background = colour(n);
    return el("span", {}, swatch, `recorded by ${n}`);
  }), el("span", {}, el("i", { class: "gap-swatch" }), "hatched: no video"));
}

// Times as the browser's local clock shows them, or in UTC like the hotspare command (`...Z`):
// a site's nodes and its operators are not always in one time zone.
const utc = () => localStorage.getItem(UTC_KEY) === "1";
const fmt = (us) => {
  const d = new Date(us / 1000);
  return utc() ? d.toISOString().slice(11, 19) + "Z" : d.toLocaleTimeString();
};

// One camera's timeline of [from, to): a cut answer is continued from its next_from_wall_us and
// the pages joined (a few at most; what is left stays undrawn rather than costing the master more).
async function siteTimeline(camera, from, to) {
  const path = (f) => `/api/v1/site/cameras/${camera}/timeline?from=${f}&to=${to}`;
  const tl = await api(path(from));
  for (let n = 1; tl.truncated && tl.next_from_wall_us && n < MAX_TIMELINE_PAGES; n++) {
    const more = await api(path(tl.next_from_wall_us));
    tl.runs.push(...more.runs);
    tl.gaps.push(...more.gaps);
    tl.partial = tl.partial || more.partial;
    tl.truncated = more.truncated;
    tl.next_from_wall_us = more.next_from_wall_us;
  }
  return tl;
}

async function refreshTimelines() {
  const seconds = Number($("#range").value);
  const to = Date.now() * 1000;
  const from = to - seconds * 1e6;
  await Promise.all(state.cameras.map(async (c) => {
    try {
      const tl = await siteTimeline(c.id, from, to);
      state.timelines.set(c.id, tl);
      drawTimeline(c.id, tl);
    } catch (err) {
      if (err instanceof AuthError) throw err;
    }
  }));
}

// ---------------------------------------------------------------- playback

function loadHls() {
  if (!state.hlsLoaded) {
    state.hlsLoaded = new Promise((resolve) => {
      const s = el("script", { src: "vendor/hls.min.js" });
      s.onload = () => resolve(window.Hls && window.Hls.isSupported() ? window.Hls : null);
      s.onerror = () => resolve(null);
      document.head.append(s);
    });
  }
  return state.hlsLoaded;
}

// `next(from)` gives [url, label, end] of the playlist continuing this one, which ends at `end`
// (asked at most a day) or earlier, where the API cut it at its segment cap (Hotspare-Next-From).
async function play(url, label, next = null, end = null, range = null) {
  const video = $("#player");
  $("#playing").textContent = label;
  state.playback = range;
  resetScrubber();
  if (state.hls) { state.hls.destroy(); state.hls = null; }
  video.onended = null;
  const Hls = await loadHls();
  const note = $("#hls-note");
  if (Hls) {
    note.hidden = true;
    state.hls = new Hls({ maxBufferLength: 10, xhrSetup: reloadLiveViaMaster(url) });
    state.hls.loadSource(url);
    state.hls.attachMedia(video);
    state.hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    state.hls.on(Hls.Events.MANIFEST_LOADED, (_e, data) => {
      const details = data.networkDetails;
      const cut = details && details.getResponseHeader
        ? details.getResponseHeader("Hotspare-Next-From") : null;
      const rest = cut ? Number(cut) : (end && end < Date.now() * 1000 ? end : null);
      if (rest && next) {
        video.onended = () => {
          const [u, l, e] = next(rest);
          play(u, l, next, e, range && { ...range, from: rest, end: e });
        };
      }
    });
    state.hls.on(Hls.Events.ERROR, (_e, data) => {
      if (data.fatal) { note.hidden = false; note.textContent = `playback error: ${data.details}`; }
    });
  } else {
    note.hidden = false;
    note.textContent = "hls.js is not installed on this server (run scripts/setup); " +
      "using the browser's own HLS player, which many browsers lack.";
    video.src = url;
  }
  video.play().catch(() => {});
}

// A site live URL redirects to the node serving the camera, with a signed playback URL (a grant)
// that expires in minutes; hls.js reloads a live playlist from the address it was redirected to,
// so each reload is sent to the site URL instead, which redirects again with a fresh grant. The
// token goes only to the master; playlists and redirects carry grants, never the token.
function reloadLiveViaMaster(siteUrl) {
  const live = siteUrl.includes("/live.m3u8");
  return (xhr, url) => {
    if (live && /\/api\/v1\/cameras\/[^/?]+\/live\.m3u8\?/.test(url)) {
      xhr.open("GET", siteUrl, true);
    }
  };
}

function withToken(path) {
  const sep = path.includes("?") ? "&" : "?";
  return `${state.base}${path}${sep}token=${encodeURIComponent(state.token)}`;
}

function playFromClick(camera, bar, ev) {
  const rect = bar.getBoundingClientRect();
  const from = Number(bar.dataset.from), to = Number(bar.dataset.to);
  if (!from || !to) return;
  playFrom(camera, Math.round(from + ((ev.clientX - rect.left) / rect.width) * (to - from)));
}

// One site playlist from `at` to now (at most a day, the API's limit); a cut one continues when
// it ends. The playlist runs across runs, servers and spares, so the player and the scrubber
// cross a takeover or a handback without loading anything else.
function playFrom(camera, at) {
  const playlistFrom = (start) => {
    const end = Math.min(Date.now() * 1000, start + MAX_PLAYLIST_RANGE_US);
    return [withToken(`/api/v1/site/cameras/${camera}/playback.m3u8?from=${start}&to=${end}`),
      `${camera} from ${fmt(start)}`, end];
  };
  const [url, label, end] = playlistFrom(at);
  play(url, label, playlistFrom, end, { camera, from: at, end });
  drawCursor(camera, at);
}

function drawCursor(camera, wallUs) {
  const bar = document.querySelector(`.timeline[data-camera="${camera}"]`);
  if (!bar) return;
  const from = Number(bar.dataset.from), to = Number(bar.dataset.to);
  let cursor = bar.querySelector(".cursor");
  if (!cursor) { cursor = el("div", { class: "cursor" }); bar.append(cursor); }
  const pct = ((wallUs - from) / (to - from)) * 100;
  cursor.hidden = !(pct >= 0 && pct <= 100);
  cursor.style.left = `${Math.max(0, Math.min(100, pct))}%`;
}

// ---------------------------------------------------------------- scrubber

// The scrubber works in wall time (what the operator thinks in), not in player seconds: each
// playlist segment carries its PROGRAM-DATE-TIME, so a wall time maps to the fragment holding it
// wherever that fragment came from. A time outside the loaded playlist starts one from there.
function resetScrubber() {
  const s = $("#scrubber");
  const range = state.playback;
  s.disabled = !range;
  if (!range) { $("#scrub-time").textContent = ""; return; }
  s.min = String(Math.floor(range.from / 1000));
  s.max = String(Math.ceil(range.end / 1000));
  s.value = s.min;
  $("#scrub-time").textContent = fmt(range.from);
}

function playingWallUs() {
  const date = state.hls && state.hls.playingDate;
  return date ? date.getTime() * 1000 : null;
}

function onPlayerTime() {
  const wall = playingWallUs();
  const range = state.playback;
  if (wall === null || !range) return;
  const s = $("#scrubber");
  if (!s.matches(":active")) s.value = String(Math.round(wall / 1000));
  $("#scrub-time").textContent = fmt(wall);
  $("#scrub-time").dataset.wallUs = String(Math.round(wall));
  drawCursor(range.camera, wall);
}

function seekWall(wallUs) {
  const range = state.playback;
  if (!range) return;
  const level = state.hls && state.hls.levels[Math.max(0, state.hls.currentLevel)];
  const frags = (level && level.details && level.details.fragments) || [];
  const frag = frags.find((f) => f.programDateTime !== null && f.programDateTime * 1000 <= wallUs
    && wallUs < (f.programDateTime + f.duration * 1000) * 1000);
  if (frag) {
    $("#player").currentTime = frag.start + (wallUs / 1000 - frag.programDateTime) / 1000;
  } else {
    playFrom(range.camera, Math.round(wallUs));
  }
}

$("#player").addEventListener("timeupdate", onPlayerTime);
$("#scrubber").addEventListener("input", () => {
  $("#scrub-time").textContent = fmt(Number($("#scrubber").value) * 1000);
});
$("#scrubber").addEventListener("change", () => seekWall(Number($("#scrubber").value) * 1000));

// ---------------------------------------------------------------- export

// A range of one camera, chosen by shift-dragging on its timeline or with in/out at the playing
// position, exported by the master as one MP4 with a signed manifest (docs/export.md). The job
// runs on the master; the page polls its progress and then fetches both files with the token
// (a plain link cannot send it). Exporting needs an operator's token; a viewer is told so.
function wallAt(bar, clientX) {
  const rect = bar.getBoundingClientRect();
  const from = Number(bar.dataset.from), to = Number(bar.dataset.to);
  const x = Math.max(0, Math.min(1, (clientX - rect.left) / rect.width));
  return Math.round(from + x * (to - from));
}

function startSelect(camera, bar, ev) {
  ev.preventDefault();
  const anchor = wallAt(bar, ev.clientX);
  const move = (e) => setSelection(camera, anchor, wallAt(bar, e.clientX));
  const up = (e) => {
    move(e);
    window.removeEventListener("mousemove", move);
    window.removeEventListener("mouseup", up);
  };
  window.addEventListener("mousemove", move);
  window.addEventListener("mouseup", up);
}

function setSelection(camera, a, b) {
  state.selection = { camera, from: Math.min(a, b), to: Math.max(a, b) };
  drawSelection();
}

function drawSelection() {
  document.querySelectorAll(".timeline .selection").forEach((s) => s.remove());
  const sel = state.selection;
  const ok = sel && sel.to - sel.from >= 1e6;
  $("#export").disabled = !ok || state.exporting;
  $("#export-range").textContent = sel
    ? `Export ${sel.camera} ${fmt(sel.from)} – ${fmt(sel.to)} (${((sel.to - sel.from) / 1e6).toFixed(1)} s)`
      + (ok ? "" : ": choose at least a second")
    : "Export: shift-drag on a timeline, or mark in and out while playing.";
  if (!sel) return;
  const bar = document.querySelector(`.timeline[data-camera="${sel.camera}"]`);
  if (!bar) return;
  const from = Number(bar.dataset.from), to = Number(bar.dataset.to);
  const pct = (w) => Math.max(0, Math.min(100, ((w - from) / (to - from)) * 100));
  const box = el("div", { class: "selection", "data-from": sel.from, "data-to": sel.to });
  box.style.left = `${pct(sel.from)}%`;
  box.style.width = `${Math.max(0.3, pct(sel.to) - pct(sel.from))}%`;
  bar.append(box);
}

function mark(which) {
  const wall = playingWallUs();
  const range = state.playback;
  if (wall === null || !range) {
    $("#export-status").textContent = "play a recording first, then mark in and out";
    return;
  }
  const sel = state.selection && state.selection.camera === range.camera ? state.selection
    : { camera: range.camera, from: wall, to: wall };
  if (which === "in") setSelection(range.camera, wall, Math.max(wall, sel.to));
  else setSelection(range.camera, Math.min(wall, sel.from), wall);
}

async function runExport() {
  const sel = state.selection;
  if (!sel || state.exporting) return;
  state.exporting = true;
  drawSelection();
  const bar = $("#export-progress"), status = $("#export-status");
  $("#export-links").replaceChildren();
  bar.hidden = false;
  bar.value = 0;
  status.textContent = "starting";
  status.dataset.state = "running";
  try {
    let job = await request(`/api/v1/site/cameras/${sel.camera}/exports?from=${sel.from}&to=${sel.to}`,
      { method: "POST" });
    $("#export-progress").dataset.job = job.job_id;
    while (job.state === "running") {
      await new Promise((r) => setTimeout(r, 500));
      job = await request(`/api/v1/site/exports/${job.job_id}`);
      bar.max = Math.max(1, job.pieces_total);
      bar.value = job.pieces_done;
      status.textContent = `${job.pieces_done}/${job.pieces_total} pieces, `
        + `${job.frames_done} frames, ${(job.bytes_done / 1e6).toFixed(1)} MB`;
    }
    if (job.state !== "done") throw new Error(job.detail || job.error || job.state);
    const base = `/api/v1/site/exports/${job.job_id}`;
    const [clip, manifest] = await Promise.all([
      request(`${base}/clip.mp4`, { as: "blob" }), request(`${base}/manifest.json`, { as: "blob" })]);
    const name = `${sel.camera}-${job.job_id.slice(0, 8)}`;
    $("#export-links").replaceChildren(
      el("a", { href: URL.createObjectURL(clip), download: `${name}.mp4`, class: "clip" }, "clip.mp4"),
      el("a", { href: URL.createObjectURL(manifest), download: `${name}.manifest.json`,
        class: "manifest" }, "manifest.json"));
    bar.value = bar.max;
    status.textContent = `done: ${job.frames_done} frames, ${(clip.size / 1e6).toFixed(1)} MB `
      + "(check it with `hotspare export verify`)";
    status.dataset.state = "done";
  } catch (err) {
    if (err instanceof AuthError) throw err;
    status.dataset.state = "failed";
    status.textContent = err.status === 403
      ? "exporting needs an operator's token (log in with one)"
      : `export failed: ${err.message}`;
  } finally {
    state.exporting = false;
    drawSelection();
  }
}

$("#mark-in").addEventListener("click", () => mark("in"));
$("#mark-out").addEventListener("click", () => mark("out"));
$("#export").addEventListener("click", () => runExport().catch((err) => {
  if (err instanceof AuthError) logout(err.message);
}));

// ---------------------------------------------------------------- live grid

// Several cameras live at once. The layout and which camera sits in which tile are the operator's
// choice, kept in localStorage (no secret in it). Each tile plays its camera's site live URL,
// which redirects to the node serving the camera now; when that node stops answering (a
// takeover), the tile asks the site again after a short wait instead of showing a dead picture.
function gridPrefs() {
  try {
    const p = JSON.parse(localStorage.getItem(GRID_KEY) || "null");
    if (p && GRID_LAYOUTS.includes(p.layout) && Array.isArray(p.cameras)) return p;
  } catch (_err) { /* a damaged preference is replaced by the default */ }
  return { layout: 4, cameras: [] };
}

function saveGridPrefs(prefs) {
  localStorage.setItem(GRID_KEY, JSON.stringify(prefs));
}

function stopTile(tile) {
  clearTimeout(tile.retry);
  if (tile.hls) { tile.hls.destroy(); tile.hls = null; }
  tile.video.removeAttribute("src");
}

function tileStatus(tile, text, bad = false) {
  tile.status.textContent = text;
  tile.status.classList.toggle("bad", bad);
  tile.box.dataset.status = text.split(" ")[0];
}

async function startTile(tile) {
  stopTile(tile);
  if (!tile.camera) { tileStatus(tile, "empty"); return; }
  const Hls = await loadHls();
  const url = withToken(`/api/v1/site/cameras/${tile.camera}/live.m3u8`);
  tileStatus(tile, "connecting");
  if (!Hls) { tile.video.src = url; tile.video.play().catch(() => {}); return; }
  const hls = new Hls({ maxBufferLength: 6, liveSyncDurationCount: 2,
    playlistLoadPolicy: QUICK_GIVE_UP, fragLoadPolicy: QUICK_GIVE_UP,
    xhrSetup: reloadLiveViaMaster(url) });
  tile.hls = hls;
  hls.loadSource(url);
  hls.attachMedia(tile.video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => tile.video.play().catch(() => {}));
  hls.on(Hls.Events.FRAG_BUFFERED, () => tileStatus(tile, "live"));
  hls.on(Hls.Events.ERROR, (_e, data) => {
    if (!data.fatal || tile.hls !== hls) return;
    tileStatus(tile, `reconnecting (${data.details})`, true);
    hls.destroy();
    tile.hls = null;
    tile.retry = setTimeout(() => startTile(tile), TILE_RETRY_MS);
  });
}

function drawGrid() {
  const prefs = gridPrefs();
  const ids = state.cameras.map((c) => c.id);
  // Tiles never chosen get the cameras in order; a tile the operator emptied stays empty.
  const chosen = Array.from({ length: prefs.layout }, (_v, i) =>
    prefs.cameras[i] === undefined ? (ids[i] ?? "") : prefs.cameras[i]);
  const key = `${prefs.layout}|${chosen.join()}|${ids.join()}`;
  const grid = $("#grid");
  if (grid.dataset.key === key) return;
  grid.dataset.key = key;
  $("#grid-layout").value = String(prefs.layout);
  for (const tile of state.tiles) stopTile(tile);
  grid.style.setProperty("--cols", String(Math.sqrt(prefs.layout)));
  state.tiles = chosen.map((camera, i) => {
    const select = el("select", { "aria-label": `camera in tile ${i + 1}` },
      el("option", { value: "" }, "—"),
      ...ids.map((id) => el("option", { value: id, selected: id === camera }, id)));
    const video = el("video", { muted: true, autoplay: true, playsInline: true });
    const status = el("span", { class: "status" });
    const tile = { camera: ids.includes(camera) ? camera : "", video, status, hls: null, retry: 0 };
    select.value = tile.camera;
    select.addEventListener("change", () => {
      const p = gridPrefs();
      p.cameras = chosen.slice();
      p.cameras[i] = select.value;
      saveGridPrefs(p);
      drawGrid();
    });
    const box = el("div", { class: "tile", "data-tile": i, "data-camera": tile.camera },
      el("div", { class: "bar" }, select, status), video);
    tile.box = box;
    return tile;
  });
  grid.replaceChildren(...state.tiles.map((t) => t.box));
  for (const tile of state.tiles) startTile(tile);
}

$("#grid-layout").addEventListener("change", () => {
  const p = gridPrefs();
  p.layout = Number($("#grid-layout").value);
  saveGridPrefs(p);
  drawGrid();
});

function playLive(camera) {
  play(withToken(`/api/v1/site/cameras/${camera}/live.m3u8`), `${camera} live`);
}

// ---------------------------------------------------------------- events

function drawEvents(data) {
  if (data) {
    state.events.push(...data.events);
    state.events.splice(0, Math.max(0, state.events.length - 200));
    if (data.last_wall_us) state.lastEvent = data.last_wall_us;
  }
  // Newest first; drawn again whole (at most 200), so the time format can change.
  $("#events").replaceChildren(...state.events.slice().reverse().map((e) =>
    el("li", { "data-kind": e.kind, "data-wall-us": e.wall_us },
      `${fmt(e.wall_us)} ${e.node} ${e.kind}${e.server ? " " + e.server : ""}: ${e.message}`)));
}

// ---------------------------------------------------------------- loops and login

async function tick(n) {
  saveEndpoints(await api("/api/v1/site/endpoints"));
  drawServers(await api("/api/v1/site/servers"));
  const after = state.lastEvent ? `?after=${state.lastEvent}` : "?limit=50";
  drawEvents(await api(`/api/v1/site/events${after}`));
  if (n % 5 === 0 || !state.cameras.length) {
    state.cameras = (await api("/api/v1/site/cameras")).cameras;
    drawCameras();
    drawGrid();
  }
  if (n % 2 === 0) await refreshTimelines();
  drawCameraLabels();
}

async function run() {
  if (state.polling) return;
  state.polling = true;
  for (let n = 0; state.polling; n++) {
    try {
      await tick(n);
    } catch (err) {
      if (err instanceof AuthError) { logout(err.message); return; }
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function showApp(on) {
  $("#login").hidden = on;
  $("#app").hidden = !on;
  $("#logout").hidden = !on;
}

function logout(message = "") {
  state.polling = false;
  for (const tile of state.tiles) stopTile(tile);
  state.tiles = [];
  $("#grid").replaceChildren();
  delete $("#grid").dataset.key;
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  $("#login-error").textContent = message;
  showApp(false);
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  state.token = $("#token").value.trim();
  try {
    saveEndpoints(await call("/api/v1/site/endpoints"));
  } catch (err) {
    $("#login-error").textContent = err instanceof AuthError ? "wrong token" : err.message;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $("#login-error").textContent = "";
  showApp(true);
  run();
});
$("#logout").addEventListener("click", () => logout());
$("#utc").checked = utc();
$("#utc").addEventListener("change", () => {
  localStorage.setItem(UTC_KEY, $("#utc").checked ? "1" : "0");
  drawEvents(null);
  for (const [camera, tl] of state.timelines) drawTimeline(camera, tl);
});
const RANGE_KEY = "hotspare-range";  // localStorage: how much of the past the timelines show
if ([...$("#range").options].some((o) => o.value === localStorage.getItem(RANGE_KEY))) {
  $("#range").value = localStorage.getItem(RANGE_KEY);
}
$("#range").addEventListener("change", () => {
  localStorage.setItem(RANGE_KEY, $("#range").value);
  refreshTimelines().catch(() => {});
});

if (state.token) { showApp(true); run(); }
