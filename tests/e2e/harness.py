"""End-to-end harness: runs the real `drover server` binary and talks to it
through real AWS clients (boto3, AWS CLI v1 and v2).

- DroverServer: one server process on a temporary data dir (tempfile), a fixed
  test access key imported with --credentials, start/stop (SIGTERM, exit 0
  asserted)/restart on the same dir.
- DroverTestCase: a unittest.TestCase base class that starts one server per
  test class (setUpClass) and offers helpers to create resources, assert AWS
  errors and snapshot the whole visible state (to prove a refused request
  changed nothing).

The binary comes from $DROVER_BIN (default /work/main/build/drover).

With $DROVER_TEST_PG set (a PostgreSQL URL, e.g. postgresql://postgres@127.0.0.1:55432/postgres:
ctest's e2e_pg_* tests start one with scripts/pg.sh), every DroverServer gets a fresh
database there and runs with --store naming it; a restart reuses it, cleanup drops it.
"""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

DROVER_BIN = os.environ.get("DROVER_BIN", "/work/main/build/drover")
ACCESS_KEY = "AKIDDROVERE2ETEST0001"
SECRET_KEY = "droverE2eSecretKey0123456789abcdefXYZ"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # the server's default --account-id
AWS_CLI_V1 = [sys.executable, "-m", "awscli"]
AWS_CLI_V2 = ["/usr/bin/aws"]
PG_URL = os.environ.get("DROVER_TEST_PG", "")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0

# Never let the developer's ~/.aws or AWS_* variables leak into the clients of
# this test process: boto3 clients get explicit keys, region and endpoint, and
# the shared files point at nothing.
for _var in list(os.environ):
    if _var.startswith("AWS_") and _var != "AWS_MAX_ATTEMPTS":
        del os.environ[_var]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                  connect_timeout=5, read_timeout=30)
# The same, without botocore's client-side parameter validation: the request
# reaches the server as given, so the SERVER's validation is what is tested.
RAW = NO_RETRY.merge(Config(parameter_validation=False))


_SESSION = None


def _session():
    """One boto3 session for the process: its loader caches the service model, so
    making a client costs milliseconds instead of ~0.2s. (Clients are made from the
    main thread; a made client may then be used from any thread.)"""
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.session.Session()
    return _SESSION


def http(method, url, body=None, headers=None, timeout=10):
    """Sends one plain HTTP request; returns (status, headers dict lower-cased, body bytes)."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def pg_url_with_database(url, database):
    """The PostgreSQL URL `url` naming `database` instead."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def pg_exec(sql, url=None):
    """Runs one SQL statement with psql on the test PostgreSQL server; returns its output."""
    p = subprocess.run(["psql", url or PG_URL, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("psql %r failed: %s" % (sql, p.stderr))
    return p.stdout


# computeResources of a MANAGED compute environment (its values are AWS-shaped
# placeholders: Drover runs the jobs on this host).
MANAGED_RESOURCES = {
    "type": "EC2", "minvCpus": 0, "maxvCpus": 16, "instanceTypes": ["optimal"],
    "subnets": ["subnet-0123abcd"], "securityGroupIds": ["sg-0123abcd"],
    "instanceRole": "ecsInstanceRole"}

WAIT_DEADLINE = 30.0  # seconds: the default bound of every wait
WAIT_POLL = 0.05


def wait_for(what, fn, timeout=None):
    """Polls fn() until it returns something true (and returns that); raises
    AssertionError after `timeout` seconds."""
    timeout = WAIT_DEADLINE if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("gave up after %.0fs waiting for %s (last: %r)"
                                 % (timeout, what, last))
        time.sleep(WAIT_POLL)


def using_pg():
    """True when the servers of this run keep their state in PostgreSQL."""
    return bool(PG_URL)


class DroverServer:
    """One `drover server` process on a temporary data directory (and, with
    $DROVER_TEST_PG, its own fresh PostgreSQL database)."""

    def __init__(self, credentials=True, region=None, account_id=None, extra_args=(),
                 share=None, listen="127.0.0.1:0"):
        """share: another DroverServer whose data dir and database this one shares
        (several servers on one PostgreSQL store); listen: a fixed address, which
        start() then waits on instead of DIR/endpoint (that file is shared too)."""
        self.tmp = tempfile.mkdtemp(prefix="drover-e2e-")
        # Jobs run as unprivileged users and reach their scratch dirs under the data
        # dir: its parents must let others through (mkdtemp makes 0700).
        os.chmod(self.tmp, 0o711)
        self.data_dir = os.path.join(self.tmp, "data")
        self.region = region or REGION
        self.account_id = account_id or ACCOUNT_ID
        self.use_credentials_file = credentials
        self.extra_args = list(extra_args)
        self.access_key, self.secret_key = ACCESS_KEY, SECRET_KEY
        # Client-side files: the test key and a config naming the region.
        self.credentials_file = os.path.join(self.tmp, "credentials")
        with open(self.credentials_file, "w") as f:
            f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                    % (ACCESS_KEY, SECRET_KEY))
        self.config_file = os.path.join(self.tmp, "config")
        with open(self.config_file, "w") as f:
            f.write("[default]\nregion = %s\n" % self.region)
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.home)
        self.proc = None
        self.endpoint = None
        self.log_path = None
        self._starts = itertools.count(1)
        self.last_exit_code = None
        self.database = None
        self.store_url = None
        self.listen = listen
        if share is not None:
            self.data_dir, self.store_url = share.data_dir, share.store_url
        elif PG_URL:
            self.database = "d_" + uuid.uuid4().hex[:16]
            pg_exec("CREATE DATABASE %s" % self.database)
            self.store_url = pg_url_with_database(PG_URL, self.database)

    # --- process control -------------------------------------------------

    def command(self):
        cmd = [DROVER_BIN, "server", "--listen", self.listen, "--data", self.data_dir,
               "--region", self.region, "--account-id", self.account_id]
        if self.use_credentials_file:
            cmd += ["--credentials", self.credentials_file]
        if self.store_url:
            cmd += ["--store", self.store_url]
        return cmd + self.extra_args

    def spawn(self, log_name):
        """Starts the binary without waiting for it; returns (Popen, log path)."""
        log_path = os.path.join(self.tmp, log_name)
        log = open(log_path, "wb")
        try:
            proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        finally:
            log.close()
        return proc, log_path

    def log(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def start(self, timeout=START_TIMEOUT):
        """Starts the server and waits (bounded) until DIR/endpoint names a URL that
        answers GET /healthz. A stale endpoint file left by a crash is never trusted:
        it would not answer."""
        assert self.proc is None, "server already running"
        self.proc, self.log_path = self.spawn("server-%d.log" % next(self._starts))
        endpoint_file = os.path.join(self.data_dir, "endpoint")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise AssertionError("drover server exited with %s before serving:\n%s"
                                     % (rc, self.log()))
            try:
                if not self.listen.endswith(":0"):
                    url = "http://" + self.listen
                else:
                    with open(endpoint_file) as f:
                        url = f.read().strip()
            except OSError:
                url = ""
            if url.startswith("http://"):
                try:
                    status, _, _ = http("GET", url + "/healthz", timeout=1)
                    if status == 200:
                        self.endpoint = url
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError("drover server did not write a working %s within %.0fs:\n%s"
                             % (endpoint_file, timeout, self.log()))

    def stop(self, check=True, timeout=STOP_TIMEOUT):
        """Stops the server with SIGTERM. With check, asserts a clean exit: code 0 and
        DIR/endpoint removed. Returns the exit code."""
        if self.proc is None:
            return self.last_exit_code
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("drover server did not exit within %.0fs of SIGTERM:\n%s"
                                 % (timeout, self.log()))
        self.last_exit_code = rc
        if check:
            endpoint_left = os.path.exists(os.path.join(self.data_dir, "endpoint"))
            if rc != 0 or endpoint_left:
                raise AssertionError(
                    "drover server did not stop cleanly on SIGTERM: exit code %s (want 0), "
                    "DIR/endpoint %s (want removed); log:\n%s"
                    % (rc, "left behind" if endpoint_left else "removed", self.log()))
        return rc

    def restart(self, check=True):
        self.stop(check=check)
        return self.start()

    def exit_code(self):
        """The exit code if the started process has ended (e.g. crashed), else None."""
        return self.proc.poll() if self.proc is not None else None

    def revive(self):
        """Starts the server again on the same data dir after it died."""
        if self.proc is not None and self.proc.poll() is not None:
            self.last_exit_code = self.proc.returncode
            self.proc = None
        if self.proc is None:
            self.start()

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.database:
            database, self.database = self.database, None
            pg_exec("DROP DATABASE IF EXISTS %s WITH (FORCE)" % database)

    # --- clients ---------------------------------------------------------

    def client(self, region_name=None, access_key=None, secret_key=None, config=NO_RETRY):
        return _session().client(
            "batch",
            endpoint_url=self.endpoint,
            region_name=region_name or self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=config,
        )

    def cli_env(self, credentials_file=None, config_file=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "HOME": self.home,
            "AWS_SHARED_CREDENTIALS_FILE": credentials_file or self.credentials_file,
            "AWS_CONFIG_FILE": config_file or self.config_file,
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
            "AWS_PAGER": "",
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        return env

    def cli(self, args, version=1, credentials_file=None, config_file=None, timeout=60):
        """Runs `aws batch ARGS` with CLI v1 or v2 against this server.
        Returns (exit code, parsed JSON or raw stdout, stderr)."""
        base = AWS_CLI_V1 if version == 1 else AWS_CLI_V2
        cmd = base + ["batch"] + list(args) + ["--endpoint-url", self.endpoint,
                                                "--output", "json"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=self.cli_env(credentials_file, config_file))
        out = p.stdout
        try:
            out = json.loads(p.stdout) if p.stdout.strip() else p.stdout
        except ValueError:
            pass
        return p.returncode, out, p.stderr

    # --- ARNs --------------------------------------------------------------

    def arn(self, kind, resource):
        return "arn:aws:batch:%s:%s:%s/%s" % (self.region, self.account_id, kind, resource)


def strip_metadata(resp):
    resp = dict(resp)
    resp.pop("ResponseMetadata", None)
    return resp


class DroverTestCase(unittest.TestCase):
    """Starts one server per test class. Subclasses may set `server_options`."""

    server_options = {}
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = DroverServer(**cls.server_options)
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.batch = cls.server.client()
        cls.raw = cls.server.client(config=RAW)
        cls._names = itertools.count(1)

    @classmethod
    def tearDownClass(cls):
        # Every class ends with a clean SIGTERM shutdown (exit code 0).
        cls.server.stop(check=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self.server.proc is None or self.server.exit_code() is not None:
            # An earlier test killed the server: start it again on the same data dir
            # so that one crash is reported once, not blamed on every later test.
            self.server.revive()
            cls = type(self)
            cls.batch = self.server.client()
            cls.raw = self.server.client(config=RAW)

    def tearDown(self):
        rc = self.server.exit_code()
        if rc is not None:
            self.fail("the drover server died during this test (exit code %s); log tail:\n%s"
                      % (rc, self.server.log()[-2000:]))
        super().tearDown()

    def kill_and_restart_server(self):
        """SIGKILLs this class's server (nothing flushed, nothing handed over), starts
        it again on the same data dir and points the class's clients at it."""
        self.server.kill()
        self.server.start()
        cls = type(self)
        cls.batch = self.server.client()
        cls.raw = self.server.client(config=RAW)

    def restart_server(self, check=True):
        """Stops (SIGTERM) and starts this class's server on the same data dir and
        points the class's clients at its new port. Returns the exit code of the
        stopped process."""
        rc = self.server.stop(check=check)
        self.server.start()
        cls = type(self)
        cls.batch = self.server.client()
        cls.raw = self.server.client(config=RAW)
        return rc

    # --- waiting -----------------------------------------------------------

    def wait_for(self, what, fn, timeout=None):
        """Polls fn() until it returns something true; fails after `timeout` seconds."""
        return wait_for(what, fn, timeout)

    # --- names and ARNs ----------------------------------------------------

    def name(self, prefix="r"):
        """A resource name unique within this class's server."""
        return "%s-%s-%d" % (prefix, self._testMethodName[5:25].replace("_", "-").strip("-"),
                             next(self._names))

    def arn(self, kind, resource):
        return self.server.arn(kind, resource)

    # --- errors ------------------------------------------------------------

    def assertClientError(self, fn, *args, error_code="ClientException", http_status=400,
                          contains=None, **kwargs):
        """Calls fn(*args, **kwargs); asserts it raises an AWS error `error_code` with
        HTTP `http_status` (and a message containing `contains`). Returns the error
        response."""
        with self.assertRaises(ClientError) as cm:
            fn(*args, **kwargs)
        err = cm.exception.response
        self.assertEqual(err["Error"]["Code"], error_code, err)
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], http_status, err)
        message = err["Error"].get("Message", "")
        self.assertTrue(message, "error %s has no message" % error_code)
        if contains is not None:
            for frag in [contains] if isinstance(contains, str) else contains:
                self.assertIn(frag.lower(), message.lower(), err)
        return err

    def assertRefusedUnchanged(self, fn, *args, contains=None, **kwargs):
        """Asserts the call is refused with ClientException (HTTP 400) AND that the
        whole visible state is identical before and after."""
        before = self.snapshot()
        err = self.assertClientError(fn, *args, contains=contains, **kwargs)
        after = self.snapshot()
        self.assertEqual(before, after, "a refused request changed the state")
        return err

    # --- state -------------------------------------------------------------

    def snapshot(self, client=None):
        """Everything the API shows: every resource of every type (all pages) and
        the tags of each."""
        b = client or self.batch
        state = {}
        ces = []
        for page in b.get_paginator("describe_compute_environments").paginate():
            ces += page["computeEnvironments"]
        state["computeEnvironments"] = ces
        queues = []
        for page in b.get_paginator("describe_job_queues").paginate():
            queues += page["jobQueues"]
        state["jobQueues"] = queues
        jds = []
        for page in b.get_paginator("describe_job_definitions").paginate():
            jds += page["jobDefinitions"]
        state["jobDefinitions"] = jds
        sp_arns = []
        for page in b.get_paginator("list_scheduling_policies").paginate():
            sp_arns += [p["arn"] for p in page["schedulingPolicies"]]
        state["schedulingPolicies"] = (
            b.describe_scheduling_policies(arns=sp_arns)["schedulingPolicies"] if sp_arns else [])
        crs = []
        for page in b.get_paginator("list_consumable_resources").paginate():
            crs += page["consumableResources"]
        state["consumableResources"] = [
            strip_metadata(b.describe_consumable_resource(
                consumableResource=c["consumableResourceArn"])) for c in crs]
        arns = ([c["computeEnvironmentArn"] for c in ces] + [q["jobQueueArn"] for q in queues]
                + [j["jobDefinitionArn"] for j in jds] + sp_arns
                + [c["consumableResourceArn"] for c in crs])
        state["tags"] = {a: b.list_tags_for_resource(resourceArn=a)["tags"] for a in arns}
        return state

    # --- resource helpers --------------------------------------------------

    def make_ce(self, name=None, managed=False, **kwargs):
        name = name or self.name("ce")
        params = {"computeEnvironmentName": name, "type": "MANAGED" if managed else "UNMANAGED"}
        if managed and "computeResources" not in kwargs:
            params["computeResources"] = dict(MANAGED_RESOURCES)
        params.update(kwargs)
        resp = self.batch.create_compute_environment(**params)
        self.assertEqual(resp["computeEnvironmentName"], name)
        self.assertEqual(resp["computeEnvironmentArn"], self.arn("compute-environment", name))
        return resp["computeEnvironmentArn"]

    def make_queue(self, name=None, ces=None, priority=1, **kwargs):
        name = name or self.name("jq")
        if ces is None:
            ces = [self.make_ce()]
        order = [{"order": i + 1, "computeEnvironment": ce} for i, ce in enumerate(ces)]
        resp = self.batch.create_job_queue(jobQueueName=name, priority=priority,
                                           computeEnvironmentOrder=order, **kwargs)
        self.assertEqual(resp["jobQueueArn"], self.arn("job-queue", name))
        return resp["jobQueueArn"]

    def register_jd(self, name=None, **kwargs):
        name = name or self.name("jd")
        params = {"jobDefinitionName": name, "type": "container"}
        if not any(k in kwargs for k in ("containerProperties", "ecsProperties",
                                          "eksProperties", "nodeProperties")):
            params["containerProperties"] = {
                "image": "busybox", "command": ["echo", "hello"],
                "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                         {"type": "MEMORY", "value": "512"}]}
        params.update(kwargs)
        return strip_metadata(self.batch.register_job_definition(**params))

    def make_policy(self, name=None, **kwargs):
        name = name or self.name("sp")
        resp = self.batch.create_scheduling_policy(name=name, **kwargs)
        self.assertEqual(resp["arn"], self.arn("scheduling-policy", name))
        return resp["arn"]

    def make_consumable(self, name=None, **kwargs):
        name = name or self.name("cr")
        resp = self.batch.create_consumable_resource(consumableResourceName=name, **kwargs)
        self.assertEqual(resp["consumableResourceArn"], self.arn("consumable-resource", name))
        return resp["consumableResourceArn"]

    def describe_ce(self, ref):
        got = self.batch.describe_compute_environments(computeEnvironments=[ref])
        self.assertEqual(len(got["computeEnvironments"]), 1, got)
        return got["computeEnvironments"][0]

    def describe_queue(self, ref):
        got = self.batch.describe_job_queues(jobQueues=[ref])
        self.assertEqual(len(got["jobQueues"]), 1, got)
        return got["jobQueues"][0]

    def describe_policy(self, arn):
        got = self.batch.describe_scheduling_policies(arns=[arn])
        self.assertEqual(len(got["schedulingPolicies"]), 1, got)
        return got["schedulingPolicies"][0]

    def disable_and_delete_queue(self, ref):
        self.batch.update_job_queue(jobQueue=ref, state="DISABLED")
        self.batch.delete_job_queue(jobQueue=ref)


__all__ = ["DroverServer", "DroverTestCase", "http", "strip_metadata", "ClientError", "using_pg", "pg_exec",
           "ACCESS_KEY", "SECRET_KEY", "REGION", "ACCOUNT_ID", "DROVER_BIN", "NO_RETRY", "RAW",
           "AWS_CLI_V1", "AWS_CLI_V2"]
