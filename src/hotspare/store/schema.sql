-- hotspare segment store index, schema version 1.
--
-- Units, used everywhere below:
--   *_wall_us   microseconds since 1970-01-01T00:00:00Z (UTC), a signed 64-bit integer.
--   *_90k       ticks of a 90 kHz clock (the camera's RTP video clock), media time of one run.
--   *_at_us     like *_wall_us, but always the storing server's own clock (bookkeeping, not video).
-- Ids (camera_id, run_id, recorded_by, recorded_as) match hotspare.config.models.ID_PATTERN, so they
-- are safe as path components. See docs/store.md and docs/time.md.

-- Exactly one row: what this database is.
create table if not exists meta (
  id integer primary key check (id = 1),
  -- Schema version; opening refuses a database newer than the code.
  schema_version integer not null,
  -- The server that created the store (hotspare.store opens it under its own name and only warns
  -- when the name changed, so a renamed server keeps its video).
  created_by text not null,
  created_at_us integer not null
);

-- One camera connection (one RTSP session) as recorded by one server. Media time 0 of the run is
-- its first frame; every segment of the run counts media time from there.
create table if not exists run (
  -- Globally unique (random part), so runs imported from another server never collide with ours.
  run_id text primary key,
  camera_id text not null,
  -- The machine whose recorder wrote the run (a spare's own name when it stood in).
  recorded_by text not null,
  -- The identity (recording server) the camera was recorded for; = recorded_by unless a spare
  -- recorded under an assumed identity.
  recorded_as text not null,
  -- Wall time of media time 0 of this run. May be refined once (local clock → camera RTCP clock);
  -- segment.start_wall_us/end_wall_us of the run are recomputed in the same transaction.
  anchor_wall_us integer not null,
  -- 'camera' when the anchor comes from the camera's RTCP sender reports (lines up across servers
  -- to the frame), 'local' when it is the recording server's clock (may be off by its clock error).
  wall_source text not null check (wall_source in ('camera', 'local')),
  -- Wall time of the run's first frame; invariant: = anchor_wall_us.
  started_wall_us integer not null,
  -- Wall time of the end of the run's last frame; null while the run is open.
  -- Invariant: null or >= started_wall_us.
  ended_wall_us integer check (ended_wall_us is null or ended_wall_us >= started_wall_us),
  -- Why the run ended: free text from the recorder ('stopped', 'camera-eof', ...), 'crash' when
  -- reconcile closed a run left open, 'imported' for runs that arrived by re-insert. Null while open.
  end_reason text,
  -- Server that sent this run by re-insert; null for runs recorded into this store.
  imported_from text,
  created_at_us integer not null
);

create index if not exists run_camera_start on run (camera_id, started_wall_us);

-- One segment: a standalone fragmented MP4 file starting on a keyframe, plus this row.
-- Invariant: a row exists only after its file was fsynced with its directory (write order).
create table if not exists segment (
  -- Never reused (autoincrement), so an id a client holds can't come to mean other video.
  segment_id integer primary key autoincrement,
  -- Equal to the run's camera_id (denormalised for the (camera_id, start_wall_us) index).
  camera_id text not null,
  run_id text not null references run (run_id),
  -- 0, 1, 2, ... within the run, in media-time order; gaps allowed (a segment lost to a crash).
  seq integer not null check (seq >= 0),
  -- Equal to the run's recorded_by / recorded_as.
  recorded_by text not null,
  recorded_as text not null,
  -- Wall time of the segment's first frame; invariant: = run.anchor_wall_us + start_media_90k µs.
  start_wall_us integer not null,
  -- Invariant: = start_wall_us + duration_90k µs (rounded down); kept for range queries.
  end_wall_us integer not null,
  -- Media time of the first frame (the file's first tfdt, converted to 90 kHz). >= 0.
  start_media_90k integer not null check (start_media_90k >= 0),
  -- Sum of the frames' durations, 90 kHz. > 0.
  duration_90k integer not null check (duration_90k > 0),
  -- Frames (samples) in the file's complete fragments. > 0.
  frame_count integer not null check (frame_count > 0),
  -- Leading frames that duplicate video already in this store (import overlap rule): kept in the
  -- file because later P-frames need them to decode, not counted as recorded time.
  head_skip_frames integer not null default 0 check (head_skip_frames >= 0),
  -- Duration of those frames, 90 kHz.
  head_skip_90k integer not null default 0 check (head_skip_90k >= 0),
  -- Trailing frames that duplicate video already stored; likewise not recorded time.
  -- Invariant: head_skip_frames + tail_skip_frames < frame_count (a fully covered segment is a
  -- duplicate and never stored).
  tail_skip_frames integer not null default 0 check (tail_skip_frames >= 0),
  tail_skip_90k integer not null default 0 check (tail_skip_90k >= 0),
  -- File size in bytes; invariant: the file at relpath has exactly this size.
  bytes integer not null check (bytes > 0),
  -- Bytes of the ftyp+moov init at the start of the file. 0 < init_bytes < bytes.
  init_bytes integer not null check (init_bytes > 0 and init_bytes < bytes),
  -- Lower-case hex SHA-256 of the whole file (64 characters).
  sha256 text not null check (length(sha256) = 64),
  -- Path of the file relative to the store root, '/'-separated:
  -- segments/<camera_id>/<run_id>/<seq:06d>.mp4.
  relpath text not null unique,
  -- 1 while this segment still has to be copied to another server (a spare's buffered video):
  -- retention never deletes it.
  reinsert_pending integer not null default 0 check (reinsert_pending in (0, 1)),
  -- Server that sent this segment by re-insert; null when recorded into this store.
  imported_from text,
  -- When this row was inserted, storing server's clock.
  committed_at_us integer not null,
  -- Null when the file is as indexed; otherwise what reconcile found ('missing', 'size ...').
  -- Such rows are kept (never silently dropped) but left out of listings and timelines.
  file_problem text,
  unique (run_id, seq),
  check (head_skip_frames + tail_skip_frames < frame_count),
  check (end_wall_us >= start_wall_us)
);

create index if not exists segment_camera_start on segment (camera_id, start_wall_us);
create index if not exists segment_start on segment (start_wall_us);
create index if not exists segment_sha256 on segment (sha256);

-- Files whose rows were deleted (retention) but which may still exist on disk. The row goes first,
-- in the same transaction as this entry; the file is unlinked after; then this entry goes. A crash
-- in between leaves an entry here, and reconcile finishes the unlink instead of salvaging the file.
create table if not exists garbage (
  relpath text primary key,
  camera_id text not null,
  deleted_at_us integer not null
);
