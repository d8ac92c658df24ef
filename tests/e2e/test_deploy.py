#!/usr/bin/env python3
"""Checks of the deployment files (docker-compose.yml, Dockerfile, dev.sh;
docs/deploy.md) that run without a Docker engine:

* `docker-compose config` (Debian's docker-compose 1.29) accepts the compose
  file; refuses to run without CLICKHOUSE_PASSWORD, whose value is in no
  committed file; the services, images (pinned), KRaft, the topic step,
  volumes, health checks, restart policies, start-up order and a scalable
  aggregate service are there; settings come from the environment;
* every variable the compose file gives a cstream service is one its script
  reads, and `cstream check` loads each service's script with exactly the
  command line and environment `docker-compose config` gives it;
* the services' health-check commands, run here against the real processes
  (a local `cstream broker` for Kafka, `cstream serve-replay` for Coinbase):
  0 while /healthz answers 200, non-zero on 503 and when nothing listens;
* the Dockerfile's build stage runs ./dev.sh, not its own apt-get or cmake;
  its runtime stage installs `./dev.sh runtime-packages`, which holds the
  package of every shared library the binary needs (ldd + dpkg -S; direct
  ones listed, the rest pulled in by their dependencies), the libuv plugin
  of libwebsockets (dlopened: ldd does not show it) and no -dev package.

    /usr/bin/python3 tests/e2e/test_deploy.py --cstream build/cstream
"""
import fnmatch
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from test_replay import _take_cstream_arg  # noqa: E402

CSTREAM = None
COMPOSE_FILE = os.path.join(ROOT, "docker-compose.yml")
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
SAMPLE = os.path.join(ROOT, "data", "sample.jsonl")
CSTREAM_SERVICES = {"cstream-ingest": "scripts/ingest.lua", "cstream-aggregate": "scripts/aggregate.lua"}
# A password made up for this run: it must reach the services and appear in
# no output of cstream.
PASSWORD = "pw-" + secrets.token_hex(12)


def clean_env(**extra):
    """A minimal environment (no settings of the person running the tests)."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(extra)
    return env


def compose_config(env_file_text="", **env):
    """`docker-compose config` on the repository's compose file, with only
    `env` in the environment and `env_file_text` as the .env file (never the
    repository's own .env). -> CompletedProcess (text)."""
    exe = shutil.which("docker-compose")
    if not exe:
        raise AssertionError("docker-compose is not installed (./dev.sh deps installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        env_file = os.path.join(tmp, "env")
        with open(env_file, "w") as f:
            f.write(env_file_text)
        return subprocess.run([exe, "--env-file", env_file, "-f", COMPOSE_FILE, "--project-directory", ROOT,
                               "config"], env=clean_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=120)


def config(**env):
    env.setdefault("CLICKHOUSE_PASSWORD", PASSWORD)
    p = compose_config(**env)
    if p.returncode != 0:
        raise AssertionError("docker-compose config failed (%d): %s" % (p.returncode, p.stderr))
    return yaml.safe_load(p.stdout)


def service_env(svc):
    """The environment a service's container gets (unset values left out)."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return {k: str(v) for k, v in env.items() if v is not None}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script_env_vars(path):
    """Environment variables a script reads: os.getenv("X") and setting(..., "X", ...)."""
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    names = set(re.findall(r'os\.getenv\(\s*"([A-Z0-9_]+)"', text))
    names |= set(re.findall(r'setting\(\s*"[^"]*"\s*,\s*"([A-Z0-9_]+)"', text))
    return names


def cstream_argv(svc, verb=None, metrics_port=None):
    """The service's command line for cstream (the image's entrypoint),
    optionally with `run` replaced by `verb` and the metrics port/host made
    local. -> (argv, index of the script)."""
    cmd = list(svc["command"])
    i = cmd.index("run")
    if verb:
        cmd[i] = verb
    if metrics_port is not None:
        cmd[cmd.index("--metrics-port") + 1] = str(metrics_port)
        cmd[cmd.index("--metrics-host") + 1] = "127.0.0.1"
    return [CSTREAM] + cmd, i + 2


def healthcheck_argv(svc, container_port, port):
    """The service's health-check test as an argv, pointed at `port`."""
    test = svc["healthcheck"]["test"]
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    kind, rest = test[0], [t.replace(str(container_port), str(port)) for t in test[1:]]
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(rest)]
    assert kind == "CMD", test
    return rest


class Compose(unittest.TestCase):
    """The compose file, through `docker-compose config`."""

    @classmethod
    def setUpClass(cls):
        cls.cfg = config()
        with open(COMPOSE_FILE) as f:
            cls.raw = f.read()

    def test_password_required_and_never_written(self):
        p = compose_config()
        self.assertNotEqual(p.returncode, 0, "config must refuse to run without CLICKHOUSE_PASSWORD")
        self.assertIn("CLICKHOUSE_PASSWORD", p.stderr)
        # From the .env file as well as from the environment.
        cfg = yaml.safe_load(compose_config("CLICKHOUSE_PASSWORD=%s\n" % PASSWORD).stdout)
        self.assertEqual(service_env(cfg["services"]["cstream-aggregate"])["CLICKHOUSE_PASSWORD"], PASSWORD)
        # In the file: only references to the environment, never a value or a default.
        for m in re.finditer(r"(?m)^\s*-?\s*([A-Z_]*PASSWORD[A-Z_]*)\s*[:=]\s*(.*)$", self.raw):
            self.assertRegex(m.group(2), r"^\$\{%s(:?\?[^}]*)?\}$" % m.group(1), "a password value in the file: %r"
                             % m.group(0))
        self.assertIn("CLICKHOUSE_PASSWORD", self.raw)

    def test_services_images_and_volumes(self):
        svcs = self.cfg["services"]
        for name in ("kafka", "kafka-init", "clickhouse", "cstream-ingest", "cstream-aggregate"):
            self.assertIn(name, svcs)
        self.assertFalse([n for n in svcs if "zookeeper" in n.lower()], "KRaft: no ZooKeeper")
        for name, svc in svcs.items():
            image = svc.get("image", "")
            if "build" in svc:
                continue
            self.assertRegex(image, r"^[\w./-]+:\d[\w.-]*$", "%s: image not pinned to a version: %r" % (name, image))
        self.assertTrue(svcs["kafka"]["image"].startswith(("apache/kafka:", "bitnami/kafka:")))
        self.assertTrue(svcs["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:"))
        kenv = service_env(svcs["kafka"])
        roles = kenv.get("KAFKA_PROCESS_ROLES") or kenv.get("KAFKA_CFG_PROCESS_ROLES", "")
        self.assertEqual(set(roles.split(",")), {"broker", "controller"}, "KRaft combined mode")
        self.assertIn("CONTROLLER", kenv.get("KAFKA_CONTROLLER_LISTENER_NAMES", ""))
        # Named volumes for the data of Kafka and ClickHouse.
        named = set(self.cfg.get("volumes") or {})
        for name, target in (("kafka", None), ("clickhouse", "/var/lib/clickhouse")):
            mounts = svcs[name].get("volumes") or []
            srcs = {}
            for v in mounts:
                src, dst = (v.split(":")[:2] if isinstance(v, str) else (v.get("source"), v.get("target")))
                srcs[dst] = src
            self.assertTrue(any(s in named for s in srcs.values()), "%s: no named volume (%s)" % (name, mounts))
            if target:
                self.assertIn(srcs.get(target), named, "%s: %s is not on a named volume" % (name, target))
        kafka_dirs = kenv.get("KAFKA_LOG_DIRS")
        self.assertIn(kafka_dirs, [v.split(":")[1] for v in svcs["kafka"]["volumes"]],
                      "Kafka's log directory must be the volume")

    def test_topic_step(self):
        svcs = self.cfg["services"]
        cmd = svcs["kafka-init"]["command"]
        cmd = cmd if isinstance(cmd, list) else cmd.split()
        self.assertTrue(any(c.endswith("kafka-topics.sh") for c in cmd), cmd)
        self.assertIn("--create", cmd)
        self.assertIn("--if-not-exists", cmd)
        topic = cmd[cmd.index("--topic") + 1]
        parts = int(cmd[cmd.index("--partitions") + 1])
        self.assertGreaterEqual(parts, 3, "several partitions, so that aggregate replicas can share them")
        for name in CSTREAM_SERVICES:
            self.assertEqual(service_env(svcs[name])["KAFKA_TOPIC"], topic, name)
        self.assertEqual(service_env(svcs["cstream-ingest"])["KAFKA_PARTITIONS"], str(parts))
        # Settings from the environment: a different topic and partition count go everywhere.
        cfg = config(KAFKA_TOPIC="candles-in", KAFKA_PARTITIONS="12")
        cmd = cfg["services"]["kafka-init"]["command"]
        self.assertEqual(cmd[cmd.index("--topic") + 1], "candles-in")
        self.assertEqual(cmd[cmd.index("--partitions") + 1], "12")
        for name in CSTREAM_SERVICES:
            self.assertEqual(service_env(cfg["services"][name])["KAFKA_TOPIC"], "candles-in")
        # Brokers: the kafka service's advertised listener.
        adv = service_env(svcs["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
        for name in CSTREAM_SERVICES:
            brokers = service_env(svcs[name])["KAFKA_BROKERS"]
            self.assertIn("PLAINTEXT://" + brokers, adv, name)
        self.assertIn(service_env(svcs["cstream-ingest"])["KAFKA_BROKERS"], cmd)
        self.assertNotEqual(service_env(svcs["kafka"]).get("KAFKA_AUTO_CREATE_TOPICS_ENABLE"), "true")

    def test_order_health_restart(self):
        svcs = self.cfg["services"]
        dep = lambda a, b: (svcs[a].get("depends_on") or {}).get(b, {}).get("condition")  # noqa: E731
        self.assertEqual(dep("kafka-init", "kafka"), "service_healthy")
        for name in CSTREAM_SERVICES:
            self.assertEqual(dep(name, "kafka-init"), "service_completed_successfully", name)
        self.assertEqual(dep("cstream-aggregate", "clickhouse"), "service_healthy")
        for name in ("kafka", "clickhouse") + tuple(CSTREAM_SERVICES):
            self.assertIn(svcs[name].get("restart"), ("always", "unless-stopped", "on-failure"), name)
            self.assertIn("healthcheck", svcs[name], name)
            self.assertTrue(svcs[name]["healthcheck"].get("test"), name)
        self.assertIn(svcs["kafka-init"].get("restart", "no"), ("no", "on-failure"))

    def test_aggregate_scales(self):
        svc = self.cfg["services"]["cstream-aggregate"]
        self.assertNotIn("container_name", set(svc), "a fixed container name: replicas would collide")
        self.assertNotIn("hostname", set(svc))
        for p in svc.get("ports") or []:
            spec = p if isinstance(p, str) else "%s:%s:%s" % (p.get("host_ip", ""), p.get("published", ""),
                                                             p.get("target"))
            parts = spec.split("/")[0].split(":")
            host_port = parts[-2] if len(parts) >= 2 else ""
            self.assertEqual(host_port, "", "fixed host port %r: replicas would collide" % spec)
        # One consumer group for every replica.
        self.assertTrue(service_env(svc)["KAFKA_GROUP"])
        # Replicas from the environment; never more than the topic has partitions by default.
        cmd = self.cfg["services"]["kafka-init"]["command"]
        self.assertLessEqual(int(svc.get("scale", 1)), int(cmd[cmd.index("--partitions") + 1]))
        cfg = config(AGGREGATE_REPLICAS="3")
        self.assertEqual(cfg["services"]["cstream-aggregate"].get("scale"), 3)

    def test_settings_match_the_scripts(self):
        svcs = self.cfg["services"]
        for name, script in CSTREAM_SERVICES.items():
            env = service_env(svcs[name])
            reads = script_env_vars(script)
            self.assertTrue(reads, script)
            unused = set(svcs[name].get("environment") or {}) - reads
            self.assertFalse(unused, "%s sets %s, which %s does not read" % (name, sorted(unused), script))
            # In a container the scripts' loopback defaults are wrong: the service must say.
            self.assertIn("KAFKA_BROKERS", env, name)
            self.assertIn("--metrics-port", svcs[name]["command"])
            self.assertEqual(svcs[name]["command"][svcs[name]["command"].index("--metrics-host") + 1], "0.0.0.0")
        agg = service_env(svcs["cstream-aggregate"])
        ch = service_env(svcs["clickhouse"])
        for k in ("CLICKHOUSE_URL", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_DATABASE"):
            self.assertIn(k, agg)
        self.assertEqual(agg["CLICKHOUSE_USER"], ch["CLICKHOUSE_USER"])
        self.assertEqual(agg["CLICKHOUSE_PASSWORD"], ch["CLICKHOUSE_PASSWORD"])
        self.assertEqual(agg["CLICKHOUSE_PASSWORD"], PASSWORD)
        self.assertRegex(agg["CLICKHOUSE_URL"], r"^http://clickhouse:8123/?$")
        # Overrides reach the services.
        cfg = config(PRODUCTS="BTC-USD", LATENESS="10s", KAFKA_GROUP="g2", CLICKHOUSE_USER="writer")
        self.assertEqual(service_env(cfg["services"]["cstream-ingest"])["PRODUCTS"], "BTC-USD")
        self.assertEqual(service_env(cfg["services"]["cstream-aggregate"])["LATENESS"], "10s")
        self.assertEqual(service_env(cfg["services"]["cstream-aggregate"])["KAFKA_GROUP"], "g2")
        self.assertEqual(service_env(cfg["services"]["clickhouse"])["CLICKHOUSE_USER"], "writer")
        self.assertNotIn("COINBASE_URL", service_env(self.cfg["services"]["cstream-ingest"]))
        cfg = config(COINBASE_URL="ws://127.0.0.1:1")
        self.assertEqual(service_env(cfg["services"]["cstream-ingest"])["COINBASE_URL"], "ws://127.0.0.1:1")


class CheckScripts(unittest.TestCase):
    """`cstream check` with each service's command line and environment."""

    def check(self, name, **compose_env):
        cfg = config(**compose_env)
        svc = cfg["services"][name]
        argv, si = cstream_argv(svc, "check")
        self.assertEqual(argv[si], CSTREAM_SERVICES[name])
        # The image runs scripts from its WORKDIR, which holds a copy of scripts/ (checked below).
        p = subprocess.run(argv, cwd=ROOT, env=clean_env(**service_env(svc)), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertNotIn(PASSWORD, p.stdout + p.stderr, "the password appeared in cstream's output")
        return p

    def test_aggregate(self):
        p = self.check("cstream-aggregate")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout
        self.assertIn("cs.kafka -> cs.tumbling 30s (lateness 5s) -> cs.clickhouse", out)
        for line in ('brokers         = "kafka:9092"', 'topic           = "trades"',
                     'group           = "cstream-30s"', 'url             = "http://clickhouse:8123"',
                     'database        = "cstream"', 'user            = "cstream"',
                     'password_env    = "CLICKHOUSE_PASSWORD"', 'start           = "committed"',
                     'table           = "candles_30s"', 'create          = true'):
            self.assertIn(line, out)
        # A user-made table (a Distributed one on a sharded cluster) and no CREATE rights.
        p = self.check("cstream-aggregate", CLICKHOUSE_TABLE="candles_dist", CLICKHOUSE_CREATE="false")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('table           = "candles_dist"', p.stdout)
        self.assertIn('create          = false', p.stdout)

    def test_ingest(self):
        p = self.check("cstream-ingest")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("cs.coinbase -> cs.kafka", p.stdout)
        self.assertIn('brokers          = "kafka:9092"', p.stdout)
        self.assertIn('api               = "exchange"', p.stdout)
        self.assertRegex(p.stdout, r'products\s+= \{"BTC-USD", "ETH-USD"')
        self.assertIn('key              = "product_id"', p.stdout)

    def test_bad_settings_fail(self):
        p = self.check("cstream-aggregate", LATENESS="5 parsecs")
        self.assertEqual(p.returncode, 3)
        self.assertIn("lateness", p.stderr)
        p = self.check("cstream-aggregate", CLICKHOUSE_CREATE="maybe")
        self.assertEqual(p.returncode, 3, p.stdout)
        self.assertIn("create (CLICKHOUSE_CREATE) must be true or false, not 'maybe'", p.stderr)
        p = self.check("cstream-ingest", COINBASE_API="nyse")
        self.assertEqual(p.returncode, 3, p.stdout)


class HealthChecks(unittest.TestCase):
    """The health-check commands of the cstream services, run here against
    the services' own command lines (Kafka: `cstream broker`; Coinbase:
    `cstream serve-replay`; ClickHouse: a port where nothing listens, which
    is fine while there are no rows to acknowledge)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cs-deploy-")
        self.procs, self.logs = [], []
        if not os.path.exists("/bin/bash"):
            self.fail("bash is needed by the health checks")

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stdout:
                p.stdout.close()
        for f in self.logs:
            f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn(self, argv, name, **kw):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        self.logs.append(log)
        p = subprocess.Popen(argv, stdout=kw.pop("stdout", log), stderr=log, **kw)
        self.procs.append(p)
        return p

    def log(self, name):
        with open(os.path.join(self.tmp, name + ".log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def listening(self, p, name):
        line = p.stdout.readline().decode()
        self.assertTrue(line.startswith("listening port="), "%s: %r %s" % (name, line, self.log(name)))
        return int(line.split("=", 1)[1])

    def health(self, svc, port):
        argv = healthcheck_argv(svc, 9100, port)
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10).returncode

    def wait_health(self, svc, port, want_ok, timeout=30):
        deadline, rc = time.time() + timeout, None
        while time.time() < deadline:
            rc = self.health(svc, port)
            if (rc == 0) == want_ok:
                return rc
            time.sleep(0.3)
        return rc

    def run_service(self, name, env_over, **compose_env):
        cfg = config(**compose_env)
        svc = cfg["services"][name]
        self.assertEqual(svc["command"][svc["command"].index("--metrics-port") + 1], "9100")
        port = free_port()
        argv, _ = cstream_argv(svc, metrics_port=port)
        env = service_env(svc)
        env.update(env_over)
        p = self.spawn(argv, name, cwd=ROOT, env=clean_env(**env))
        return svc, port, p

    def start_broker(self):
        b = self.spawn([CSTREAM, "broker", "--port", "0", "--partitions", "3"], "broker", stdout=subprocess.PIPE)
        return "127.0.0.1:%d" % self.listening(b, "broker")

    def test_aggregate(self):
        brokers = self.start_broker()
        svc, port, p = self.run_service("cstream-aggregate", {
            "KAFKA_BROKERS": brokers, "CLICKHOUSE_URL": "http://127.0.0.1:%d" % free_port()})
        self.assertEqual(self.wait_health(svc, port, True), 0, self.log("cstream-aggregate"))
        # SIGTERM waits for ClickHouse to check the table (docs/deploy.md: stop_grace_period);
        # a second one gives up.
        p.terminate()
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            p.terminate()
        self.assertIn(p.wait(timeout=30), (0, 1), self.log("cstream-aggregate"))
        self.assertNotEqual(self.health(svc, port), 0, "healthy with nothing listening")
        self.assertNotIn(PASSWORD, self.log("cstream-aggregate"))

    def test_ingest(self):
        brokers = self.start_broker()
        # Not connected to the feed (nothing listens there): /healthz 503, the check fails.
        svc, port, p = self.run_service("cstream-ingest", {"KAFKA_BROKERS": brokers},
                                        COINBASE_URL="ws://127.0.0.1:%d" % free_port())
        time.sleep(1.5)
        self.assertNotEqual(self.wait_health(svc, port, False), 0, self.log("cstream-ingest"))
        p.terminate()
        p.wait(timeout=30)
        # Connected to a replay exchange serving the service's products: healthy.
        products = service_env(config()["services"]["cstream-ingest"])["PRODUCTS"]
        ex = self.spawn([CSTREAM, "serve-replay", SAMPLE, "--port", "0", "--speed", "1", "--loop",
                         "--products", products], "exchange", stdout=subprocess.PIPE)
        url = "ws://127.0.0.1:%d" % self.listening(ex, "exchange")
        svc, port, p = self.run_service("cstream-ingest", {"KAFKA_BROKERS": brokers}, COINBASE_URL=url)
        self.assertEqual(self.wait_health(svc, port, True), 0, self.log("cstream-ingest"))
        p.terminate()
        self.assertEqual(p.wait(timeout=30), 0, self.log("cstream-ingest"))


def dockerfile_stages():
    """Parses the Dockerfile: -> (args, [stage dicts: from, name, run, copy, other])."""
    with open(DOCKERFILE) as f:
        text = re.sub(r"\\\n", " ", f.read())
    args, stages = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip()
        elif word == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), rest.split()[0])
            name = rest.split()[2] if len(rest.split()) >= 3 and rest.split()[1].upper() == "AS" else None
            stages.append({"from": image, "name": name, "run": [], "copy": [], "lines": []})
        elif stages:
            stages[-1]["lines"].append((word, rest))
            if word == "RUN":
                stages[-1]["run"].append(rest)
            elif word == "COPY":
                stages[-1]["copy"].append(rest)
    return args, stages


def commands(run_line):
    """The programs a RUN line runs (first word of each command)."""
    out = []
    for part in re.split(r"&&|\|\||;|\|", run_line):
        words = part.split()
        while words and "=" in words[0]:  # VAR=value prefixes
            words = words[1:]
        if words:
            out.append(os.path.basename(words[0]))
    return out


BUILD_TOOLS = {"apt-get", "apt", "aptitude", "dpkg", "cmake", "make", "ninja", "gcc", "cc", "g++", "c++", "clang",
               "pip", "pip3", "curl", "wget"}


class Image(unittest.TestCase):
    """The Dockerfile, the runtime package list and .dockerignore."""

    @classmethod
    def setUpClass(cls):
        cls.args, cls.stages = dockerfile_stages()
        p = subprocess.run([os.path.join(ROOT, "dev.sh"), "runtime-packages"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        cls.runtime = p.stdout.split()

    def test_stages_and_build_steps(self):
        self.assertGreaterEqual(len(self.stages), 2, "multi-stage")
        for st in self.stages:
            self.assertRegex(st["from"], r"^(docker\.io/)?(library/)?debian:(12|bookworm)[\w.-]*$",
                             "Debian 12 base: %r" % st["from"])
        build, runtime = self.stages[0], self.stages[-1]
        self.assertTrue(build["run"], "the build stage runs something")
        for line in build["run"] + runtime["run"]:
            progs = commands(line)
            self.assertFalse(set(progs) & BUILD_TOOLS, "RUN %s: its own build/install steps (%s); use ./dev.sh"
                             % (line, sorted(set(progs) & BUILD_TOOLS)))
        build_cmds = [c for line in build["run"] for c in commands(line)]
        self.assertIn("dev.sh", build_cmds)
        joined = " ".join(build["run"])
        self.assertRegex(joined, r"dev\.sh deps-build")
        self.assertRegex(joined, r"dev\.sh build\b", "the README's build step")
        # The runtime stage installs the one list, and copies the binary built above.
        self.assertRegex(" ".join(runtime["run"]), r"dev\.sh deps-runtime")
        self.assertTrue(any("--from=%s" % build["name"] in c and "build/cstream" in c for c in runtime["copy"]),
                        runtime["copy"])
        entry = [r for w, r in runtime["lines"] if w == "ENTRYPOINT"]
        self.assertTrue(entry and "cstream" in entry[-1], entry)
        user = [r for w, r in runtime["lines"] if w == "USER"]
        self.assertTrue(user and user[-1] not in ("root", "0"), "runs as a user, not root")

    def test_dev_sh_cases(self):
        with open(os.path.join(ROOT, "dev.sh")) as f:
            text = f.read()
        case = lambda name: re.search(r"(?m)^\s*%s\)\s*(.*?);;" % re.escape(name), text, re.S).group(1)  # noqa
        build_deps = re.search(r'(?m)^BUILD_DEPS="([^"]*)"', text).group(1).split()
        self.assertIn("install_missing $BUILD_DEPS", case("deps-build"))
        self.assertIn("install_missing $BUILD_DEPS", case("build"), "the image's build installs build deps only")
        self.assertIn("build build", case("build"))
        self.assertIn("cmake", build_deps)
        self.assertIn("docker-compose", re.search(r'(?m)^TEST_DEPS="([^"]*)"', text).group(1).split())
        # The list printed and the list installed are the same variables.
        self.assertIn("$RUNTIME_LIBS $RUN_DEPS", case("runtime-packages"))
        self.assertIn("$RUNTIME_LIBS $RUN_DEPS", case("deps-runtime"))
        self.assertTrue(self.runtime)

    def test_scripts_in_the_image(self):
        runtime = self.stages[-1]
        workdir = [r for w, r in runtime["lines"] if w == "WORKDIR"][-1].strip()
        dests = {}
        for c in runtime["copy"]:
            parts = [x for x in c.split() if not x.startswith("--")]
            for src in parts[:-1]:
                dests[src.rstrip("/")] = parts[-1].rstrip("/")
        self.assertEqual(dests.get("scripts"), workdir.rstrip("/") + "/scripts",
                         "compose runs scripts/X.lua relative to the WORKDIR %s" % workdir)

    def test_runtime_packages_cover_ldd(self):
        pkgs = set(self.runtime)
        for must in ("libwebsockets-evlib-uv", "ca-certificates", "lua-cjson"):
            self.assertIn(must, pkgs)
        for p in pkgs:
            self.assertFalse(p.endswith("-dev") or p in ("build-essential", "gcc", "cmake", "pkg-config"), p)
        # Every library ldd shows, mapped to its Debian package.
        out = subprocess.run(["ldd", CSTREAM], stdout=subprocess.PIPE, text=True, check=True).stdout
        libs = {}
        for line in out.splitlines():
            m = re.match(r"\s*(\S+)\s+=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
            if m:
                libs[os.path.basename(m.group(1))] = m.group(m.lastindex)
        self.assertIn("libwebsockets.so.17", libs)
        sanitizer = any(n.startswith(("libasan", "libubsan")) for n in libs)
        owner = {}
        for soname, path in libs.items():
            pkg = dpkg_owner(path)
            self.assertTrue(pkg, "no Debian package owns %s" % path)
            owner[soname] = pkg
        # Direct needs (DT_NEEDED) are listed by name, except libc/libm (libc6, in every image).
        needed = subprocess.run(["readelf", "-d", CSTREAM], stdout=subprocess.PIPE, text=True, check=True).stdout
        direct = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", needed)
        self.assertTrue(direct)
        for soname in direct:
            pkg = owner[soname]
            if pkg == "libc6" or sanitizer:
                continue  # the ASan/UBSan build links more directly (libcap, libgcc_s): the closure below covers it
            self.assertIn(pkg, pkgs, "%s (package %s) is not in ./dev.sh runtime-packages" % (soname, pkg))
        # The rest come with the listed packages' dependencies.
        closure = dependency_closure(pkgs)
        for soname, pkg in owner.items():
            if sanitizer and pkg.startswith(("libasan", "libubsan")):
                continue  # the ASan/UBSan test build, not what the image holds
            self.assertIn(pkg, closure, "%s (package %s) is not pulled in by the runtime packages" % (soname, pkg))
        # The plugin libwebsockets dlopens is in the listed package.
        files = subprocess.run(["dpkg", "-L", "libwebsockets-evlib-uv"], stdout=subprocess.PIPE, text=True).stdout
        self.assertRegex(files, r"libwebsockets-evlib_uv\.so")

    def test_dockerignore(self):
        with open(os.path.join(ROOT, ".dockerignore")) as f:
            pats = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]

        def ignored(path):
            return any(fnmatch.fnmatch(path, p.rstrip("/")) or fnmatch.fnmatch(path.split("/")[0], p.rstrip("/"))
                       for p in pats)
        for path in (".env", ".git", "build", "build-asan"):
            self.assertTrue(ignored(path), "%s goes into the build context" % path)
        for path in ("dev.sh", "CMakeLists.txt", "cmake", "runtime", "sinks", "tests", "scripts",
                     "scripts/aggregate.lua", "tests/CMakeLists.txt"):
            self.assertFalse(ignored(path), "%s is needed by the build" % path)
        if shutil.which("git") and os.path.exists(os.path.join(ROOT, ".git")):
            p = subprocess.run(["git", "-C", ROOT, "check-ignore", "-q", ".env"])
            self.assertEqual(p.returncode, 0, ".env must be in .gitignore")


def dpkg_owner(path):
    for p in (path, os.path.realpath(path)):
        for q in {p, re.sub(r"^/usr/lib/", "/lib/", p), re.sub(r"^/lib/", "/usr/lib/", p)}:
            r = subprocess.run(["dpkg", "-S", q], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if r.returncode == 0:
                return r.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def dependency_closure(pkgs):
    """Installed packages reachable from `pkgs` through Depends/Pre-Depends."""
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}, ${Pre-Depends}", p], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        if r.returncode != 0:
            continue
        for dep in r.stdout.split(","):
            for alt in dep.split("|"):
                name = re.sub(r"\(.*?\)", "", alt).strip().split(":")[0]
                if name and installed(name):
                    todo.append(name)
                    break
    return seen


def installed(name):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", name], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return "install ok installed" in r.stdout


def main():
    global CSTREAM
    path, argv = _take_cstream_arg(sys.argv)
    CSTREAM = os.path.abspath(path or os.environ.get("CSTREAM") or os.path.join(ROOT, "build", "cstream"))
    unittest.main(argv=argv)


if __name__ == "__main__":
    main()
