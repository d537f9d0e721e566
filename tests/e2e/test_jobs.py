"""Jobs end to end: jobs submitted through boto3 (and a few AWS CLI v1 / v2 calls)
run as real processes on this host; the tests read their state back with
DescribeJobs / ListJobs and their output with the CloudWatch Logs API.

Jobs never sleep for a fixed time when a test needs them to wait: a "gated"
job prints `gate-dir=$PWD` (its scratch dir) and then waits until the test
creates the file `gate` there (see JobsTestCase.release). Every wait of the
tests is bounded (DEADLINE) and polls.

JobsTestCase (no tests of its own) is the base of the job, logs and native CLI
test classes: test_logs and test_native_cli import it."""

import configparser
import json
import os
import re
import time
import unittest

from harness import DroverTestCase, RAW, _session, using_pg

DEADLINE = 30.0   # seconds: the bound of every wait
POLL = 0.05
TERMINAL = ("SUCCEEDED", "FAILED")
JOB_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

# Waits (at most 30 s, so an orphaned job never lingers) until the test creates
# `gate` in the job's scratch dir.
GATE = ('echo "gate-dir=$PWD"; i=0; '
        'while [ ! -e gate ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done')


def gated(before="", after=""):
    """A shell script: `before`, then wait for the test's gate file, then `after`."""
    parts = [p for p in (before, GATE, after) if p]
    return "; ".join(parts)


def pid_alive(pid):
    """True while /proc/PID is a live process (a zombie counts as dead)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


class JobsTestCase(DroverTestCase):
    """A server with a MANAGED compute environment (jobs run on this host), a job
    queue and a definition per class; helpers to submit, wait, read logs."""

    ce_max_vcpus = 16
    job_vcpus = "0.25"   # small, so that several gated jobs fit on a 2-core host

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # tempfile.mkdtemp() makes the harness's temp dir 0700: the unprivileged job
        # user (when the tests run as root) could not pass through it to reach its
        # scratch dir under DIR/scratch, and every job would fail to start.
        os.chmod(cls.server.tmp, 0o711)
        if not cls.server.use_credentials_file:
            # The server wrote DIR/credentials with a key of its own: use that one.
            creds = configparser.ConfigParser()
            creds.read(os.path.join(cls.server.data_dir, "credentials"))
            cls.server.access_key = creds["default"]["aws_access_key_id"]
            cls.server.secret_key = creds["default"]["aws_secret_access_key"]
            cls.batch = cls.server.client()
            cls.raw = cls.server.client(config=RAW)
        cls._logs_client = None
        cls._logs_endpoint = None
        base = re.sub(r"[^a-z0-9]", "", cls.__name__.lower())[:40]
        cls.ce_name = "ce-" + base
        cls.queue = "jq-" + base
        cls.jd = "jd-" + base
        cls.batch.create_compute_environment(
            computeEnvironmentName=cls.ce_name, type="MANAGED",
            computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": cls.ce_max_vcpus,
                              "instanceTypes": ["optimal"], "subnets": ["subnet-1"],
                              "securityGroupIds": ["sg-1"], "instanceRole": "ecsInstanceRole"})
        cls.batch.create_job_queue(jobQueueName=cls.queue, priority=1,
                                   computeEnvironmentOrder=[{"order": 1,
                                                             "computeEnvironment": cls.ce_name}])
        cls.batch.register_job_definition(
            jobDefinitionName=cls.jd, type="container",
            containerProperties={"image": "busybox", "command": ["true"],
                                 "resourceRequirements": [
                                     {"type": "VCPU", "value": cls.job_vcpus},
                                     {"type": "MEMORY", "value": "64"}]})

    # --- clients -------------------------------------------------------------

    @property
    def logs(self):
        """A CloudWatch Logs client for the server's current endpoint (it changes
        when the server restarts)."""
        cls = type(self)
        if cls._logs_client is None or cls._logs_endpoint != self.server.endpoint:
            cls._logs_client = _session().client(
                "logs", endpoint_url=self.server.endpoint, region_name=self.server.region,
                aws_access_key_id=self.server.access_key,
                aws_secret_access_key=self.server.secret_key, config=self.batch.meta.config)
            cls._logs_endpoint = self.server.endpoint
        return cls._logs_client

    # --- resources -----------------------------------------------------------

    def new_queue(self, ce=None, priority=1):
        """A job queue of its own for one test (so ListJobs sees only its jobs)."""
        name = self.name("jq")
        self.batch.create_job_queue(jobQueueName=name, priority=priority,
                                    computeEnvironmentOrder=[{"order": 1,
                                                              "computeEnvironment":
                                                                  ce or self.ce_name}])
        return name

    def new_ce(self, max_vcpus):
        name = self.name("ce")
        self.batch.create_compute_environment(
            computeEnvironmentName=name, type="MANAGED",
            computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": max_vcpus,
                              "instanceTypes": ["optimal"], "subnets": ["subnet-1"],
                              "securityGroupIds": ["sg-1"], "instanceRole": "ecsInstanceRole"})
        return name

    def new_jd(self, command=("true",), name=None, **container):
        name = name or self.name("jd")
        props = {"image": "busybox", "command": list(command),
                 "resourceRequirements": [{"type": "VCPU", "value": self.job_vcpus},
                                          {"type": "MEMORY", "value": "64"}]}
        props.update(container)
        self.batch.register_job_definition(jobDefinitionName=name, type="container",
                                           containerProperties=props)
        return name

    # --- jobs ----------------------------------------------------------------

    def submit(self, command=None, queue=None, jd=None, name=None, env=None, vcpus=None,
               overrides=None, cleanup=True, **kwargs):
        """Submits a job; `command` is a list, or a string run by `sh -c`. Returns its
        jobId. With cleanup, a job still unfinished at the end of the test is
        terminated, so that it holds no capacity for the next test."""
        ov = dict(overrides or {})
        if command is not None:
            ov["command"] = ["sh", "-c", command] if isinstance(command, str) else list(command)
        if env:
            ov["environment"] = [{"name": k, "value": v} for k, v in env.items()]
        if vcpus is not None:
            ov["resourceRequirements"] = [{"type": "VCPU", "value": str(vcpus)}]
        params = {"jobName": name or self.name("job"), "jobQueue": queue or self.queue,
                  "jobDefinition": jd or self.jd}
        if ov:
            params["containerOverrides"] = ov
        params.update(kwargs)
        resp = self.batch.submit_job(**params)
        self.assertEqual(resp["jobName"], params["jobName"])
        self.assertRegex(resp["jobId"], UUID_RE)
        self.assertEqual(resp["jobArn"], self.arn("job", resp["jobId"]))
        if cleanup:
            self.addCleanup(self._stop_job, resp["jobId"])
        return resp["jobId"]

    def _stop_job(self, job_id):
        try:
            job = self.describe(job_id)
            if job["status"] not in TERMINAL:
                self.batch.terminate_job(jobId=job_id, reason="test cleanup")
                self.wait_done(job_id)
        except Exception:  # the test has already failed for a reason of its own
            pass

    def describe(self, job_id):
        jobs = self.batch.describe_jobs(jobs=[job_id])["jobs"]
        self.assertEqual(len(jobs), 1, "DescribeJobs(%s) answered %r" % (job_id, jobs))
        return jobs[0]

    def wait_status(self, job_id, *statuses, timeout=DEADLINE):
        """Waits until the job is in one of `statuses`; returns its description."""
        seen = {}

        def check():
            job = self.describe(job_id)
            seen["job"] = job
            return job if job["status"] in statuses else None

        deadline = time.monotonic() + timeout
        while True:
            job = check()
            if job:
                return job
            if time.monotonic() > deadline:
                self.fail("job %s not %s after %.0fs: %s" % (
                    job_id, "/".join(statuses), timeout, json.dumps(seen["job"], indent=1)))
            time.sleep(POLL)

    def wait_done(self, job_id, timeout=DEADLINE):
        return self.wait_status(job_id, *TERMINAL, timeout=timeout)

    def run_job(self, command=None, **kwargs):
        """Submits and waits until the job finishes; returns its description."""
        return self.wait_done(self.submit(command, **kwargs))

    # --- logs ----------------------------------------------------------------

    def stream_of(self, job_id):
        job = self.wait_for("job %s to have a log stream" % job_id,
                            lambda: (self.describe(job_id).get("container", {})
                                     .get("logStreamName") and self.describe(job_id)))
        return job["container"]["logStreamName"]

    def messages(self, stream, group="/aws/batch/job"):
        """Every message of a log stream, oldest first (forward paging to the end)."""
        out, token = [], None
        for _ in range(1000):
            kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            page = self.logs.get_log_events(**kwargs)
            out += [e["message"] for e in page["events"]]
            if page["nextForwardToken"] == token:
                return out
            token = page["nextForwardToken"]
        self.fail("GetLogEvents paging of %s never ended" % stream)

    def output(self, job_id, group="/aws/batch/job"):
        """The job's own output lines: its log without the "[drover] ..." headers."""
        return [m for m in self.messages(self.stream_of(job_id), group)
                if not m.startswith("[drover]")]

    def wait_line(self, job_id, pattern, group="/aws/batch/job"):
        """Waits until a line of the job's log matches the regex; returns the match."""
        def find():
            try:
                lines = self.output(job_id, group)
            except self.logs.exceptions.ResourceNotFoundException:
                # STARTING names the stream a moment before the attempt creates it.
                return None
            for m in lines:
                found = re.search(pattern, m)
                if found:
                    return found
            return None
        return self.wait_for("a log line of job %s matching %r" % (job_id, pattern), find)

    def release(self, job_id):
        """Opens the gate of a gated job (its scratch dir comes from its log)."""
        scratch = self.wait_line(job_id, r"^gate-dir=(.+)$").group(1)
        with open(os.path.join(scratch, "gate"), "w"):
            pass


class JobRunTest(JobsTestCase):
    """Jobs run, end with the right status and exit code, and their output is logged."""

    def test_hello_job_succeeds_and_its_log_reads_back(self):
        """Given a job that echoes a line, it should SUCCEED with exit code 0, its attempt should name the host it ran on, and its log stream should hold the line (and no line of Drover's about the attempt: that is DescribeJobs's)."""
        job_id = self.submit(["echo", "hello from drover e2e"])
        job = self.wait_done(job_id)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(job["statusReason"], "Essential container in task exited")
        self.assertEqual(job["container"]["exitCode"], 0)
        self.assertIs(job["isCancelled"], False)
        self.assertIs(job["isTerminated"], False)
        self.assertEqual(len(job["attempts"]), 1, job)
        [attempt] = job["attempts"]
        self.assertEqual(attempt["container"]["exitCode"], 0)
        self.assertLessEqual(job["createdAt"], job["startedAt"])
        self.assertLessEqual(job["startedAt"], job["stoppedAt"])
        self.assertLessEqual(attempt["startedAt"], attempt["stoppedAt"])
        stream = job["container"]["logStreamName"]
        self.assertEqual(attempt["container"]["logStreamName"], stream)
        self.assertRegex(stream, r"^%s/default/[0-9a-f]{32}$" % re.escape(self.jd))
        self.assertEqual(job["jobDefinition"], self.arn("job-definition", self.jd + ":1"))
        self.assertEqual(job["jobQueue"], self.arn("job-queue", self.queue))
        events = self.logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream,
                                          startFromHead=True)["events"]
        messages = [e["message"] for e in events]
        self.assertEqual([m for m in messages if not m.startswith("[drover]")],
                         ["hello from drover e2e"])
        # Only notes on what could not be applied (the definition's image in host mode).
        for m in messages[:-1]:
            self.assertRegex(m, r"^\[drover\] (host mode|sandbox): ")
        self.assertFalse(any(job_id in m for m in messages), messages)
        self.assertRegex(attempt["container"]["containerInstanceArn"],
                         r":container-instance/[^/]+_Batch/[^/]+$")
        for e in events:
            self.assertGreater(e["timestamp"], 1e12)  # milliseconds since the epoch
            self.assertGreaterEqual(e["ingestionTime"], e["timestamp"])

    def test_failing_job_reports_its_exit_code(self):
        """Given a job that writes to stderr and exits 7, it should be FAILED with exitCode 7 on the job and its attempt, and stderr should be in the log."""
        job = self.run_job("echo to-stdout; echo to-stderr >&2; exit 7")
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["container"]["exitCode"], 7)
        self.assertEqual(job["attempts"][0]["container"]["exitCode"], 7)
        self.assertEqual(len(job["attempts"]), 1)
        self.assertEqual(job["statusReason"], "Essential container in task exited")
        self.assertEqual(self.output(job["jobId"]), ["to-stdout", "to-stderr"])

    def test_job_killed_by_a_signal_exits_128_plus_the_signal(self):
        """Given a job whose process is killed by SIGKILL, it should be FAILED with exit code 137."""
        job = self.run_job("kill -KILL $$")
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["container"]["exitCode"], 137)
        self.assertEqual(job["attempts"][0]["container"]["exitCode"], 137)

    def test_missing_executable_fails_the_job(self):
        """Given a command that does not exist, the job should be FAILED with a CannotStartContainerError reason naming it."""
        job = self.run_job(["no-such-program-e2e"])
        self.assertEqual(job["status"], "FAILED", job)
        self.assertIn("CannotStartContainerError", job["statusReason"])
        self.assertIn("no-such-program-e2e", job["statusReason"])

    def test_overrides_and_parameters_reach_the_process(self):
        """Given definition defaults, parameters and containerOverrides, the process should see the overridden environment and the Ref:: substituted arguments."""
        jd = self.new_jd(
            command=["sh", "-c", "echo greeting=Ref::greeting target=Ref::target; "
                                 "printenv DEF_ONLY SHARED OVR_ONLY || true"],
            environment=[{"name": "DEF_ONLY", "value": "from-definition"},
                         {"name": "SHARED", "value": "shared-from-definition"}])
        self.batch.register_job_definition(
            jobDefinitionName=jd, type="container",
            parameters={"greeting": "default-greeting", "target": "default-target"},
            containerProperties=self.batch.describe_job_definitions(
                jobDefinitions=[jd + ":1"])["jobDefinitions"][0]["containerProperties"])
        # Revision 2 (the latest, used by name) has default parameters.
        plain = self.run_job(jd=jd)
        self.assertEqual(plain["status"], "SUCCEEDED", plain)
        self.assertEqual(self.output(plain["jobId"]),
                         ["greeting=default-greeting target=default-target",
                          "from-definition", "shared-from-definition"])
        job = self.run_job(jd=jd, parameters={"greeting": "hello-param"},
                           env={"SHARED": "shared-from-override", "OVR_ONLY": "override-only"})
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(job["jobId"]),
                         ["greeting=hello-param target=default-target",
                          "from-definition", "shared-from-override", "override-only"])
        self.assertEqual(job["jobDefinition"], self.arn("job-definition", jd + ":2"))
        self.assertEqual(job["parameters"], {"greeting": "hello-param",
                                             "target": "default-target"})
        self.assertEqual(job["container"]["command"][2].split(";")[0],
                         "echo greeting=hello-param target=default-target")
        self.assertEqual(sorted((e["name"], e["value"]) for e in job["container"]["environment"]),
                         [("DEF_ONLY", "from-definition"), ("OVR_ONLY", "override-only"),
                          ("SHARED", "shared-from-override")])
        # A command override replaces the command; Ref:: applies to it too; a
        # definition named by name:revision uses that revision.
        # (A name that extends another, greeting_long, is substituted whole.)
        job = self.run_job(["echo", "Ref::greeting", "Ref::target", "Ref::greeting_long"],
                           jd=jd + ":1",
                           parameters={"greeting": "hi", "target": "there",
                                       "greeting_long": "LONG"},
                           overrides={"resourceRequirements": [{"type": "VCPU", "value": "0.5"}]})
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(job["jobId"]), ["hi there LONG"])
        self.assertEqual(job["jobDefinition"], self.arn("job-definition", jd + ":1"))
        self.assertIn({"type": "VCPU", "value": "0.5"}, job["container"]["resourceRequirements"])
        self.assertIn({"type": "MEMORY", "value": "64"}, job["container"]["resourceRequirements"])

    def test_retry_strategy_runs_a_second_attempt(self):
        """Given attempts=2 and a command that fails on attempt 1, the job should SUCCEED on attempt 2 with both attempts recorded, each with its own log stream."""
        job = self.run_job('echo "attempt=$AWS_BATCH_JOB_ATTEMPT"; '
                           '[ "$AWS_BATCH_JOB_ATTEMPT" = 2 ] || exit 5',
                           retryStrategy={"attempts": 2})
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual([a["container"]["exitCode"] for a in job["attempts"]], [5, 0], job)
        streams = [a["container"]["logStreamName"] for a in job["attempts"]]
        self.assertNotEqual(streams[0], streams[1])
        self.assertEqual(job["container"]["logStreamName"], streams[1])
        self.assertLessEqual(job["attempts"][0]["stoppedAt"], job["attempts"][1]["startedAt"])
        self.assertEqual([m for m in self.messages(streams[0]) if not m.startswith("[drover]")],
                         ["attempt=1"])
        self.assertEqual([m for m in self.messages(streams[1]) if not m.startswith("[drover]")],
                         ["attempt=2"])

    def test_retry_strategy_exhausted_or_exit_rule_fails_the_job(self):
        """Given a job that always exits 3, attempts=2 should run it twice, and an evaluateOnExit EXIT rule for code 3 should stop after one attempt."""
        job = self.run_job("exit 3", retryStrategy={"attempts": 2})
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual([a["container"]["exitCode"] for a in job["attempts"]], [3, 3])
        job = self.run_job("exit 3", retryStrategy={
            "attempts": 3, "evaluateOnExit": [{"onExitCode": "3", "action": "EXIT"}]})
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual([a["container"]["exitCode"] for a in job["attempts"]], [3])

    def test_cli_v1_submit_and_v2_v1_describe_agree_with_boto3(self):
        """Given AWS CLI v1 submit-job with overrides and parameters, the job should run, and CLI v2 and v1 describe-jobs should show what boto3 shows."""
        jd = self.new_jd(command=["sh", "-c", "echo Ref::word $CLI_VAR"])
        name = self.name("cli")
        rc, out, err = self.server.cli(
            ["submit-job", "--job-name", name, "--job-queue", self.queue, "--job-definition", jd,
             "--parameters", "word=from-cli",
             "--container-overrides",
             json.dumps({"environment": [{"name": "CLI_VAR", "value": "v1-env"}]})], version=1)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out["jobName"], name)
        job = self.wait_done(out["jobId"])
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(out["jobId"]), ["from-cli v1-env"])
        for version in (2, 1):
            rc, described, err = self.server.cli(["describe-jobs", "--jobs", out["jobId"],
                                                  "no-such-job-id"], version=version)
            self.assertEqual(rc, 0, err)
            self.assertEqual(described["jobs"], [job], "CLI v%d" % version)
        rc, out2, err = self.server.cli(
            ["submit-job", "--job-name", name + "-v2", "--job-queue",
             self.arn("job-queue", self.queue), "--job-definition",
             self.arn("job-definition", jd + ":1"),
             "--container-overrides", "command=echo,from-v2"], version=2)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.wait_done(out2["jobId"])["status"], "SUCCEEDED")
        self.assertEqual(self.output(out2["jobId"]), ["from-v2"])

    def test_describe_jobs_leaves_out_unknown_ids_and_accepts_arns(self):
        """Given a known job id, its ARN and unknown ids, DescribeJobs should answer the known job (by id and by ARN) and leave the unknown ones out."""
        job_id = self.submit(["true"])
        got = self.batch.describe_jobs(jobs=["0000-unknown", job_id,
                                             self.arn("job", job_id)])["jobs"]
        self.assertEqual([j["jobId"] for j in got], [job_id, job_id])
        self.assertEqual(self.batch.describe_jobs(jobs=["0000-unknown"])["jobs"], [])
        self.assertClientError(self.raw.describe_jobs, jobs=[job_id] * 101)
        self.wait_done(job_id)

    def test_submit_refuses_what_it_cannot_run(self):
        """Given invalid or unsupported SubmitJob requests, each should be a ClientException and no job should be created."""
        name = self.name("refused")
        bad = [
            dict(jobQueue="no-such-queue"),
            dict(jobDefinition="no-such-definition"),
            dict(nodeOverrides={"numNodes": 2}),
            dict(dependsOn=[{"jobId": "00000000-0000-0000-0000-000000000000"}]),
            dict(timeout={"attemptDurationSeconds": 59}),
            dict(retryStrategy={"attempts": 11}),
            dict(containerOverrides={"environment": [{"name": "AWS_BATCH_JOB_ID",
                                                      "value": "spoofed"}]}),
        ]
        for extra in bad:
            params = {"jobName": name, "jobQueue": self.queue, "jobDefinition": self.jd}
            params.update(extra)
            with self.subTest(extra=extra):
                self.assertClientError(self.raw.submit_job, **params)
        listed = self.batch.list_jobs(jobQueue=self.queue, filters=[
            {"name": "JOB_NAME", "values": [name]}])["jobSummaryList"]
        self.assertEqual(listed, [])

    def test_submit_to_a_disabled_queue_is_refused(self):
        """Given a DISABLED job queue, SubmitJob should be a ClientException."""
        queue = self.new_queue()
        self.batch.update_job_queue(jobQueue=queue, state="DISABLED")
        self.assertClientError(self.batch.submit_job, jobName="x", jobQueue=queue,
                               jobDefinition=self.jd, contains="DISABLED")


class JobEnvironmentTest(JobsTestCase):
    """The job's environment: exactly what AWS Batch gives, nothing of the server's."""

    MARKER = "DROVER_E2E_SERVER_ONLY_MARKER"

    @classmethod
    def setUpClass(cls):
        # The server inherits this from the test process; a job must never see it.
        os.environ[cls.MARKER] = "leaked-from-the-server"
        try:
            super().setUpClass()
        finally:
            del os.environ[cls.MARKER]

    def test_job_environment_holds_exactly_the_batch_variables(self):
        """Given a server started with a marker variable, a job running `env` should see exactly PATH, HOME, TMPDIR, its own variables and the AWS_BATCH_* ones, and no marker."""
        with open("/proc/%d/environ" % self.server.proc.pid, "rb") as f:
            self.assertIn(self.MARKER.encode(), f.read())  # the precondition holds
        job = self.run_job(["env"], env={"MY_VAR": "my value", "OTHER": "x=y"})
        self.assertEqual(job["status"], "SUCCEEDED", job)
        env = dict(line.split("=", 1) for line in self.output(job["jobId"]))
        self.assertNotIn(self.MARKER, env)
        scratch = env.get("HOME", "")
        self.assertEqual(env, {
            "PATH": JOB_PATH,
            "HOME": scratch,
            "TMPDIR": scratch,
            "MY_VAR": "my value",
            "OTHER": "x=y",
            "AWS_BATCH_JOB_ID": job["jobId"],
            "AWS_BATCH_JOB_ATTEMPT": "1",
            "AWS_BATCH_JQ_NAME": self.queue,
            "AWS_BATCH_CE_NAME": self.ce_name,
        })
        scratch_root = os.path.realpath(os.path.join(self.server.data_dir, "scratch"))
        self.assertEqual(os.path.dirname(os.path.realpath(scratch)), scratch_root)

    def test_job_runs_in_its_own_scratch_dir_as_the_job_user(self):
        """Given a job printing its cwd and uid, its cwd should be its HOME (a fresh dir under DIR/scratch per attempt), and when the server is root the uid should not be 0."""
        job = self.run_job('echo "cwd=$(pwd -P) home=$HOME uid=$(id -u)"; '
                           'touch made-by-job && echo "attempt=$AWS_BATCH_JOB_ATTEMPT"; '
                           '[ "$AWS_BATCH_JOB_ATTEMPT" = 2 ]',
                           retryStrategy={"attempts": 2})
        self.assertEqual(job["status"], "SUCCEEDED", job)
        lines = [m for s in [a["container"]["logStreamName"] for a in job["attempts"]]
                 for m in self.messages(s) if not m.startswith("[drover]")]
        first = re.match(r"^cwd=(\S+) home=(\S+) uid=(\d+)$", lines[0])
        second = re.match(r"^cwd=(\S+) home=(\S+) uid=(\d+)$", lines[2])
        self.assertTrue(first and second, lines)
        self.assertEqual(lines[1::2], ["attempt=1", "attempt=2"])
        self.assertEqual(os.path.realpath(first.group(2)), first.group(1))
        self.assertNotEqual(first.group(1), second.group(1), "attempts share a scratch dir")
        if os.geteuid() == 0:
            self.assertNotEqual(first.group(3), "0", "jobs of a root server must not run as root")


class JobControlTest(JobsTestCase):
    """CancelJob, TerminateJob, dependencies and capacity."""

    server_options = {"extra_args": ["--kill-grace-seconds", "1"]}

    def test_terminate_kills_the_job_and_its_background_children(self):
        """Given a running job with background children (one ignoring SIGTERM), TerminateJob should fail it with the reason, isTerminated, and kill every process of it."""
        job_id = self.submit(
            'sleep 300 & echo "child=$!"; '
            '(trap "" TERM; sleep 301) & echo "stubborn=$!"; '
            'echo started; wait')
        self.wait_line(job_id, r"^started$")
        lines = self.output(job_id)
        pids = [int(l.split("=")[1]) for l in lines if re.match(r"^(child|stubborn)=\d+$", l)]
        self.assertEqual(len(pids), 2, lines)
        for pid in pids:
            self.assertTrue(pid_alive(pid), "background child %d is not running" % pid)
        self.assertEqual(self.describe(job_id)["status"], "RUNNING")
        self.batch.terminate_job(jobId=job_id, reason="stopped by the e2e test")
        job = self.wait_done(job_id)
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["statusReason"], "stopped by the e2e test")
        self.assertIs(job["isTerminated"], True)
        self.assertEqual(len(job["attempts"]), 1)
        self.assertEqual(job["attempts"][0]["container"]["exitCode"], 128 + 15)
        self.wait_for("the job's background children to be killed",
                      lambda: not any(pid_alive(p) for p in pids))
        # Terminating a finished job changes nothing.
        self.batch.terminate_job(jobId=job_id, reason="again")
        self.assertEqual(self.describe(job_id), job)

    def test_terminate_kills_a_job_ignoring_sigterm_after_the_grace(self):
        """Given a running job that ignores SIGTERM, TerminateJob should SIGKILL it after the grace period (exit code 137)."""
        job_id = self.submit(["sh", "-c", 'trap "" TERM; echo started; '
                                          'while :; do sleep 0.1; done'])
        self.wait_line(job_id, r"^started$")
        self.batch.terminate_job(jobId=job_id, reason="kill the stubborn one")
        job = self.wait_done(job_id)
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["statusReason"], "kill the stubborn one")
        self.assertEqual(job["container"]["exitCode"], 137)

    def test_cancel_fails_a_waiting_job_and_leaves_a_started_one_running(self):
        """Given a running job and a job PENDING on it, CancelJob should fail the pending one (isCancelled) and leave the running one to finish."""
        first = self.submit(gated(after="echo first-done"))
        self.wait_status(first, "RUNNING")
        waiting = self.submit(["echo", "never"], dependsOn=[{"jobId": first}])
        job = self.wait_status(waiting, "PENDING")
        self.assertEqual(job["dependsOn"], [{"jobId": first}])
        downstream = self.submit(["echo", "never either"], dependsOn=[{"jobId": waiting}])
        self.wait_status(downstream, "PENDING")
        self.batch.cancel_job(jobId=waiting, reason="cancelled by the e2e test")
        job = self.wait_done(waiting)
        self.assertEqual(job["status"], "FAILED")
        self.assertEqual(job["statusReason"], "cancelled by the e2e test")
        self.assertIs(job["isCancelled"], True)
        self.assertEqual(job["attempts"], [])
        self.assertNotIn("startedAt", job)
        # Its dependents fail too (they can never run).
        job = self.wait_done(downstream)
        self.assertEqual(job["status"], "FAILED", job)
        self.assertIn(waiting, job["statusReason"])
        self.assertEqual(job["attempts"], [])
        # CancelJob of a started job succeeds and changes nothing.
        self.batch.cancel_job(jobId=first, reason="too late")
        running = self.describe(first)
        self.assertEqual(running["status"], "RUNNING")
        self.assertIs(running["isCancelled"], False)
        self.release(first)
        done = self.wait_done(first)
        self.assertEqual(done["status"], "SUCCEEDED", done)
        self.assertEqual(self.output(first)[-1], "first-done")
        self.assertClientError(self.batch.cancel_job, jobId="no-such-job", reason="x")

    def test_terminate_of_a_job_that_has_not_started_fails_it(self):
        """Given a PENDING job, TerminateJob should fail it at once with the reason and isTerminated."""
        first = self.submit(gated())
        self.wait_status(first, "RUNNING")
        waiting = self.submit(["true"], dependsOn=[{"jobId": first}])
        self.wait_status(waiting, "PENDING")
        self.batch.terminate_job(jobId=waiting, reason="terminated while pending")
        job = self.wait_done(waiting)
        self.assertEqual((job["status"], job["statusReason"], job["isTerminated"]),
                         ("FAILED", "terminated while pending", True))
        self.release(first)
        self.assertEqual(self.wait_done(first)["status"], "SUCCEEDED")

    def test_dependent_job_waits_pending_then_runs_after_success(self):
        """Given job B depending on a running job A, B should be PENDING naming A until A SUCCEEDS, then run and SUCCEED."""
        a = self.submit(gated(after="echo a-done"))
        self.wait_status(a, "RUNNING")
        b = self.submit(["echo", "b-ran"], dependsOn=[{"jobId": a}])
        job = self.wait_status(b, "PENDING")
        self.wait_for("B's reason to name A", lambda: a in self.describe(b).get("statusReason", ""))
        self.assertEqual(self.describe(a)["status"], "RUNNING")
        self.release(a)
        a_done = self.wait_done(a)
        b_done = self.wait_done(b)
        self.assertEqual((a_done["status"], b_done["status"]), ("SUCCEEDED", "SUCCEEDED"),
                         b_done)
        self.assertGreaterEqual(b_done["startedAt"], a_done["stoppedAt"])
        self.assertEqual(self.output(b), ["b-ran"])
        # A dependency that has already succeeded does not hold a job back.
        c = self.run_job(["echo", "c-ran"], dependsOn=[{"jobId": a}, {"jobId": b}])
        self.assertEqual(c["status"], "SUCCEEDED", c)

    def test_dependent_job_fails_when_its_dependency_fails(self):
        """Given job B depending on a job A that then exits 1, B should be FAILED naming A, without ever starting."""
        a = self.submit(gated(after="exit 1"))
        self.wait_status(a, "RUNNING")
        b = self.submit(["echo", "must-not-run"], dependsOn=[{"jobId": a}])
        self.wait_status(b, "PENDING")
        self.release(a)
        self.assertEqual(self.wait_done(a)["status"], "FAILED")
        job = self.wait_done(b)
        self.assertEqual(job["status"], "FAILED", job)
        self.assertIn(a, job["statusReason"])
        self.assertEqual(job["attempts"], [])
        self.assertNotIn("startedAt", job)
        # Submitted after A failed, a dependent fails too.
        late = self.wait_done(self.submit(["true"], dependsOn=[{"jobId": a}]))
        self.assertEqual(late["status"], "FAILED", late)
        self.assertEqual(late["attempts"], [])

    def test_job_that_can_never_fit_stays_runnable_with_a_misconfiguration_reason(self):
        """Given jobs needing more vCPUs than the CE's maxvCpus or more than the host has, they should stay RUNNABLE with a MISCONFIGURATION reason, be listed by GetJobQueueSnapshot, and cancel to FAILED."""
        small_ce = self.new_ce(max_vcpus=1)
        queue = self.new_queue(ce=small_ce)
        too_big_for_ce = self.submit(["true"], queue=queue, vcpus=2)
        job = self.wait_for("a MISCONFIGURATION reason", lambda: (
            lambda j: j if j.get("statusReason", "").startswith(
                "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE") else None)(
            self.describe(too_big_for_ce)))
        self.assertEqual(job["status"], "RUNNABLE")
        too_big_for_host = self.submit(["true"], vcpus=os.cpu_count() + 6)
        job = self.wait_for("a MISCONFIGURATION reason", lambda: (
            lambda j: j if j.get("statusReason", "").startswith("MISCONFIGURATION") else None)(
            self.describe(too_big_for_host)))
        self.assertEqual(job["status"], "RUNNABLE")
        # Later jobs of the same queue are placed meanwhile; the big ones stay.
        small = self.run_job(["true"], queue=queue)
        self.assertEqual(small["status"], "SUCCEEDED", small)
        self.assertEqual(self.describe(too_big_for_ce)["status"], "RUNNABLE")
        self.assertEqual(self.describe(too_big_for_host)["status"], "RUNNABLE")
        snapshot = self.batch.get_job_queue_snapshot(jobQueue=queue)["frontOfQueue"]
        self.assertEqual([j["jobArn"] for j in snapshot["jobs"]],
                         [self.arn("job", too_big_for_ce)])
        listed = self.batch.list_jobs(jobQueue=queue, jobStatus="RUNNABLE")["jobSummaryList"]
        self.assertEqual([j["jobId"] for j in listed], [too_big_for_ce])
        for job_id in (too_big_for_ce, too_big_for_host):
            self.batch.cancel_job(jobId=job_id, reason="can never run")
            job = self.wait_done(job_id)
            self.assertEqual((job["status"], job["statusReason"], job["isCancelled"]),
                             ("FAILED", "can never run", True))

    def test_a_job_waits_for_capacity_and_runs_when_it_frees(self):
        """Given running jobs that use the whole CE, the next job should stay RUNNABLE waiting for capacity and run once they finish."""
        ce = self.new_ce(max_vcpus=1)
        queue = self.new_queue(ce=ce)
        hog = self.submit(gated(), queue=queue, vcpus=1)
        self.wait_status(hog, "RUNNING")
        waiting = self.submit(["echo", "got-capacity"], queue=queue, vcpus=1)
        job = self.wait_for("a capacity reason", lambda: (
            lambda j: j if "capacity" in j.get("statusReason", "").lower() else None)(
            self.describe(waiting)))
        self.assertEqual(job["status"], "RUNNABLE", job)
        self.release(hog)
        job = self.wait_done(waiting)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(waiting), ["got-capacity"])


class ListJobsTest(JobsTestCase):
    """ListJobs: status, filters and pagination."""

    def submit_finished(self, queue, names, jd=None):
        ids = []
        for n in names:
            ids.append(self.submit(["true"], queue=queue, name=n, jd=jd))
            time.sleep(0.005)  # distinct createdAt milliseconds for the time filters
        for job_id in ids:
            self.assertEqual(self.wait_done(job_id)["status"], "SUCCEEDED")
        return ids

    def test_list_jobs_by_status_and_job_name_filter(self):
        """Given finished jobs in a queue, ListJobs should list them by jobStatus SUCCEEDED, not by the default RUNNING, and JOB_NAME should match exactly or by a trailing-* prefix ignoring jobStatus."""
        queue = self.new_queue()
        ids = self.submit_finished(queue, ["alpha-1", "alpha-2", "beta-1"])
        summaries = self.batch.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED")["jobSummaryList"]
        self.assertEqual(sorted(s["jobId"] for s in summaries), sorted(ids))
        for s in summaries:
            self.assertEqual(s["status"], "SUCCEEDED")
            self.assertEqual(s["container"]["exitCode"], 0)
            self.assertEqual(s["jobArn"], self.arn("job", s["jobId"]))
            self.assertIn("createdAt", s)
        self.assertEqual(self.batch.list_jobs(jobQueue=queue)["jobSummaryList"], [])
        self.assertEqual(self.batch.list_jobs(jobQueue=queue, jobStatus="FAILED")
                         ["jobSummaryList"], [])

        def names(**kwargs):
            return sorted(s["jobName"] for s in
                          self.batch.list_jobs(jobQueue=queue, **kwargs)["jobSummaryList"])
        self.assertEqual(names(filters=[{"name": "JOB_NAME", "values": ["alpha-*"]}],
                               jobStatus="RUNNING"), ["alpha-1", "alpha-2"])
        self.assertEqual(names(filters=[{"name": "JOB_NAME", "values": ["beta-1"]}]),
                         ["beta-1"])
        self.assertEqual(names(filters=[{"name": "JOB_NAME", "values": ["alpha"]}]), [])
        # The queue by ARN is the same queue.
        self.assertEqual(sorted(s["jobId"] for s in self.batch.list_jobs(
            jobQueue=self.arn("job-queue", queue), jobStatus="SUCCEEDED")["jobSummaryList"]),
            sorted(ids))

    def test_list_jobs_by_definition_and_creation_time(self):
        """Given jobs of two definitions created in turn, JOB_DEFINITION and BEFORE/AFTER_CREATED_AT filters should select exactly the matching jobs."""
        queue = self.new_queue()
        other = self.new_jd()
        ids = self.submit_finished(queue, ["d-%d" % i for i in range(4)])
        other_ids = self.submit_finished(queue, ["o-1"], jd=other)
        jobs = {j["jobId"]: j for j in self.batch.describe_jobs(jobs=ids + other_ids)["jobs"]}

        def listed(name, value):
            return sorted(s["jobId"] for s in self.batch.list_jobs(
                jobQueue=queue, filters=[{"name": name, "values": [value]}])["jobSummaryList"])
        self.assertEqual(listed("JOB_DEFINITION", other), other_ids)
        self.assertEqual(listed("JOB_DEFINITION", other + ":1"), other_ids)
        self.assertEqual(listed("JOB_DEFINITION", self.arn("job-definition", other + ":1")),
                         other_ids)
        self.assertEqual(listed("JOB_DEFINITION", self.jd), sorted(ids))
        pivot = jobs[ids[1]]["createdAt"]
        after = sorted(i for i, j in jobs.items() if j["createdAt"] > pivot)
        before = sorted(i for i, j in jobs.items() if j["createdAt"] < pivot)
        self.assertTrue(after and before, "all jobs share one createdAt millisecond")
        self.assertEqual(listed("AFTER_CREATED_AT", str(pivot)), after)
        self.assertEqual(listed("BEFORE_CREATED_AT", str(pivot)), before)

    def test_list_jobs_pagination_walks_every_job_once(self):
        """Given 5 finished jobs, ListJobs with maxResults=2 should give pages of 2, 2 and 1 through nextToken, the last without a nextToken, and the boto3 paginator the same jobs."""
        queue = self.new_queue()
        ids = self.submit_finished(queue, ["page-%d" % i for i in range(5)])
        pages, token = [], None
        for _ in range(10):
            kwargs = {"jobQueue": queue, "jobStatus": "SUCCEEDED", "maxResults": 2}
            if token:
                kwargs["nextToken"] = token
            resp = self.batch.list_jobs(**kwargs)
            pages.append([s["jobId"] for s in resp["jobSummaryList"]])
            token = resp.get("nextToken")
            if not token:
                break
        self.assertEqual([len(p) for p in pages], [2, 2, 1], pages)
        flat = [i for p in pages for i in p]
        self.assertEqual(sorted(flat), sorted(ids))
        paginated = []
        for page in self.batch.get_paginator("list_jobs").paginate(
                jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["page-*"]}],
                PaginationConfig={"PageSize": 2}):
            paginated += [s["jobId"] for s in page["jobSummaryList"]]
        self.assertEqual(sorted(paginated), sorted(ids))
        self.assertEqual(len(paginated), 5)

    def test_list_jobs_lists_running_by_default_and_waiting_jobs_by_status(self):
        """Given a running job, a job pending on it and a job that cannot fit, ListJobs without jobStatus should list only the running one, and PENDING / RUNNABLE the others."""
        queue = self.new_queue()
        running = self.submit(gated(), queue=queue, name="is-running")
        self.wait_status(running, "RUNNING")
        pending = self.submit(["true"], queue=queue, name="is-pending",
                              dependsOn=[{"jobId": running}])
        runnable = self.submit(["true"], queue=queue, name="is-runnable",
                               vcpus=self.ce_max_vcpus + 1)
        self.wait_status(pending, "PENDING")
        self.wait_status(runnable, "RUNNABLE")

        def listed(**kwargs):
            return [(s["jobId"], s["status"]) for s in
                    self.batch.list_jobs(jobQueue=queue, **kwargs)["jobSummaryList"]]
        self.assertEqual(listed(), [(running, "RUNNING")])
        self.assertEqual(listed(jobStatus="RUNNING"), [(running, "RUNNING")])
        self.assertEqual(listed(jobStatus="PENDING"), [(pending, "PENDING")])
        self.assertEqual(listed(jobStatus="RUNNABLE"), [(runnable, "RUNNABLE")])
        self.assertEqual(listed(jobStatus="SUBMITTED"), [])
        summary = self.batch.list_jobs(jobQueue=queue)["jobSummaryList"][0]
        self.assertIn("startedAt", summary)
        self.assertEqual(summary["jobName"], "is-running")

    def test_list_jobs_refuses_bad_selectors(self):
        """Given no jobQueue, or jobQueue with arrayJobId, or an unknown queue or filter, ListJobs should be a ClientException."""
        self.assertClientError(self.raw.list_jobs)
        self.assertClientError(self.raw.list_jobs, jobQueue=self.queue, arrayJobId="x")
        self.assertClientError(self.raw.list_jobs, jobQueue="no-such-queue")
        self.assertClientError(self.raw.list_jobs, jobQueue=self.queue,
                               filters=[{"name": "NO_SUCH_FILTER", "values": ["x"]}])
        for bad in (0, 1001):
            self.assertClientError(self.raw.list_jobs, jobQueue=self.queue, maxResults=bad)


@unittest.skipUnless(os.geteuid() == 0, "the job user separation applies when the server is root")
class JobIsolationTest(JobsTestCase):
    """A root server runs jobs as an unprivileged user that cannot read its files."""

    # No imported key: the server writes DIR/credentials with its own secret.
    server_options = {"credentials": False}

    def test_job_cannot_read_the_server_files(self):
        """Given a root server, a job should run as a non-root user that cannot read DIR/credentials, DIR/state.db, or list DIR and DIR/logs."""
        data = self.server.data_dir
        creds = os.path.join(data, "credentials")
        self.assertTrue(os.path.exists(creds))
        self.assertEqual(os.stat(creds).st_mode & 0o777, 0o600)
        if not using_pg():  # with --store postgres:// there is no state.db
            self.assertEqual(os.stat(os.path.join(data, "state.db")).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(data).st_mode & 0o777, 0o711)
        job = self.run_job(["cat", creds])
        self.assertEqual(job["status"], "FAILED", job)
        self.assertNotEqual(job["container"]["exitCode"], 0)
        output = "\n".join(self.output(job["jobId"]))
        self.assertNotIn(self.server.secret_key, output)
        self.assertIn("Permission denied", output)
        job = self.run_job(
            'echo "uid=$(id -u)"; '
            'for f in %(d)s/state.db %(d)s/credentials; do '
            '  head -c1 "$f" >/dev/null 2>&1; echo "read $(basename $f)=$?"; done; '
            'ls %(d)s >/dev/null 2>&1; echo "list data=$?"; '
            'ls %(d)s/logs >/dev/null 2>&1; echo "list logs=$?"; '
            'ls %(d)s/scratch >/dev/null 2>&1; echo "list scratch=$?"' % {"d": data})
        lines = self.output(job["jobId"])
        self.assertRegex(lines[0], r"^uid=[1-9]\d*$")
        results = dict(l.split("=", 1) for l in lines[1:])
        self.assertEqual(set(results), {"read state.db", "read credentials", "list data",
                                        "list logs", "list scratch"})
        for what, rc in results.items():
            self.assertNotEqual(rc, "0", "a job could %s" % what)

    def test_job_cannot_read_another_jobs_scratch_dir(self):
        """Given a job that wrote a file in its scratch dir, another job (knowing the path) should not be able to read it, while the first runs or after it finished."""
        owner = self.submit(gated(before="echo private-data-of-the-owner > private.txt"))
        scratch = self.wait_line(owner, r"^gate-dir=(.+)$").group(1)
        peek = 'cat "%s/private.txt"; echo "rc=$?"; ls "%s" >/dev/null 2>&1; echo "ls=$?"' % (
            scratch, scratch)
        while_running = self.run_job(peek)
        self.release(owner)
        self.assertEqual(self.wait_done(owner)["status"], "SUCCEEDED")
        after_end = self.run_job(peek)
        for job, when in ((while_running, "while it ran"), (after_end, "after it finished")):
            lines = self.output(job["jobId"])
            self.assertNotIn("private-data-of-the-owner", lines,
                             "a job read another job's scratch file %s" % when)
            self.assertNotIn("ls=0", lines, "a job listed another job's scratch dir %s" % when)


class GpuTest(JobsTestCase):
    """A host that declares two (fake) GPUs with --gpu-ids."""

    server_options = {"extra_args": ("--gpu-ids", "7,9")}

    def test_gpu_jobs_see_exactly_their_devices(self):
        """Given GPUs 7 and 9, two 1-GPU jobs should each see one distinct device in CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES."""
        gpu = [{"type": "VCPU", "value": self.job_vcpus}, {"type": "GPU", "value": "1"}]
        ids = [self.submit("echo cuda=$CUDA_VISIBLE_DEVICES nvidia=$NVIDIA_VISIBLE_DEVICES",
                           overrides={"resourceRequirements": gpu}) for _ in range(2)]
        seen = set()
        for job_id in ids:
            self.assertEqual(self.wait_done(job_id)["status"], "SUCCEEDED")
            line = [m for m in self.messages(self.stream_of(job_id)) if m.startswith("cuda=")][0]
            cuda, nvidia = line.split()
            self.assertEqual(cuda[len("cuda="):], nvidia[len("nvidia="):])
            seen.add(cuda[len("cuda="):])
        self.assertTrue(seen <= {"7", "9"}, seen)

    def test_a_job_asking_for_more_gpus_than_the_host_has_says_so(self):
        """Given 2 GPUs, a 3-GPU job should stay RUNNABLE with a MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT reason."""
        gpu = [{"type": "VCPU", "value": self.job_vcpus}, {"type": "GPU", "value": "3"}]
        job_id = self.submit("true", overrides={"resourceRequirements": gpu})
        job = self.wait_for("a reason", lambda: (self.describe(job_id).get("statusReason", "")
                                                 .startswith("MISCONFIGURATION") and
                                                 self.describe(job_id)))
        self.assertEqual(job["status"], "RUNNABLE")
        self.assertIn("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", job["statusReason"])
        self.assertIn("2 GPU", job["statusReason"])


class RestartTest(JobsTestCase):
    """What a restart keeps: finished jobs and their logs, and running jobs (they outlive
    the server under their shims)."""

    def test_restart_keeps_finished_jobs_and_their_logs(self):
        """Given finished jobs (one succeeded, one failed), after a server restart DescribeJobs, ListJobs and their logs should be unchanged."""
        ok = self.run_job(["sh", "-c", "echo kept-line-1; echo kept-line-2"])
        bad = self.run_job("echo failing-line; exit 4")
        ok_log, bad_log = self.output(ok["jobId"]), self.output(bad["jobId"])
        self.assertEqual(ok_log, ["kept-line-1", "kept-line-2"])
        stream = ok["container"]["logStreamName"]
        full = self.messages(stream)
        listed = self.batch.list_jobs(jobQueue=self.queue, jobStatus="SUCCEEDED")
        # (check=False: a clean SIGTERM exit is test_server's subject.)
        self.restart_server(check=False)
        self.assertEqual(self.describe(ok["jobId"]), ok)
        self.assertEqual(self.describe(bad["jobId"]), bad)
        self.assertEqual(self.messages(stream), full)
        self.assertEqual(self.output(bad["jobId"]), bad_log)
        self.assertEqual(self.batch.list_jobs(jobQueue=self.queue, jobStatus="SUCCEEDED")
                         ["jobSummaryList"], listed["jobSummaryList"])
        # The restarted server runs new jobs.
        self.assertEqual(self.run_job(["echo", "after restart"])["status"], "SUCCEEDED")

    def open_gate(self, scratch):
        open(os.path.join(scratch, "gate"), "w").close()

    def test_running_jobs_survive_a_server_restart(self):
        """Given a job running when the server stops (SIGTERM), it should keep running under its shim, the restarted server should re-attach, and the job should finish SUCCEEDED with its whole log; a dependent waits across the restart and runs."""
        job_id = self.submit(gated(before="echo before", after="echo after"))
        scratch = self.wait_line(job_id, r"^gate-dir=(.+)$").group(1)
        dependent = self.submit(["echo", "dependent ran"], dependsOn=[{"jobId": job_id}])
        self.wait_status(dependent, "PENDING")
        self.restart_server(check=False)
        self.assertEqual(self.describe(job_id)["status"], "RUNNING")
        self.open_gate(scratch)
        job = self.wait_done(job_id)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(len(job["attempts"]), 1)
        self.assertEqual(job["container"]["exitCode"], 0)
        lines = self.output(job_id)
        self.assertEqual((lines[0], lines[-1]), ("before", "after"), lines)
        self.assertEqual(self.wait_done(dependent)["status"], "SUCCEEDED")
        self.assertEqual(self.output(dependent), ["dependent ran"])

    def test_jobs_survive_a_server_crash_and_report_true_exit_codes(self):
        """Given the server killed with SIGKILL while two jobs run, one finishing while the server is down with exit code 3 and one still running at the restart, the restarted server should report FAILED with exit code 3 and the stop time of the first, and SUCCEEDED with its whole log for the second."""
        ends_early = self.submit(gated(before="echo early-start", after="echo early-end; exit 3"))
        runs_on = self.submit(gated(before="echo late-start", after="echo late-end"))
        early_scratch = self.wait_line(ends_early, r"^gate-dir=(.+)$").group(1)
        late_scratch = self.wait_line(runs_on, r"^gate-dir=(.+)$").group(1)
        self.server.kill()  # SIGKILL: no shutdown at all
        self.open_gate(early_scratch)
        self.wait_for("the early job to end while no server runs",
                      lambda: not os.path.exists(early_scratch), timeout=10)
        stopped_before_restart = int(time.time() * 1000)
        self.server.start()
        type(self).batch = self.server.client()
        job = self.wait_done(ends_early)
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["container"]["exitCode"], 3)
        self.assertLessEqual(job["stoppedAt"], stopped_before_restart)
        self.assertEqual(self.output(ends_early)[-1], "early-end")
        self.assertEqual(self.describe(runs_on)["status"], "RUNNING")
        self.open_gate(late_scratch)
        job = self.wait_done(runs_on)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(runs_on)[-1], "late-end")

if __name__ == "__main__":
    unittest.main()
