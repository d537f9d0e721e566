"""Job definitions through boto3: revisions, deregistration, describe filters,
and the registrations the server must refuse without changing anything."""

import unittest

from harness import DroverTestCase


class JobDefinitionTest(DroverTestCase):

    def jd_arn(self, name, rev):
        return self.arn("job-definition", "%s:%d" % (name, rev))

    def describe(self, **kwargs):
        return self.batch.describe_job_definitions(**kwargs)["jobDefinitions"]

    def test_registrations_get_revisions_1_2_3(self):
        """Given three registrations of one name, they should get revisions 1, 2, 3 with name:rev ARNs."""
        name = self.name("jd")
        for rev in (1, 2, 3):
            resp = self.register_jd(name)
            self.assertEqual(resp, {"jobDefinitionName": name, "revision": rev,
                                    "jobDefinitionArn": self.jd_arn(name, rev)})

    def test_describe_returns_what_was_registered(self):
        """Given a registration with every common member, describe should return them unchanged, ACTIVE."""
        name = self.name("jd")
        params = dict(
            containerProperties={
                "image": "public.ecr.aws/docker/library/busybox:latest",
                "command": ["sh", "-c", "echo Ref::greeting"],
                "resourceRequirements": [{"type": "VCPU", "value": "0.5"},
                                         {"type": "MEMORY", "value": "1024"}],
                "environment": [{"name": "A", "value": "1"}],
                "jobRoleArn": "arn:aws:iam::123456789012:role/job"},
            parameters={"greeting": "hi"},
            retryStrategy={"attempts": 3, "evaluateOnExit": [
                {"onExitCode": "13*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}]},
            timeout={"attemptDurationSeconds": 600},
            tags={"team": "e2e"},
            propagateTags=True,
            platformCapabilities=["EC2"],
            schedulingPriority=50,
        )
        resp = self.register_jd(name, **params)
        got = self.describe(jobDefinitions=[resp["jobDefinitionArn"]])
        self.assertEqual(len(got), 1, got)
        jd = got[0]
        self.assertEqual(jd["jobDefinitionName"], name)
        self.assertEqual(jd["jobDefinitionArn"], self.jd_arn(name, 1))
        self.assertEqual(jd["revision"], 1)
        self.assertEqual(jd["status"], "ACTIVE")
        self.assertEqual(jd["type"], "container")
        for k, v in params.items():
            self.assertEqual(jd[k], v, k)

    def test_describe_by_name_name_rev_arn_and_filters(self):
        """Given 3 revisions, describe by name, name:rev, ARN, jobDefinitionName and status should select the right ones."""
        name, other = self.name("jd"), self.name("jd")
        for _ in range(3):
            self.register_jd(name)
        self.register_jd(other)
        revs = lambda jds: sorted((j["jobDefinitionName"], j["revision"]) for j in jds)
        self.assertEqual(revs(self.describe(jobDefinitions=[name])),
                         [(name, 1), (name, 2), (name, 3)])
        self.assertEqual(revs(self.describe(jobDefinitions=[name + ":2"])), [(name, 2)])
        self.assertEqual(revs(self.describe(jobDefinitions=[self.jd_arn(name, 3)])), [(name, 3)])
        self.assertEqual(revs(self.describe(jobDefinitions=[name + ":1", self.jd_arn(other, 1)])),
                         [(name, 1), (other, 1)])
        self.assertEqual(revs(self.describe(jobDefinitionName=name)),
                         [(name, 1), (name, 2), (name, 3)])
        self.assertEqual(revs(self.describe(jobDefinitionName=name, status="ACTIVE")),
                         [(name, 1), (name, 2), (name, 3)])
        self.assertEqual(self.describe(jobDefinitionName=name, status="INACTIVE"), [])
        self.assertEqual(self.describe(jobDefinitions=[name + ":9"]), [])
        self.assertEqual(self.describe(jobDefinitions=[self.name("nope")]), [])

    def test_deregister_makes_revision_inactive_and_revisions_keep_counting(self):
        """Given a deregistered revision, it should be INACTIVE, filtered by status, and the next registration should get the next number."""
        name = self.name("jd")
        for _ in range(3):
            self.register_jd(name)
        self.batch.deregister_job_definition(jobDefinition=name + ":2")
        self.batch.deregister_job_definition(jobDefinition=self.jd_arn(name, 3))
        status = {j["revision"]: j["status"] for j in self.describe(jobDefinitionName=name)}
        self.assertEqual(status, {1: "ACTIVE", 2: "INACTIVE", 3: "INACTIVE"})
        self.assertEqual([j["revision"] for j in self.describe(jobDefinitionName=name,
                                                               status="ACTIVE")], [1])
        self.assertEqual(sorted(j["revision"] for j in self.describe(jobDefinitionName=name,
                                                                     status="INACTIVE")), [2, 3])
        self.assertEqual(self.register_jd(name)["revision"], 4)
        # Deregistering every revision does not reset the counter either.
        for rev in (1, 4):
            self.batch.deregister_job_definition(jobDefinition="%s:%d" % (name, rev))
        self.assertEqual(self.describe(jobDefinitionName=name, status="ACTIVE"), [])
        self.assertEqual(self.register_jd(name)["revision"], 5)

    def test_deregister_twice_changes_nothing(self):
        """Given an INACTIVE revision, deregistering it again should not reactivate or alter it."""
        name = self.name("jd")
        self.register_jd(name)
        self.batch.deregister_job_definition(jobDefinition=name + ":1")
        before = self.snapshot()
        try:
            self.batch.deregister_job_definition(jobDefinition=name + ":1")
        except self.batch.exceptions.ClientException:
            pass
        self.assertEqual(self.snapshot(), before)

    def test_deregister_unknown_is_refused(self):
        """Given an unknown job definition, deregister should be a ClientException with no change."""
        self.assertRefusedUnchanged(self.raw.deregister_job_definition,
                                    jobDefinition=self.name("ghost") + ":1")

    def test_container_needs_exactly_one_property_set(self):
        """Given a container job definition with none or two of container/ecs/eks properties, register should be refused."""
        name = self.name("jd")
        self.assertRefusedUnchanged(self.raw.register_job_definition, jobDefinitionName=name,
                                    type="container")
        self.assertRefusedUnchanged(
            self.raw.register_job_definition, jobDefinitionName=name, type="container",
            containerProperties={"image": "busybox"},
            eksProperties={"podProperties": {"containers": [{"image": "busybox"}]}})
        self.assertEqual(self.describe(jobDefinitionName=name), [])
        # A refused registration does not use up a revision number.
        self.assertEqual(self.register_jd(name)["revision"], 1)

    def test_ecs_and_eks_properties_alone_are_accepted(self):
        """Given ecsProperties or eksProperties alone, register should succeed and describe should return them."""
        ecs = {"taskProperties": [{"containers": [{"name": "main", "image": "busybox"}]}]}
        eks = {"podProperties": {"containers": [{"name": "main", "image": "busybox"}]}}
        for label, kw in [("ecs", {"ecsProperties": ecs}), ("eks", {"eksProperties": eks})]:
            with self.subTest(props=label):
                resp = self.register_jd(**kw)
                jd = self.describe(jobDefinitions=[resp["jobDefinitionArn"]])[0]
                for k, v in kw.items():
                    self.assertEqual(jd[k], v)

    def test_multinode_job_definition(self):
        """Given a multinode registration with valid nodeProperties, describe should return them; a bad range should be refused."""
        np = {"numNodes": 3, "mainNode": 0, "nodeRangeProperties": [
            {"targetNodes": "0:2", "container": {"image": "busybox", "vcpus": 1, "memory": 128}}]}
        resp = self.register_jd(type="multinode", nodeProperties=np)
        jd = self.describe(jobDefinitions=[resp["jobDefinitionArn"]])[0]
        self.assertEqual(jd["type"], "multinode")
        self.assertEqual(jd["nodeProperties"], np)
        bad = dict(np, nodeRangeProperties=[{"targetNodes": "0:5",
                                             "container": {"image": "busybox"}}])
        self.assertRefusedUnchanged(self.raw.register_job_definition,
                                    jobDefinitionName=self.name("jd"), type="multinode",
                                    nodeProperties=bad)
        self.assertRefusedUnchanged(self.raw.register_job_definition,
                                    jobDefinitionName=self.name("jd"), type="multinode",
                                    nodeProperties=dict(np, mainNode=3))

    def test_retry_attempts_must_be_1_to_10(self):
        """Given retryStrategy.attempts 0 or 11, register should be refused; 1 and 10 should be accepted."""
        for attempts in (0, 11):
            with self.subTest(attempts=attempts):
                self.assertRefusedUnchanged(
                    self.raw.register_job_definition, jobDefinitionName=self.name("jd"),
                    type="container", containerProperties={"image": "busybox"},
                    retryStrategy={"attempts": attempts}, contains="attempts")
        for attempts in (1, 10):
            resp = self.register_jd(retryStrategy={"attempts": attempts})
            jd = self.describe(jobDefinitions=[resp["jobDefinitionArn"]])[0]
            self.assertEqual(jd["retryStrategy"]["attempts"], attempts)

    def test_timeout_must_be_at_least_60_seconds(self):
        """Given timeout.attemptDurationSeconds 59, register should be refused; 60 should be accepted."""
        self.assertRefusedUnchanged(
            self.raw.register_job_definition, jobDefinitionName=self.name("jd"),
            type="container", containerProperties={"image": "busybox"},
            timeout={"attemptDurationSeconds": 59}, contains="attemptDurationSeconds")
        resp = self.register_jd(timeout={"attemptDurationSeconds": 60})
        jd = self.describe(jobDefinitions=[resp["jobDefinitionArn"]])[0]
        self.assertEqual(jd["timeout"], {"attemptDurationSeconds": 60})

    def test_invalid_registrations_are_refused(self):
        """Given a bad name, bad type, bad memory value or bad exit-code pattern, register should be refused with no change."""
        cp = {"image": "busybox"}
        cases = {
            "bad name": dict(jobDefinitionName="bad name", type="container",
                             containerProperties=cp),
            "long name": dict(jobDefinitionName="j" * 129, type="container",
                              containerProperties=cp),
            "bad type": dict(jobDefinitionName=self.name("jd"), type="lambda",
                             containerProperties=cp),
            "bad memory": dict(jobDefinitionName=self.name("jd"), type="container",
                               containerProperties={"image": "busybox", "resourceRequirements": [
                                   {"type": "MEMORY", "value": "lots"}]}),
            "bad exit code": dict(jobDefinitionName=self.name("jd"), type="container",
                                  containerProperties=cp, retryStrategy={
                                      "attempts": 2,
                                      "evaluateOnExit": [{"onExitCode": "1*2",
                                                          "action": "RETRY"}]}),
            "container on multinode": dict(jobDefinitionName=self.name("jd"),
                                           type="multinode", containerProperties=cp),
        }
        for label, params in cases.items():
            with self.subTest(case=label):
                self.assertRefusedUnchanged(self.raw.register_job_definition, **params)

    def test_describe_with_bad_status_is_refused(self):
        """Given status=DELETED, describe-job-definitions should be a ClientException."""
        self.assertClientError(self.raw.describe_job_definitions, status="DELETED")


if __name__ == "__main__":
    unittest.main()
