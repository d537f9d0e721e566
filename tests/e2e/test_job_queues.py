"""Job queues through boto3: create, describe, update, delete, and the requests
the server must refuse without changing anything."""

import unittest

from harness import DroverTestCase


class JobQueueTest(DroverTestCase):

    def test_queue_is_created_valid_and_found_by_name_and_arn(self):
        """Given a create with one CE, describe by name and by ARN should show the same VALID, ENABLED queue."""
        name = self.name("jq")
        ce = self.make_ce()
        arn = self.make_queue(name, ces=[ce], priority=10)
        by_name = self.describe_queue(name)
        self.assertEqual(by_name, self.describe_queue(arn))
        self.assertEqual(by_name["jobQueueName"], name)
        self.assertEqual(by_name["jobQueueArn"], arn)
        self.assertEqual(by_name["priority"], 10)
        self.assertEqual(by_name["state"], "ENABLED")
        self.assertEqual(by_name["status"], "VALID")
        self.assertEqual(by_name["computeEnvironmentOrder"],
                         [{"order": 1, "computeEnvironment": ce}])
        self.assertNotIn("schedulingPolicyArn", by_name)

    def test_describe_lists_ce_arns_in_compute_environment_order(self):
        """Given CEs sent out of order and named by name or ARN, describe should list their ARNs sorted by order."""
        a, b, c = self.name("ce"), self.name("ce"), self.name("ce")
        arn_a, arn_b, arn_c = self.make_ce(a), self.make_ce(b), self.make_ce(c)
        name = self.name("jq")
        self.batch.create_job_queue(
            jobQueueName=name, priority=5,
            computeEnvironmentOrder=[{"order": 30, "computeEnvironment": a},
                                     {"order": 10, "computeEnvironment": arn_b},
                                     {"order": 20, "computeEnvironment": c}])
        self.assertEqual(self.describe_queue(name)["computeEnvironmentOrder"],
                         [{"order": 10, "computeEnvironment": arn_b},
                          {"order": 20, "computeEnvironment": arn_c},
                          {"order": 30, "computeEnvironment": arn_a}])

    def test_priority_bounds_are_accepted(self):
        """Given priorities 0 and 1000, create should succeed and describe should show them."""
        ce = self.make_ce()
        for p in (0, 1000):
            with self.subTest(priority=p):
                arn = self.make_queue(ces=[ce], priority=p)
                self.assertEqual(self.describe_queue(arn)["priority"], p)

    def test_priority_out_of_range_is_refused(self):
        """Given priority -1 or 1001, create should be a ClientException and create nothing."""
        ce = self.make_ce()
        for p in (-1, 1001):
            with self.subTest(priority=p):
                self.assertRefusedUnchanged(
                    self.raw.create_job_queue, jobQueueName=self.name("jq"), priority=p,
                    computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
                    contains="priority")

    def test_bad_compute_environment_orders_are_refused(self):
        """Given 0 or 4 entries, a repeated order, a repeated CE or an unknown CE, create should be refused with no change."""
        ces = [self.make_ce() for _ in range(4)]
        cases = {
            "empty": [],
            "four": [{"order": i + 1, "computeEnvironment": c} for i, c in enumerate(ces)],
            "same order": [{"order": 1, "computeEnvironment": ces[0]},
                           {"order": 1, "computeEnvironment": ces[1]}],
            "same CE": [{"order": 1, "computeEnvironment": ces[0]},
                        {"order": 2, "computeEnvironment": ces[0]}],
            "unknown CE": [{"order": 1, "computeEnvironment": self.name("ghost")}],
        }
        for label, order in cases.items():
            with self.subTest(case=label):
                self.assertRefusedUnchanged(self.raw.create_job_queue,
                                            jobQueueName=self.name("jq"), priority=1,
                                            computeEnvironmentOrder=order)

    def test_mixing_ec2_and_fargate_ces_is_refused(self):
        """Given an EC2 CE and a FARGATE CE in one queue, create should be refused."""
        ec2 = self.make_ce(managed=True)
        fargate = self.make_ce(managed=True, computeResources={
            "type": "FARGATE", "maxvCpus": 4, "subnets": ["s"]})
        self.assertRefusedUnchanged(
            self.raw.create_job_queue, jobQueueName=self.name("jq"), priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ec2},
                                     {"order": 2, "computeEnvironment": fargate}])

    def test_duplicate_queue_name_is_refused(self):
        """Given an existing queue, creating one with its name should be 'already exists' and change nothing."""
        name = self.name("jq")
        ce = self.make_ce()
        self.make_queue(name, ces=[ce], priority=3)
        self.assertRefusedUnchanged(
            self.raw.create_job_queue, jobQueueName=name, priority=9,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
            contains="already exists")
        self.assertEqual(self.describe_queue(name)["priority"], 3)

    def test_invalid_queue_names_are_refused(self):
        """Given a queue name with bad characters or over 128 characters, create should be refused."""
        ce = self.make_ce()
        for bad in ["bad name", "a:b", "q" * 129]:
            with self.subTest(name=bad):
                self.assertRefusedUnchanged(
                    self.raw.create_job_queue, jobQueueName=bad, priority=1,
                    computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])

    def test_update_changes_priority_state_and_order(self):
        """Given a queue, updates of priority, state and CE order (by name and ARN) should show in describe."""
        ce1, ce2 = self.make_ce(), self.make_ce()
        name = self.name("jq")
        arn = self.make_queue(name, ces=[ce1], priority=1)
        resp = self.batch.update_job_queue(jobQueue=name, priority=500)
        self.assertEqual((resp["jobQueueName"], resp["jobQueueArn"]), (name, arn))
        self.assertEqual(self.describe_queue(arn)["priority"], 500)
        self.batch.update_job_queue(jobQueue=arn, state="DISABLED")
        self.assertEqual(self.describe_queue(name)["state"], "DISABLED")
        self.batch.update_job_queue(jobQueue=arn, computeEnvironmentOrder=[
            {"order": 2, "computeEnvironment": ce1}, {"order": 1, "computeEnvironment": ce2}])
        got = self.describe_queue(name)
        self.assertEqual(got["computeEnvironmentOrder"],
                         [{"order": 1, "computeEnvironment": ce2},
                          {"order": 2, "computeEnvironment": ce1}])
        self.assertEqual(got["priority"], 500)
        self.assertEqual(got["state"], "DISABLED")

    def test_invalid_updates_are_refused_and_change_nothing(self):
        """Given updates with a bad priority, bad CE order or unknown queue, they should be refused with no change."""
        ce = self.make_ce()
        arn = self.make_queue(ces=[ce], priority=7)
        self.assertRefusedUnchanged(self.raw.update_job_queue, jobQueue=arn, priority=1001)
        self.assertRefusedUnchanged(self.raw.update_job_queue, jobQueue=arn, priority=-5,
                                    state="DISABLED")
        self.assertRefusedUnchanged(self.raw.update_job_queue, jobQueue=arn,
                                    computeEnvironmentOrder=[])
        self.assertRefusedUnchanged(self.raw.update_job_queue, jobQueue=arn, state="DISABLED",
                                    computeEnvironmentOrder=[
                                        {"order": 1, "computeEnvironment": self.name("ghost")}])
        self.assertRefusedUnchanged(self.raw.update_job_queue, jobQueue=self.name("ghost"),
                                    priority=3)
        got = self.describe_queue(arn)
        self.assertEqual((got["priority"], got["state"]), (7, "ENABLED"))

    def test_delete_requires_disabled(self):
        """Given an ENABLED queue, delete should be refused; once DISABLED, delete by ARN should remove it."""
        name = self.name("jq")
        arn = self.make_queue(name)
        self.assertRefusedUnchanged(self.raw.delete_job_queue, jobQueue=name,
                                    contains="DISABLED")
        self.batch.update_job_queue(jobQueue=name, state="DISABLED")
        self.batch.delete_job_queue(jobQueue=arn)
        self.assertEqual(self.batch.describe_job_queues(jobQueues=[name, arn])["jobQueues"], [])
        self.assertNotIn(arn, [q["jobQueueArn"] for q in self.snapshot()["jobQueues"]])
        self.assertRefusedUnchanged(self.raw.delete_job_queue, jobQueue=name)

    def test_ce_freed_by_a_queue_update_can_be_deleted(self):
        """Given a queue moved from CE1 to CE2, CE1 (disabled) should be deletable while CE2 stays protected."""
        ce1, ce2 = self.make_ce(), self.make_ce()
        queue = self.make_queue(ces=[ce1])
        self.batch.update_job_queue(jobQueue=queue, computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": ce2}])
        for ce in (ce1, ce2):
            self.batch.update_compute_environment(computeEnvironment=ce, state="DISABLED")
        self.batch.delete_compute_environment(computeEnvironment=ce1)
        self.assertRefusedUnchanged(self.raw.delete_compute_environment, computeEnvironment=ce2,
                                    contains="JobQueue relationship")

    def test_describe_skips_unknown_queues(self):
        """Given a known and an unknown queue name, describe should return only the known one."""
        arn = self.make_queue()
        got = self.batch.describe_job_queues(jobQueues=[self.name("nope"), arn])["jobQueues"]
        self.assertEqual([q["jobQueueArn"] for q in got], [arn])


if __name__ == "__main__":
    unittest.main()
