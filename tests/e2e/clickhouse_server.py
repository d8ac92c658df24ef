#!/usr/bin/env python3
"""A throw-away ClickHouse server for tests and benchmarks (standard library only).

Starts Debian's `clickhouse-server` (18.16; it is not started by its package)
with a config in a temporary directory: its own data directory, loopback
only, free ports, UTC, small caches, optional extra users and an HTTPS port.
It starts in well under a second; `stop(kill=True)` is a SIGKILL, `pause()`
a SIGSTOP (a server that hangs).

    from clickhouse_server import ClickHouseServer, available
    with ClickHouseServer("/tmp/x", users={"writer": "s3cret"}) as ch:
        ch.query("SELECT version()")            # -> "18.16.1\\n"
        ch.url                                   # "http://127.0.0.1:PORT"

or from the command line (runs until Ctrl-C, for trying things by hand):

    /usr/bin/python3 tests/e2e/clickhouse_server.py [--dir DIR] [--port N]
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SERVER_BIN = os.environ.get("CLICKHOUSE_SERVER", "/usr/sbin/clickhouse-server")


def available():
    """-> None when a server can be started here, else the reason."""
    if not (os.path.isfile(SERVER_BIN) and os.access(SERVER_BIN, os.X_OK)):
        return "%s not found (apt-get install clickhouse-server)" % SERVER_BIN
    return None


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class QueryError(Exception):
    def __init__(self, status, body):
        Exception.__init__(self, "HTTP %s: %s" % (status, body.strip()))
        self.status, self.body = status, body


def _xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ClickHouseServer:
    def __init__(self, workdir=None, users=None, http_port=None, https=None, log_level="warning", tcp_port=None,
                 clusters=None):
        """users: {name: password or (password, "readonly")} besides `default`
        (no password, loopback only). https: (cert_file, key_file) to also
        listen on an HTTPS port. tcp_port: the native port (default: a free
        one). clusters: {name: [shard, ...]} for `remote_servers` (what a
        Distributed table names), each shard a list of replicas' native
        ports on 127.0.0.1 (or one port: a shard of one replica); e.g.
        {"two": [a.tcp_port, b.tcp_port]}. Choose the ports first
        (free_port()) to make servers that name each other."""
        self.own_dir = workdir is None
        self.dir = os.path.abspath(workdir or tempfile.mkdtemp(prefix="cstream-ch-"))
        self.users = dict(users or {})
        self.http_port = http_port or free_port()
        self.tcp_port = tcp_port or free_port()
        self.clusters = dict(clusters or {})
        self.https = https
        self.https_port = free_port() if https else None
        self.log_level = log_level
        self.proc = None
        self._write_config()

    # ------------------------------------------------------------ config
    def _write_config(self):
        d = self.dir
        os.makedirs(os.path.join(d, "data"), exist_ok=True)
        more = ""  # optional config sections
        if self.https:
            cert, key = self.https
            more = """
  <https_port>%d</https_port>
  <openSSL><server>
    <certificateFile>%s</certificateFile><privateKeyFile>%s</privateKeyFile>
    <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>
    <cacheSessions>true</cacheSessions><disableProtocols>sslv2,sslv3</disableProtocols>
    <preferServerCiphers>true</preferServerCiphers>
  </server></openSSL>""" % (self.https_port, _xml_escape(cert), _xml_escape(key))
        if self.clusters:
            # 18.16's format: <remote_servers><NAME><shard><replica>...
            parts = []
            for name, shards in sorted(self.clusters.items()):
                xs = []
                for shard in shards:
                    ports = shard if isinstance(shard, (list, tuple)) else [shard]
                    xs.append("<shard>%s</shard>" % "".join(
                        "<replica><host>127.0.0.1</host><port>%d</port></replica>" % p for p in ports))
                parts.append("<%s>%s</%s>" % (name, "".join(xs), name))
            more += "\n  <remote_servers>%s</remote_servers>" % "".join(parts)
        with open(os.path.join(d, "config.xml"), "w") as f:
            f.write("""<?xml version="1.0"?>
<yandex>
  <logger><level>%(level)s</level><log>%(d)s/server.log</log><errorlog>%(d)s/server.err.log</errorlog>
    <size>100M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>%(http)d</http_port>
  <tcp_port>%(tcp)d</tcp_port>%(more)s
  <path>%(d)s/data/</path>
  <tmp_path>%(d)s/data/tmp/</tmp_path>
  <user_files_path>%(d)s/data/user_files/</user_files_path>
  <format_schema_path>%(d)s/data/format_schemas/</format_schema_path>
  <users_config>%(d)s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <keep_alive_timeout>3</keep_alive_timeout>
</yandex>
""" % {"level": self.log_level, "d": _xml_escape(d), "http": self.http_port, "tcp": self.tcp_port, "more": more})
        users = ["    <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>"
                 "<profile>default</profile><quota>default</quota></default>"]
        for name, pw in self.users.items():
            pw, profile = pw if isinstance(pw, tuple) else (pw, "default")
            users.append("    <%s><password>%s</password><networks><ip>127.0.0.1</ip></networks>"
                         "<profile>%s</profile><quota>default</quota></%s>" % (name, _xml_escape(pw), profile, name))
        with open(os.path.join(d, "users.xml"), "w") as f:
            f.write("""<?xml version="1.0"?>
<yandex>
  <profiles><default></default><readonly><readonly>1</readonly></readonly></profiles>
  <users>
%s
  </users>
  <quotas><default></default></quotas>
</yandex>
""" % "\n".join(users))

    # ------------------------------------------------------------ life cycle
    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    @property
    def https_url(self):
        return "https://127.0.0.1:%d" % self.https_port

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=30.0):
        if self.running():
            return
        out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen([SERVER_BIN, "--config-file=" + os.path.join(self.dir, "config.xml")],
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.dir, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("clickhouse-server exited with %s:\n%s" % (self.proc.returncode, self.log_tail()))
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as r:
                    if r.read().strip() == b"Ok.":
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop(kill=True)
        raise RuntimeError("clickhouse-server did not answer within %.0f s:\n%s" % (timeout, self.log_tail()))

    def stop(self, kill=False, timeout=30.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.resume()
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, kill=False):
        self.stop(kill=kill)
        self.start()

    def pause(self):
        if self.running():
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        if self.running():
            self.proc.send_signal(signal.SIGCONT)

    def close(self):
        self.stop()
        if self.own_dir and not os.environ.get("CSTREAM_E2E_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def log_tail(self, n=30):
        out = []
        for name in ("stdout.log", "server.err.log"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out += f.read().decode("utf-8", "replace").splitlines()[-n:]
        return "\n".join(out)

    # ------------------------------------------------------------ queries
    def query(self, sql, data=None, user=None, password=None, timeout=60, **settings):
        """Runs one query over HTTP -> the body as text; raises QueryError.
        Keyword arguments are settings (output_format_json_quote_64bit_integers=0)."""
        params = dict(settings)
        if data is None:
            body = sql.encode()
        else:
            params["query"] = sql
            body = data if isinstance(data, bytes) else data.encode()
        url = self.url + "/" + ("?" + urllib.parse.urlencode(params) if params else "")
        req = urllib.request.Request(url, data=body, method="POST")
        if user:
            req.add_header("X-ClickHouse-User", user)
            req.add_header("X-ClickHouse-Key", password or "")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise QueryError(e.code, e.read().decode("utf-8", "replace"))


def main():
    ap = argparse.ArgumentParser(description="Run a throw-away clickhouse-server until Ctrl-C.")
    ap.add_argument("--dir", help="working directory (default: a new temporary one)")
    ap.add_argument("--port", type=int, help="HTTP port (default: a free one)")
    a = ap.parse_args()
    why = available()
    if why:
        sys.exit(why)
    def interrupted(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)  # SIGTERM too stops the server with us
    with ClickHouseServer(a.dir, http_port=a.port) as ch:
        print("clickhouse-server %s at %s (dir %s); Ctrl-C stops it" % (
            ch.query("SELECT version()").strip(), ch.url, ch.dir), flush=True)
        try:
            while ch.running():
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
