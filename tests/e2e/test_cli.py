"""The core flows through the real AWS CLIs (subprocesses): v1 (python3 -m
awscli, botocore 1.43) and v2 (/usr/bin/aws 2.9.19, an older bundled model: no
consumable resources). Each CLI call costs ~0.5-1s, so the flows are few and
dense; boto3 (fast) is used only to check that refused calls changed nothing."""

import json
import unittest

from harness import DroverTestCase


class CliFlows:
    """Flows shared by both CLI versions; subclasses set `version`."""

    version = None

    def aws(self, *args):
        return self.server.cli(list(args), version=self.version)

    def ok(self, *args):
        rc, out, err = self.aws(*args)
        self.assertEqual(rc, 0, "aws batch %s failed (v%d): %s" % (" ".join(args), self.version,
                                                                     err))
        return out

    def test_compute_environment_lifecycle(self):
        """Given the CLI, a CE should be created, described by name, disabled, deleted and gone."""
        name = self.name("cli-ce")
        out = self.ok("create-compute-environment", "--compute-environment-name", name,
                      "--type", "UNMANAGED", "--unmanagedv-cpus", "8")
        arn = self.arn("compute-environment", name)
        self.assertEqual(out, {"computeEnvironmentName": name, "computeEnvironmentArn": arn})
        out = self.ok("describe-compute-environments", "--compute-environments", name)
        [ce] = out["computeEnvironments"]
        self.assertEqual((ce["computeEnvironmentArn"], ce["status"], ce["state"], ce["type"]),
                         (arn, "VALID", "ENABLED", "UNMANAGED"))
        self.ok("update-compute-environment", "--compute-environment", arn, "--state", "DISABLED")
        self.ok("delete-compute-environment", "--compute-environment", name)
        out = self.ok("describe-compute-environments", "--compute-environments", name, arn)
        self.assertEqual(out["computeEnvironments"], [])

    def test_queue_with_scheduling_policy(self):
        """Given the CLI, a fair-share policy and a queue using it should be created, listed and described with ARNs in order."""
        ce1, ce2 = self.make_ce(), self.make_ce()  # boto3: the CLI part is the queue/policy
        sp_name, jq_name = self.name("cli-sp"), self.name("cli-jq")
        fairshare = {"shareDecaySeconds": 3600, "computeReservation": 5,
                     "shareDistribution": [{"shareIdentifier": "teamA", "weightFactor": 0.5}]}
        out = self.ok("create-scheduling-policy", "--name", sp_name,
                      "--fairshare-policy", json.dumps(fairshare))
        sp = self.arn("scheduling-policy", sp_name)
        self.assertEqual(out, {"name": sp_name, "arn": sp})
        out = self.ok("create-job-queue", "--job-queue-name", jq_name, "--priority", "7",
                      "--scheduling-policy-arn", sp, "--compute-environment-order",
                      "order=2,computeEnvironment=%s" % ce1, "order=1,computeEnvironment=%s" % ce2)
        self.assertEqual(out["jobQueueArn"], self.arn("job-queue", jq_name))
        [q] = self.ok("describe-job-queues", "--job-queues", jq_name)["jobQueues"]
        self.assertEqual(q["priority"], 7)
        self.assertEqual(q["schedulingPolicyArn"], sp)
        self.assertEqual(q["computeEnvironmentOrder"],
                         [{"order": 1, "computeEnvironment": ce2},
                          {"order": 2, "computeEnvironment": ce1}])
        listed = self.ok("list-scheduling-policies")["schedulingPolicies"]
        self.assertIn({"arn": sp}, listed)
        [got] = self.ok("describe-scheduling-policies", "--arns", sp)["schedulingPolicies"]
        self.assertEqual(got["fairsharePolicy"], fairshare)
        self.ok("update-job-queue", "--job-queue", jq_name, "--priority", "8",
                "--state", "DISABLED")
        self.assertEqual(self.describe_queue(jq_name)["priority"], 8)

    def test_job_definition_revisions(self):
        """Given the CLI, two registrations should be revisions 1 and 2; deregistering 1 should make it INACTIVE."""
        name = self.name("cli-jd")
        props = json.dumps({"image": "busybox", "command": ["echo", "hi"],
                            "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                     {"type": "MEMORY", "value": "256"}]})
        for rev in (1, 2):
            out = self.ok("register-job-definition", "--job-definition-name", name,
                          "--type", "container", "--container-properties", props,
                          "--retry-strategy", "attempts=2")
            self.assertEqual(out["revision"], rev)
            self.assertEqual(out["jobDefinitionArn"], self.arn("job-definition",
                                                               "%s:%d" % (name, rev)))
        self.ok("deregister-job-definition", "--job-definition", "%s:1" % name)
        out = self.ok("describe-job-definitions", "--job-definition-name", name)
        status = {j["revision"]: j["status"] for j in out["jobDefinitions"]}
        self.assertEqual(status, {1: "INACTIVE", 2: "ACTIVE"})
        out = self.ok("describe-job-definitions", "--job-definitions", "%s:2" % name)
        [jd] = out["jobDefinitions"]
        self.assertEqual(jd["containerProperties"]["image"], "busybox")
        self.assertEqual(jd["retryStrategy"]["attempts"], 2)

    def test_tag_untag_and_list_tags(self):
        """Given the CLI, tag-resource/untag-resource on CE and job-definition ARNs (':' and '/' in the path) should be reflected by list-tags-for-resource."""
        ce = self.make_ce()
        jd = self.register_jd()["jobDefinitionArn"]
        self.ok("tag-resource", "--resource-arn", ce, "--tags", "team=e2e,stage=cli")
        self.assertEqual(self.ok("list-tags-for-resource", "--resource-arn", ce)["tags"],
                         {"team": "e2e", "stage": "cli"})
        self.ok("untag-resource", "--resource-arn", ce, "--tag-keys", "stage")
        self.assertEqual(self.ok("list-tags-for-resource", "--resource-arn", ce)["tags"],
                         {"team": "e2e"})
        self.ok("tag-resource", "--resource-arn", jd, "--tags", "rev=one")
        self.assertEqual(self.batch.list_tags_for_resource(resourceArn=jd)["tags"],
                         {"rev": "one"})

    def test_auto_pagination(self):
        """Given 3 CEs and --page-size 1, the CLI should follow nextToken and return all of them."""
        arns = [self.make_ce() for _ in range(3)]
        out = self.ok("describe-compute-environments", "--page-size", "1")
        got = [c["computeEnvironmentArn"] for c in out["computeEnvironments"]]
        for arn in arns:
            self.assertEqual(got.count(arn), 1, got)

    def test_refused_request_exits_non_zero_with_client_exception(self):
        """Given a duplicate create and a delete of an ENABLED CE, the CLI should exit non-zero with ClientException in stderr and nothing should change."""
        name = self.name("cli-dup")
        self.make_ce(name)
        before = self.snapshot()
        rc, out, err = self.aws("create-compute-environment", "--compute-environment-name", name,
                                "--type", "UNMANAGED")
        self.assertNotEqual(rc, 0)
        self.assertIn("ClientException", err)
        self.assertIn("already exists", err)
        rc, out, err = self.aws("delete-compute-environment", "--compute-environment", name)
        self.assertNotEqual(rc, 0)
        self.assertIn("ClientException", err)
        self.assertEqual(self.snapshot(), before)


class CliV1Test(CliFlows, DroverTestCase):
    version = 1

    def test_consumable_resource_lifecycle(self):
        """Given CLI v1, a consumable resource should be created, updated (ADD), listed, described and deleted."""
        name = self.name("cli-cr")
        out = self.ok("create-consumable-resource", "--consumable-resource-name", name,
                      "--total-quantity", "4", "--resource-type", "NON_REPLENISHABLE")
        self.assertEqual(out["consumableResourceArn"], self.arn("consumable-resource", name))
        out = self.ok("update-consumable-resource", "--consumable-resource", name,
                      "--operation", "ADD", "--quantity", "6")
        self.assertEqual(out["totalQuantity"], 10)
        out = self.ok("describe-consumable-resource", "--consumable-resource", name)
        self.assertEqual((out["totalQuantity"], out["availableQuantity"], out["resourceType"]),
                         (10, 10, "NON_REPLENISHABLE"))
        names = [c["consumableResourceName"]
                 for c in self.ok("list-consumable-resources")["consumableResources"]]
        self.assertIn(name, names)
        self.ok("delete-consumable-resource", "--consumable-resource", name)
        rc, _, err = self.aws("describe-consumable-resource", "--consumable-resource", name)
        self.assertNotEqual(rc, 0)
        self.assertIn("ClientException", err)


class CliV2Test(CliFlows, DroverTestCase):
    version = 2


if __name__ == "__main__":
    unittest.main()
