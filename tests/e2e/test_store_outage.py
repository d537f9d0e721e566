"""The database goes away: with --store postgres://, writes fail with ServerException while
PostgreSQL is down and change nothing, and the server works again, without a restart, once
it is back. The server gets a PostgreSQL cluster of its own (scripts/pg.sh), which the test
stops and starts again. (The SQLite analogue is test_disk_full.)"""
import os
import random
import shutil
import socket
import subprocess
import tempfile
import unittest

import botocore.exceptions

from harness import MANAGED_RESOURCES, DroverServer, using_pg, wait_for

PG_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "pg.sh")


def free_port():
    """A free port below Linux's ephemeral range (where a client socket in TIME_WAIT could
    keep PostgreSQL from listening again after its restart)."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port in 20000-32000")


@unittest.skipUnless(using_pg(), "needs PostgreSQL (DROVER_TEST_PG): a database outage applies "
                     "to --store postgres://; the SQLite analogue is test_disk_full")
class StoreOutageTest(unittest.TestCase):

    def pg(self, *args):
        p = subprocess.run(["bash", PG_SH] + list(args), capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.strip()

    def server_on_own_cluster(self):
        """A started server on a PostgreSQL cluster of its own (not the shared test server),
        which the test may stop; returns (server, cluster directory, port)."""
        tmp = tempfile.mkdtemp(prefix="drover-pg-outage-")
        os.chmod(tmp, 0o755)
        self.addCleanup(shutil.rmtree, tmp, True)
        cluster, port = os.path.join(tmp, "pg"), free_port()
        url = self.pg("start", cluster, str(port))
        self.addCleanup(self.pg, "stop", cluster)
        server = DroverServer()
        self.addCleanup(server.cleanup)
        server.store_url = url
        server.start()
        return server, cluster, port

    def test_writes_fail_while_the_database_is_down_and_work_again_after(self):
        """Given a server whose PostgreSQL stops, creates should fail with ServerException 500 and leave nothing behind; once PostgreSQL is back, the same server should answer and store writes again, and everything acknowledged should survive a restart."""
        server, cluster, port = self.server_on_own_cluster()
        batch = server.client()
        batch.create_scheduling_policy(name="before")

        self.pg("stop", cluster)
        for name in ("down1", "down2"):
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                batch.create_scheduling_policy(name=name)
            self.assertEqual(cm.exception.response["Error"]["Code"], "ServerException")
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        self.assertIsNone(server.exit_code(), "the server died when its database went away")

        self.pg("resume", cluster, str(port))
        listed = {p["arn"].rsplit("/", 1)[1]
                  for p in batch.list_scheduling_policies()["schedulingPolicies"]}
        self.assertEqual(listed, {"before"})  # nothing of the failed writes
        batch.create_scheduling_policy(name="after")
        server.stop()
        server.start()
        batch = server.client()
        listed = {p["arn"].rsplit("/", 1)[1]
                  for p in batch.list_scheduling_policies()["schedulingPolicies"]}
        self.assertEqual(listed, {"before", "after"})

    def test_the_leader_follows_while_the_database_is_down_and_leads_again_after(self):
        """Given a server leading on its own PostgreSQL with a job running, when PostgreSQL stops the server should lose the scheduler lease and step down without exiting (the job running on); once PostgreSQL is back it should lead again, hear the job's exit, and run new jobs."""
        server, cluster, port = self.server_on_own_cluster()
        batch = server.client()
        batch.create_compute_environment(computeEnvironmentName="ce", type="MANAGED",
                                         computeResources=MANAGED_RESOURCES)
        batch.create_job_queue(jobQueueName="q", priority=1,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ce"}])
        batch.register_job_definition(
            jobDefinitionName="nap", type="container",
            containerProperties={"image": "busybox", "command": ["sleep", "2"],
                                 "resourceRequirements": [{"type": "VCPU", "value": "0.25"},
                                                          {"type": "MEMORY", "value": "32"}]})

        def status(job_id):
            return batch.describe_jobs(jobs=[job_id])["jobs"][0]

        during = batch.submit_job(jobName="during", jobQueue="q", jobDefinition="nap")["jobId"]
        wait_for("the job RUNNING", lambda: status(during)["status"] == "RUNNING")

        self.pg("stop", cluster)
        wait_for("the lease lost", lambda: "following until this server holds it again"
                 in server.log(), timeout=20)
        self.assertIsNone(server.exit_code(), "the server exited when it lost the lease")

        self.pg("resume", cluster, str(port))
        wait_for("the lease taken again",
                 lambda: server.log().count("this server holds the scheduler lease") == 2,
                 timeout=30)
        job = wait_for("the job SUCCEEDED after the outage",
                       lambda: (lambda j: j if j["status"] in ("SUCCEEDED", "FAILED") else None)(
                           status(during)), timeout=60)
        self.assertEqual(job["status"], "SUCCEEDED", job.get("statusReason"))
        self.assertEqual(len(job["attempts"]), 1, job["attempts"])
        after = batch.submit_job(jobName="after", jobQueue="q", jobDefinition="nap",
                                 containerOverrides={"command": ["true"]})["jobId"]
        wait_for("a job submitted after the outage SUCCEEDED",
                 lambda: status(after)["status"] == "SUCCEEDED", timeout=60)
        self.assertIsNone(server.exit_code())


if __name__ == "__main__":
    unittest.main()
