"""maskgit.utils.identity: digests follow content (not paths), one stable key scheme, one bounded cache."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch

from maskgit.utils.identity import (
    BoundedCache,
    file_identity,
    file_sha256,
    files_digest,
    key,
    module_digest,
    tensor_digest,
)


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_digests_follow_content_not_path(tmp_path):
    a = [write(tmp_path / "a" / "x.png", b"one"), write(tmp_path / "a" / "y.png", b"two")]
    b = [write(tmp_path / "b" / "x.png", b"one"), write(tmp_path / "b" / "y.png", b"two")]
    assert file_identity(a[0]) == file_identity(b[0]) == file_sha256(a[0])
    assert files_digest(a) == files_digest(b)  # another folder, same names and bytes
    assert files_digest(a) != files_digest(a[::-1])  # order matters
    assert files_digest(a) != files_digest([a[0], write(tmp_path / "c" / "y.png", b"TWO")])
    assert files_digest(a) != files_digest([a[0], write(tmp_path / "d" / "z.png", b"two")])  # names count
    assert files_digest(a, root=tmp_path / "a") == files_digest(b, root=tmp_path / "b")

    images = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 2, 2)
    assert tensor_digest(images) == tensor_digest(images.clone()) != tensor_digest(images + 1)
    assert tensor_digest(images.permute(0, 2, 3, 1)) != tensor_digest(images)  # bytes as laid out


def test_module_digest_follows_weights_and_settings():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    same = torch.nn.Linear(3, 2)
    same.load_state_dict(net.state_dict())
    assert module_digest(net) == module_digest(same)
    torch.manual_seed(1)
    assert module_digest(torch.nn.Linear(3, 2)) != module_digest(net)
    other = torch.nn.Linear(3, 2)
    other.load_state_dict(net.state_dict())
    other.unsaved_settings = {"groups": 8}
    assert module_digest(other) != module_digest(net)


def test_key_is_stable_and_ignores_dict_order():
    parts = {"b": [1, 2], "a": {"y": 1, "x": None}, "p": torch.float32}
    assert key(parts) == key({"a": {"x": None, "y": 1}, "p": torch.float32, "b": [1, 2]})
    canonical = '{"a": {"x": null, "y": 1}, "b": [1, 2], "p": "torch.float32"}'
    assert key(parts) == hashlib.sha256(canonical.encode()).hexdigest()[:20] == "9eab1881d43621517e6e"
    assert len(key(parts)) == 20 and key(parts, length=24).startswith(key(parts))
    assert key({**parts, "b": [2, 1]}) != key(parts)  # list order does matter


def test_bounded_cache_makes_once_per_key_and_evicts_least_recently_used():
    made = []

    def make(k):
        def f():
            made.append(k)
            return k * 10
        return f

    cache = BoundedCache(2)
    assert cache.get_or_make(1, make(1)) == 10
    assert cache.get_or_make(1, make(1)) == 10 and made == [1]
    cache.get_or_make(2, make(2))
    cache.get_or_make(1, make(1))  # 1 is now the most recently used
    cache.get_or_make(3, make(3))  # evicts 2
    assert len(cache) == 2 and 1 in cache and 3 in cache and 2 not in cache
    assert cache.get_or_make(2, make(2)) == 20 and made == [1, 2, 3, 2]
    with pytest.raises(ValueError):
        BoundedCache(0)


def test_file_identity_hashes_a_rewritten_file_again(tmp_path):
    path = write(tmp_path / "weights.pt", b"first")
    first = file_identity(path)
    assert file_identity(str(path)) == first
    stamp = path.stat().st_mtime_ns
    path.write_bytes(b"other")  # same size
    os.utime(path, ns=(stamp + 1_000_000_000, stamp + 1_000_000_000))
    assert file_identity(path) == file_sha256(path) != first
    path.write_bytes(b"a longer content")
    assert file_identity(path) == file_sha256(path)
    with pytest.raises(FileNotFoundError):
        file_identity(tmp_path / "missing.pt")
