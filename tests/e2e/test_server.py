"""The server process: clean SIGTERM shutdown, restart persistence, the data
directory lock, and first-start credentials."""

import configparser
import os
import socket
import time
import stat
import subprocess
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor

import botocore.exceptions

from harness import MANAGED_RESOURCES, DroverServer, DroverTestCase, http, using_pg


class PersistenceTest(DroverTestCase):

    def populate(self):
        """One of every resource (with tags), a deregistered JD revision, updates."""
        b = self.batch
        tags = {"persist": "yes", "n": "1"}
        ec2 = self.make_ce("p-ec2", managed=True, tags=tags)
        b.update_compute_environment(computeEnvironment=ec2, computeResources={"maxvCpus": 48})
        fargate = self.make_ce("p-fargate", managed=True, state="DISABLED", computeResources={
            "type": "FARGATE_SPOT", "maxvCpus": 8, "subnets": ["subnet-1"]})
        unmanaged = self.make_ce("p-unmanaged", unmanagedvCpus=4)
        sp = self.make_policy("p-policy", tags=tags, fairsharePolicy={
            "shareDecaySeconds": 600, "computeReservation": 5,
            "shareDistribution": [{"shareIdentifier": "a*", "weightFactor": 0.25}]})
        self.make_queue("p-fair", ces=[ec2, unmanaged], priority=9, schedulingPolicyArn=sp,
                        tags=tags)
        fifo = self.make_queue("p-fifo", ces=[fargate], priority=1)
        b.update_job_queue(jobQueue=fifo, state="DISABLED", priority=2)
        for i in range(3):
            self.register_jd("p-jd", tags={"rev": str(i + 1)},
                             retryStrategy={"attempts": i + 1})
        b.deregister_job_definition(jobDefinition="p-jd:2")
        self.register_jd("p-multi", type="multinode", nodeProperties={
            "numNodes": 2, "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": {"image": "busybox"}}]})
        cr = self.make_consumable("p-cr", totalQuantity=5, resourceType="NON_REPLENISHABLE",
                                  tags=tags)
        b.update_consumable_resource(consumableResource=cr, operation="ADD", quantity=3)
        b.tag_resource(resourceArn=fifo, tags={"added": "later"})
        b.untag_resource(resourceArn=ec2, tagKeys=["n"])
        # Deleted resources must stay deleted.
        self.make_ce("p-deleted", state="DISABLED")
        b.delete_compute_environment(computeEnvironment="p-deleted")

    def test_restart_keeps_every_resource_unchanged(self):
        """Given one of every resource (tags, updates, a deregistered revision), a SIGTERM restart on the same dir should describe identically."""
        self.populate()
        before = self.snapshot()
        self.assertEqual(len(before["computeEnvironments"]), 3)
        self.assertEqual(len(before["jobDefinitions"]), 4)
        rc = self.restart_server(check=False)
        after = self.snapshot()
        self.assertEqual(after, before)
        # The revision counter survives too, and the state is still writable.
        self.assertEqual(self.register_jd("p-jd")["revision"], 4)
        self.batch.update_job_queue(jobQueue="p-fair", priority=10)
        self.assertEqual(self.describe_queue("p-fair")["priority"], 10)
        self.assertEqual(rc, 0, "SIGTERM exit code before restart: %s (want 0)" % rc)

    def test_restart_twice_without_changes_is_stable(self):
        """Given a second restart with no requests in between, the state should still be identical."""
        self.make_ce("p-stable", tags={"k": "v"})
        before = self.snapshot()
        codes = [self.restart_server(check=False) for _ in range(2)]
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(codes, [0, 0], "SIGTERM exit codes")


class ConcurrencyTest(DroverTestCase):

    def clients(self, n):
        """n separate clients (separate connection pools), made up front: making a
        boto3 client is slow, sending with one is not."""
        return [self.server.client() for _ in range(n)]

    def test_concurrent_creates_all_succeed_and_survive_restart(self):
        """Given 60 creates from 8 threads at once, all should succeed, be described, and survive a restart."""
        names = ["conc-%02d" % i for i in range(60)]
        clients = self.clients(8)

        def create(name):
            client = clients[int(name[-2:]) % 8]
            if name.endswith(("0", "5")):
                return client.create_scheduling_policy(name=name)["arn"]
            return client.create_compute_environment(computeEnvironmentName=name,
                                                     type="UNMANAGED")["computeEnvironmentArn"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            arns = list(pool.map(create, names))
        self.assertEqual(len(set(arns)), 60)
        before = self.snapshot()
        self.assertEqual(len(before["computeEnvironments"]) + len(before["schedulingPolicies"]),
                         60)
        self.restart_server(check=False)
        self.assertEqual(self.snapshot(), before)

    def test_concurrent_duplicate_creates_exactly_one_wins(self):
        """Given 16 concurrent creates of the same CE name, exactly one should succeed and the rest get 'already exists'."""
        clients = self.clients(16)

        def create(i):
            client = clients[i]
            try:
                client.create_compute_environment(computeEnvironmentName="race", type="UNMANAGED",
                                                  unmanagedvCpus=i)
                return "ok"
            except client.exceptions.ClientException as e:
                return "exists" if "already exists" in str(e) else str(e)

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(create, range(16)))
        self.assertEqual(sorted(results), ["exists"] * 15 + ["ok"], results)
        self.assertEqual(len(self.batch.describe_compute_environments(
            computeEnvironments=["race"])["computeEnvironments"]), 1)

    def test_concurrent_job_definition_registrations_get_distinct_revisions(self):
        """Given 20 concurrent registrations of one name, the revisions should be exactly 1..20."""
        clients = self.clients(8)

        def register(i):
            return clients[i % 8].register_job_definition(
                jobDefinitionName="conc-jd", type="container",
                containerProperties={"image": "busybox"})["revision"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            revisions = list(pool.map(register, range(20)))
        self.assertEqual(sorted(revisions), list(range(1, 21)))


class ProcessTest(DroverTestCase):

    def test_sigterm_exits_zero_and_removes_endpoint(self):
        """Given a running server, SIGTERM should make it exit 0 and remove DIR/endpoint."""
        server = DroverServer()
        self.addCleanup(server.cleanup)
        server.start()
        endpoint_file = os.path.join(server.data_dir, "endpoint")
        with open(endpoint_file) as f:
            self.assertRegex(f.read(), r"^http://127\.0\.0\.1:\d+\n$")
        rc = server.stop(check=False)
        self.assertEqual(rc, 0, "exit code after SIGTERM\n" + server.log())
        self.assertFalse(os.path.exists(endpoint_file), "DIR/endpoint left after SIGTERM")

    def test_sigint_exits_zero(self):
        """Given a running server, SIGINT should make it exit 0 and remove DIR/endpoint."""
        server = DroverServer()
        self.addCleanup(server.cleanup)
        server.start()
        proc, server.proc = server.proc, None
        proc.send_signal(2)
        rc = proc.wait(timeout=15)
        self.assertEqual(rc, 0, "exit code after SIGINT\n" + server.log())
        self.assertFalse(os.path.exists(os.path.join(server.data_dir, "endpoint")))

    @unittest.skipIf(using_pg(), "with --store postgres:// several servers may share a data "
                     "dir by design (test_multi_server)")
    def test_second_server_on_same_dir_fails_fast(self):
        """Given a running server, a second one on the same data dir should exit non-zero quickly with 'already using data dir', leaving the first serving."""
        self.make_ce("lock-ce")
        endpoint_file = os.path.join(self.server.data_dir, "endpoint")
        with open(endpoint_file) as f:
            endpoint_before = f.read()
        proc, log_path = self.server.spawn("second.log")
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.fail("a second server on the same data dir kept running")
        with open(log_path, errors="replace") as f:
            output = f.read()
        self.assertNotEqual(rc, 0, output)
        self.assertIn("already using data dir", output)
        # The first server is untouched.
        with open(endpoint_file) as f:
            self.assertEqual(f.read(), endpoint_before)
        self.assertEqual(http("GET", self.server.endpoint + "/healthz")[0], 200)
        self.assertEqual(self.describe_ce("lock-ce")["status"], "VALID")

    def test_first_start_without_credentials_writes_them(self):
        """Given no --credentials, the first start should write DIR/credentials (0600) and DIR/config, which the CLI can use; a restart keeps the key."""
        server = DroverServer(credentials=False, region="eu-west-1", account_id="210987654321")
        self.addCleanup(server.cleanup)
        server.start()
        creds_path = os.path.join(server.data_dir, "credentials")
        config_path = os.path.join(server.data_dir, "config")
        self.assertEqual(stat.S_IMODE(os.stat(creds_path).st_mode), 0o600)
        self.assertTrue(os.path.exists(config_path))
        creds = configparser.ConfigParser()
        creds.read(creds_path)
        key = creds["default"]["aws_access_key_id"]
        secret = creds["default"]["aws_secret_access_key"]
        self.assertRegex(key, r"^[A-Za-z0-9]{16,128}$")
        self.assertGreaterEqual(len(secret), 16)
        config = configparser.ConfigParser()
        config.read(config_path)
        self.assertEqual(config["default"]["region"], "eu-west-1")
        # The test key was never imported: it is refused.
        self.assertClientError(server.client().describe_job_queues,
                               error_code="UnrecognizedClientException", http_status=403)
        # The CLI works with exactly the files the server wrote (region from config).
        rc, out, err = server.cli(["create-compute-environment", "--compute-environment-name",
                                   "firststart", "--type", "UNMANAGED"],
                                  credentials_file=creds_path, config_file=config_path)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out["computeEnvironmentArn"],
                         "arn:aws:batch:eu-west-1:210987654321:compute-environment/firststart")
        # A restart neither rotates the key nor rewrites the files.
        mtime = os.stat(creds_path).st_mtime_ns
        server.stop(check=False)
        server.start()
        self.assertEqual(os.stat(creds_path).st_mtime_ns, mtime)
        client = server.client(access_key=key, secret_key=secret)
        got = client.describe_compute_environments(computeEnvironments=["firststart"])
        self.assertEqual(len(got["computeEnvironments"]), 1)

    def test_imported_credentials_do_not_write_a_credentials_file(self):
        """Given --credentials, the server should accept that key and not write DIR/credentials."""
        self.assertFalse(os.path.exists(os.path.join(self.server.data_dir, "credentials")))
        self.assertEqual(self.batch.describe_job_queues()["ResponseMetadata"]["HTTPStatusCode"],
                         200)

    def test_bad_credentials_file_fails_fast(self):
        """Given a --credentials file without a key, the server should exit non-zero at once."""
        server = DroverServer()
        self.addCleanup(server.cleanup)
        with open(server.credentials_file, "w") as f:
            f.write("[default]\nregion = us-east-1\n")
        proc, log_path = server.spawn("bad.log")
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.fail("server started with a credentials file holding no key")
        self.assertNotEqual(rc, 0)
        self.assertFalse(os.path.exists(os.path.join(server.data_dir, "endpoint")))

    def test_store_that_is_not_a_postgres_url_fails_fast(self):
        """Given --store with a URL that is not postgres:// or postgresql://, the server should exit with code 2 at once, naming the flag, and write no endpoint."""
        server = DroverServer(extra_args=["--store", "mysql://localhost/drover"])
        self.addCleanup(server.cleanup)
        server.store_url = None  # only the bad --store
        proc, log_path = server.spawn("bad-store.log")
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.fail("server started with --store mysql://")
        self.assertEqual(rc, 2)
        with open(log_path) as f:
            self.assertIn("--store", f.read())
        self.assertFalse(os.path.exists(os.path.join(server.data_dir, "endpoint")))


def raw_request(port, data, timeout=10):
    """Sends raw bytes on a new connection; returns what the server answered (until close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


class ConnectionTest(unittest.TestCase):
    """Limits on what one connection or many may ask, and the graceful stop."""

    def start(self, *extra):
        server = DroverServer(extra_args=list(extra))
        self.addCleanup(server.cleanup)
        server.start()
        return server, int(server.endpoint.rsplit(":", 1)[1])

    def test_headers_over_8_kib_get_431_client_exception(self):
        """Given a request whose headers exceed 8 KiB, the server should answer 431 with a ClientException and go on serving."""
        server, port = self.start()
        req = (b"POST /v1/describejobqueues HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 +
               b"\r\nContent-Length: 2\r\n\r\n{}")
        answer = raw_request(port, req)
        self.assertTrue(answer.startswith(b"HTTP/1.1 431"), answer[:200])
        self.assertIn(b"ClientException", answer)
        self.assertEqual(http("GET", server.endpoint + "/healthz")[0], 200)

    def test_a_connection_over_the_limit_gets_429_and_the_others_are_served(self):
        """Given --max-connections 3 and three open connections, a fourth should be answered 429 TooManyRequestsException and closed; once one closes, a new one is served."""
        server, port = self.start("--max-connections", "3")
        held = []
        try:
            # Three connections, each accepted and served (and kept alive). The harness's
            # own readiness probe may still count for a moment after it closed: until the
            # server has seen that close, a connection here may get 429, and is retried.
            deadline = time.monotonic() + 5
            while len(held) < 3:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = s.recv(65536)
                if answer.startswith(b"HTTP/1.1 429") and time.monotonic() < deadline:
                    s.close()
                    time.sleep(0.1)
                    continue
                self.assertIn(b"200", answer)
                held.append(s)
            answer = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(answer.startswith(b"HTTP/1.1 429"), answer[:200])
            self.assertIn(b"TooManyRequestsException", answer)
            held.pop().close()
            deadline = time.monotonic() + 5
            while True:  # the server notices the close
                answer = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                           b"Connection: close\r\n\r\n")
                if answer.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:200])
        finally:
            for s in held:
                s.close()

    def test_sigterm_answers_the_request_in_flight_and_closes_idle_connections(self):
        """Given an idle keep-alive connection and a request half sent, SIGTERM should close the idle one at once, still answer the half-sent request once it is complete (with Connection: close), and exit 0."""
        server, port = self.start()
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200", idle.recv(65536))  # kept alive, now idle
        busy = socket.create_connection(("127.0.0.1", port), timeout=10)
        busy.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200", busy.recv(65536))  # accepted and served
        body = b'{"jobQueues":[]}'
        busy.sendall(b"POST /v1/describejobqueues HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
        time.sleep(0.5)  # the server has read the first bytes: the request is in flight
        proc = server.proc
        proc.send_signal(15)
        self.assertEqual(idle.recv(65536), b"", "the idle connection should be closed")
        self.assertIsNone(proc.poll(), "the server exited before answering the request")
        busy.sendall(body[5:])
        answer = b""
        while True:
            chunk = busy.recv(65536)
            if not chunk:
                break
            answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 "), answer[:200])
        self.assertIn(b"Connection: close", answer)
        rc = proc.wait(timeout=15)
        server.proc = None
        self.assertEqual(rc, 0, server.log())
        idle.close()
        busy.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


class OverloadTest(unittest.TestCase):

    def test_a_flood_gets_429s_memory_stays_bounded_and_nothing_acknowledged_is_lost(self):
        """Given --max-pending-writes 2 and 64 connections submitting as fast as they can for 4 s, some SubmitJob calls should get 429 TooManyRequestsException and none any other error, the server's memory should grow only with what it acknowledged, and every acknowledged job should exist with its name after a restart."""
        server = DroverServer(extra_args=["--max-pending-writes", "2"])
        self.addCleanup(server.cleanup)
        server.start()
        batch = server.client()
        batch.create_compute_environment(  # DISABLED: the jobs stay queued, nothing runs
            computeEnvironmentName="ce", type="MANAGED", state="DISABLED",
            computeResources=MANAGED_RESOURCES)
        batch.create_job_queue(jobQueueName="q", priority=1,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ce"}])
        batch.register_job_definition(jobDefinitionName="jd", type="container",
                                      containerProperties={"image": "busybox",
                                                           "command": ["true"], "vcpus": 1,
                                                           "memory": 16})
        rss_before = rss_kib(server.proc.pid)
        clients = [server.client() for _ in range(64)]
        acked, throttled, other = {}, [0], []
        lock = threading.Lock()
        deadline = time.monotonic() + 4

        def flood(worker, client):
            n = 0
            while time.monotonic() < deadline:
                name = "w%d-%d" % (worker, n)
                n += 1
                try:
                    job_id = client.submit_job(jobName=name, jobQueue="q",
                                               jobDefinition="jd")["jobId"]
                    with lock:
                        acked[job_id] = name
                except botocore.exceptions.ClientError as e:
                    with lock:
                        if e.response["Error"]["Code"] == "TooManyRequestsException":
                            throttled[0] += 1
                        else:
                            other.append(str(e))
                except Exception as e:  # connection errors count as failures too
                    with lock:
                        other.append(repr(e))

        with ThreadPoolExecutor(64) as pool:
            list(pool.map(lambda a: flood(*a), enumerate(clients)))
        rss_after = rss_kib(server.proc.pid)
        print("flood: %d acknowledged, %d throttled (429); RSS %d -> %d KiB"
              % (len(acked), throttled[0], rss_before, rss_after))
        self.assertEqual(other, [], "errors other than 429")
        self.assertGreater(len(acked), 0)
        self.assertGreater(throttled[0], 0, "64 connections against 2 pending writes: no 429")
        # Each acknowledged job is kept in memory (a few KiB); nothing else may pile up.
        self.assertLess(rss_after - rss_before, 32 * 1024 + 16 * len(acked),
                        "memory grew by more than the acknowledged jobs account for")
        server.restart()
        batch = server.client()
        ids = list(acked)
        for i in range(0, len(ids), 100):
            jobs = batch.describe_jobs(jobs=ids[i:i + 100])["jobs"]
            self.assertEqual({j["jobId"]: j["jobName"] for j in jobs},
                             {k: acked[k] for k in ids[i:i + 100]}, "acknowledged jobs lost")


if __name__ == "__main__":
    unittest.main()
