"""`PUT /cameras/{camera}/segments/import`: re-insert one segment recorded elsewhere (a spare).

Protocol: the segment's metadata travels as one JSON header, the file as the raw request body.
A raw body streams from disk on the client and to disk here with no multipart parsing and no
buffering, and the metadata is known before the first body byte, so a bad upload is refused early.
The order is fixed: validate metadata → stream to a temp file in the store's folder (hashed as it
arrives, fsynced once) → check length and SHA-256 → hand the file, its hash and "synced" to the
store, which parses the MP4, checks it against the metadata and indexes it in one step — without
hashing or syncing the same bytes a second time. Every
refusal removes the temp file, so nothing is ever half-written (docs/design.md, "Invariants").

On a site's recording server an `ImportGate` (`hotspare.api.fencing`) decides first, before the
body, that the authenticated node holds the claim on this server, and the store asks it again
inside the index transaction; the segment's `recorded_by` must then be that node and its
`recorded_as` this server.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from hotspare.api.auth import PRINCIPAL_KEY
from hotspare.api.context import Ctx, NodeContext
from hotspare.api.fencing import Admission, ImportGate, ImportRefused
from hotspare.api.params import CameraParam
from hotspare.api.problems import CAMERA_RESPONSES, COMMON_RESPONSES, ApiError
from hotspare.api.upload import receive_to_file
from hotspare.sitestate.layout import FENCING_HEADER, REPAIR_HEADER
from hotspare.store import importer
from hotspare.store.segment_store import StoreError
from hotspare.wire import META_HEADER, ImportMetaIn, ImportOut, Problem, SegmentOut

log = logging.getLogger("hotspare.api.import")

router = APIRouter(tags=["import"], responses=COMMON_RESPONSES)


def _meta_from_header(raw: str) -> ImportMetaIn:
    try:
        meta = ImportMetaIn.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'metadata'}: {e['msg']}" for e in exc.errors()
        )
        raise ApiError(
            400,
            "bad_metadata",
            f"the {META_HEADER} header is not valid segment metadata ({problems}); "
            "send the JSON object described in docs/api.md",
        ) from None
    if meta.init_bytes >= meta.bytes:
        raise ApiError(
            400,
            "bad_metadata",
            f"init_bytes ({meta.init_bytes}) must be smaller than bytes ({meta.bytes})",
        )
    return meta


async def _admit(request: Request) -> Admission | None:
    """Site mode: refuse an upload its sender may not make, before the body is read and before
    its metadata is even looked at (a dependency runs before the route's own parameters are
    validated), so a node without the claim learns just that."""
    gate = _gate(request)
    if gate is None:
        return None  # a standalone node: no claims, any node credential may import
    values = request.headers.getlist(FENCING_HEADER)
    if len(values) > 1:
        raise ApiError(400, "bad_fencing", f"{FENCING_HEADER} is sent {len(values)} times; "
                       "send it once")
    repair = request.headers.getlist(REPAIR_HEADER)
    if repair and (repair != ["gap"] or values):
        raise ApiError(400, "bad_repair", f"{REPAIR_HEADER} must be sent once, as `gap`, and "
                       f"never with {FENCING_HEADER} (a gap repair holds no claim)")
    try:
        admission = await run_in_threadpool(gate.admit, request.scope.get(PRINCIPAL_KEY),
                                            values[0] if values else None, bool(repair))
    except ImportRefused as exc:
        raise ApiError(exc.status, exc.error, exc.detail, exc.headers) from None
    return admission


def _gate(request: Request) -> ImportGate | None:
    gate = getattr(request.app.state, "import_gate", None)
    return gate if isinstance(gate, ImportGate) else None


@router.put(
    "/cameras/{camera}/segments/import",
    response_model=ImportOut,
    responses={
        **CAMERA_RESPONSES,
        200: {"model": ImportOut, "description": "stored, or already held (`duplicate`)"},
        400: {
            "model": Problem,
            "description": "bad metadata, truncated body or hash mismatch, or a bad "
            "`X-Hotspare-Repair` (`bad_repair`); nothing was written",
        },
        403: {
            "model": Problem,
            "description": "site mode: the uploader is not the node holding the claim on this "
            "server (`node_identity_required`, `not_claim_holder`), a gap repair comes from a "
            "spare that pre-buffers none of its cameras (`not_standby_holder`), or the metadata "
            "names another recorder (`recorded_by_mismatch`); nothing was read or written",
        },
        409: {
            "model": Problem,
            "description": "conflicts with a different segment already stored, or site mode: "
            "the fencing token is stale (`stale_fencing_token`) or missing while a claim exists "
            "(`fencing_required`)",
        },
        503: {
            "model": Problem,
            "description": "`fencing_unavailable`: etcd cannot be read to check the claim; "
            "retry after Retry-After",
        },
        413: {"model": Problem, "description": "the body exceeds the node's import limit"},
        507: {
            "model": Problem,
            "description": "`insufficient_storage`: the segment would leave less than the "
            "node's retention reserve free and retention cannot make room; nothing was read or "
            "written: retry later",
        },
        422: {
            "model": Problem,
            "description": "the file is not a valid segment or does not "
            "match its metadata; nothing was written",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the segment file, raw (streamed)",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
    summary="Import (re-insert) one segment recorded by another node",
)
async def import_segment(
    ctx: Ctx,
    request: Request,
    camera: CameraParam,
    admission: Annotated[Admission | None, Depends(_admit)],
    meta_header: Annotated[
        str,
        Header(
            alias=META_HEADER,
            min_length=2,
            max_length=8192,
            description="segment metadata as one JSON object; see the `ImportMetaIn` schema",
        ),
    ],
) -> JSONResponse:
    camera = ctx.check_camera(camera, must_be_configured=True)
    meta = _meta_from_header(meta_header)
    _check_recorder(request, admission, meta)
    if meta.bytes > ctx.max_import_bytes:
        raise ApiError(
            413,
            "too_large",
            f"the segment is {meta.bytes} bytes; this node accepts at most {ctx.max_import_bytes}",
        )
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) != meta.bytes):
        raise ApiError(
            400,
            "length_mismatch",
            f"Content-Length {length} differs from the declared {meta.bytes} bytes; "
            "the metadata does not describe this file",
        )
    # Before the body: a full disk must refuse the upload, not fail half-way through writing it.
    if not await run_in_threadpool(ctx.store.ensure_room, meta.bytes):
        raise ApiError(
            507,
            "insufficient_storage",
            f"{ctx.server_name}'s store has {ctx.store.disk_free()} bytes free, too little for "
            f"this {meta.bytes}-byte segment above its reserve of {ctx.store.min_free_bytes} "
            "bytes, and retention cannot free more (only video still owed elsewhere is left, or "
            "the disk is filled by other files); nothing was written: retry later, and free or "
            "add disk space on this node",
        )
    target = ctx.store.incoming_path()
    received = await receive_to_file(
        request.stream(), target, declared_bytes=meta.bytes, max_bytes=ctx.max_import_bytes
    )
    try:
        if received.sha256 != meta.sha256:
            raise ApiError(
                400,
                "hash_mismatch",
                f"the body's SHA-256 is {received.sha256}, the metadata says "
                f"{meta.sha256}; the file changed or was damaged in transit: re-read "
                "it on the sending node and retry",
            )
        # The body was hashed while it streamed and fsynced once; the store only parses it.
        done = importer.Received(sha256=received.sha256, synced=True)
        result = await run_in_threadpool(_import, ctx, meta.to_store(camera), received.path,
                                         done, admission)
    finally:
        received.path.unlink(missing_ok=True)
    return JSONResponse(result.model_dump())


# The store's refusal statuses, as codes a client can branch on and the operator's next step.
_REFUSALS = {
    400: ("bad_metadata", "fix the metadata the sender derives from its index"),
    404: ("unknown_camera", "check the camera is configured on this node"),
    409: (
        "conflict",
        "this node holds different content under the same ids; "
        "compare both nodes' stores before retrying",
    ),
    422: (
        "segment_mismatch",
        "the file does not match its metadata: check the sender's copy "
        "(its reconcile may have trimmed it) and retry",
    ),
}


def _check_recorder(request: Request, admission: Admission | None, meta: ImportMetaIn) -> None:
    """The video's recorder is the authenticated node, never a name the client chose."""
    gate = _gate(request)
    if admission is None or gate is None:
        return
    if meta.recorded_by != admission.node or meta.recorded_as != gate.server:
        log.warning("import into %s refused: %s uploaded a segment it says was recorded by %r "
                    "as %r", gate.server, admission.node, meta.recorded_by, meta.recorded_as)
        raise ApiError(
            403, "recorded_by_mismatch",
            f"{admission.node!r} may only re-insert video it recorded itself as "
            f"{gate.server!r}; the metadata says recorded_by={meta.recorded_by!r}, "
            f"recorded_as={meta.recorded_as!r}; nothing was read or written")


def _import(ctx: NodeContext, meta: importer.ImportMeta, path: Path,
            received: importer.Received, admission: Admission | None = None) -> ImportOut:
    configured = ctx.known_cameras()
    try:
        result = ctx.store.import_segment(
            meta, path, known_camera=configured.__contains__, received=received,
            guard=None if admission is None else admission.recheck)
    except ImportRefused as exc:
        raise ApiError(exc.status, exc.error, f"{exc.detail}; nothing was written",
                       exc.headers) from None
    except importer.ImportRejected as exc:
        code, advice = _REFUSALS.get(exc.status, ("import_refused", "see the node's log"))
        raise ApiError(exc.status, code, f"{exc.reason}; nothing was written. {advice}") from None
    except StoreError as exc:
        raise ApiError(422, "segment_mismatch", f"{exc}; nothing was written") from None
    return ImportOut(
        status=result.status,
        segment=SegmentOut.of(result.segment) if result.segment is not None else None,
        covered_by=list(result.covered_by),
        message=result.message,
    )
