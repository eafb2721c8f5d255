"""A Hugging Face hub on 127.0.0.1 for the fetch tests: the few endpoints `huggingface_hub.snapshot_download` calls
(repo info, file tree, file resolve), serving repos built in the test, plus a gated and a missing repo answered the
way the hub answers them. Point a process at it with HF_ENDPOINT (read when huggingface_hub is imported)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, Path], gated: tuple[str, ...] = ()):
        self.repos = {
            rid: {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}
            for rid, d in repos.items()
        }
        self.gated = set(gated)
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _send(self, code: int, payload: bytes, headers: dict, body: bool):
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    self.wfile.write(payload)

            def _json(self, obj, body: bool):
                self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"}, body)

            def _answer(self, body: bool):
                path = self.path.split("?")[0]
                hub.requests.append(f"{self.command} {path}")
                m = (
                    re.match(r"^/api/models/(.+?)/revision/([^/]+)$", path)
                    or re.match(r"^/api/models/(.+?)/tree/([^/]+)(?:/.*)?$", path)
                    or re.match(r"^/(.+?)/resolve/([^/]+)/(.+)$", path)
                )
                repo = m.group(1) if m else None
                if repo in hub.gated and not self.headers.get("authorization"):
                    msg = f"Access to model {repo} is restricted. You must have access to it and be authenticated."
                    return self._send(
                        401,
                        json.dumps({"error": msg}).encode(),
                        {"X-Error-Code": "GatedRepo", "X-Error-Message": msg},
                        body,
                    )
                if repo not in hub.repos:
                    return self._send(
                        404,
                        b'{"error": "Repository not found"}',
                        {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                        body,
                    )
                files = hub.repos[repo]
                if "/revision/" in path:
                    return self._json(
                        {
                            "id": repo,
                            "modelId": repo,
                            "sha": SHA,
                            "private": False,
                            "gated": False,
                            "disabled": False,
                            "siblings": [{"rfilename": f} for f in files],
                        },
                        body,
                    )
                if "/tree/" in path:
                    return self._json(
                        [
                            {"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                            for f, b in files.items()
                        ],
                        body,
                    )
                name = m.group(3)
                if name not in files:
                    return self._send(404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"}, body)
                data = files[name]
                self._send(
                    200,
                    data,
                    {
                        "X-Repo-Commit": SHA,
                        "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                        "Content-Type": "application/octet-stream",
                    },
                    body,
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
