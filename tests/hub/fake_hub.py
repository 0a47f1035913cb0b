"""A local stand-in for the Hub's HTTP API: the dataset-repo calls huggingface_hub makes.

Speaks: repo create, repo info (with `blobs` file metadata), tree listing (with `expand`
last commits), paths-info, commit listing, preupload, the LFS batch API with basic transfer
(upload + verify pointing back here), NDJSON commits, and resolve (HEAD/GET with Range) for
hf_hub_download and HfFileSystem, which is what `datasets.load_dataset(repo, config)` reads
through. State is in memory. Failures can be injected and the server can be
"killed" (connections dropped) and revived on the same port. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import yaml

# The token the fake accepts. Here, not in conftest.py: `from conftest import` gets whichever
# conftest pytest imported last (`pytest tests/hub tests/executors` got the executors' one).
TOKEN = "hf_fAkEtOkEn1234567890secret"

LFS_SUFFIXES = (".parquet", ".json", ".jsonl", ".arrow")
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.json filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def blob_oid(data: bytes, lfs: bool) -> str:
    """What the Hub reports as a file's content hash: sha256 for LFS files, the git blob id otherwise."""
    return hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)


@dataclass(frozen=True)
class Commit:
    sha: str
    title: str
    date: str  # ISO 8601 in UTC, as the Hub writes it
    parent: str | None


@dataclass
class Repo:
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    trees: dict[str, dict[str, tuple[bytes, bool]]] = field(default_factory=dict)  # sha -> path -> (data, lfs)
    history: dict[str, Commit] = field(default_factory=dict)  # sha -> its commit

    def last_commit(self, sha: str, path: str) -> dict:
        """The newest commit, from `sha` back, that changed `path` (a file, or anything under a folder)."""

        def content(files: dict[str, tuple[bytes, bool]]) -> list:
            return sorted((p, v) for p, v in files.items() if p == path or p.startswith(path + "/"))

        here = self.history[sha]
        mine = content(self.trees[sha])
        while here.parent is not None and content(self.trees[here.parent]) == mine:
            here = self.history[here.parent]
        return {"id": here.sha, "title": here.title, "date": here.date}


@dataclass
class Failure:
    status: int
    times: int
    path_prefix: str
    method: str | None


class FakeHub:
    """The server and its state. `url` is http://127.0.0.1:PORT."""

    def __init__(self, token: str, port: int = 0) -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}  # sha256 -> content
        self.uploads: list[str] = []  # LFS oids received by PUT, in order
        self.commits: list[dict] = []  # every commit: repo, revision, paths
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request answered
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of every ranged download
        self.failures: list[Failure] = []
        self.failed: list[tuple[str, str, int]] = []
        self.dead = False
        self.kill_after_uploads: int | None = None
        self.lock = threading.RLock()
        self._commit_counter = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # -- test controls --------------------------------------------------------------
    def fail_next(self, status: int, times: int = 1, path_prefix: str = "/", method: str | None = None) -> None:
        """Answer the next `times` requests under `path_prefix` with `status`."""
        with self.lock:
            self.failures.append(Failure(status, times, path_prefix, method))

    def kill(self) -> None:
        """Drop every connection from now on, as if the server had died."""
        self.dead = True

    def revive(self) -> None:
        self.dead = False
        self.kill_after_uploads = None

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def files(self, repo: str, revision: str = "main") -> dict[str, bytes]:
        r = self.repos[repo]
        return {p: d for p, (d, _) in r.trees[r.branches[revision]].items()}

    # -- state ----------------------------------------------------------------------
    def _new_commit(self, repo: Repo, files: dict[str, tuple[bytes, bool]], title: str, parent: str | None) -> str:
        self._commit_counter += 1
        sha = hashlib.sha1(f"commit-{self._commit_counter}".encode()).hexdigest()
        repo.trees[sha] = files
        date = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        repo.history[sha] = Commit(sha, title, date, parent)
        return sha

    def create_repo(self, repo_id: str, private: bool) -> bool:
        with self.lock:
            if repo_id in self.repos:
                return False
            repo = Repo(private=private)
            repo.branches["main"] = self._new_commit(
                repo, {".gitattributes": (GITATTRIBUTES, False)}, "initial commit", None
            )
            self.repos[repo_id] = repo
            return True


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        # -- plumbing -------------------------------------------------------------
        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, obj, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, status: int, code: str | None, message: str, head: bool = False) -> None:
            headers = {"X-Error-Message": message}
            if code:
                headers["X-Error-Code"] = code
            body = json.dumps({"error": message}).encode()
            self._send(status, body, {"Content-Type": "application/json", **headers}, head=head)

        def _dispatch(self, method: str) -> None:
            url = urlparse(self.path)
            path = unquote(url.path)
            body = self._body() if method in ("POST", "PUT") else b""
            if hub.dead:
                self.close_connection = True
                self.connection.close()
                return
            with hub.lock:
                for f in hub.failures:
                    if f.times > 0 and path.startswith(f.path_prefix) and (f.method in (None, method)):
                        f.times -= 1
                        hub.failed.append((method, path, f.status))
                        self._error(f.status, None, "injected failure")
                        return
                hub.requests.append((method, path))
            if not path.startswith("/lfs-upload/") and path != "/api/agent-harnesses":
                auth = self.headers.get("Authorization") or ""
                if auth != f"Bearer {hub.token}":
                    self._error(401, None, "Invalid credentials in Authorization header")
                    return
            try:
                self._route(method, path, parse_qs(url.query), body)
            except BrokenPipeError:
                pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        # -- routes ---------------------------------------------------------------
        def _repo_rev(self, rest: str, head: bool = False):
            """Split 'owner/name/<sep>/rev/path' style remainders; answers 404s itself."""
            parts = rest.split("/")
            repo_id = "/".join(parts[:2])
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}.", head=head)
                return None
            return repo_id, repo, parts[2:]

        def _resolve_rev(self, repo: Repo, rev: str, head: bool = False) -> str | None:
            if rev in repo.branches:
                return repo.branches[rev]
            if rev in repo.trees:
                return rev
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head=head)
            return None

        def _route(self, method: str, path: str, query: dict, body: bytes) -> None:
            if method == "POST" and path == "/api/repos/create":
                payload = json.loads(body or b"{}")
                name = payload["name"] if not payload.get("organization") else f"{payload['organization']}/{payload['name']}"
                url = f"{hub.url}/datasets/{name}"
                if hub.create_repo(name, bool(payload.get("private"))):
                    return self._json(200, {"url": url, "name": name})
                return self._json(409, {"error": "You already created this dataset repo", "url": url})
            if method == "GET" and path == "/api/agent-harnesses":
                # huggingface_hub fetches this registry once a day per HF_HOME (agent detection).
                return self._json(200, {"standardEnvVars": [], "harnesses": {}})
            if method == "POST" and path == "/api/validate-yaml":
                return self._validate_yaml(json.loads(body or b"{}").get("content") or "")
            if path.startswith("/api/datasets/"):
                return self._api(method, path[len("/api/datasets/"):], query, body)
            if path.startswith("/datasets/") and ".git/info/lfs/objects/batch" in path:
                repo_id = path[len("/datasets/"):].split(".git/")[0]
                return self._lfs_batch(repo_id, json.loads(body))
            if method == "PUT" and path.startswith("/lfs-upload/"):
                oid = path.rsplit("/", 1)[1]
                if hashlib.sha256(body).hexdigest() != oid:
                    return self._error(400, None, "sha256 mismatch")
                with hub.lock:
                    if hub.dead:  # killed by a concurrent upload while this one was being read
                        self.close_connection = True
                        self.connection.close()
                        return None
                    hub.lfs[oid] = body
                    hub.uploads.append(oid)
                    if hub.kill_after_uploads is not None and len(hub.uploads) >= hub.kill_after_uploads:
                        hub.dead = True
                return self._send(200)
            if method == "POST" and path.startswith("/lfs-verify/"):
                oid = json.loads(body)["oid"]
                return self._json(200 if oid in hub.lfs else 404, {"oid": oid})
            if method in ("GET", "HEAD") and path.startswith("/datasets/") and "/resolve/" in path:
                return self._resolve(method, path[len("/datasets/"):])
            return self._error(404, None, f"no route for {method} {path}")

        def _validate_yaml(self, content: str) -> None:
            import yaml

            if content.startswith("---\n"):
                try:
                    meta = yaml.safe_load(content[4 : content.find("\n---", 4)])
                except yaml.YAMLError as exc:
                    return self._error(400, None, f"Invalid YAML in README.md: {exc}")
                if not isinstance(meta, dict):
                    return self._error(400, None, "README.md metadata must be a mapping")
            return self._json(200, {"warnings": []})

        def _api(self, method: str, rest: str, query: dict, body: bytes) -> None:
            found = self._repo_rev(rest)
            if found is None:
                return None
            repo_id, repo, parts = found
            action = parts[0] if parts else ""
            if method == "GET" and action in ("", "revision"):
                sha = self._resolve_rev(repo, unquote(parts[1]) if action else "main")
                if sha is None:
                    return None
                return self._json(200, _repo_info(repo_id, repo, sha, _flag(query, "blobs")))
            if method == "GET" and action == "tree":
                sha = self._resolve_rev(repo, unquote(parts[1]))
                if sha is None:
                    return None
                prefix = "/".join(parts[2:]).strip("/")
                if prefix and not any(p.startswith(prefix + "/") for p in repo.trees[sha]):
                    return self._error(404, "EntryNotFound", f"{prefix} does not exist on \"{parts[1]}\"")
                entries = _tree_entries(repo.trees[sha], prefix, _flag(query, "recursive"))
                if _flag(query, "expand"):
                    for e in entries:
                        e["lastCommit"] = repo.last_commit(sha, e["path"])
                return self._json(200, entries)
            if method == "POST" and action == "paths-info":
                sha = self._resolve_rev(repo, unquote(parts[1]))
                if sha is None:
                    return None
                return self._paths_info(repo, sha, body)
            if method == "GET" and action == "commits":
                sha = self._resolve_rev(repo, unquote(parts[1]))
                if sha is None:
                    return None
                out = []
                while sha is not None:
                    c = repo.history[sha]
                    out.append({"id": c.sha, "title": c.title, "message": "", "authors": [{"user": "me"}], "date": c.date})
                    sha = c.parent
                return self._json(200, out)
            if method == "POST" and action == "preupload":
                sha = self._resolve_rev(repo, unquote(parts[1]))
                if sha is None:
                    return None
                files = repo.trees[sha]
                out = []
                for f in json.loads(body)["files"]:
                    lfs = f["path"].endswith(LFS_SUFFIXES)
                    entry = {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
                    if f["path"] in files:
                        data, was_lfs = files[f["path"]]
                        entry["oid"] = hashlib.sha256(data).hexdigest() if was_lfs else git_blob_sha1(data)
                    out.append(entry)
                return self._json(200, {"files": out})
            if method == "POST" and action == "commit":
                return self._commit(repo_id, repo, unquote(parts[1]), body)
            return self._error(404, None, f"no route for {method} /api/datasets/{rest}")

        def _paths_info(self, repo: Repo, sha: str, body: bytes) -> None:
            """POST paths-info: huggingface_hub sends a form (paths=...&paths=...&expand=...)."""
            if (self.headers.get("Content-Type") or "").startswith("application/json"):
                payload = json.loads(body or b"{}")
                paths, expand = payload.get("paths") or [], bool(payload.get("expand"))
            else:
                form = parse_qs(body.decode(), keep_blank_values=True)
                paths, expand = form.get("paths") or [], _flag(form, "expand")
            files = repo.trees[sha]
            out = []
            for path in paths:
                path = path.strip("/")
                if path in files:
                    entry = _file_entry(path, *files[path])
                elif any(p.startswith(path + "/") for p in files):
                    entry = _folder_entry(path, files)
                else:
                    continue  # the Hub leaves missing paths out
                if expand:
                    entry["lastCommit"] = repo.last_commit(sha, path)
                out.append(entry)
            return self._json(200, out)

        def _commit(self, repo_id: str, repo: Repo, rev: str, body: bytes) -> None:
            if rev not in repo.branches:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            files = dict(repo.trees[repo.branches[rev]])
            paths = []
            title = "cotgen commit"
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "file":
                    files[value["path"]] = (base64.b64decode(value["content"]), False)
                elif key == "lfsFile":
                    data = hub.lfs.get(value["oid"])
                    if data is None:
                        return self._error(400, None, f"LFS object {value['oid']} was never uploaded")
                    files[value["path"]] = (data, True)
                elif key in ("deletedFile", "deletedFolder"):
                    files = {p: v for p, v in files.items() if p != value["path"] and not p.startswith(value["path"].rstrip("/") + "/")}
                elif key == "header":
                    title = value.get("summary") or title
                else:
                    return self._error(400, None, f"unknown commit operation {key}")
                if key != "header":
                    paths.append(value["path"])
            with hub.lock:
                sha = hub._new_commit(repo, files, title, repo.branches[rev])
                repo.branches[rev] = sha
                hub.commits.append({"repo": repo_id, "revision": rev, "paths": paths, "sha": sha})
            return self._json(200, {"success": True, "commitOid": sha, "commitUrl": f"{hub.url}/datasets/{repo_id}/commit/{sha}"})

        def _lfs_batch(self, repo_id: str, payload: dict) -> None:
            if repo_id not in hub.repos:
                return self._error(404, "RepoNotFound", "Repository not found")
            objects = []
            for obj in payload["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in hub.lfs:
                    entry["actions"] = {
                        "upload": {"href": f"{hub.url}/lfs-upload/{repo_id}/{obj['oid']}", "header": {}},
                        "verify": {"href": f"{hub.url}/lfs-verify/{repo_id}/{obj['oid']}", "header": {}},
                    }
                objects.append(entry)
            return self._json(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

        def _resolve(self, method: str, rest: str) -> None:
            head = method == "HEAD"
            found = self._repo_rev(rest, head=head)
            if found is None:
                return None
            _, repo, parts = found
            sha = self._resolve_rev(repo, unquote(parts[1]), head=head)
            if sha is None:
                return None
            file_path = "/".join(parts[2:])
            if file_path not in repo.trees[sha]:
                return self._error(404, "EntryNotFound", f"{file_path} does not exist", head=head)
            data, lfs = repo.trees[sha][file_path]
            etag = blob_oid(data, lfs)
            headers = {
                "X-Repo-Commit": sha, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream",
                "Accept-Ranges": "bytes",
            }
            if lfs:
                headers["X-Linked-Etag"] = f'"{etag}"'
                headers["X-Linked-Size"] = str(len(data))
            wanted = self.headers.get("Range")
            if wanted is None or head:
                return self._send(200, data, headers, head=head)
            with hub.lock:
                hub.ranges.append((file_path, wanted))
            span = _byte_range(wanted, len(data))
            if span is None:
                headers["Content-Range"] = f"bytes */{len(data)}"
                return self._send(416, b"", headers)
            start, stop = span
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
            self._send(206, data[start:stop], headers)

    return Handler


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[-1].lower() in ("true", "1")


def _lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file the repo's git tree holds instead of an LFS file's content."""
    return b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (
        hashlib.sha256(data).hexdigest().encode(), len(data),
    )


def _file_entry(path: str, data: bytes, lfs: bool) -> dict:
    """A file as the tree and paths-info endpoints describe it: `oid` is the git blob id of what
    git stores (the pointer for an LFS file), `lfs.oid` the content's sha256."""
    stored = _lfs_pointer(data) if lfs else data
    entry = {"type": "file", "oid": git_blob_sha1(stored), "size": len(data), "path": path}
    if lfs:
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(stored)}
    return entry


def _folder_entry(path: str, files: dict[str, tuple[bytes, bool]]) -> dict:
    # A stand-in for the git tree id: it changes exactly when something under the folder does.
    under = sorted((p, blob_oid(*files[p])) for p in files if p.startswith(path + "/"))
    return {"type": "directory", "oid": hashlib.sha1(json.dumps(under).encode()).hexdigest(), "size": 0, "path": path}


def _tree_entries(files: dict[str, tuple[bytes, bool]], prefix: str, recursive: bool) -> list[dict]:
    out: dict[str, dict] = {}
    base = prefix + "/" if prefix else ""
    for path in sorted(files):
        if not path.startswith(base):
            continue
        rel = path[len(base):].split("/")
        folders = rel[:-1] if recursive else rel[:1] if len(rel) > 1 else []
        for i in range(len(folders)):
            folder = base + "/".join(rel[: i + 1])
            if folder not in out:
                out[folder] = _folder_entry(folder, files)
        if len(rel) > 1 and not recursive:
            continue
        out[path] = _file_entry(path, *files[path])
    return [out[k] for k in sorted(out)]


def _repo_info(repo_id: str, repo: Repo, sha: str, blobs: bool) -> dict:
    """GET /api/datasets/{repo}[/revision/{rev}]; `blobs=true` adds size, blob id and LFS info per file."""
    files = repo.trees[sha]
    siblings = []
    for path in sorted(files):
        sibling: dict = {"rfilename": path}
        if blobs:
            entry = _file_entry(path, *files[path])
            sibling.update(size=entry["size"], blobId=entry["oid"])
            if "lfs" in entry:
                lfs = entry["lfs"]
                sibling["lfs"] = {"sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]}
        siblings.append(sibling)
    card: dict = {}
    readme = files.get("README.md")
    if readme is not None and readme[0].startswith(b"---\n"):
        text = readme[0].decode()
        card = yaml.safe_load(text[4 : text.find("\n---", 4)]) or {}
    return {
        "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo_id.split("/")[0],
        "sha": sha, "private": repo.private, "gated": False, "disabled": False,
        "lastModified": repo.history[sha].date, "createdAt": repo.history[next(iter(repo.history))].date,
        "tags": list(card.get("tags") or []), "cardData": card, "siblings": siblings,
    }


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, stop) for one HTTP byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`); None = 416."""
    unit, _, spec = header.partition("=")
    first, _, last = spec.strip().partition("-")
    if unit.strip() != "bytes" or "," in spec:
        return None
    if not first:  # a suffix: the last n bytes
        n = int(last)
        return (max(size - n, 0), size) if n > 0 and size else None
    start = int(first)
    stop = min(int(last) + 1, size) if last else size
    return (start, stop) if start < size and start < stop else None
