"""Self-signed certificates for TLS tests (made with the ``openssl`` CLI in a temp dir)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["HAVE_OPENSSL", "make_cert"]

HAVE_OPENSSL = shutil.which("openssl") is not None


def make_cert(directory: Path, name: str = "server") -> tuple[str, str, str]:
    """``(cert, key, ca)`` of a self-signed certificate for ``127.0.0.1`` (its own CA)."""
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return str(cert), str(key), str(cert)
