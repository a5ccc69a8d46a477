"""Fixtures of the weights tests: torchvision (the reference) and a loopback server of weight
files with a catalog pointing at it."""

import functools
import http.server
import os
import threading

import pytest
import yaml

from kerascv_suite import weights
from tests.weights.helpers import randomize



class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; under /cut/ it announces the whole file and closes halfway."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.startswith("/cut/"):
            return super().do_GET()
        with open(os.path.join(self.directory, os.path.basename(self.path)), "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture(scope="module")
def served(tmp_path_factory, torchvision):
    """`(url, folder, state)`: a loopback server over a folder holding a random squeezenet1_1
    checkpoint (`squeezenet1_1-random.pth`)."""
    import torch

    folder = tmp_path_factory.mktemp("served")
    module = randomize(torchvision.models.squeezenet1_1(weights=None), seed=3)
    torch.save(module.state_dict(), folder / "squeezenet1_1-random.pth")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder, module.state_dict()
    server.shutdown()
    server.server_close()


@pytest.fixture
def catalog(tmp_path, monkeypatch, served):
    """Writes an extra catalog with the given entries and points the environment at it and
    at the server; returns the writer."""
    url, folder, _ = served
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(weights.BASE_URL_ENV, url)

    def write(*entries):
        path = tmp_path / "catalog.yaml"
        path.write_text(yaml.safe_dump({"entries": list(entries)}))
        monkeypatch.setenv(weights.CATALOG_ENV, str(path))

    return write
