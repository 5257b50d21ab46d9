"""`tagmill audit serve`: the review page, served from the standard library's HTTP server.

It binds to the loopback interface unless told otherwise, and answers only requests addressed to it by that
name (a page elsewhere cannot reach it through DNS rebinding). A request names a sample item by its index; the
image comes from the run's own shard that the item's line names, checked against the shards folder when the
server starts, so nothing in a request becomes a path. Every answer is validated and appended to
OUT/audit/judgments.jsonl, on disk before the page hears it was saved.
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import re
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from tagmill.engine import storage
from tagmill.engine.images import jpeg_thumbnail, shard_image
from tagmill.engine.report.judgments import (JUDGMENTS_JSONL, REVIEWER, JudgmentError, JudgmentLog, judgment,
                                             latest_verdicts, read_judgments)
from tagmill.engine.report.review import audit_dir, read_items

REVIEW_PAGE = "review_page.html"
IMAGE_SIZE = 512
CACHED_IMAGES = 64
MAX_BODY = 4096
IMAGE_PATH = re.compile(r"/image/([0-9]{1,9})")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class ReviewSession:
    """One reviewer's pass over a run's sample: the items, their answers so far, and the judgment log."""

    def __init__(self, out: str | Path, reviewer: str):
        self.out = str(out)
        if not REVIEWER.fullmatch(reviewer):
            raise ValueError("--reviewer must be 1 to 64 letters, digits, spaces or . @ + - _")
        self.reviewer = reviewer
        self.items = read_items(self.out)
        if not self.items:
            raise ValueError(f"{audit_dir(self.out)} holds no sample: draw one with `tagmill audit sample {out}`")
        self.shards = {storage.name(path).removesuffix(".tar"): path
                       for path in storage.glob(storage.join(self.out, "shards", "*.tar"))}
        self.log = JudgmentLog(storage.join(audit_dir(self.out), JUDGMENTS_JSONL))
        self.answers = self._answers_so_far()
        self.lock = threading.Lock()
        self.images: OrderedDict[int, bytes | None] = OrderedDict()

    def _answers_so_far(self) -> dict[int, str]:
        latest = latest_verdicts(read_judgments(self.log.path))
        answers = {}
        for index, item in enumerate(self.items):
            verdict = latest.get((item["sample"], item["tag"]), {}).get(self.reviewer)
            if verdict is not None:
                answers[index] = verdict
        return answers

    def state(self) -> dict:
        """What the page needs: the items without their decision or stratum (the review is blind to them)."""
        items = [{"index": index, "sample": item["sample"], "tag": item["tag"], "captions": item.get("captions", [])}
                 for index, item in enumerate(self.items)]
        with self.lock:
            answers = dict(self.answers)
        return {"reviewer": self.reviewer, "run": storage.name(self.out), "items": items, "answers": answers}

    def answer(self, payload: object) -> dict:
        """Validate an answer, append it to the judgment log, and count this reviewer's answered items."""
        index, verdict = self._checked(payload)
        item = self.items[index]
        line = judgment(item["sample"], item["tag"], verdict, self.reviewer)
        with self.lock:
            self.log.append(line)
            self.answers[index] = verdict
            answered = len(self.answers)
        return {"index": index, "verdict": verdict, "answered": answered}

    def _checked(self, payload: object) -> tuple[int, str]:
        if not isinstance(payload, dict) or set(payload) != {"index", "sample", "tag", "verdict"}:
            raise JudgmentError('an answer is {"index", "sample", "tag", "verdict"}')
        index = payload["index"]
        if type(index) is not int or not 0 <= index < len(self.items):
            raise JudgmentError(f"index must be an item's number, 0 to {len(self.items) - 1}")
        item = self.items[index]
        if (payload["sample"], payload["tag"]) != (item["sample"], item["tag"]):
            raise JudgmentError(f"item {index} is not ({payload['sample']!r}, {payload['tag']!r})")
        return index, payload["verdict"]

    def image(self, index: int) -> bytes | None:
        """The item's image as a JPEG from its run's shard, at most IMAGE_SIZE pixels a side."""
        with self.lock:
            if index in self.images:
                self.images.move_to_end(index)
                return self.images[index]
        jpeg = self._read_image(self.items[index])
        with self.lock:
            self.images[index] = jpeg
            while len(self.images) > CACHED_IMAGES:
                self.images.popitem(last=False)
        return jpeg

    def _read_image(self, item: dict) -> bytes | None:
        tar_path = self.shards.get(item.get("shard"))
        image = shard_image(tar_path, item["sample"], item.get("image")) if tar_path is not None else None
        return jpeg_thumbnail(image, IMAGE_SIZE, quality=90) if image is not None else None


class _Handler(BaseHTTPRequestHandler):
    """GET / (the page), GET /api/state, GET /image/N, POST /api/judgments; nothing else."""

    server: "ReviewServer"

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        if not self._host_allowed():
            return
        path = self.path.split("?", 1)[0]
        image = IMAGE_PATH.fullmatch(path)
        if path == "/":
            self._send(HTTPStatus.OK, review_page().encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/api/state":
            self._send_json(HTTPStatus.OK, self.server.session.state())
        elif image:
            self._send_image(int(image.group(1)))
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_allowed():
            return
        if self.path != "/api/judgments":
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        try:
            self._send_json(HTTPStatus.OK, self.server.session.answer(self._json_body()))
        except JudgmentError as err:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(err)})

    def _json_body(self) -> object:
        if self.headers.get_content_type() != "application/json":
            raise JudgmentError("an answer is sent as application/json")
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host')}":
            raise JudgmentError("answers come only from the review page itself")
        length = self.headers.get("Content-Length", "")
        length = int(length) if length.isascii() and length.isdigit() else 0
        if not 0 < length <= MAX_BODY:
            raise JudgmentError(f"an answer is 1 to {MAX_BODY} bytes")
        try:
            return json.loads(self.rfile.read(length))
        except ValueError:
            raise JudgmentError("an answer must be JSON") from None

    def _send_image(self, index: int) -> None:
        session = self.server.session
        jpeg = session.image(index) if index < len(session.items) else None
        if jpeg is None:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "no image for this item"})
        else:
            self._send(HTTPStatus.OK, jpeg, "image/jpeg")

    def _host_allowed(self) -> bool:
        allowed = self.server.allowed_hosts
        if allowed is None or self.headers.get("Host") in allowed:
            return True
        self._send_json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "this server answers only to its own address"})
        return False

    def _send_json(self, status: HTTPStatus, value: dict) -> None:
        self._send(status, json.dumps(value, ensure_ascii=False).encode("utf-8"), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the standard library's signature)
        """Quiet: the terminal shows where to review, not every request."""


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, session: ReviewSession, host: str, port: int):
        super().__init__((host, port), _Handler)
        self.session = session
        self.allowed_hosts = _loopback_names(*self.server_address)

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}/"


def _loopback_names(address: str, port: int) -> set[str] | None:
    """The Host headers a server bound to a loopback address answers to (that address, and `localhost`);
    None (any) when bound to another interface."""
    if not ipaddress.ip_address(address).is_loopback:
        return None
    return {f"{address}:{port}", f"localhost:{port}"}


def default_reviewer() -> str:
    """The account's user name when it is a valid reviewer name."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"
    return name if REVIEWER.fullmatch(name) else "reviewer"


def review_page() -> str:
    return resources.files("tagmill.pipeline").joinpath(REVIEW_PAGE).read_text(encoding="utf-8")


def serve(out: str | Path, reviewer: str | None = None, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the review page until interrupted."""
    session = ReviewSession(out, reviewer or default_reviewer())
    with ReviewServer(session, host, port) as server:
        print(f"{len(session.items)} items, {len(session.answers)} answered by {session.reviewer}; "
              f"review at {server.url} (Ctrl-C stops; every answer is saved as it is given)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
