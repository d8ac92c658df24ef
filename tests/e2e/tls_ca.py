#!/usr/bin/env python3
"""A throw-away certificate authority for TLS tests, made with the `openssl`
command line (no Python packages needed).

    ca = TestCA(tmpdir)                        # a CA: ca.cert (PEM), ca.key
    cert, key = ca.issue("localhost")          # a server certificate for
                                               # DNS:localhost and IP:127.0.0.1
    cert, key = ca.issue("other", sans=["DNS:other.example"])   # host-name mismatch tests
    ctx = ca.client_context()                  # ssl.SSLContext trusting only this CA

Keys are EC P-256 (fast to make); certificates are valid for two days. From
the shell: `python3 tests/e2e/tls_ca.py DIR` writes ca.pem, server.pem,
server.key into DIR and prints their paths.
"""
import os
import ssl
import subprocess
import sys

DEFAULT_SANS = ("DNS:localhost", "IP:127.0.0.1")


def _openssl(*args, cwd=None):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), p.stderr.decode(errors="replace")))


class TestCA:
    __test__ = False  # not a test case (for test runners that collect by name)

    def __init__(self, directory, name="cstream test CA"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.cert = os.path.join(directory, "ca.pem")
        self.key = os.path.join(directory, "ca.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=" + name,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._serial = 1

    def issue(self, name, sans=DEFAULT_SANS):
        """A server certificate and key signed by this CA; returns (cert_path, key_path)."""
        base = os.path.join(self.dir, name.replace("/", "_"))
        key, csr, cert, ext = base + ".key", base + ".csr", base + ".pem", base + ".ext"
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=%s\n" % ",".join(sans))
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
        self._serial += 1
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-set_serial", str(self._serial),
                 "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key

    def client_context(self):
        """An SSL context that trusts this CA only and checks host names."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cert)
        ctx.check_hostname = True
        return ctx


def make(directory):
    """CA + a localhost server certificate: {'ca': ..., 'cert': ..., 'key': ...}."""
    ca = TestCA(directory)
    cert, key = ca.issue("server")
    return {"ca": ca.cert, "cert": cert, "key": key, "authority": ca}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tls_ca.py DIR")
    paths = make(sys.argv[1])
    for k in ("ca", "cert", "key"):
        print("%s=%s" % (k, paths[k]))
