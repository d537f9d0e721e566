"""Compute environments through boto3: create, describe, update, delete, and the
requests the server must refuse without changing anything."""

import subprocess
import unittest

from harness import DroverServer, DroverTestCase


class ComputeEnvironmentTest(DroverTestCase):

    def test_unmanaged_ce_is_created_valid_enabled_and_found_by_name_and_arn(self):
        """Given an UNMANAGED create, describe by name and by ARN should show the same VALID, ENABLED CE."""
        name = self.name("ce")
        arn = self.make_ce(name, unmanagedvCpus=4)
        by_name = self.describe_ce(name)
        by_arn = self.describe_ce(arn)
        self.assertEqual(by_name, by_arn)
        self.assertEqual(by_name["computeEnvironmentName"], name)
        self.assertEqual(by_name["computeEnvironmentArn"], arn)
        self.assertEqual(by_name["type"], "UNMANAGED")
        self.assertEqual(by_name["status"], "VALID")
        self.assertEqual(by_name["state"], "ENABLED")
        self.assertEqual(by_name["unmanagedvCpus"], 4)
        self.assertNotIn("computeResources", by_name)
        self.assertTrue(by_name["ecsClusterArn"].startswith("arn:aws:ecs:us-east-1:"), by_name)

    def test_managed_ce_keeps_its_compute_resources(self):
        """Given a MANAGED EC2 create, describe should return the compute resources as sent, with minvCpus<=desiredvCpus<=maxvCpus."""
        name = self.name("ce")
        cr = {"type": "SPOT", "minvCpus": 2, "maxvCpus": 64, "desiredvCpus": 4,
              "instanceTypes": ["c5", "m5"], "subnets": ["subnet-aaa", "subnet-bbb"],
              "securityGroupIds": ["sg-1"], "instanceRole": "ecsInstanceRole",
              "bidPercentage": 60, "allocationStrategy": "SPOT_CAPACITY_OPTIMIZED"}
        self.make_ce(name, managed=True, computeResources=cr, serviceRole="arn:aws:iam::123456789012:role/batch")
        got = self.describe_ce(name)
        self.assertEqual(got["type"], "MANAGED")
        self.assertEqual(got["status"], "VALID")
        self.assertEqual(got["serviceRole"], "arn:aws:iam::123456789012:role/batch")
        for k, v in cr.items():
            self.assertEqual(got["computeResources"][k], v, k)

    def test_managed_ce_defaults_min_and_desired_vcpus(self):
        """Given a MANAGED create without minvCpus/desiredvCpus, describe should show them within 0..maxvCpus."""
        name = self.name("ce")
        self.make_ce(name, managed=True, computeResources={
            "type": "EC2", "maxvCpus": 8, "subnets": ["subnet-1"], "instanceRole": "r"})
        cr = self.describe_ce(name)["computeResources"]
        self.assertEqual(cr["maxvCpus"], 8)
        self.assertLessEqual(cr.get("minvCpus", 0), cr.get("desiredvCpus", 0))
        self.assertLessEqual(cr.get("desiredvCpus", 0), 8)

    def test_fargate_ce_is_created(self):
        """Given a MANAGED FARGATE create with maxvCpus and subnets, describe should return it VALID."""
        name = self.name("ce")
        self.make_ce(name, managed=True, computeResources={
            "type": "FARGATE", "maxvCpus": 16, "subnets": ["subnet-1"],
            "securityGroupIds": ["sg-1"]})
        got = self.describe_ce(name)
        self.assertEqual(got["computeResources"]["type"], "FARGATE")
        self.assertEqual(got["status"], "VALID")

    def test_ce_created_disabled_stays_disabled(self):
        """Given a create with state DISABLED, describe should show DISABLED."""
        name = self.name("ce")
        self.make_ce(name, state="DISABLED")
        self.assertEqual(self.describe_ce(name)["state"], "DISABLED")

    def test_duplicate_name_is_refused_and_changes_nothing(self):
        """Given an existing CE, creating another with its name should be a ClientException 'already exists' and change nothing."""
        name = self.name("ce")
        self.make_ce(name)
        self.assertRefusedUnchanged(
            self.raw.create_compute_environment, computeEnvironmentName=name, type="MANAGED",
            computeResources={"type": "EC2", "maxvCpus": 4, "subnets": ["s"]},
            contains="already exists")
        self.assertEqual(self.describe_ce(name)["type"], "UNMANAGED")

    def test_invalid_names_are_refused(self):
        """Given names with bad characters or over 128 characters, create should be refused and change nothing."""
        for bad in ["has space", "dot.name", "slash/name", "x" * 129, "ünïcode"]:
            with self.subTest(name=bad):
                self.assertRefusedUnchanged(self.raw.create_compute_environment,
                                            computeEnvironmentName=bad, type="UNMANAGED")
        ok = "A" * 128
        self.make_ce(ok)
        self.assertEqual(self.describe_ce(ok)["computeEnvironmentName"], ok)

    def test_managed_without_compute_resources_is_refused(self):
        """Given a MANAGED create without computeResources, the server should refuse it and create nothing."""
        name = self.name("ce")
        self.assertRefusedUnchanged(self.raw.create_compute_environment,
                                    computeEnvironmentName=name, type="MANAGED",
                                    contains="computeResources")
        self.assertEqual(self.batch.describe_compute_environments(
            computeEnvironments=[name])["computeEnvironments"], [])

    def test_compute_resources_missing_model_required_members_are_refused(self):
        """Given computeResources lacking type, maxvCpus or subnets, the server should refuse the create."""
        full = {"type": "EC2", "maxvCpus": 4, "subnets": ["subnet-1"]}
        for missing in ["type", "maxvCpus", "subnets"]:
            cr = {k: v for k, v in full.items() if k != missing}
            with self.subTest(missing=missing):
                self.assertRefusedUnchanged(
                    self.raw.create_compute_environment, computeEnvironmentName=self.name("ce"),
                    type="MANAGED", computeResources=cr, contains=missing)

    def test_vcpu_ordering_is_enforced_on_create(self):
        """Given minvCpus > maxvCpus, desiredvCpus > maxvCpus or desiredvCpus < minvCpus, create should be refused."""
        cases = [{"minvCpus": 8, "maxvCpus": 4},
                 {"minvCpus": 0, "desiredvCpus": 10, "maxvCpus": 4},
                 {"minvCpus": 4, "desiredvCpus": 2, "maxvCpus": 8},
                 {"minvCpus": -1, "maxvCpus": 8}]
        for vcpus in cases:
            cr = dict(type="EC2", subnets=["subnet-1"], instanceRole="r", **vcpus)
            with self.subTest(**vcpus):
                self.assertRefusedUnchanged(
                    self.raw.create_compute_environment, computeEnvironmentName=self.name("ce"),
                    type="MANAGED", computeResources=cr)

    def test_unmanaged_with_compute_resources_is_refused(self):
        """Given an UNMANAGED create with computeResources, the server should refuse it."""
        self.assertRefusedUnchanged(
            self.raw.create_compute_environment, computeEnvironmentName=self.name("ce"),
            type="UNMANAGED", computeResources={"type": "EC2", "maxvCpus": 4, "subnets": ["s"]})

    def test_fargate_with_ec2_only_members_is_refused(self):
        """Given a FARGATE CE with minvCpus or instanceTypes, the server should refuse it."""
        for extra in [{"minvCpus": 0}, {"instanceTypes": ["m5"]}]:
            cr = dict(type="FARGATE", maxvCpus=4, subnets=["s"], **extra)
            with self.subTest(**extra):
                self.assertRefusedUnchanged(
                    self.raw.create_compute_environment, computeEnvironmentName=self.name("ce"),
                    type="MANAGED", computeResources=cr)

    def test_bad_enum_values_are_refused(self):
        """Given an unknown type or state value, the server should answer ClientException and create nothing."""
        self.assertRefusedUnchanged(self.raw.create_compute_environment,
                                    computeEnvironmentName=self.name("ce"), type="HYBRID")
        self.assertRefusedUnchanged(self.raw.create_compute_environment,
                                    computeEnvironmentName=self.name("ce"), type="UNMANAGED",
                                    state="PAUSED")

    def test_update_changes_state_and_compute_resources(self):
        """Given a MANAGED CE, updates by name and by ARN should be visible in describe."""
        name = self.name("ce")
        arn = self.make_ce(name, managed=True)
        resp = self.batch.update_compute_environment(
            computeEnvironment=name, computeResources={"maxvCpus": 32, "minvCpus": 2})
        self.assertEqual(resp["computeEnvironmentArn"], arn)
        self.assertEqual(resp["computeEnvironmentName"], name)
        cr = self.describe_ce(name)["computeResources"]
        self.assertEqual(cr["maxvCpus"], 32)
        self.assertEqual(cr["minvCpus"], 2)
        self.assertTrue(2 <= cr["desiredvCpus"] <= 32, cr)
        self.assertEqual(cr["subnets"], ["subnet-0123abcd"])  # untouched members stay
        self.batch.update_compute_environment(computeEnvironment=arn, state="DISABLED")
        self.assertEqual(self.describe_ce(arn)["state"], "DISABLED")
        self.batch.update_compute_environment(computeEnvironment=arn, state="ENABLED")
        self.assertEqual(self.describe_ce(arn)["state"], "ENABLED")

    def test_update_unmanaged_vcpus(self):
        """Given an UNMANAGED CE, updating unmanagedvCpus should be visible in describe."""
        name = self.name("ce")
        self.make_ce(name, unmanagedvCpus=2)
        self.batch.update_compute_environment(computeEnvironment=name, unmanagedvCpus=16)
        self.assertEqual(self.describe_ce(name)["unmanagedvCpus"], 16)

    def test_invalid_updates_are_refused_and_change_nothing(self):
        """Given updates breaking vCPU ordering or targeting the wrong CE type, they should be refused with no change."""
        managed = self.make_ce(managed=True)
        unmanaged = self.make_ce()
        self.assertRefusedUnchanged(self.raw.update_compute_environment,
                                    computeEnvironment=managed,
                                    computeResources={"minvCpus": 20})  # max is 16
        self.assertRefusedUnchanged(self.raw.update_compute_environment,
                                    computeEnvironment=managed,
                                    computeResources={"desiredvCpus": 17})
        self.assertRefusedUnchanged(self.raw.update_compute_environment,
                                    computeEnvironment=managed,
                                    computeResources={"maxvCpus": 8}, state="DISABLED",
                                    unmanagedvCpus=4)
        self.assertRefusedUnchanged(self.raw.update_compute_environment,
                                    computeEnvironment=unmanaged,
                                    computeResources={"maxvCpus": 8})
        self.assertRefusedUnchanged(self.raw.update_compute_environment,
                                    computeEnvironment=unmanaged, state="SLEEPING")

    def test_update_of_unknown_ce_is_refused(self):
        """Given a name that does not exist, update should be a ClientException that creates nothing."""
        self.assertRefusedUnchanged(self.raw.update_compute_environment,
                                    computeEnvironment=self.name("missing"), state="DISABLED")

    def test_delete_requires_disabled(self):
        """Given an ENABLED CE, delete should be refused (must be DISABLED) and the CE kept."""
        name = self.name("ce")
        self.make_ce(name)
        self.assertRefusedUnchanged(self.raw.delete_compute_environment,
                                    computeEnvironment=name, contains="DISABLED")
        self.assertEqual(self.describe_ce(name)["state"], "ENABLED")

    def test_delete_refused_while_a_queue_uses_the_ce(self):
        """Given a DISABLED CE used by a queue, delete should be refused ('JobQueue relationship') until the queue is gone."""
        ce = self.make_ce()
        queue = self.make_queue(ces=[ce])
        self.batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
        self.assertRefusedUnchanged(self.raw.delete_compute_environment,
                                    computeEnvironment=ce, contains="JobQueue relationship")
        self.disable_and_delete_queue(queue)
        self.batch.delete_compute_environment(computeEnvironment=ce)
        self.assertEqual(self.batch.describe_compute_environments(
            computeEnvironments=[ce])["computeEnvironments"], [])

    def test_delete_by_name_and_by_arn(self):
        """Given DISABLED CEs, delete by name and by ARN should remove them; a second delete should be refused."""
        a, b = self.name("ce"), self.name("ce")
        self.make_ce(a, state="DISABLED")
        arn_b = self.make_ce(b, state="DISABLED")
        self.batch.delete_compute_environment(computeEnvironment=a)
        self.batch.delete_compute_environment(computeEnvironment=arn_b)
        got = self.batch.describe_compute_environments(computeEnvironments=[a, b, arn_b])
        self.assertEqual(got["computeEnvironments"], [])
        all_names = [c["computeEnvironmentName"] for c in self.snapshot()["computeEnvironments"]]
        self.assertNotIn(a, all_names)
        self.assertNotIn(b, all_names)
        self.assertRefusedUnchanged(self.raw.delete_compute_environment, computeEnvironment=a)
        # The name is free again.
        self.make_ce(a)
        self.assertEqual(self.describe_ce(a)["status"], "VALID")

    def test_describe_lists_known_ces_and_skips_unknown(self):
        """Given a mix of known and unknown names, describe should return only the known CEs."""
        a = self.make_ce()
        got = self.batch.describe_compute_environments(
            computeEnvironments=[a, self.name("nope")])["computeEnvironments"]
        self.assertEqual([c["computeEnvironmentArn"] for c in got], [a])
        every = self.batch.describe_compute_environments()["computeEnvironments"]
        self.assertIn(a, [c["computeEnvironmentArn"] for c in every])


class ManagedCreateOptionsTest(unittest.TestCase):
    """Each variant runs on its own fresh server, so one crash cannot hide another."""

    VARIANTS = {
        "tags": {"tags": {"team": "e2e"}},
        "state": {"state": "DISABLED"},
        "tags+state+serviceRole": {"tags": {"a": "1", "b": "2"}, "state": "DISABLED",
                                   "serviceRole": "arn:aws:iam::123456789012:role/batch"},
    }

    def test_managed_create_with_tags_or_state_is_served(self):
        """Given a MANAGED create that also sets tags and/or state, the server should create it (and keep serving), and describe should show them."""
        cr = {"type": "EC2", "minvCpus": 0, "maxvCpus": 16, "instanceTypes": ["optimal"],
              "subnets": ["subnet-1"], "securityGroupIds": ["sg-1"], "instanceRole": "r"}
        for label, extra in self.VARIANTS.items():
            with self.subTest(variant=label):
                server = DroverServer()
                self.addCleanup(server.cleanup)
                server.start()
                batch = server.client()
                got, error = None, None
                try:
                    batch.create_compute_environment(computeEnvironmentName="m", type="MANAGED",
                                                     computeResources=cr, **extra)
                    got = batch.describe_compute_environments(
                        computeEnvironments=["m"])["computeEnvironments"][0]
                except Exception as e:  # reported below, after checking the process
                    error = e
                try:  # a dropped connection may precede the process's death by a moment
                    rc = server.proc.wait(timeout=2) if error else server.proc.poll()
                except subprocess.TimeoutExpired:
                    rc = None
                server.kill()
                self.assertIsNone(rc, "the server died (exit code %s) on CreateComputeEnvironment"
                                  " MANAGED with %s; the client saw: %s" % (rc, extra, error))
                if error:
                    raise error
                self.assertEqual(got["computeResources"]["maxvCpus"], 16)
                self.assertEqual(got.get("tags", {}), extra.get("tags", {}))
                self.assertEqual(got["state"], extra.get("state", "ENABLED"))


if __name__ == "__main__":
    unittest.main()
