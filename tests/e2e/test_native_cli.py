"""Drover's own CLI (the same binary): quickstart, submit, describe, logs, jobs,
cancel, queues and envs, each with and without --json, against a real server.
The server writes DIR/credentials itself (no imported key), as on a first
start, so that `--data DIR` is all the CLI needs; boto3 checks what it did."""

import json
import os
import re
import subprocess
import unittest

from harness import DROVER_BIN
from test_jobs import JobsTestCase, gated, UUID_RE


class NativeCliTest(JobsTestCase):
    """The native CLI against a server with its own key in DIR/credentials."""

    server_options = {"credentials": False}

    def cli_env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k != "DROVER_ENDPOINT"}
        env["HOME"] = self.server.home
        env.update(extra)
        return env

    def drover(self, command, *args, data=True, env=None, timeout=60):
        """Runs `drover COMMAND [--data DIR] ARGS...` in a directory without a
        ./drover-data; returns the CompletedProcess (text)."""
        cmd = [DROVER_BIN, command] + (["--data", self.server.data_dir] if data else [])
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout,
                              env=env or self.cli_env(), cwd=self.server.home)

    def ok(self, command, *args, **kwargs):
        p = self.drover(command, *args, **kwargs)
        self.assertEqual(p.returncode, 0, "drover %s %s: exit %d\nstdout:\n%s\nstderr:\n%s" % (
            command, " ".join(args), p.returncode, p.stdout, p.stderr))
        return p.stdout

    def ok_json(self, command, *args, **kwargs):
        out = self.ok(command, "--json", *args, **kwargs)  # (before any `--`)
        try:
            return json.loads(out)
        except ValueError:
            self.fail("drover %s --json printed no JSON:\n%s" % (command, out))

    def submit_cli(self, *args):
        """`drover submit` printing the job id; returns it."""
        out = self.ok("submit", "-q", self.queue, *args)
        job_id = out.strip()
        self.assertRegex(job_id, UUID_RE)
        self.addCleanup(self._stop_job, job_id)
        return job_id

    # --- quickstart --------------------------------------------------------------

    def test_quickstart_runs_hello_world_then_reuses_its_resources(self):
        """Given a fresh server, `drover quickstart` should create CE 'local', queue 'default' and definition 'hello-world', run a job printing "Hello from Drover!" and exit 0; a second run should reuse all three."""
        first = self.ok("quickstart")
        self.assertIn("created compute environment 'local'", first)
        self.assertIn("created job queue 'default'", first)
        self.assertIn("registered job definition 'hello-world'", first)
        hello = re.findall(r"Hello from Drover! I am job (\S+), attempt 1, on queue default\.",
                           first)
        self.assertEqual(len(hello), 1, first)
        self.assertIn("SUCCEEDED", first)
        second = self.ok("quickstart")
        for line in ("using compute environment 'local'", "using job queue 'default'",
                     "using job definition 'hello-world'"):
            self.assertIn(line, second)
        hello2 = re.findall(r"Hello from Drover! I am job (\S+), attempt 1, on queue default\.",
                            second)
        self.assertEqual(len(hello2), 1, second)
        self.assertNotEqual(hello, hello2)
        ces = self.batch.describe_compute_environments(computeEnvironments=["local"])
        self.assertEqual(len(ces["computeEnvironments"]), 1)
        self.assertEqual(ces["computeEnvironments"][0]["type"], "MANAGED")
        self.assertEqual(len(self.batch.describe_job_queues(jobQueues=["default"])["jobQueues"]),
                         1)
        jds = self.batch.describe_job_definitions(jobDefinitionName="hello-world")
        self.assertEqual([d["revision"] for d in jds["jobDefinitions"]], [1])
        ran = self.batch.list_jobs(jobQueue="default", jobStatus="SUCCEEDED")["jobSummaryList"]
        self.assertEqual(sorted(j["jobId"] for j in ran),
                         sorted(hello + hello2))

    # --- submit / describe / logs / jobs ------------------------------------------

    def test_submit_prints_the_job_id_or_the_submit_reply_as_json(self):
        """Given `drover submit -q Q -e K=V -- CMD`, it should print the job id (or with --json the SubmitJob reply) and the job should run CMD with K=V."""
        job_id = self.submit_cli("-e", "GREETING=hi there", "-e", "EMPTY=", "--",
                                 "sh", "-c", 'echo "$GREETING from native [$EMPTY]"')
        job = self.wait_done(job_id)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(job_id), ["hi there from native []"])
        self.assertEqual(job["jobName"], "sh")
        reply = self.ok_json("submit", "-q", self.queue, "-n", "named-by-flag", "--", "true")
        self.assertEqual(set(reply), {"jobArn", "jobName", "jobId"})
        self.assertEqual(reply["jobName"], "named-by-flag")
        self.assertEqual(reply["jobArn"], self.arn("job", reply["jobId"]))
        self.assertEqual(self.wait_done(reply["jobId"])["status"], "SUCCEEDED")

    def test_submit_options_reach_the_job(self):
        """Given --definition, --vcpus, --memory and --depends-on, the submitted job should use that definition, reserve those resources and depend on that job."""
        jd = self.new_jd(command=["echo", "from the definition"])
        first = self.submit_cli("-d", jd)
        second = self.submit_cli("--vcpus", "0.5", "--memory", "128", "--depends-on", first,
                                 "--", "echo", "second")
        job = self.wait_done(second)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(job["dependsOn"], [{"jobId": first}])
        self.assertIn({"type": "VCPU", "value": "0.5"}, job["container"]["resourceRequirements"])
        self.assertIn({"type": "MEMORY", "value": "128"}, job["container"]["resourceRequirements"])
        done = self.wait_done(first)
        self.assertEqual(done["jobDefinition"], self.arn("job-definition", jd + ":1"))
        self.assertEqual(self.output(first), ["from the definition"])
        self.assertGreaterEqual(job["startedAt"], done["stoppedAt"])

    def test_describe_shows_the_job_as_text_and_json(self):
        """Given a finished job, `drover describe` should show its status, exit code and log stream, and --json should print exactly what DescribeJobs returns."""
        job_id = self.submit_cli("--", "sh", "-c", "echo described; exit 3")
        job = self.wait_done(job_id)
        self.assertEqual(job["status"], "FAILED")
        text = self.ok("describe", job_id)
        self.assertRegex(text, r"(?m)^job\s+%s \(sh\)$" % job_id)
        self.assertRegex(text, r"(?m)^status\s+FAILED$")
        self.assertRegex(text, r"(?m)^exit code\s+3$")
        self.assertRegex(text, r"(?m)^log stream\s+%s$" % re.escape(
            job["container"]["logStreamName"]))
        self.assertRegex(text, r"(?m)^attempts\s+1$")
        raw = self.ok_json("describe", job_id)
        # Drover's per-attempt resourceUsage is an extension boto3 does not model (it drops it).
        for attempt in raw.get("attempts", []):
            self.assertIn("cpuSeconds", attempt.pop("resourceUsage", {"cpuSeconds": 0}))
        self.assertEqual(raw, job)
        p = self.drover("describe", "00000000-0000-0000-0000-000000000000")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("does not exist", p.stderr)

    def test_logs_prints_the_job_output(self):
        """Given a finished job, `drover logs JOB` should print its whole stream ([drover] header and output lines) once."""
        job_id = self.submit_cli("--", "sh", "-c", "echo out-1; echo err-1 >&2; echo out-2")
        self.wait_done(job_id)
        printed = self.ok("logs", job_id).splitlines()
        self.assertEqual(printed, self.messages(self.stream_of(job_id)))
        self.assertEqual([l for l in printed if not l.startswith("[drover]")],
                         ["out-1", "err-1", "out-2"])

    def test_logs_follow_prints_every_line_and_ends_with_the_job(self):
        """Given a running job, `drover logs -f` should print each line exactly once as it comes and exit 0 when the job ends."""
        job_id = self.submit_cli("--vcpus", "0.25", "--", "sh", "-c",
                                 gated(before="echo line-1", after="echo line-2; echo line-3"))
        self.wait_status(job_id, "RUNNING")
        follower = subprocess.Popen(
            [DROVER_BIN, "logs", "--data", self.server.data_dir, "-f", job_id],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.cli_env(),
            cwd=self.server.home)
        try:
            self.wait_line(job_id, r"^line-1$")
            self.assertIsNone(follower.poll(), "logs -f exited while the job was running")
            self.release(job_id)
            out, err = follower.communicate(timeout=30)
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
        self.assertEqual(follower.returncode, 0, err)
        self.assertEqual(self.describe(job_id)["status"], "SUCCEEDED")
        self.assertEqual(out.splitlines(), self.messages(self.stream_of(job_id)))
        self.assertEqual([l for l in out.splitlines()
                          if not l.startswith(("[drover]", "gate-dir="))],
                         ["line-1", "line-2", "line-3"])

    def test_logs_follow_prints_the_lines_of_every_attempt(self):
        """Given a job whose first attempt prints a last line just before failing and whose second attempt succeeds, `drover logs -f` (following from attempt 1) should print every line of both attempts."""
        script = ('if [ "$AWS_BATCH_JOB_ATTEMPT" = 1 ]; then %s; fi; echo attempt-2-line'
                  % gated(before="echo attempt-1-first", after="echo attempt-1-last; exit 1"))
        # (`drover submit` has no retry option: boto3 submits, the CLI follows.)
        job_id = self.submit(script, retryStrategy={"attempts": 2})
        self.wait_status(job_id, "RUNNING")
        follower = subprocess.Popen(
            [DROVER_BIN, "logs", "--data", self.server.data_dir, "-f", job_id],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.cli_env(),
            cwd=self.server.home)
        try:
            self.wait_line(job_id, r"^attempt-1-first$")
            self.release(job_id)
            out, err = follower.communicate(timeout=30)
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
        self.assertEqual(follower.returncode, 0, err)
        job = self.describe(job_id)
        self.assertEqual((job["status"], len(job["attempts"])), ("SUCCEEDED", 2), job)
        printed = [l for l in out.splitlines() if not l.startswith(("[drover]", "gate-dir="))]
        self.assertEqual(printed, ["attempt-1-first", "attempt-1-last", "attempt-2-line"])

    def test_jobs_lists_jobs_as_a_table_and_as_json(self):
        """Given finished jobs in a queue, `drover jobs -q Q` should list them with their status and counts, and --json / -s should list and filter them as ListJobs does."""
        queue = self.new_queue()
        ok_id = self.ok("submit", "-q", queue, "-n", "listed-ok", "--", "true").strip()
        bad_id = self.ok("submit", "-q", queue, "-n", "listed-bad", "--", "false").strip()
        self.assertEqual(self.wait_done(ok_id)["status"], "SUCCEEDED")
        self.assertEqual(self.wait_done(bad_id)["status"], "FAILED")
        text = self.ok("jobs", "-q", queue)
        self.assertRegex(text, r"(?m)^%s\s+listed-ok\s+%s\s+SUCCEEDED\b" % (ok_id, queue))
        self.assertRegex(text, r"(?m)^%s\s+listed-bad\s+%s\s+FAILED\b" % (bad_id, queue))
        self.assertRegex(text, r"SUCCEEDED 1\s+FAILED 1")
        self.assertIn("2/2 finished", text)
        listed = self.ok_json("jobs", "-q", queue)
        self.assertEqual(sorted((j["jobId"], j["status"], j["jobQueue"]) for j in listed),
                         sorted([(ok_id, "SUCCEEDED", queue), (bad_id, "FAILED", queue)]))
        self.assertEqual([j["jobId"] for j in self.ok_json("jobs", "-q", queue,
                                                           "-s", "FAILED")], [bad_id])
        self.assertEqual(self.ok_json("jobs", "-q", queue, "-s", "RUNNING"), [])
        # Without -q: every queue, this one's jobs included.
        everywhere = {j["jobId"]: j["jobQueue"] for j in self.ok_json("jobs")}
        self.assertEqual((everywhere.get(ok_id), everywhere.get(bad_id)), (queue, queue))

    # --- cancel ---------------------------------------------------------------------

    def test_cancel_cancels_waiting_jobs_and_terminates_running_ones(self):
        """Given a running job and a job pending on it, `drover cancel` should cancel the pending one, terminate the running one, and report a finished one as already done."""
        running = self.submit_cli("--vcpus", "0.25", "--", "sh", "-c", gated())
        self.wait_status(running, "RUNNING")
        pending = self.submit_cli("--depends-on", running, "--", "true")
        self.wait_status(pending, "PENDING")
        out = self.ok("cancel", pending)
        self.assertEqual(out.strip(), "%s cancelled" % pending)
        job = self.wait_done(pending)
        self.assertEqual((job["status"], job["statusReason"], job["isCancelled"]),
                         ("FAILED", "Cancelled with drover cancel", True))
        out = self.ok("cancel", "--reason", "stop it", running)
        self.assertEqual(out.strip(), "%s terminating" % running)
        job = self.wait_done(running)
        self.assertEqual((job["status"], job["statusReason"], job["isTerminated"]),
                         ("FAILED", "stop it", True))
        out = self.ok("cancel", running)
        self.assertEqual(out.strip(), "%s already FAILED" % running)
        p = self.drover("cancel", "00000000-0000-0000-0000-000000000000")
        self.assertEqual(p.returncode, 1)
        self.assertIn("does not exist", p.stderr)
        p = self.drover("cancel")
        self.assertNotEqual(p.returncode, 0)

    def test_bulk_cancel_by_queue_and_status(self):
        """Given a queue with running, pending and never-fitting runnable jobs, `drover cancel -q Q -s PENDING` should cancel only the pending ones and `drover cancel -q Q` all the rest."""
        queue = self.new_queue()
        running = self.ok("submit", "-q", queue, "--vcpus", "0.25", "--", "sh", "-c",
                          gated()).strip()
        self.addCleanup(self._stop_job, running)
        self.wait_status(running, "RUNNING")
        pending = [self.ok("submit", "-q", queue, "--depends-on", running, "--",
                           "true").strip() for _ in range(2)]
        stuck = self.ok("submit", "-q", queue, "--vcpus", str(self.ce_max_vcpus + 1), "--",
                        "true").strip()
        for job_id in pending:
            self.wait_status(job_id, "PENDING")
        self.wait_status(stuck, "RUNNABLE")
        out = self.ok("cancel", "-q", queue, "-s", "PENDING")
        self.assertEqual(sorted(out.splitlines()), sorted("%s cancelled" % j for j in pending))
        for job_id in pending:
            self.assertTrue(self.wait_done(job_id)["isCancelled"])
        self.assertEqual(self.describe(stuck)["status"], "RUNNABLE")
        self.assertEqual(self.describe(running)["status"], "RUNNING")
        out = self.ok("cancel", "-q", queue)
        self.assertEqual(sorted(out.splitlines()),
                         sorted(["%s cancelled" % stuck, "%s terminating" % running]))
        self.assertTrue(self.wait_done(stuck)["isCancelled"])
        self.assertTrue(self.wait_done(running)["isTerminated"])
        self.assertEqual(self.ok_json("jobs", "-q", queue, "-s", "SUCCEEDED"), [])
        self.assertEqual(len(self.ok_json("jobs", "-q", queue, "-s", "FAILED")), 4)

    # --- queues / envs / connection ----------------------------------------------------

    def test_queues_and_envs_as_tables_and_json(self):
        """Given the class's CE and queue, `drover queues` and `drover envs` should list them (state, status, priority, CEs, maxvCpus), and --json should equal the Describe operations."""
        text = self.ok("queues")
        self.assertRegex(text, r"(?m)^NAME\s+STATE\s+STATUS\s+PRIORITY\s+COMPUTE ENVIRONMENTS$")
        self.assertRegex(text, r"(?m)^%s\s+ENABLED\s+VALID\s+1\s+%s$" % (self.queue,
                                                                          self.ce_name))
        queues = self.batch.describe_job_queues()["jobQueues"]
        self.assertEqual(sorted(self.ok_json("queues"), key=lambda q: q["jobQueueName"]),
                         sorted(queues, key=lambda q: q["jobQueueName"]))
        text = self.ok("envs")
        self.assertRegex(text, r"(?m)^NAME\s+TYPE\s+STATE\s+STATUS\s+MAX VCPUS$")
        self.assertRegex(text, r"(?m)^%s\s+MANAGED\s+ENABLED\s+VALID\s+%d$" % (
            self.ce_name, self.ce_max_vcpus))
        ces = self.batch.describe_compute_environments()["computeEnvironments"]
        self.assertEqual(
            sorted(self.ok_json("envs"), key=lambda c: c["computeEnvironmentName"]),
            sorted(ces, key=lambda c: c["computeEnvironmentName"]))

    def test_endpoint_flag_with_key_from_the_environment(self):
        """Given --endpoint and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY instead of --data, the CLI should work; a wrong secret or no credentials should fail with exit code 1."""
        good = self.cli_env(AWS_ACCESS_KEY_ID=self.server.access_key,
                            AWS_SECRET_ACCESS_KEY=self.server.secret_key)
        p = self.drover("queues", "--endpoint", self.server.endpoint, "--json", data=False,
                        env=good)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(self.queue, [q["jobQueueName"] for q in json.loads(p.stdout)])
        bad = dict(good, AWS_SECRET_ACCESS_KEY="wrong-secret-0123456789")
        p = self.drover("queues", "--endpoint", self.server.endpoint, data=False, env=bad)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.strip())
        p = self.drover("queues", "--endpoint", self.server.endpoint, data=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no credentials", p.stderr)

    def test_submit_errors_exit_non_zero_with_the_reason(self):
        """Given an unknown queue, or neither a command nor a definition, `drover submit` should exit 1 with the reason on stderr."""
        p = self.drover("submit", "-q", "no-such-queue", "--", "true")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no-such-queue", p.stderr)
        self.assertIn("does not exist", p.stderr)
        p = self.drover("submit", "-q", self.queue)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.strip())
        p = self.drover("submit", "-q", self.queue, "-e", "NOEQUALS", "--", "true")
        self.assertEqual(p.returncode, 1)
        self.assertIn("NAME=VALUE", p.stderr)


@unittest.skipUnless(os.geteuid() == 0, "only a root server runs jobs as another user")
class UnreachableDataDirTest(unittest.TestCase):
    """A data dir inside a directory the job user cannot enter (e.g. under /root or
    a 0700 home): jobs cannot reach their scratch dirs there."""

    def test_quickstart_in_a_data_dir_the_job_user_cannot_reach(self):
        """Given a root server whose data dir's parent is 0700, the server should either refuse to start naming the data dir, or run jobs: `drover quickstart` should not fail every job with a misleading "sh: Permission denied"."""
        from harness import DroverServer
        server = DroverServer(credentials=False)
        self.addCleanup(server.cleanup)
        os.chmod(server.tmp, 0o700)  # as a home directory or /root is
        try:
            server.start()
        except AssertionError:
            # Refusing is fine, if the message names the data dir.
            self.assertIn(server.data_dir, server.log())
            return
        p = subprocess.run([DROVER_BIN, "quickstart", "--data", server.data_dir],
                           capture_output=True, text=True, timeout=90, cwd=server.home,
                           env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
        server.stop(check=False)
        self.assertEqual(p.returncode, 0, "quickstart failed:\n%s%s" % (p.stdout, p.stderr))
        self.assertIn("Hello from Drover!", p.stdout)


if __name__ == "__main__":
    unittest.main()
