"""Scheduling end to end: array jobs, dependencies, retries, timeouts, fair share,
queue priorities, capacity limits, consumable resources and the queue snapshot,
driven through boto3 against a real `drover server` whose jobs run as real
processes on this host (see docs/scheduling.md).

The servers run with `--min-time-seconds 1` (so a 2 s attemptDurationSeconds and
a 2 s jobStateTimeLimitActions.maxTimeSeconds are accepted) and
`--kill-grace-seconds 1`. Jobs reserve small vCPU amounts (0.1-0.25) so that many
fit on a 2-core host; a compute environment's maxvCpus caps concurrency exactly.

No test sleeps a fixed time to wait for the server: every wait polls with a
bounded deadline. Where a test needs jobs to wait before they may start, they are
queued on a compute environment created DISABLED and released by enabling it.
Order is checked with the jobs' own startedAt / stoppedAt, never with the test's
clock.

One server per class; the tests of a class share it (each with its own compute
environments and queues, and with its leftover jobs terminated at the end)."""

import json
import os
import time
import unittest

from harness import DroverTestCase, _session

DEADLINE = 30.0   # seconds: the default bound of every wait
POLL = 0.05
TERMINAL = ("SUCCEEDED", "FAILED")
STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
TIMED_OUT = "Job attempt duration exceeded timeout"


def summary_of(**counts):
    """An arrayProperties.statusSummary: every state, 0 unless given."""
    return {s: counts.get(s, 0) for s in STATES}


class SchedulingTestCase(DroverTestCase):
    """A server with short minimum durations; helpers to make compute
    environments, queues, definitions, to submit jobs and to wait for them."""

    server_options = {"extra_args": ["--min-time-seconds", "1", "--kill-grace-seconds", "1"]}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()   # DroverServer makes its temp dir o+x: the job user needs it
        cls._logs_client = cls._logs_endpoint = None

    # --- resources -----------------------------------------------------------

    def new_ce(self, max_vcpus, state="ENABLED"):
        name = self.name("ce")
        self.batch.create_compute_environment(
            computeEnvironmentName=name, type="MANAGED", state=state,
            computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": max_vcpus,
                              "instanceTypes": ["optimal"], "subnets": ["subnet-1"],
                              "securityGroupIds": ["sg-1"], "instanceRole": "ecsInstanceRole"})
        return name

    def enable_ce(self, name):
        self.batch.update_compute_environment(computeEnvironment=name, state="ENABLED")

    def new_queue(self, *ces, priority=1, **kwargs):
        name = self.name("jq")
        self.batch.create_job_queue(
            jobQueueName=name, priority=priority,
            computeEnvironmentOrder=[{"order": i + 1, "computeEnvironment": ce}
                                     for i, ce in enumerate(ces)], **kwargs)
        return name

    def new_jd(self, command=("true",), vcpus="0.1", memory="16", **props):
        name = self.name("jd")
        container = {"image": "busybox", "command": list(command),
                     "resourceRequirements": [{"type": "VCPU", "value": str(vcpus)},
                                              {"type": "MEMORY", "value": str(memory)}]}
        container.update(props)
        self.batch.register_job_definition(jobDefinitionName=name, type="container",
                                           containerProperties=container)
        return name

    # --- jobs ----------------------------------------------------------------

    def submit(self, queue, jd, command=None, vcpus=None, memory=None, name=None, **kwargs):
        """Submits a job; `command` is a list, or a string run by `sh -c`. Returns
        its jobId. A job (or array) still unfinished when the test ends is
        terminated then, so that it holds no capacity for the next test."""
        ov = {}
        if command is not None:
            ov["command"] = ["sh", "-c", command] if isinstance(command, str) else list(command)
        rr = []
        if vcpus is not None:
            rr.append({"type": "VCPU", "value": str(vcpus)})
        if memory is not None:
            rr.append({"type": "MEMORY", "value": str(memory)})
        if rr:
            ov["resourceRequirements"] = rr
        params = {"jobName": name or self.name("job"), "jobQueue": queue, "jobDefinition": jd}
        if ov:
            params["containerOverrides"] = ov
        params.update(kwargs)
        job_id = self.batch.submit_job(**params)["jobId"]
        self.addCleanup(self._stop_job, job_id)
        return job_id

    def _stop_job(self, job_id):
        try:
            if self.describe(job_id)["status"] not in TERMINAL:
                self.batch.terminate_job(jobId=job_id, reason="test cleanup")
                self.wait_done(job_id)
        except Exception:  # the test has already failed for a reason of its own
            pass

    def describe(self, job_id):
        jobs = self.batch.describe_jobs(jobs=[job_id])["jobs"]
        self.assertEqual(len(jobs), 1, "DescribeJobs(%s) answered %r" % (job_id, jobs))
        return jobs[0]

    def describe_all(self, job_ids):
        """{jobId: JobDetail} for every id (DescribeJobs takes 100 at a time)."""
        out = {}
        job_ids = list(job_ids)
        for i in range(0, len(job_ids), 100):
            for j in self.batch.describe_jobs(jobs=job_ids[i:i + 100])["jobs"]:
                out[j["jobId"]] = j
        self.assertEqual(sorted(out), sorted(job_ids), "DescribeJobs left jobs out")
        return out

    def children(self, parent, size):
        return ["%s:%d" % (parent, i) for i in range(size)]

    def wait_status(self, job_id, *statuses, timeout=DEADLINE):
        """Waits until the job is in one of `statuses`; returns its description."""
        seen = {}

        def check():
            seen["job"] = self.describe(job_id)
            return seen["job"] if seen["job"]["status"] in statuses else None

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

    def wait_all(self, job_ids, *statuses, timeout=DEADLINE):
        """Waits until every job is in one of `statuses` (default: finished);
        returns {jobId: JobDetail}."""
        statuses = statuses or TERMINAL
        seen = {}

        def check():
            seen["jobs"] = self.describe_all(job_ids)
            return all(j["status"] in statuses for j in seen["jobs"].values())

        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                self.fail("jobs not all %s after %.0fs: %s" % (
                    "/".join(statuses), timeout,
                    {i: (j["status"], j.get("statusReason")) for i, j in seen["jobs"].items()}))
            time.sleep(POLL)
        return seen["jobs"]

    def wait_reason(self, job_id, prefix, timeout=DEADLINE):
        """Waits until the job's statusReason starts with `prefix`; returns the job."""
        def check():
            job = self.describe(job_id)
            return job if job.get("statusReason", "").startswith(prefix) else None
        return self.wait_for("job %s to have a reason starting %r" % (job_id, prefix), check,
                             timeout)

    def list_jobs(self, **kwargs):
        """Every summary of ListJobs(**kwargs), all pages."""
        out, token = [], None
        for _ in range(10000):
            page = self.batch.list_jobs(**kwargs, **({"nextToken": token} if token else {}))
            out += page["jobSummaryList"]
            token = page.get("nextToken")
            if not token:
                return out
        self.fail("ListJobs paging never ended")

    # --- logs ----------------------------------------------------------------

    @property
    def logs(self):
        cls = type(self)
        if cls._logs_client is None or cls._logs_endpoint != self.server.endpoint:
            cls._logs_endpoint = self.server.endpoint
            cls._logs_client = _session().client(
                "logs", endpoint_url=self.server.endpoint, region_name=self.server.region,
                aws_access_key_id=self.server.access_key,
                aws_secret_access_key=self.server.secret_key, config=self.batch.meta.config)
        return cls._logs_client

    def output(self, job):
        """The job's own output lines (its log stream without "[drover]" headers)."""
        stream = job["container"]["logStreamName"]
        out, token = [], None
        for _ in range(1000):
            kwargs = {"logGroupName": "/aws/batch/job", "logStreamName": stream,
                      "startFromHead": True}
            if token:
                kwargs["nextToken"] = token
            page = self.logs.get_log_events(**kwargs)
            out += [e["message"] for e in page["events"]]
            if page["nextForwardToken"] == token:
                return [m for m in out if not m.startswith("[drover]")]
            token = page["nextForwardToken"]
        self.fail("GetLogEvents paging of %s never ended" % stream)


class ArrayJobTest(SchedulingTestCase):
    """Array jobs: every child runs, the parent follows its children, ListJobs by
    arrayJobId, cancel and terminate of the parent reach the children."""

    def test_a_1000_child_array_runs_every_child_to_success(self):
        """Given a 1,000-child array of `true` on a CE of maxvCpus 2 (20 children at a time), it should SUCCEED with statusSummary SUCCEEDED=1000, and ListJobs(arrayJobId) should page through exactly its 1,000 children, indexes 0..999."""
        ce = self.new_ce(2)
        queue = self.new_queue(ce)
        jd = self.new_jd(["true"], vcpus="0.1", memory="16")
        parent = self.submit(queue, jd, arrayProperties={"size": 1000})
        # While it runs, the summary always accounts for every child exactly once.
        deadline = time.monotonic() + 60
        while True:
            job = self.describe(parent)
            counts = job["arrayProperties"]["statusSummary"]
            self.assertEqual(sum(counts.values()), 1000, counts)
            if job["status"] in TERMINAL:
                break
            self.assertLess(time.monotonic(), deadline, "the array did not finish: %s" % counts)
            time.sleep(0.2)
        self.assertEqual(job["status"], "SUCCEEDED", job.get("statusReason"))
        self.assertEqual(job["arrayProperties"]["size"], 1000)
        self.assertEqual(job["arrayProperties"]["statusSummary"], summary_of(SUCCEEDED=1000))
        # One page of at most 1000.
        page = self.batch.list_jobs(arrayJobId=parent, jobStatus="SUCCEEDED", maxResults=1000)
        self.assertEqual(len(page["jobSummaryList"]), 1000)
        self.assertNotIn("nextToken", page)
        # Pages of 300: 4 pages, each child exactly once.
        listed, token, pages = [], None, 0
        while True:
            kwargs = {"arrayJobId": parent, "jobStatus": "SUCCEEDED", "maxResults": 300}
            if token:
                kwargs["nextToken"] = token
            page = self.batch.list_jobs(**kwargs)
            pages += 1
            self.assertLessEqual(len(page["jobSummaryList"]), 300)
            listed += page["jobSummaryList"]
            token = page.get("nextToken")
            if not token:
                break
            self.assertLess(pages, 10, "ListJobs paging never ended")
        self.assertEqual(pages, 4)
        self.assertEqual(len(listed), 1000)
        indexes = [s["arrayProperties"]["index"] for s in listed]
        self.assertEqual(sorted(indexes), list(range(1000)))
        for s in listed:
            self.assertEqual(s["jobId"], "%s:%d" % (parent, s["arrayProperties"]["index"]), s)
            self.assertEqual(s["status"], "SUCCEEDED", s)
        # No child is left in another state; the queue lists the parent, not its children.
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "FAILED"):
            self.assertEqual(self.list_jobs(arrayJobId=parent, jobStatus=status), [], status)
        self.assertEqual([s["jobId"] for s in self.list_jobs(jobQueue=queue,
                                                             jobStatus="SUCCEEDED")], [parent])
        # Every child ran once and succeeded.
        details = self.describe_all(self.children(parent, 1000))
        for cid, c in details.items():
            self.assertEqual((c["status"], len(c["attempts"]), c["container"].get("exitCode")),
                             ("SUCCEEDED", 1, 0), cid)

    def test_an_array_cut_by_a_sigkill_runs_each_child_exactly_once(self):
        """Given an array of 8 running one child at a time, a SIGKILL of the server after 3 children finished and a restart: the children that had not started are back whole (index, definition, command), and every child runs exactly once (one attempt each). Every child SUCCEEDS but, at most, the one whose start the kill cut (its attempt is then lost: "Host lost")."""
        ce = self.new_ce(1)   # VCPU 1 each: one child at a time
        queue = self.new_queue(ce)
        jd = self.new_jd(["sh", "-c", "sleep 0.2"], vcpus="1", memory="16")
        parent = self.submit(queue, jd, arrayProperties={"size": 8})
        self.wait_for("3 children SUCCEEDED", lambda: self.describe(parent)[
            "arrayProperties"]["statusSummary"]["SUCCEEDED"] >= 3)
        self.kill_and_restart_server()
        last = self.describe("%s:7" % parent)
        self.assertIn(last["status"], ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"))
        self.assertEqual(last["arrayProperties"], {"index": 7})
        self.assertEqual(last["jobDefinition"], self.describe(parent)["jobDefinition"])
        self.assertEqual(last["container"]["command"], ["sh", "-c", "sleep 0.2"])
        self.wait_done(parent)
        details = self.describe_all(self.children(parent, 8))
        lost = [c for c in details.values() if c["status"] != "SUCCEEDED"]
        self.assertLessEqual(len(lost), 1, lost)
        for child in lost:
            self.assertEqual(child["status"], "FAILED", child)
            self.assertIn("Host lost", child.get("statusReason", ""), child)
        for i in range(8):
            child = details["%s:%d" % (parent, i)]
            self.assertEqual(len(child["attempts"]), 1, child)
        self.assertEqual(self.describe(parent)["arrayProperties"]["statusSummary"],
                         summary_of(SUCCEEDED=8 - len(lost), FAILED=len(lost)))

    def test_each_child_sees_its_own_array_index(self):
        """Given an array of 5 echoing AWS_BATCH_JOB_ARRAY_INDEX and AWS_BATCH_JOB_ID, each child's log stream should hold its own index and its own `<parent>:<index>` id."""
        ce = self.new_ce(2)
        queue = self.new_queue(ce)
        jd = self.new_jd(["sh", "-c",
                          'echo "index=$AWS_BATCH_JOB_ARRAY_INDEX id=$AWS_BATCH_JOB_ID"'])
        parent = self.submit(queue, jd, arrayProperties={"size": 5})
        self.assertEqual(self.wait_done(parent)["status"], "SUCCEEDED")
        details = self.describe_all(self.children(parent, 5))
        streams = set()
        for i in range(5):
            child = details["%s:%d" % (parent, i)]
            self.assertEqual(child["arrayProperties"]["index"], i)
            streams.add(child["container"]["logStreamName"])
            self.assertEqual(self.output(child), ["index=%d id=%s:%d" % (i, parent, i)])
        self.assertEqual(len(streams), 5, "each child should have a log stream of its own")

    def test_array_with_a_failing_child_fails_after_all_children_finish(self):
        """Given an array of 4 whose child 2 exits 1 and children run one at a time, the parent should be FAILED only after child 3 has finished, with SUCCEEDED=3 FAILED=1."""
        ce = self.new_ce(1)   # VCPU 1 each: one child at a time, in index order
        queue = self.new_queue(ce)
        jd = self.new_jd(["sh", "-c", "test $AWS_BATCH_JOB_ARRAY_INDEX -ne 2"], vcpus="1")
        parent = self.submit(queue, jd, arrayProperties={"size": 4})
        job = self.wait_done(parent)
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["arrayProperties"]["statusSummary"],
                         summary_of(SUCCEEDED=3, FAILED=1))
        kids = self.describe_all(self.children(parent, 4))
        self.assertEqual([kids["%s:%d" % (parent, i)]["status"] for i in range(4)],
                         ["SUCCEEDED", "SUCCEEDED", "FAILED", "SUCCEEDED"])
        self.assertEqual(kids["%s:2" % parent]["container"]["exitCode"], 1)
        for c in kids.values():
            self.assertLessEqual(c["stoppedAt"], job["stoppedAt"], c["jobId"])
        self.assertEqual([s["arrayProperties"]["index"] for s in
                          self.list_jobs(arrayJobId=parent, jobStatus="FAILED")], [2])

    def test_cancel_of_the_parent_cancels_its_waiting_children(self):
        """Given an array of 3 whose children are RUNNABLE behind a running job, CancelJob on the parent should fail every child with isCancelled and the reason, and the parent should be FAILED, while the running job goes on."""
        ce = self.new_ce(1)
        queue = self.new_queue(ce)
        jd = self.new_jd(["true"], vcpus="1")
        blocker = self.submit(queue, jd, command=["sleep", "30"])
        self.wait_status(blocker, "RUNNING")
        parent = self.submit(queue, jd, arrayProperties={"size": 3})
        self.wait_for("3 RUNNABLE children", lambda: self.describe(parent)["arrayProperties"]
                      ["statusSummary"]["RUNNABLE"] == 3)
        self.batch.cancel_job(jobId=parent, reason="cancel the array")
        job = self.wait_done(parent)
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["arrayProperties"]["statusSummary"], summary_of(FAILED=3))
        for cid, c in self.describe_all(self.children(parent, 3)).items():
            self.assertEqual((c["status"], c["statusReason"], c["isCancelled"], c["attempts"]),
                             ("FAILED", "cancel the array", True, []), cid)
            self.assertNotIn("startedAt", c)
        self.assertEqual(self.describe(blocker)["status"], "RUNNING")

    def test_terminate_of_the_parent_kills_its_running_children(self):
        """Given an array of 3 children all RUNNING `sleep 30`, TerminateJob on the parent should kill them: each child FAILED with isTerminated and the reason, the parent FAILED."""
        ce = self.new_ce(2)
        queue = self.new_queue(ce)
        jd = self.new_jd(["sleep", "30"])
        parent = self.submit(queue, jd, arrayProperties={"size": 3})
        self.wait_for("3 RUNNING children", lambda: self.describe(parent)["arrayProperties"]
                      ["statusSummary"]["RUNNING"] == 3)
        self.batch.terminate_job(jobId=parent, reason="stop the array")
        job = self.wait_done(parent, timeout=15)  # well before `sleep 30` would end
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["arrayProperties"]["statusSummary"], summary_of(FAILED=3))
        for cid, c in self.describe_all(self.children(parent, 3)).items():
            self.assertEqual((c["status"], c["statusReason"], c["isTerminated"]),
                             ("FAILED", "stop the array", True), cid)
            self.assertEqual(len(c["attempts"]), 1, cid)
            self.assertNotEqual(c["attempts"][0]["container"].get("exitCode"), 0, cid)
            self.assertLess(c["stoppedAt"] - c["startedAt"], 30000, cid)


class DependencyTest(SchedulingTestCase):
    """dependsOn: chains, fan-out / fan-in, failure propagation, SEQUENTIAL and
    N_TO_N arrays."""

    def setUp(self):
        super().setUp()
        self.queue = self.new_queue(self.new_ce(2))
        self.jd = self.new_jd(["true"])

    def test_chain_runs_in_order(self):
        """Given A -> B -> C (each depending on the previous), each should SUCCEED and start only after the previous one stopped."""
        a = self.submit(self.queue, self.jd, command="sleep 0.3")
        b = self.submit(self.queue, self.jd, command="sleep 0.3", dependsOn=[{"jobId": a}])
        c = self.submit(self.queue, self.jd, dependsOn=[{"jobId": b}])
        jobs = self.wait_all([a, b, c])
        for j in jobs.values():
            self.assertEqual(j["status"], "SUCCEEDED", j)
        self.assertGreaterEqual(jobs[b]["startedAt"], jobs[a]["stoppedAt"])
        self.assertGreaterEqual(jobs[c]["startedAt"], jobs[b]["stoppedAt"])
        self.assertEqual(jobs[b]["dependsOn"], [{"jobId": a}])

    def test_fan_out_then_fan_in(self):
        """Given B1, B2, B3 depending on A and D depending on B1..B3, the Bs should start after A stopped and D after every B stopped."""
        a = self.submit(self.queue, self.jd, command="sleep 0.3")
        bs = [self.submit(self.queue, self.jd, command="sleep 0.3", dependsOn=[{"jobId": a}])
              for _ in range(3)]
        d = self.submit(self.queue, self.jd, dependsOn=[{"jobId": b} for b in bs])
        jobs = self.wait_all([a, d] + bs)
        for j in jobs.values():
            self.assertEqual(j["status"], "SUCCEEDED", j)
        for b in bs:
            self.assertGreaterEqual(jobs[b]["startedAt"], jobs[a]["stoppedAt"])
        self.assertGreaterEqual(jobs[d]["startedAt"], max(jobs[b]["stoppedAt"] for b in bs))

    def test_dependents_of_a_failing_job_fail_without_running(self):
        """Given B depending on a job A that exits 1 and C depending on B, B and C should be FAILED with a "Dependent Job" reason naming their dependency, and never start."""
        a = self.submit(self.queue, self.jd, command="sleep 0.2; exit 1")
        b = self.submit(self.queue, self.jd, dependsOn=[{"jobId": a}])
        c = self.submit(self.queue, self.jd, dependsOn=[{"jobId": b}])
        jobs = self.wait_all([a, b, c])
        self.assertEqual(jobs[a]["status"], "FAILED")
        for job_id, dep in ((b, a), (c, b)):
            j = jobs[job_id]
            self.assertEqual(j["status"], "FAILED", j)
            self.assertIn("Dependent Job", j["statusReason"])
            self.assertIn(dep, j["statusReason"])
            self.assertEqual(j["attempts"], [])
            self.assertNotIn("startedAt", j)

    def test_sequential_array_runs_children_one_after_another(self):
        """Given a SEQUENTIAL array of 3 on a CE with room for all, each child should start only after the previous child stopped."""
        parent = self.submit(self.queue, self.jd, command="sleep 0.3",
                             arrayProperties={"size": 3}, dependsOn=[{"type": "SEQUENTIAL"}])
        self.assertEqual(self.wait_done(parent)["status"], "SUCCEEDED")
        kids = self.describe_all(self.children(parent, 3))
        ordered = [kids["%s:%d" % (parent, i)] for i in range(3)]
        for prev, cur in zip(ordered, ordered[1:]):
            self.assertEqual(cur["status"], "SUCCEEDED", cur)
            self.assertGreaterEqual(cur["startedAt"], prev["stoppedAt"], cur["jobId"])

    def test_n_to_n_children_wait_for_their_own_counterpart(self):
        """Given array Y N_TO_N on array X (3 each) where X:0 runs long, Y:1 and Y:2 should run after X:1 and X:2 while Y:0 stays PENDING, a job depending on X's parent should wait for the whole array, and terminating X:0 should fail Y:0 and that job."""
        x = self.submit(self.queue, self.jd, arrayProperties={"size": 3},
                        command="if [ $AWS_BATCH_JOB_ARRAY_INDEX -eq 0 ]; then sleep 30; fi")
        y = self.submit(self.queue, self.jd, arrayProperties={"size": 3},
                        dependsOn=[{"jobId": x, "type": "N_TO_N"}])
        whole = self.submit(self.queue, self.jd, dependsOn=[{"jobId": x}])
        x0, x1, x2 = self.children(x, 3)
        y0, y1, y2 = self.children(y, 3)
        jobs = self.wait_all([x1, x2, y1, y2])
        for j in jobs.values():
            self.assertEqual(j["status"], "SUCCEEDED", j)
        self.assertGreaterEqual(jobs[y1]["startedAt"], jobs[x1]["stoppedAt"])
        self.assertGreaterEqual(jobs[y2]["startedAt"], jobs[x2]["stoppedAt"])
        now = self.describe_all([x0, y0, whole])
        self.assertEqual(now[x0]["status"], "RUNNING")
        self.assertEqual(now[y0]["status"], "PENDING", now[y0])
        self.assertIn(x0, now[y0].get("statusReason", ""))
        self.assertEqual(now[whole]["status"], "PENDING", now[whole])
        self.batch.terminate_job(jobId=x0, reason="stop X:0")
        jobs = self.wait_all([x, y, whole, y0])
        self.assertEqual(jobs[x]["status"], "FAILED")
        self.assertEqual(jobs[y0]["status"], "FAILED")
        self.assertIn("Dependent Job", jobs[y0]["statusReason"])
        self.assertIn(x0, jobs[y0]["statusReason"])
        self.assertEqual(jobs[y0]["attempts"], [])
        self.assertEqual(jobs[y]["status"], "FAILED")
        self.assertEqual(jobs[y]["arrayProperties"]["statusSummary"],
                         summary_of(SUCCEEDED=2, FAILED=1))
        self.assertEqual(jobs[whole]["status"], "FAILED")
        self.assertIn("Dependent Job", jobs[whole]["statusReason"])
        self.assertEqual(jobs[whole]["attempts"], [])


class RetryAndTimeoutTest(SchedulingTestCase):
    """retryStrategy (attempts, evaluateOnExit) and timeout.attemptDurationSeconds."""

    def setUp(self):
        super().setUp()
        self.queue = self.new_queue(self.new_ce(2))
        self.jd = self.new_jd(["true"])

    def test_retry_strategy_attempts_and_exit_rules(self):
        """Given attempts=2 and a command failing only on attempt 1, it should SUCCEED after 2 attempts; attempts=3 always failing should FAIL after 3; an EXIT rule on exit code 42 with attempts=5 should FAIL after 1."""
        second = self.submit(self.queue, self.jd, command='test "$AWS_BATCH_JOB_ATTEMPT" -ge 2',
                             retryStrategy={"attempts": 2})
        never = self.submit(self.queue, self.jd, command="exit 3",
                            retryStrategy={"attempts": 3})
        exit_rule = self.submit(self.queue, self.jd, command="exit 42",
                                retryStrategy={"attempts": 5, "evaluateOnExit": [
                                    {"onExitCode": "42", "action": "EXIT"}]})
        jobs = self.wait_all([second, never, exit_rule])
        j = jobs[second]
        self.assertEqual(j["status"], "SUCCEEDED", j)
        self.assertEqual([a["container"]["exitCode"] for a in j["attempts"]], [1, 0])
        j = jobs[never]
        self.assertEqual(j["status"], "FAILED", j)
        self.assertEqual([a["container"]["exitCode"] for a in j["attempts"]], [3, 3, 3])
        j = jobs[exit_rule]
        self.assertEqual(j["status"], "FAILED", j)
        self.assertEqual([a["container"]["exitCode"] for a in j["attempts"]], [42])
        for j in jobs.values():
            for prev, cur in zip(j["attempts"], j["attempts"][1:]):
                self.assertGreaterEqual(cur["startedAt"], prev["stoppedAt"])

    def test_attempt_duration_timeout_kills_and_follows_the_retry_strategy(self):
        """Given attemptDurationSeconds=2 on `sleep 30`, the job should be FAILED with "Job attempt duration exceeded timeout" well before 30 s; with attempts=2 it should have 2 timed-out attempts."""
        once = self.submit(self.queue, self.jd, command=["sleep", "30"],
                           timeout={"attemptDurationSeconds": 2})
        twice = self.submit(self.queue, self.jd, command=["sleep", "30"],
                            timeout={"attemptDurationSeconds": 2},
                            retryStrategy={"attempts": 2})
        # Bounded well below the 30 s the command would take on its own.
        jobs = self.wait_all([once, twice], timeout=20)
        for job_id, n in ((once, 1), (twice, 2)):
            j = jobs[job_id]
            self.assertEqual((j["status"], j["statusReason"]), ("FAILED", TIMED_OUT), j)
            self.assertEqual(len(j["attempts"]), n, j)
            for a in j["attempts"]:
                self.assertEqual(a["statusReason"], TIMED_OUT)
                self.assertNotEqual(a["container"].get("exitCode"), 0)
                self.assertGreaterEqual(a["stoppedAt"] - a["startedAt"], 2000, a)
                self.assertLess(a["stoppedAt"] - a["startedAt"], 30000, a)
        self.assertEqual(jobs[once]["timeout"], {"attemptDurationSeconds": 2})


class FairShareTest(SchedulingTestCase):
    """Fair-share queues: weights measured under contention, shareIdentifier rules."""

    def test_weights_1_and_half_run_in_a_1_to_2_ratio(self):
        """Given shares A (weightFactor 1) and B (0.5) with 30 `sleep 1` jobs each on a 6-slot CE, B should hold about twice A's running jobs while both still have RUNNABLE jobs."""
        policy = self.make_policy(fairsharePolicy={"shareDistribution": [
            {"shareIdentifier": "A", "weightFactor": 1.0},
            {"shareIdentifier": "B", "weightFactor": 0.5}]})
        # 0.16 vCPU per job on maxvCpus 1: exactly 6 slots (7 x 0.16 > 1).
        ce = self.new_ce(1, state="DISABLED")
        queue = self.new_queue(ce, schedulingPolicyArn=policy)
        jd = self.new_jd(["sleep", "1"], vcpus="0.16")
        ids = {"A": [], "B": []}
        for _ in range(30):
            for share in ("A", "B"):
                ids[share].append(self.submit(queue, jd, shareIdentifier=share))
        share_of = {j: s for s, js in ids.items() for j in js}
        all_ids = ids["A"] + ids["B"]
        self.wait_all(all_ids, "RUNNABLE")
        self.enable_ce(ce)   # every job is RUNNABLE: the first pass already sees both shares
        samples = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = {"A": 0, "B": 0}
            for s in self.list_jobs(jobQueue=queue, jobStatus="RUNNING"):
                running[share_of[s["jobId"]]] += 1
            waiting = {"A": 0, "B": 0}
            for s in self.list_jobs(jobQueue=queue, jobStatus="RUNNABLE"):
                waiting[share_of[s["jobId"]]] += 1
            self.assertLessEqual(running["A"] + running["B"], 6, running)
            if not (waiting["A"] and waiting["B"]):
                break
            samples.append(running)
            time.sleep(POLL)
        else:
            self.fail("the shares never ran out of RUNNABLE jobs")
        # Stop the rest: RUNNABLE jobs are cancelled, running ones end within 1 s.
        for j in all_ids:
            self.batch.cancel_job(jobId=j, reason="enough samples")
        self.wait_all(all_ids)
        self.assertGreaterEqual(len(samples), 20, "too few samples to measure")
        mean_a = sum(s["A"] for s in samples) / len(samples)
        mean_b = sum(s["B"] for s in samples) / len(samples)
        self.assertGreater(mean_a, 0, samples)
        ratio = mean_b / mean_a
        self.assertTrue(1.5 <= ratio <= 2.6,
                        "B (weight 0.5) ran %.2f jobs on average, A (weight 1) %.2f: ratio "
                        "%.2f, want about 2 (%d samples)" % (mean_b, mean_a, ratio, len(samples)))

    def test_share_identifier_required_on_fair_share_and_refused_on_fifo(self):
        """Given a fair-share queue and a FIFO queue, a submission without shareIdentifier to the first and one with shareIdentifier to the second should be refused with ClientException."""
        policy = self.make_policy(fairsharePolicy={"shareDistribution": [
            {"shareIdentifier": "A", "weightFactor": 1.0}]})
        ce = self.new_ce(1)
        fair = self.new_queue(ce, schedulingPolicyArn=policy)
        fifo = self.new_queue(ce)
        jd = self.new_jd(["true"])
        self.assertClientError(self.batch.submit_job, jobName="no-share", jobQueue=fair,
                               jobDefinition=jd, contains="shareIdentifier")
        self.assertClientError(self.batch.submit_job, jobName="with-share", jobQueue=fifo,
                               jobDefinition=jd, shareIdentifier="A", contains="shareIdentifier")
        for q in (fair, fifo):
            for status in ("SUBMITTED", "PENDING", "RUNNABLE", "RUNNING", "SUCCEEDED",
                           "FAILED"):
                self.assertEqual(self.list_jobs(jobQueue=q, jobStatus=status), [])
        # The right way round is accepted and runs.
        ok = self.submit(fair, jd, shareIdentifier="A")
        self.assertEqual(self.wait_done(ok)["status"], "SUCCEEDED")
        self.assertEqual(self.describe(ok)["shareIdentifier"], "A")


class CapacityTest(SchedulingTestCase):
    """Queue priorities, jobs that can never fit, jobStateTimeLimitActions and
    GetJobQueueSnapshot."""

    def test_higher_priority_queue_starts_first(self):
        """Given a low- and a high-priority queue on one CE that runs one job at a time, with low's jobs submitted first, every high job should start before any low job."""
        ce = self.new_ce(1, state="DISABLED")
        low = self.new_queue(ce, priority=1)
        high = self.new_queue(ce, priority=10)
        jd = self.new_jd(["true"], vcpus="1")
        lows = [self.submit(low, jd) for _ in range(3)]
        highs = [self.submit(high, jd) for _ in range(3)]
        self.wait_all(lows + highs, "RUNNABLE")
        self.enable_ce(ce)
        jobs = self.wait_all(lows + highs)
        for j in jobs.values():
            self.assertEqual(j["status"], "SUCCEEDED", j)
        order = sorted(jobs.values(), key=lambda j: (j["startedAt"], j["stoppedAt"]))
        self.assertEqual([j["jobId"] for j in order], highs + lows,
                         [(j["jobQueue"].rsplit("/", 1)[1], j["startedAt"]) for j in order])
        for prev, cur in zip(order, order[1:]):  # one at a time (maxvCpus 1, VCPU 1)
            self.assertGreaterEqual(cur["startedAt"], prev["stoppedAt"])

    def test_jobs_that_can_never_fit_wait_with_a_misconfiguration_reason(self):
        """Given a job needing 2 vCPUs on a CE of maxvCpus 1 and one needing more memory than the host, they should stay RUNNABLE with MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE and MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT reasons."""
        ce = self.new_ce(1)
        queue = self.new_queue(ce)
        jd = self.new_jd(["true"])
        too_many_vcpus = self.submit(queue, jd, vcpus=2)
        too_much_memory = self.submit(queue, jd, memory=10000000)
        j = self.wait_reason(too_many_vcpus, "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE")
        self.assertEqual(j["status"], "RUNNABLE")
        j = self.wait_reason(too_much_memory, "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")
        self.assertEqual(j["status"], "RUNNABLE")
        # A job that fits runs past them; they stay.
        small = self.submit(queue, jd)
        self.assertEqual(self.wait_done(small)["status"], "SUCCEEDED")
        now = self.describe_all([too_many_vcpus, too_much_memory])
        self.assertEqual([now[too_many_vcpus]["status"], now[too_much_memory]["status"]],
                         ["RUNNABLE", "RUNNABLE"])
        self.assertTrue(now[too_many_vcpus]["statusReason"].startswith(
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"), now[too_many_vcpus])

    def test_job_state_time_limit_action_cancels_a_job_that_can_never_run(self):
        """Given a queue whose jobStateTimeLimitActions cancel RUNNABLE jobs with reason MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE after 2 s, a job needing more than maxvCpus should be FAILED with isCancelled within seconds, while the same job on a queue without the action stays RUNNABLE."""
        ce = self.new_ce(1)
        plain = self.new_queue(ce)
        limited = self.new_queue(ce, jobStateTimeLimitActions=[{
            "reason": "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", "state": "RUNNABLE",
            "maxTimeSeconds": 2, "action": "CANCEL"}])
        jd = self.new_jd(["true"])
        stays = self.submit(plain, jd, vcpus=2)
        cancelled = self.submit(limited, jd, vcpus=2)
        self.wait_reason(cancelled, "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE")
        j = self.wait_done(cancelled, timeout=15)
        self.assertEqual((j["status"], j["isCancelled"]), ("FAILED", True), j)
        self.assertIn("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", j["statusReason"])
        self.assertEqual(j["attempts"], [])
        j = self.describe(stays)
        self.assertEqual(j["status"], "RUNNABLE", j)
        self.assertTrue(j["statusReason"].startswith(
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"), j)

    def test_queue_snapshot_lists_runnable_jobs_in_order(self):
        """Given 3 RUNNABLE jobs waiting on a DISABLED compute environment, GetJobQueueSnapshot should list them in submission order in frontOfQueue.jobs, and list none once they have run."""
        ce = self.new_ce(1, state="DISABLED")
        queue = self.new_queue(ce)
        jd = self.new_jd(["true"])
        ids = [self.submit(queue, jd) for _ in range(3)]
        self.wait_all(ids, "RUNNABLE")
        for j in self.describe_all(ids).values():
            self.assertIn("ENABLED", j.get("statusReason", ""), j)
        front = self.batch.get_job_queue_snapshot(jobQueue=queue)["frontOfQueue"]
        self.assertEqual([j["jobArn"] for j in front["jobs"]], [self.arn("job", i) for i in ids])
        for j in front["jobs"]:
            self.assertGreater(j["earliestTimeAtPosition"], 1e12)
        self.enable_ce(ce)
        self.wait_all(ids)
        self.assertEqual(self.batch.get_job_queue_snapshot(jobQueue=queue)["frontOfQueue"]
                         ["jobs"], [])


class ConsumableResourceTest(SchedulingTestCase):
    """Consumable resources: held while a job runs, REPLENISHABLE given back,
    NON_REPLENISHABLE used up."""

    def setUp(self):
        super().setUp()
        self.queue = self.new_queue(self.new_ce(2))
        self.jd = self.new_jd(["true"])

    def needs(self, resource, quantity=1):
        return {"consumableResourcePropertiesOverride": {"consumableResourceList": [
            {"consumableResource": resource, "quantity": quantity}]}}

    def test_replenishable_resource_runs_its_jobs_one_at_a_time(self):
        """Given a REPLENISHABLE resource of 1 and three `sleep 1` jobs each needing 1, at most one should run at a time, inUseQuantity should be 1 while one runs and 0 at the end, and ListJobsByConsumableResource should list the three with quantity 1."""
        name = self.name("lic")
        self.make_consumable(name, totalQuantity=1, resourceType="REPLENISHABLE")
        ids = [self.submit(self.queue, self.jd, command=["sleep", "1"], **self.needs(name))
               for _ in range(3)]
        seen_in_use = set()
        deadline = time.monotonic() + DEADLINE
        while True:
            running = self.list_jobs(jobQueue=self.queue, jobStatus="RUNNING")
            self.assertLessEqual(len(running), 1, running)
            cr = self.batch.describe_consumable_resource(consumableResource=name)
            self.assertIn(cr["inUseQuantity"], (0, 1), cr)
            self.assertEqual(cr["totalQuantity"], 1, cr)
            self.assertEqual(cr["availableQuantity"], 1 - cr["inUseQuantity"], cr)
            if running and cr["inUseQuantity"] == 1:
                seen_in_use.add(running[0]["jobId"])
            jobs = self.describe_all(ids)
            if all(j["status"] in TERMINAL for j in jobs.values()):
                break
            self.assertLess(time.monotonic(), deadline, "jobs did not finish")
            time.sleep(POLL)
        self.assertTrue(seen_in_use, "inUseQuantity was never 1 while a job ran")
        for j in jobs.values():
            self.assertEqual(j["status"], "SUCCEEDED", j)
        order = sorted(jobs.values(), key=lambda j: j["startedAt"])
        for prev, cur in zip(order, order[1:]):
            self.assertGreaterEqual(cur["startedAt"], prev["stoppedAt"], "two held the resource")
        cr = self.batch.describe_consumable_resource(consumableResource=name)
        self.assertEqual((cr["totalQuantity"], cr["inUseQuantity"], cr["availableQuantity"]),
                         (1, 0, 1), cr)
        listed = self.batch.list_jobs_by_consumable_resource(consumableResource=name)["jobs"]
        self.assertEqual(sorted(j["jobArn"] for j in listed),
                         sorted(self.arn("job", i) for i in ids))
        for j in listed:
            self.assertEqual((j["quantity"], j["jobStatus"]), (1, "SUCCEEDED"), j)
            self.assertEqual(j["jobQueueArn"], self.arn("job-queue", self.queue))

    def test_non_replenishable_resource_is_used_up(self):
        """Given a NON_REPLENISHABLE resource of 2 and three jobs each needing 1, two should run and the third stay RUNNABLE with a reason naming the resource while totalQuantity drops to 0; adding 1 should let it run."""
        name = self.name("tok")
        self.make_consumable(name, totalQuantity=2, resourceType="NON_REPLENISHABLE")
        ids = [self.submit(self.queue, self.jd, **self.needs(name)) for _ in range(3)]

        def used_up():
            jobs = self.describe_all(ids)
            done = [j for j in jobs.values() if j["status"] == "SUCCEEDED"]
            cr = self.batch.describe_consumable_resource(consumableResource=name)
            return (jobs, cr) if len(done) == 2 and cr["totalQuantity"] == 0 else None
        jobs, cr = self.wait_for("two jobs to use the resource up", used_up)
        self.assertEqual((cr["inUseQuantity"], cr["availableQuantity"]), (0, 0), cr)
        [third] = [j for j in jobs.values() if j["status"] != "SUCCEEDED"]
        third = self.wait_for("the third job to wait naming the resource", lambda: (
            lambda j: j if name in j.get("statusReason", "") else None)(
            self.describe(third["jobId"])))
        self.assertEqual(third["status"], "RUNNABLE", third)
        self.assertEqual(third["jobId"], ids[2], "jobs should take the resource in order")
        self.batch.update_consumable_resource(consumableResource=name, operation="ADD",
                                              quantity=1)
        self.assertEqual(self.wait_done(third["jobId"])["status"], "SUCCEEDED")
        cr = self.batch.describe_consumable_resource(consumableResource=name)
        self.assertEqual((cr["totalQuantity"], cr["inUseQuantity"]), (0, 0), cr)


if __name__ == "__main__":
    unittest.main()
