"""Data: tiny Shakespeare's checksum guard (no network is touched) and the data loader."""
import io
import os

import pytest

import train_gpt2
from train_gpt2 import fetch_tiny_shakespeare


class FakeResponse(io.BytesIO):
    """Stands in for urlopen's response, so the download path runs without a network."""


def test_an_existing_wrong_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text("not Shakespeare")
    with pytest.raises(SystemExit, match="is not tiny Shakespeare"):
        fetch_tiny_shakespeare(str(path))
    assert path.read_text() == "not Shakespeare"  # the user's file is left alone


def test_a_download_with_the_wrong_checksum_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(train_gpt2.urllib.request, "urlopen", lambda url, timeout: FakeResponse(b"tampered"))
    path = tmp_path / "input.txt"
    with pytest.raises(SystemExit, match="wrong sha256"):
        fetch_tiny_shakespeare(str(path))
    assert os.listdir(tmp_path) == []


def test_a_failed_download_leaves_no_file(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise OSError("network is unreachable")
    monkeypatch.setattr(train_gpt2.urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit, match="download it by hand"):
        fetch_tiny_shakespeare(str(tmp_path / "input.txt"))
    assert os.listdir(tmp_path) == []


def test_a_good_download_is_kept(tmp_path, monkeypatch, shakespeare):
    with open(shakespeare, "rb") as f:
        real = f.read()
    monkeypatch.setattr(train_gpt2.urllib.request, "urlopen", lambda url, timeout: FakeResponse(real))
    path = tmp_path / "input.txt"
    fetch_tiny_shakespeare(str(path))
    assert path.read_bytes() == real
    assert os.listdir(tmp_path) == ["input.txt"]
