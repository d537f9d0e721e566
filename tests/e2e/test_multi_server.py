"""Several servers on one PostgreSQL store (--store postgres://, a shared data dir): every
server answers the API, exactly one (the holder of the store's lease) schedules and runs jobs,
and when it is killed another takes over within seconds, re-attaching to the attempts it
started: no job is lost and none runs twice."""
import os
import signal
import socket
import time
import unittest

from harness import MANAGED_RESOURCES, DroverServer, using_pg, wait_for


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(using_pg(), "needs PostgreSQL (DROVER_TEST_PG): several servers share "
                     "one --store postgres://; run as e2e_pg_test_multi_server")
class MultiServerTest(unittest.TestCase):

    def setUp(self):
        self.a = DroverServer(listen="127.0.0.1:%d" % free_port(),
                              extra_args=["--min-time-seconds", "1"])
        self.addCleanup(self.a.cleanup)
        self.a.start()
        self.b = DroverServer(share=self.a, listen="127.0.0.1:%d" % free_port(),
                              extra_args=["--min-time-seconds", "1"])
        self.addCleanup(self.b.cleanup)
        self.b.start()
        self.ba, self.bb = self.a.client(), self.b.client()

    def leader(self):
        """The server whose log says it holds the lease (exactly one must)."""
        leaders = [s for s in (self.a, self.b)
                   if s.proc is not None and "holds the scheduler lease" in s.log()]
        return leaders

    def status(self, client, job_id):
        jobs = client.describe_jobs(jobs=[job_id])["jobs"]
        return jobs[0]["status"] if jobs else None

    def test_writes_on_any_server_and_a_takeover_that_loses_and_repeats_nothing(self):
        """Given two servers on one store, resources and jobs created through either should be seen by both; exactly one should lead; after the leader is killed with SIGKILL the other should take over, every job should SUCCEED with exactly one attempt, and a job cancelled through the follower should be cancelled by the leader."""
        leaders = wait_for("a leader", self.leader)
        self.assertEqual(len(leaders), 1, "exactly one server leads")
        leader, follower = leaders[0], (self.b if leaders[0] is self.a else self.a)
        lc, fc = leader.client(), follower.client()

        # Resources created through the follower are seen by the leader.
        fc.create_compute_environment(
            computeEnvironmentName="ce", type="MANAGED",
            computeResources=MANAGED_RESOURCES)
        fc.create_job_queue(jobQueueName="q", priority=1,
                            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ce"}])
        wait_for("the queue on the leader",
                 lambda: lc.describe_job_queues(jobQueues=["q"])["jobQueues"])
        # Revisions registered alternately on both servers: no gaps, no duplicates.
        revisions = []
        for client in (fc, lc, fc, lc):
            revisions.append(client.register_job_definition(
                jobDefinitionName="sleep", type="container",
                containerProperties={"image": "busybox", "command": ["sleep", "2"],
                                     "resourceRequirements": [
                                         {"type": "VCPU", "value": "0.25"},
                                         {"type": "MEMORY", "value": "32"}]})["revision"])
            want = revisions[-1]
            for c in (fc, lc):  # both see it before the next one is registered
                wait_for("revision %d everywhere" % want, lambda c=c: any(
                    d["revision"] == want for d in c.describe_job_definitions(
                        jobDefinitionName="sleep")["jobDefinitions"]))
        self.assertEqual(revisions, [1, 2, 3, 4])

        # Jobs through both servers; one waits on another and is cancelled via the follower.
        ids = []
        for i in range(12):
            client = fc if i % 2 else lc
            ids.append(client.submit_job(jobName="j%d" % i, jobQueue="q",
                                         jobDefinition="sleep")["jobId"])
        blocked = fc.submit_job(jobName="blocked", jobQueue="q", jobDefinition="sleep",
                                dependsOn=[{"jobId": ids[-1]}])["jobId"]
        wait_for("the dependent job PENDING on the follower",
                 lambda: self.status(fc, blocked) == "PENDING")
        fc.cancel_job(jobId=blocked, reason="not needed")
        wait_for("the cancel applied by the leader",
                 lambda: self.status(lc, blocked) == "FAILED")
        self.assertTrue(lc.describe_jobs(jobs=[blocked])["jobs"][0]["isCancelled"])

        # Kill the leader while attempts run.
        wait_for("jobs running", lambda: sum(
            j["status"] == "RUNNING" for j in fc.describe_jobs(jobs=ids)["jobs"]) >= 2)
        killed_at = time.monotonic()
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait()
        leader.proc = None
        wait_for("the follower to take over", lambda: "holds the scheduler lease" in follower.log(),
                 timeout=10)
        took_over = time.monotonic() - killed_at
        print("takeover after %.1f s" % took_over)
        self.assertLess(took_over, 10)

        def all_done():
            jobs = fc.describe_jobs(jobs=ids)["jobs"]
            return jobs if all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs) else None
        jobs = wait_for("every job finished on the new leader", all_done, timeout=120)
        for j in jobs:
            self.assertEqual(j["status"], "SUCCEEDED", j)
            self.assertEqual(len(j["attempts"]), 1, "job %s ran more than once: %r"
                             % (j["jobId"], j["attempts"]))
        # The new leader runs new work too.
        last = fc.submit_job(jobName="after", jobQueue="q", jobDefinition="sleep:1")["jobId"]
        wait_for("a job submitted after the takeover",
                 lambda: self.status(fc, last) == "SUCCEEDED", timeout=60)


if __name__ == "__main__":
    unittest.main()
