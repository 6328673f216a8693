"""Run a script as `python SCRIPT ARGS` would, with a fake network: urllib's urlopen serves the files named in the
JSON of $FAKE_URLS ({url: local path}) in slow chunks, as a real download would arrive, and appends each URL it
serves to downloads.txt in the working directory. $FAKE_PEAK_FLOPS, if set, is the GPU peak that MFU is measured
against. The tests launch it under torchrun, in place of the script:

    torchrun ... tests/fakes.py train_gpt2.py --data input.txt ...
"""
import json
import os
import runpy
import sys
import time
import urllib.request


class Response:
    """What urlopen returns: serves `body`, announcing `length` bytes (its own length unless given)."""

    def __init__(self, url, body, length=None):
        self.url, self.body, self.headers = url, body, {"Content-Length": str(len(body) if length is None else length)}

    def geturl(self):
        return self.url

    def read(self, n=-1):
        time.sleep(0.05)  # slow enough that processes downloading at once would overlap
        n = len(self.body) if n < 0 else min(n, 256 * 1024)
        chunk, self.body = self.body[:n], self.body[n:]
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def urlopen(url, timeout=None):
    url = getattr(url, "full_url", url)
    files = json.loads(os.environ.get("FAKE_URLS", "{}"))
    if url not in files:
        raise OSError(f"no network (fake): {url}")
    with open("downloads.txt", "a") as f:
        f.write(url + "\n")
    with open(files[url], "rb") as f:
        return Response(url, f.read())


if __name__ == "__main__":
    urllib.request.urlopen = urlopen
    if os.environ.get("FAKE_PEAK_FLOPS"):
        import plumbing
        plumbing.peak_flops = lambda device_type: float(os.environ["FAKE_PEAK_FLOPS"])
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
