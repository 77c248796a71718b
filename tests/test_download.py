"""`cnnatlas.download`: every path of a download, for real, against a server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import socket

import pytest
from mirror import Mirror

from cnnatlas.download import DownloadError, data_dir, download, resolve_url

URL = "https://example.org/files/blob-1234.bin"
DATA = os.urandom(3 << 20)  # several chunks
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def mirror(monkeypatch):
    with Mirror() as m:
        monkeypatch.setenv("CNNATLAS_MIRROR", m.url)
        yield m


def test_mirror_rewrites_scheme_and_host(monkeypatch):
    monkeypatch.setenv("CNNATLAS_MIRROR", "http://127.0.0.1:9/m/")
    assert resolve_url(URL) == "http://127.0.0.1:9/m/example.org/files/blob-1234.bin"
    monkeypatch.delenv("CNNATLAS_MIRROR")
    assert resolve_url(URL) == URL


def test_data_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNATLAS_DATA", str(tmp_path / "d"))
    assert data_dir() == tmp_path / "d"
    monkeypatch.delenv("CNNATLAS_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_dir() == tmp_path / "cache" / "cnnatlas"


def test_download_verifies_and_caches(mirror, tmp_path):
    mirror.put(URL, DATA)
    dest = tmp_path / "cache" / "blob-1234.bin"
    assert download(URL, dest, sha256=SHA) == dest
    assert dest.read_bytes() == DATA
    assert download(URL, dest, sha256=SHA[:8]) == dest  # cached: no second request
    assert mirror.requests == ["example.org/files/blob-1234.bin"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["blob-1234.bin", "blob-1234.bin.lock"]


def test_md5_checksum(mirror, tmp_path):
    mirror.put(URL, DATA)
    download(URL, tmp_path / "f", md5=hashlib.md5(DATA).hexdigest())
    with pytest.raises(DownloadError, match="md5"):
        download(URL, tmp_path / "g", md5="0" * 32)


def test_checksum_mismatch_keeps_nothing(mirror, tmp_path):
    mirror.put(URL, DATA[:-1] + b"x")
    dest = tmp_path / "blob-1234.bin"
    with pytest.raises(DownloadError, match=f"published one is {SHA}.*not kept"):
        download(URL, dest, sha256=SHA)
    assert [p.name for p in tmp_path.iterdir()] == ["blob-1234.bin.lock"]


def test_corrupt_cached_file_is_fetched_again(mirror, tmp_path):
    mirror.put(URL, DATA)
    dest = tmp_path / "blob-1234.bin"
    dest.write_bytes(b"damaged")
    download(URL, dest, sha256=SHA)
    assert dest.read_bytes() == DATA


def test_cut_off_download_keeps_no_partial_file_and_retries(mirror, tmp_path):
    mirror.put(URL, DATA)
    mirror.cut_off(URL)
    dest = tmp_path / "blob-1234.bin"
    with pytest.raises(DownloadError, match="cut off"):
        download(URL, dest, sha256=SHA)
    assert [p.name for p in tmp_path.iterdir()] == ["blob-1234.bin.lock"]
    mirror.cut.clear()
    download(URL, dest, sha256=SHA)
    assert dest.read_bytes() == DATA
    assert len(mirror.requests) == 2


def test_unreachable_server_names_file_url_and_folder(monkeypatch, tmp_path):
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CNNATLAS_MIRROR", f"http://127.0.0.1:{port}")
    dest = tmp_path / "w" / "blob-1234.bin"
    with pytest.raises(DownloadError) as err:
        download(URL, dest, sha256=SHA, what="test weights")
    message = str(err.value)
    assert URL in message and "blob-1234.bin" in message and str(dest.parent) in message
    assert "\n" not in message
    assert not dest.exists()


def test_missing_file_on_server(mirror, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download(URL, tmp_path / "blob-1234.bin")
    assert not (tmp_path / "blob-1234.bin").exists()


def test_unwritable_cache_folder(mirror, tmp_path):
    mirror.put(URL, DATA)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DownloadError, match="cannot write"):
        download(URL, tmp_path / "file" / "sub" / "blob-1234.bin")


def _download_in_child(url, dest, sha, mirror_url, queue):
    os.environ["CNNATLAS_MIRROR"] = mirror_url
    try:
        download(url, dest, sha256=sha)
        queue.put("ok")
    except Exception as err:  # reported to the parent
        queue.put(repr(err))


def test_two_processes_download_one_intact_file(mirror, tmp_path):
    mirror.put(URL, DATA)
    dest = tmp_path / "blob-1234.bin"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_download_in_child, args=(URL, str(dest), SHA, mirror.url, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [queue.get(timeout=5) for _ in procs] == ["ok", "ok"]
    assert dest.read_bytes() == DATA
    assert mirror.requests == ["example.org/files/blob-1234.bin"]  # the second found the first's file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob-1234.bin", "blob-1234.bin.lock"]
