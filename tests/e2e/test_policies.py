"""Scheduling policies (fair share) and consumable resources through boto3."""

import time
import unittest

from harness import DroverTestCase

FAIRSHARE = {"shareDecaySeconds": 3600, "computeReservation": 10,
             "shareDistribution": [{"shareIdentifier": "teamA", "weightFactor": 1.0},
                                   {"shareIdentifier": "teamB*", "weightFactor": 0.5}]}


class SchedulingPolicyTest(DroverTestCase):

    def listed_arns(self):
        arns = []
        for page in self.batch.get_paginator("list_scheduling_policies").paginate():
            arns += [p["arn"] for p in page["schedulingPolicies"]]
        return arns

    def test_policy_is_created_described_and_listed(self):
        """Given a fair-share policy, describe by ARN should return it as sent and list should include its ARN."""
        name = self.name("sp")
        arn = self.make_policy(name, fairsharePolicy=FAIRSHARE)
        got = self.describe_policy(arn)
        self.assertEqual(got["name"], name)
        self.assertEqual(got["arn"], arn)
        self.assertEqual(got["fairsharePolicy"], FAIRSHARE)
        self.assertIn(arn, self.listed_arns())

    def test_policy_without_fairshare_is_created(self):
        """Given only a name, create should succeed and describe should return the policy."""
        arn = self.make_policy()
        self.assertEqual(self.describe_policy(arn)["arn"], arn)

    def test_fairshare_bounds_are_accepted(self):
        """Given the boundary values (0/604800 decay, 0/99 reservation, 0.0001/999.9999 weight), create should succeed."""
        for fp in [{"shareDecaySeconds": 0, "computeReservation": 0,
                    "shareDistribution": [{"shareIdentifier": "a", "weightFactor": 0.0001}]},
                   {"shareDecaySeconds": 604800, "computeReservation": 99,
                    "shareDistribution": [{"shareIdentifier": "a", "weightFactor": 999.9999}]}]:
            with self.subTest(fp=fp):
                arn = self.make_policy(fairsharePolicy=fp)
                self.assertEqual(self.describe_policy(arn)["fairsharePolicy"], fp)

    def test_fairshare_out_of_range_is_refused(self):
        """Given decay -1/604801, reservation -1/100 or weight 0/1000, create should be refused and create nothing."""
        cases = [{"shareDecaySeconds": -1}, {"shareDecaySeconds": 604801},
                 {"computeReservation": -1}, {"computeReservation": 100},
                 {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 0}]},
                 {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 1000}]},
                 {"shareDistribution": [{"shareIdentifier": "a"}, {"shareIdentifier": "a"}]}]
        for fp in cases:
            with self.subTest(fp=fp):
                name = self.name("sp")
                self.assertRefusedUnchanged(self.raw.create_scheduling_policy, name=name,
                                            fairsharePolicy=fp)
                self.assertNotIn(self.arn("scheduling-policy", name), self.listed_arns())

    def test_duplicate_and_invalid_names_are_refused(self):
        """Given an existing policy name or an invalid name, create should be refused with no change."""
        name = self.name("sp")
        arn = self.make_policy(name, fairsharePolicy=FAIRSHARE)
        self.assertRefusedUnchanged(self.raw.create_scheduling_policy, name=name,
                                    fairsharePolicy={"shareDecaySeconds": 5},
                                    contains="already exists")
        self.assertEqual(self.describe_policy(arn)["fairsharePolicy"], FAIRSHARE)
        self.assertRefusedUnchanged(self.raw.create_scheduling_policy, name="bad name")

    def test_update_replaces_fairshare_policy(self):
        """Given a policy, update by ARN should replace its fairsharePolicy as describe shows."""
        arn = self.make_policy(fairsharePolicy=FAIRSHARE)
        new = {"shareDecaySeconds": 7200, "computeReservation": 50,
               "shareDistribution": [{"shareIdentifier": "teamC", "weightFactor": 2.0}]}
        self.batch.update_scheduling_policy(arn=arn, fairsharePolicy=new)
        self.assertEqual(self.describe_policy(arn)["fairsharePolicy"], new)

    def test_invalid_update_is_refused_and_changes_nothing(self):
        """Given an update with computeReservation 100 or an unknown ARN, it should be refused with no change."""
        arn = self.make_policy(fairsharePolicy=FAIRSHARE)
        self.assertRefusedUnchanged(self.raw.update_scheduling_policy, arn=arn,
                                    fairsharePolicy={"computeReservation": 100})
        self.assertRefusedUnchanged(self.raw.update_scheduling_policy,
                                    arn=self.arn("scheduling-policy", self.name("ghost")),
                                    fairsharePolicy={"computeReservation": 1})
        self.assertEqual(self.describe_policy(arn)["fairsharePolicy"], FAIRSHARE)

    def test_delete_refused_while_a_queue_uses_the_policy(self):
        """Given a queue using a policy, delete should be refused until the queue is deleted, then succeed."""
        sp = self.make_policy(fairsharePolicy=FAIRSHARE)
        queue = self.make_queue(schedulingPolicyArn=sp)
        self.assertEqual(self.describe_queue(queue)["schedulingPolicyArn"], sp)
        self.assertRefusedUnchanged(self.raw.delete_scheduling_policy, arn=sp)
        self.disable_and_delete_queue(queue)
        self.batch.delete_scheduling_policy(arn=sp)
        self.assertEqual(self.batch.describe_scheduling_policies(arns=[sp])["schedulingPolicies"],
                         [])
        self.assertNotIn(sp, self.listed_arns())
        self.assertRefusedUnchanged(self.raw.delete_scheduling_policy, arn=sp)

    def test_fifo_queue_cannot_get_a_policy_by_update(self):
        """Given a FIFO queue (created without a policy), update with a schedulingPolicyArn should be refused with no change."""
        sp = self.make_policy(fairsharePolicy=FAIRSHARE)
        queue = self.make_queue()
        self.assertRefusedUnchanged(self.raw.update_job_queue, jobQueue=queue,
                                    schedulingPolicyArn=sp, priority=99)
        self.assertNotIn("schedulingPolicyArn", self.describe_queue(queue))

    def test_fair_share_queue_can_switch_policy(self):
        """Given a fair-share queue, update to another existing policy should succeed; to an unknown one be refused."""
        sp1, sp2 = self.make_policy(), self.make_policy()
        queue = self.make_queue(schedulingPolicyArn=sp1)
        self.batch.update_job_queue(jobQueue=queue, schedulingPolicyArn=sp2)
        self.assertEqual(self.describe_queue(queue)["schedulingPolicyArn"], sp2)
        self.assertRefusedUnchanged(
            self.raw.update_job_queue, jobQueue=queue,
            schedulingPolicyArn=self.arn("scheduling-policy", self.name("ghost")))
        # sp1 is free again, sp2 is in use.
        self.batch.delete_scheduling_policy(arn=sp1)
        self.assertRefusedUnchanged(self.raw.delete_scheduling_policy, arn=sp2)

    def test_queue_with_unknown_policy_is_refused(self):
        """Given a create naming a policy ARN that does not exist, the queue should not be created."""
        self.assertRefusedUnchanged(
            self.raw.create_job_queue, jobQueueName=self.name("jq"), priority=1,
            schedulingPolicyArn=self.arn("scheduling-policy", self.name("ghost")),
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": self.make_ce()}])

    def test_queue_policy_reference_is_stored_as_the_policy_arn(self):
        """Given a queue created with the policy's bare name (if accepted), describe should show its ARN and the policy should be protected from delete."""
        name = self.name("sp")
        sp = self.make_policy(name)
        ce = self.make_ce()
        try:
            queue = self.batch.create_job_queue(
                jobQueueName=self.name("jq"), priority=1, schedulingPolicyArn=name,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])["jobQueueArn"]
        except self.batch.exceptions.ClientException:
            return  # refusing a non-ARN reference is fine too
        stored = self.describe_queue(queue).get("schedulingPolicyArn")
        before = self.snapshot()
        try:
            self.batch.delete_scheduling_policy(arn=sp)
            deleted = True
        except self.batch.exceptions.ClientException:
            deleted = False
        self.assertFalse(
            deleted or stored != sp,
            "queue created with schedulingPolicyArn=%r: describe shows schedulingPolicyArn=%r "
            "(want %r); DeleteSchedulingPolicy(arn=%r) while the queue uses it: %s"
            % (name, stored, sp, sp, "SUCCEEDED (want ClientException)" if deleted else "refused"))
        self.assertEqual(self.snapshot(), before)

    def test_queue_policy_update_reference_is_stored_as_the_policy_arn(self):
        """Given a fair-share queue updated with another policy's bare name (if accepted), describe should show that policy's ARN and the policy should be protected from delete."""
        sp1 = self.make_policy()
        name2 = self.name("sp")
        sp2 = self.make_policy(name2)
        queue = self.make_queue(schedulingPolicyArn=sp1)
        try:
            self.batch.update_job_queue(jobQueue=queue, schedulingPolicyArn=name2)
        except self.batch.exceptions.ClientException:
            self.assertEqual(self.describe_queue(queue)["schedulingPolicyArn"], sp1)
            return  # refusing a non-ARN reference is fine too
        stored = self.describe_queue(queue).get("schedulingPolicyArn")
        try:
            self.batch.delete_scheduling_policy(arn=sp2)
            deleted = True
        except self.batch.exceptions.ClientException:
            deleted = False
        self.assertFalse(
            deleted or stored != sp2,
            "queue updated with schedulingPolicyArn=%r: describe shows %r (want %r); "
            "DeleteSchedulingPolicy(arn=%r) while the queue uses it: %s"
            % (name2, stored, sp2, sp2, "SUCCEEDED (want ClientException)" if deleted else "refused"))


class ConsumableResourceTest(DroverTestCase):

    def describe(self, ref):
        got = self.batch.describe_consumable_resource(consumableResource=ref)
        got.pop("ResponseMetadata")
        return got

    def test_resource_is_created_and_described_by_name_and_arn(self):
        """Given a create with totalQuantity and type, describe by name and ARN should return the same full resource."""
        name = self.name("cr")
        created = self.batch.create_consumable_resource(
            consumableResourceName=name, totalQuantity=10, resourceType="NON_REPLENISHABLE")
        arn = created["consumableResourceArn"]
        self.assertEqual(arn, self.arn("consumable-resource", name))
        got = self.describe(name)
        # createdAt is epoch milliseconds (a long in the model), set at creation.
        self.assertLess(abs(got["createdAt"] / 1000.0 - time.time()), 120, got["createdAt"])
        self.assertEqual(got, self.describe(arn))
        self.assertEqual(got["consumableResourceName"], name)
        self.assertEqual(got["consumableResourceArn"], arn)
        self.assertEqual(got["totalQuantity"], 10)
        self.assertEqual(got["inUseQuantity"], 0)
        self.assertEqual(got["availableQuantity"], 10)
        self.assertEqual(got["resourceType"], "NON_REPLENISHABLE")
        self.assertIn("createdAt", got)

    def test_default_type_is_replenishable(self):
        """Given a create with only a name, describe should show REPLENISHABLE with quantity 0."""
        got = self.describe(self.make_consumable())
        self.assertEqual(got["resourceType"], "REPLENISHABLE")
        self.assertEqual(got["totalQuantity"], 0)

    def test_set_add_remove_updates(self):
        """Given SET 20, ADD 5, REMOVE 10, the total and available quantities should become 20, 25, 15."""
        arn = self.make_consumable(totalQuantity=10)
        for op, qty, want in [("SET", 20, 20), ("ADD", 5, 25), ("REMOVE", 10, 15)]:
            with self.subTest(op=op):
                resp = self.batch.update_consumable_resource(consumableResource=arn,
                                                             operation=op, quantity=qty)
                self.assertEqual(resp["totalQuantity"], want)
                self.assertEqual(resp["consumableResourceArn"], arn)
                got = self.describe(arn)
                self.assertEqual(got["totalQuantity"], want)
                self.assertEqual(got["availableQuantity"], want)

    def test_invalid_updates_are_refused_and_change_nothing(self):
        """Given REMOVE below zero, a negative quantity, a bad operation or an unknown resource, update should be refused with no change."""
        name = self.name("cr")
        self.make_consumable(name, totalQuantity=3)
        self.assertRefusedUnchanged(self.raw.update_consumable_resource, consumableResource=name,
                                    operation="REMOVE", quantity=4)
        self.assertRefusedUnchanged(self.raw.update_consumable_resource, consumableResource=name,
                                    operation="SET", quantity=-1)
        self.assertRefusedUnchanged(self.raw.update_consumable_resource, consumableResource=name,
                                    operation="MULTIPLY", quantity=2)
        self.assertRefusedUnchanged(self.raw.update_consumable_resource,
                                    consumableResource=self.name("ghost"), operation="SET",
                                    quantity=1)
        self.assertEqual(self.describe(name)["totalQuantity"], 3)

    def test_invalid_creates_are_refused(self):
        """Given a duplicate name, a bad name, a negative quantity or a bad type, create should be refused with no change."""
        name = self.name("cr")
        self.make_consumable(name, totalQuantity=1)
        self.assertRefusedUnchanged(self.raw.create_consumable_resource,
                                    consumableResourceName=name, totalQuantity=9,
                                    contains="already exists")
        self.assertRefusedUnchanged(self.raw.create_consumable_resource,
                                    consumableResourceName="bad name")
        self.assertRefusedUnchanged(self.raw.create_consumable_resource,
                                    consumableResourceName=self.name("cr"), totalQuantity=-1)
        self.assertRefusedUnchanged(self.raw.create_consumable_resource,
                                    consumableResourceName=self.name("cr"),
                                    resourceType="SOMETIMES")
        self.assertEqual(self.describe(name)["totalQuantity"], 1)

    def test_list_filters_by_name_and_prefix(self):
        """Given resources named p-1, p-2 and q-1, the CONSUMABLE_RESOURCE_NAME filter should select by exact name and by prefix*."""
        base = self.name("flt")
        for suffix in ("p-1", "p-2", "q-1"):
            self.make_consumable("%s-%s" % (base, suffix), totalQuantity=1)

        def names(values):
            out = self.batch.list_consumable_resources(
                filters=[{"name": "CONSUMABLE_RESOURCE_NAME", "values": values}])
            return sorted(c["consumableResourceName"] for c in out["consumableResources"])

        self.assertEqual(names([base + "-p*"]), [base + "-p-1", base + "-p-2"])
        self.assertEqual(names([base + "-q-1"]), [base + "-q-1"])
        self.assertEqual(names([base + "*"]), [base + "-p-1", base + "-p-2", base + "-q-1"])
        self.assertEqual(names([self.name("none")]), [])
        listed = self.batch.list_consumable_resources(
            filters=[{"name": "CONSUMABLE_RESOURCE_NAME", "values": [base + "-q-1"]}])
        summary = listed["consumableResources"][0]
        self.assertEqual(summary["totalQuantity"], 1)
        self.assertEqual(summary["resourceType"], "REPLENISHABLE")

    def test_list_jobs_by_consumable_resource_is_empty(self):
        """Given an existing resource, ListJobsByConsumableResource should return an empty list; an unknown one a ClientException."""
        arn = self.make_consumable(totalQuantity=2)
        got = self.batch.list_jobs_by_consumable_resource(consumableResource=arn)
        self.assertEqual(got["jobs"], [])
        self.assertClientError(self.raw.list_jobs_by_consumable_resource,
                               consumableResource=self.name("ghost"))

    def test_delete_removes_the_resource(self):
        """Given a resource, delete by name should remove it: describe refused, list without it, name reusable."""
        name = self.name("cr")
        arn = self.make_consumable(name, totalQuantity=4)
        self.batch.delete_consumable_resource(consumableResource=name)
        self.assertClientError(self.raw.describe_consumable_resource, consumableResource=arn)
        listed = [c["consumableResourceArn"] for c in
                  self.batch.list_consumable_resources()["consumableResources"]]
        self.assertNotIn(arn, listed)
        self.assertRefusedUnchanged(self.raw.delete_consumable_resource, consumableResource=arn)
        self.make_consumable(name, totalQuantity=1)
        self.assertEqual(self.describe(name)["totalQuantity"], 1)


if __name__ == "__main__":
    unittest.main()
