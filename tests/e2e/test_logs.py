"""The CloudWatch Logs API on the Drover endpoint, driven by boto3 and the AWS
CLIs (v1: python3 -m awscli; v2: /usr/bin/aws, which alone has `aws logs tail`):
job output read back with GetLogEvents / FilterLogEvents, streams and groups
described, tokens paged to the end, errors, and output readable while the job
still runs."""

import json
import subprocess
import unittest

from harness import AWS_CLI_V1, AWS_CLI_V2, http
from test_jobs import JobsTestCase, gated

GROUP = "/aws/batch/job"
CUSTOM_GROUP = "/drover-e2e/custom"


def numbered_lines(word, n=25):
    """A script printing `<word> line i` for i in 1..n, with " needle" on every 5th."""
    return ('i=1; while [ $i -le %d ]; do '
            'if [ $((i %% 5)) = 0 ]; then echo "%s line $i needle"; '
            'else echo "%s line $i"; fi; i=$((i+1)); done' % (n, word, word))


class LogsTest(JobsTestCase):
    """Two finished jobs (definitions `alpha` and `beta`, 25 lines each, every
    5th with "needle") and one whose definition logs to a custom group."""

    fixture = None

    def jobs(self):
        """Runs the fixture jobs once per class (one after the other, so that every
        line of alpha's stream is older than every line of beta's)."""
        cls = type(self)
        if cls.fixture is None:
            fx = {}
            for word in ("alpha", "beta"):
                jd = self.new_jd(name=word)
                job = self.run_job(numbered_lines(word), jd=jd, cleanup=False)
                self.assertEqual(job["status"], "SUCCEEDED", job)
                fx[word] = job
                fx[word + "_stream"] = job["container"]["logStreamName"]
                fx[word + "_messages"] = self.messages(fx[word + "_stream"])
            jd = self.new_jd(name="custom", logConfiguration={
                "logDriver": "awslogs",
                "options": {"awslogs-group": CUSTOM_GROUP,
                            "awslogs-stream-prefix": "custom-prefix"}})
            job = self.run_job(["echo", "in the custom group"], jd=jd, cleanup=False)
            self.assertEqual(job["status"], "SUCCEEDED", job)
            fx["custom"] = job
            cls.fixture = fx
        return cls.fixture

    def aws_logs(self, args, version, output_json=True, timeout=60):
        """Runs `aws logs ARGS` with CLI v1 or v2; returns (rc, parsed JSON or text, stderr)."""
        base = AWS_CLI_V1 if version == 1 else AWS_CLI_V2
        cmd = base + ["logs"] + list(args) + ["--endpoint-url", self.server.endpoint]
        if output_json:
            cmd += ["--output", "json"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=self.server.cli_env())
        out = p.stdout
        if output_json and out.strip():
            try:
                out = json.loads(out)
            except ValueError:
                pass
        return p.returncode, out, p.stderr

    # --- GetLogEvents ----------------------------------------------------------

    def test_fixture_streams_hold_headers_then_every_line(self):
        """Given a job printing 25 lines, its stream should hold any [drover] header lines (notes on what was not applied) then exactly those lines in order."""
        fx = self.jobs()
        messages = fx["alpha_messages"]
        headers = [m for m in messages if m.startswith("[drover]")]
        self.assertEqual(messages[:len(headers)], headers, messages[:5])
        self.assertEqual(messages[len(headers):],
                         ["alpha line %d%s" % (i, " needle" if i % 5 == 0 else "")
                          for i in range(1, 26)])

    def test_get_log_events_default_is_newest_and_start_from_head_is_oldest(self):
        """Given a stream longer than the limit, GetLogEvents should return its newest events by default and its oldest with startFromHead, oldest first in both."""
        fx = self.jobs()
        full, stream = fx["alpha_messages"], fx["alpha_stream"]
        newest = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=3)
        self.assertEqual([e["message"] for e in newest["events"]], full[-3:])
        oldest = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=3,
                                          startFromHead=True)
        self.assertEqual([e["message"] for e in oldest["events"]], full[:3])
        everything = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream)
        self.assertEqual([e["message"] for e in everything["events"]], full)
        stamps = [e["timestamp"] for e in everything["events"]]
        self.assertEqual(stamps, sorted(stamps))
        # logGroupIdentifier (the group's ARN) names the same group.
        arn = "arn:aws:logs:%s:%s:log-group:%s" % (self.server.region, self.server.account_id,
                                                   GROUP)
        by_arn = self.logs.get_log_events(logGroupIdentifier=arn, logStreamName=stream,
                                          startFromHead=True, limit=3)
        self.assertEqual([e["message"] for e in by_arn["events"]], full[:3])

    def test_forward_and_backward_tokens_page_to_the_end(self):
        """Given limit=4, following nextForwardToken from the head should read every event once and end with an empty page giving the same token back; nextBackwardToken from the newest should read them all backwards."""
        fx = self.jobs()
        full, stream = fx["alpha_messages"], fx["alpha_stream"]
        page = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=4,
                                        startFromHead=True)
        got = [e["message"] for e in page["events"]]
        token = page["nextForwardToken"]
        for _ in range(100):
            page = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=4,
                                            nextToken=token)
            if page["nextForwardToken"] == token:
                break
            self.assertLessEqual(len(page["events"]), 4)
            got += [e["message"] for e in page["events"]]
            token = page["nextForwardToken"]
        else:
            self.fail("nextForwardToken never came back the same")
        self.assertEqual(page["events"], [])
        self.assertEqual(got, full)
        # Once more from the end: still the same token, no events.
        again = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                         nextToken=token)
        self.assertEqual((again["events"], again["nextForwardToken"]), ([], token))
        # Backwards from the newest page.
        page = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=4)
        pages = [[e["message"] for e in page["events"]]]
        token = page["nextBackwardToken"]
        for _ in range(100):
            page = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=4,
                                            nextToken=token)
            if not page["events"]:
                break
            pages.insert(0, [e["message"] for e in page["events"]])
            token = page["nextBackwardToken"]
        else:
            self.fail("backward paging never reached the start")
        self.assertEqual([m for p in pages for m in p], full)

    def test_get_log_events_with_cli_v1_and_v2(self):
        """Given a job's stream, `aws logs get-log-events --start-from-head` with CLI v1 and v2 should print the same events as boto3."""
        fx = self.jobs()
        stream = fx["beta_stream"]
        expected = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                            startFromHead=True)["events"]
        for version in (1, 2):
            rc, out, err = self.aws_logs(["get-log-events", "--log-group-name", GROUP,
                                          "--log-stream-name", stream, "--start-from-head"],
                                         version)
            self.assertEqual(rc, 0, "CLI v%d: %s" % (version, err))
            self.assertEqual(out["events"], expected, "CLI v%d" % version)
            self.assertIn("nextForwardToken", out)

    # --- FilterLogEvents -------------------------------------------------------

    def needles(self):
        fx = self.jobs()
        return ([(fx["alpha_stream"], "alpha line %d needle" % i) for i in range(5, 26, 5)]
                + [(fx["beta_stream"], "beta line %d needle" % i) for i in range(5, 26, 5)])

    def test_filter_log_events_matches_across_streams_and_pages_to_the_end(self):
        """Given a pattern in two jobs' streams, FilterLogEvents should return the matches of both in time order with stable eventIds, and paging with limit=3 should end without a nextToken."""
        expected = self.needles()
        whole = self.logs.filter_log_events(logGroupName=GROUP, filterPattern="needle")
        self.assertNotIn("nextToken", whole)
        self.assertEqual([(e["logStreamName"], e["message"]) for e in whole["events"]], expected)
        stamps = [e["timestamp"] for e in whole["events"]]
        self.assertEqual(stamps, sorted(stamps))
        ids = [e["eventId"] for e in whole["events"]]
        self.assertEqual(len(set(ids)), len(ids))
        paged, token, pages = [], None, 0
        for _ in range(20):
            kwargs = {"logGroupName": GROUP, "filterPattern": "needle", "limit": 3}
            if token:
                kwargs["nextToken"] = token
            page = self.logs.filter_log_events(**kwargs)
            pages += 1
            self.assertLessEqual(len(page["events"]), 3)
            paged += page["events"]
            token = page.get("nextToken")
            if not token:
                break
        self.assertEqual(pages, 4)
        self.assertEqual([e["eventId"] for e in paged], ids)
        self.assertEqual(paged, whole["events"])
        # The boto3 paginator (which stops when no nextToken comes) agrees.
        via_paginator = [e for p in self.logs.get_paginator("filter_log_events").paginate(
            logGroupName=GROUP, filterPattern="needle", PaginationConfig={"PageSize": 4})
            for e in p["events"]]
        self.assertEqual(via_paginator, whole["events"])

    def test_filter_log_events_patterns_and_stream_selection(self):
        """Given filter patterns (quoted phrase, ?term, -term) and stream selections by name and prefix, FilterLogEvents should return exactly the matching lines."""
        fx = self.jobs()

        def messages(**kwargs):
            return [e["message"] for e in
                    self.logs.filter_log_events(logGroupName=GROUP, **kwargs)["events"]]
        self.assertEqual(messages(filterPattern='"alpha line 2"'),
                         ["alpha line 2", "alpha line 20 needle", "alpha line 21",
                          "alpha line 22", "alpha line 23", "alpha line 24",
                          "alpha line 25 needle"])
        self.assertEqual(messages(filterPattern='?"line 24" ?"line 13"',
                                  logStreamNames=[fx["beta_stream"]]),
                         ["beta line 13", "beta line 24"])
        self.assertEqual(messages(filterPattern="needle -alpha"),
                         ["beta line %d needle" % i for i in range(5, 26, 5)])
        self.assertEqual(messages(filterPattern="needle", logStreamNamePrefix="alpha/"),
                         ["alpha line %d needle" % i for i in range(5, 26, 5)])
        self.assertEqual(messages(filterPattern="no-such-text-anywhere"), [])

    def test_filter_log_events_cli_paginates_to_the_end(self):
        """Given the AWS CLI's automatic pagination with a small page size, `aws logs filter-log-events` (v1 and v2) should terminate with every match of both streams."""
        expected = self.needles()
        for version in (1, 2):
            rc, out, err = self.aws_logs(["filter-log-events", "--log-group-name", GROUP,
                                          "--filter-pattern", "needle", "--page-size", "3"],
                                         version, timeout=60)
            self.assertEqual(rc, 0, "CLI v%d: %s" % (version, err))
            self.assertEqual([(e["logStreamName"], e["message"]) for e in out["events"]],
                             expected, "CLI v%d" % version)

    # --- streams and groups ----------------------------------------------------

    def test_describe_log_streams_by_prefix_and_order(self):
        """Given streams of several definitions, DescribeLogStreams should select by prefix, order by last event time, page with limit and give each stream's ARN and times."""
        fx = self.jobs()
        got = self.logs.describe_log_streams(logGroupName=GROUP,
                                             logStreamNamePrefix="alpha/")["logStreams"]
        self.assertEqual([s["logStreamName"] for s in got], [fx["alpha_stream"]])
        [s] = got
        self.assertEqual(s["arn"], "arn:aws:logs:%s:%s:log-group:%s:log-stream:%s" % (
            self.server.region, self.server.account_id, GROUP, fx["alpha_stream"]))
        self.assertLessEqual(s["firstEventTimestamp"], s["lastEventTimestamp"])
        self.assertGreater(s["storedBytes"], 0)
        self.assertIn("creationTime", s)
        by_time = self.logs.describe_log_streams(logGroupName=GROUP, orderBy="LastEventTime",
                                                 descending=True)["logStreams"]
        names = [s["logStreamName"] for s in by_time]
        self.assertLess(names.index(fx["beta_stream"]), names.index(fx["alpha_stream"]))
        last = [s["lastEventTimestamp"] for s in by_time if "lastEventTimestamp" in s]
        self.assertEqual(last, sorted(last, reverse=True))
        # limit=1: one stream per page, every stream once.
        paged, token = [], None
        for _ in range(100):
            kwargs = {"logGroupName": GROUP, "limit": 1}
            if token:
                kwargs["nextToken"] = token
            page = self.logs.describe_log_streams(**kwargs)
            paged += [s["logStreamName"] for s in page["logStreams"]]
            token = page.get("nextToken")
            if not token:
                break
        self.assertEqual(paged, sorted(names))

    def test_definition_log_configuration_names_group_and_stream_prefix(self):
        """Given a definition with awslogs-group and awslogs-stream-prefix, the job's stream should be <prefix>/default/<taskId> in that group, listed by DescribeLogGroups."""
        job = self.jobs()["custom"]
        stream = job["container"]["logStreamName"]
        self.assertRegex(stream, r"^custom-prefix/default/[0-9a-f]{32}$")
        self.assertEqual(self.output(job["jobId"], group=CUSTOM_GROUP), ["in the custom group"])
        with self.assertRaises(self.logs.exceptions.ResourceNotFoundException):
            self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream)
        groups = self.logs.describe_log_groups()["logGroups"]
        names = [g["logGroupName"] for g in groups]
        self.assertIn(GROUP, names)
        self.assertIn(CUSTOM_GROUP, names)
        only = self.logs.describe_log_groups(logGroupNamePrefix="/drover-e2e")["logGroups"]
        self.assertEqual([g["logGroupName"] for g in only], [CUSTOM_GROUP])
        arn = "arn:aws:logs:%s:%s:log-group:%s" % (self.server.region, self.server.account_id,
                                                   CUSTOM_GROUP)
        self.assertEqual(only[0]["arn"], arn + ":*")
        self.assertEqual(only[0]["logGroupArn"], arn)
        self.assertGreater(only[0]["storedBytes"], 0)
        streams = self.logs.describe_log_streams(logGroupName=CUSTOM_GROUP)["logStreams"]
        self.assertEqual([s["logStreamName"] for s in streams], [stream])

    def test_aws_logs_tail_v2_prints_the_lines_and_exits(self):
        """Given CLI v2, `aws logs tail /aws/batch/job --log-stream-names S` should print every line of that job (and no other job's) and exit 0."""
        fx = self.jobs()
        rc, out, err = self.aws_logs(["tail", GROUP, "--since", "1h",
                                      "--log-stream-names", fx["alpha_stream"]],
                                     2, output_json=False, timeout=60)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        for message in fx["alpha_messages"]:
            self.assertTrue(any(l.endswith(" " + message) for l in lines),
                            "tail did not print %r:\n%s" % (message, out))
        self.assertEqual(len(lines), len(fx["alpha_messages"]), out)
        self.assertNotIn("beta line", out)
        self.assertTrue(all(fx["alpha_stream"] in l for l in lines), out)

    # --- errors ----------------------------------------------------------------

    def test_unknown_stream_or_group_is_resource_not_found(self):
        """Given an unknown stream or group, the Logs operations should answer ResourceNotFoundException (HTTP 400), and the CLI should exit non-zero naming it."""
        self.jobs()
        err = self.assertClientError(self.logs.get_log_events, logGroupName=GROUP,
                                     logStreamName="alpha/default/no-such-task",
                                     error_code="ResourceNotFoundException", http_status=400)
        self.assertIn("stream", err["Error"]["Message"].lower())
        for call, kwargs in [
                (self.logs.get_log_events, {"logGroupName": "/no/such/group",
                                            "logStreamName": "x"}),
                (self.logs.filter_log_events, {"logGroupName": "/no/such/group"}),
                (self.logs.describe_log_streams, {"logGroupName": "/no/such/group"})]:
            with self.subTest(call=call.__name__):
                self.assertClientError(call, error_code="ResourceNotFoundException",
                                       http_status=400, **kwargs)
        rc, out, err = self.aws_logs(["get-log-events", "--log-group-name", GROUP,
                                      "--log-stream-name", "alpha/default/no-such-task"], 1)
        self.assertNotEqual(rc, 0)
        self.assertIn("ResourceNotFoundException", err)

    def test_request_signed_for_another_service_is_refused(self):
        """Given requests signed with a credential scope for the other service (a Logs call signed for "batch", a Batch call signed for "logs"), each should be refused with InvalidSignatureException (403)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        creds = Credentials(self.server.access_key, self.server.secret_key)

        def signed(service, path, body, headers):
            req = AWSRequest(method="POST", url=self.server.endpoint + path, data=body,
                             headers=headers)
            SigV4Auth(creds, service, self.server.region).add_auth(req)
            return http("POST", self.server.endpoint + path, body, dict(req.headers))
        logs_call = ("/", "{}",
                     {"X-Amz-Target": "Logs_20140328.DescribeLogGroups",
                      "Content-Type": "application/x-amz-json-1.1"})
        batch_call = ("/v1/describejobqueues", "{}", {"Content-Type": "application/json"})
        # Signed for the right service, both are answered.
        self.assertEqual(signed("logs", *logs_call)[0], 200)
        self.assertEqual(signed("batch", *batch_call)[0], 200)
        for service, call, what in (("batch", logs_call, "a Logs call signed for batch"),
                                    ("logs", batch_call, "a Batch call signed for logs")):
            status, headers, body = signed(service, *call)
            with self.subTest(what):
                self.assertEqual(status, 403, "%s was answered: %s" % (what, body[:200]))
                self.assertEqual(headers.get("x-amzn-errortype"), "InvalidSignatureException")

    def test_unsupported_logs_operation_is_unknown_operation(self):
        """Given a Logs operation Drover does not implement (CreateLogGroup), the answer should be UnknownOperationException and nothing should be created."""
        self.assertClientError(self.logs.create_log_group, logGroupName="/drover-e2e/new",
                               error_code="UnknownOperationException", http_status=400)
        names = [g["logGroupName"] for g in self.logs.describe_log_groups()["logGroups"]]
        self.assertNotIn("/drover-e2e/new", names)

    # --- live output -----------------------------------------------------------

    def test_output_is_readable_while_the_job_runs(self):
        """Given a running job that printed one line and waits, its first line should be readable before it finishes, and the forward token should then yield exactly the rest."""
        job_id = self.submit(gated(before="echo first-line", after="echo second-line"))
        self.wait_line(job_id, r"^gate-dir=")
        self.assertEqual(self.describe(job_id)["status"], "RUNNING")
        stream = self.stream_of(job_id)
        page = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                        startFromHead=True)
        messages = [e["message"] for e in page["events"]]
        self.assertIn("first-line", messages)
        self.assertNotIn("second-line", messages)
        token = page["nextForwardToken"]
        # Nothing new yet: the same token comes back.
        self.assertEqual(self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                                  nextToken=token)["nextForwardToken"], token)
        self.release(job_id)
        job = self.wait_done(job_id)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        rest = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                        nextToken=token)
        self.assertEqual([e["message"] for e in rest["events"]], ["second-line"])

    def test_host_mode_header_names_what_is_not_applied(self):
        """Given a definition with fields host mode cannot apply (user, privileged) and one it can (ulimits), the log's [drover] header should name exactly the former and say the image is not used."""
        jd = self.new_jd(command=["echo", "ran"], user="nobody", privileged=True,
                         ulimits=[{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}])
        job = self.run_job(jd=jd)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        messages = self.messages(job["container"]["logStreamName"])
        headers = [m for m in messages if m.startswith("[drover]")]
        not_applied = [m for m in headers if "not applied" in m]
        self.assertEqual(len(not_applied), 1, headers)
        for field in ("user", "privileged"):
            self.assertRegex(not_applied[0], r"\b%s\b" % field)
        self.assertNotIn("ulimits", not_applied[0])  # applied (setrlimit) in host mode too
        self.assertTrue(any("busybox" in m and "not used" in m for m in headers), headers)
        self.assertEqual([m for m in messages if not m.startswith("[drover]")], ["ran"])


class LogContentTest(JobsTestCase):
    """How output bytes become events: line splitting, encoding, the per-attempt cap."""

    server_options = {"extra_args": ["--job-log-cap-mib", "1"]}

    def test_a_job_that_prints_nothing_has_an_empty_stream(self):
        """Given a job that prints nothing, its stream should exist and be empty, as a CloudWatch stream is from the container's start: GetLogEvents returns no event (not ResourceNotFound), DescribeLogStreams lists it without event times and FilterLogEvents finds nothing in it."""
        jd = self.name("silent")  # no image: nothing to note in a header either
        self.batch.register_job_definition(
            jobDefinitionName=jd, type="container",
            containerProperties={"command": ["true"], "resourceRequirements": [
                {"type": "VCPU", "value": self.job_vcpus}, {"type": "MEMORY", "value": "64"}]})
        job = self.run_job(["true"], jd=jd)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        stream = job["container"]["logStreamName"]
        events = self.logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                          startFromHead=True)
        self.assertEqual(events["events"], [])
        listed = self.logs.describe_log_streams(logGroupName=GROUP,
                                                logStreamNamePrefix=stream)["logStreams"]
        self.assertEqual([s["logStreamName"] for s in listed], [stream])
        self.assertNotIn("firstEventTimestamp", listed[0])
        self.assertEqual(listed[0]["storedBytes"], 0)
        self.assertGreaterEqual(listed[0]["creationTime"], job["createdAt"])
        filtered = self.logs.filter_log_events(logGroupName=GROUP, logStreamNames=[stream])
        self.assertEqual(filtered["events"], [])

    def test_every_line_is_there_when_the_job_finishes(self):
        """Given a job printing 12000 lines, all should be in its stream as soon as it is SUCCEEDED, a page should hold at most 10000 events, and paging should return them all."""
        job = self.run_job(["seq", "1", "12000"])
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(job["jobId"]), [str(i) for i in range(1, 12001)])
        page = self.logs.get_log_events(logGroupName=GROUP, startFromHead=True,
                                        logStreamName=job["container"]["logStreamName"])
        self.assertEqual(len(page["events"]), 10000)

    def test_lines_are_split_cleaned_and_utf8(self):
        """Given CRLF endings, empty lines, invalid UTF-8, a 300000-byte line and a last line without newline, the events should drop CR and empty lines, replace invalid bytes with U+FFFD, split the long line at 262118 bytes and keep the last line."""
        job = self.run_job("printf 'crlf\\r\\n\\n\\nbad \\377\\376 bytes\\n'; "
                           "head -c 300000 /dev/zero | tr '\\0' y; echo; "
                           "printf 'no newline at the end'")
        self.assertEqual(job["status"], "SUCCEEDED", job)
        lines = self.output(job["jobId"])
        self.assertEqual(lines[:2], ["crlf", "bad \ufffd\ufffd bytes"])
        self.assertEqual(lines[2:4], ["y" * 262118, "y" * (300000 - 262118)])
        self.assertEqual(lines[4:], ["no newline at the end"])

    def test_output_over_the_cap_is_cut_with_a_final_note(self):
        """Given --job-log-cap-mib 1 and a job printing 2 MB, the stream should keep at most 1 MiB of output then end with the "[drover] output truncated" note, and the job should still SUCCEED."""
        job = self.run_job("head -c 2000000 /dev/zero | tr '\\0' x | fold -w 1000; "
                           "echo after-the-flood")
        self.assertEqual(job["status"], "SUCCEEDED", job)
        messages = self.messages(job["container"]["logStreamName"])
        self.assertEqual(messages[-1], "[drover] output truncated: this attempt exceeded its "
                                       "limit of 1048576 bytes")
        kept = [m for m in messages[:-1] if not m.startswith("[drover]")]
        self.assertLessEqual(sum(len(m) for m in kept), 1048576)
        self.assertGreater(sum(len(m) for m in kept), 1048576 - 2000)
        self.assertTrue(all(set(m) == {"x"} for m in kept))
        self.assertNotIn("after-the-flood", messages)


if __name__ == "__main__":
    unittest.main()
