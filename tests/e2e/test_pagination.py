"""maxResults/nextToken pagination on the five paginated operations: pages are
the right size, cover everything exactly once in creation order, end without a
nextToken, and bad limits or tokens are ClientExceptions."""

import base64
import unittest

from harness import DroverTestCase

N = 7  # resources of each kind, created in setUpClass on a fresh server


class PaginationTest(DroverTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        b = cls.batch
        cls.ces = [b.create_compute_environment(computeEnvironmentName="pce-%d" % i,
                                                type="UNMANAGED")["computeEnvironmentArn"]
                   for i in range(N)]
        cls.queues = [b.create_job_queue(jobQueueName="pjq-%d" % i, priority=i,
                                         computeEnvironmentOrder=[{"order": 1,
                                                                   "computeEnvironment": cls.ces[0]}]
                                         )["jobQueueArn"] for i in range(N)]
        cls.jds = []
        for i in range(N):  # two names, interleaved, so revisions and names mix
            cls.jds.append(b.register_job_definition(
                jobDefinitionName="pjd-%d" % (i % 2), type="container",
                containerProperties={"image": "busybox"})["jobDefinitionArn"])
        b.deregister_job_definition(jobDefinition=cls.jds[1])
        b.deregister_job_definition(jobDefinition=cls.jds[4])
        cls.policies = [b.create_scheduling_policy(name="psp-%d" % i)["arn"] for i in range(N)]
        cls.consumables = [b.create_consumable_resource(consumableResourceName="pcr-%d" % i,
                                                        totalQuantity=i)["consumableResourceArn"]
                           for i in range(N)]

    # Each entry: (operation, list key, ARN key, expected ARNs in creation order).
    def operations(self):
        return [
            ("describe_compute_environments", "computeEnvironments", "computeEnvironmentArn",
             self.ces),
            ("describe_job_queues", "jobQueues", "jobQueueArn", self.queues),
            ("describe_job_definitions", "jobDefinitions", "jobDefinitionArn", self.jds),
            ("list_scheduling_policies", "schedulingPolicies", "arn", self.policies),
            ("list_consumable_resources", "consumableResources", "consumableResourceArn",
             self.consumables),
        ]

    def pages(self, op, key, arn_key, max_results, **params):
        """Walks every page by hand; returns the list of pages (lists of ARNs) and tokens."""
        fn = getattr(self.batch, op)
        pages, tokens, token = [], [], None
        for _ in range(N + 3):
            kw = dict(params, maxResults=max_results)
            if token:
                kw["nextToken"] = token
            resp = fn(**kw)
            pages.append([item[arn_key] for item in resp[key]])
            token = resp.get("nextToken")
            tokens.append(token)
            if not token:
                return pages, tokens
        self.fail("%s never stopped returning nextToken" % op)

    def test_pages_of_three_cover_everything_once_in_order(self):
        """Given 7 resources and maxResults=3, each operation should return pages of 3, 3, 1 with a nextToken on all but the last."""
        for op, key, arn_key, want in self.operations():
            with self.subTest(op=op):
                pages, tokens = self.pages(op, key, arn_key, 3)
                self.assertEqual([len(p) for p in pages], [3, 3, 1])
                self.assertTrue(tokens[0] and tokens[1])
                self.assertIsNone(tokens[2])
                self.assertEqual(sum(pages, []), want)

    def test_exactly_full_last_page_has_no_token(self):
        """Given maxResults equal to the number of resources, one page should hold all and carry no nextToken."""
        for op, key, arn_key, want in self.operations():
            with self.subTest(op=op):
                pages, tokens = self.pages(op, key, arn_key, N)
                self.assertEqual(pages, [want])
                self.assertEqual(tokens, [None])

    def test_page_size_one_and_hundred(self):
        """Given maxResults=1 and 100, pages should hold 1 item each, or all items in one page."""
        for op, key, arn_key, want in self.operations():
            with self.subTest(op=op):
                pages, _ = self.pages(op, key, arn_key, 1)
                self.assertEqual(pages, [[a] for a in want])
                pages, tokens = self.pages(op, key, arn_key, 100)
                self.assertEqual(pages, [want])

    def test_boto3_paginator_walks_every_page(self):
        """Given boto3's paginator with PageSize 2, every resource should come back exactly once."""
        for op, key, arn_key, want in self.operations():
            with self.subTest(op=op):
                got = []
                for page in self.batch.get_paginator(op).paginate(
                        PaginationConfig={"PageSize": 2}):
                    self.assertLessEqual(len(page[key]), 2)
                    got += [item[arn_key] for item in page[key]]
                self.assertEqual(got, want)

    def test_job_definition_filters_combine_with_pagination(self):
        """Given a status or name filter, describe-job-definitions pages should hold only matching revisions."""
        active = [a for i, a in enumerate(self.jds) if i not in (1, 4)]
        pages, _ = self.pages("describe_job_definitions", "jobDefinitions", "jobDefinitionArn", 2,
                              status="ACTIVE")
        self.assertTrue(all(len(p) == 2 for p in pages[:-1]), pages)
        self.assertEqual(sum(pages, []), active)
        pages, _ = self.pages("describe_job_definitions", "jobDefinitions", "jobDefinitionArn", 2,
                              jobDefinitionName="pjd-1")
        self.assertEqual(sum(pages, []), [a for a in self.jds if "/pjd-1:" in a])
        pages, _ = self.pages("describe_job_definitions", "jobDefinitions", "jobDefinitionArn", 1,
                              status="INACTIVE")
        self.assertEqual(sum(pages, []), [self.jds[1], self.jds[4]])

    def test_consumable_filter_combines_with_pagination(self):
        """Given a name-prefix filter and maxResults=1, list-consumable-resources should page through the matches only."""
        flt = [{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["pcr-1", "pcr-5"]}]
        pages, _ = self.pages("list_consumable_resources", "consumableResources",
                              "consumableResourceArn", 1, filters=flt)
        self.assertEqual(sum(pages, []), [self.consumables[1], self.consumables[5]])

    def test_max_results_out_of_range_is_refused(self):
        """Given maxResults 0, -1 or 101, each operation should answer ClientException."""
        for op, _, _, _ in self.operations():
            for bad in (0, -1, 101):
                with self.subTest(op=op, maxResults=bad):
                    self.assertClientError(getattr(self.raw, op), maxResults=bad)

    def test_invalid_next_token_is_refused(self):
        """Given a garbage nextToken, each operation should answer ClientException (not 500, not page one)."""
        bad_tokens = ["not-a-token", base64.b64encode(b"seq:abc").decode(), "%%%", "eyJ9"]
        for op, _, _, _ in self.operations():
            for token in bad_tokens:
                with self.subTest(op=op, token=token):
                    self.assertClientError(getattr(self.raw, op), nextToken=token)

    def test_explicit_lists_ignore_pagination(self):
        """Given an explicit list of names, describe should return them all (no nextToken) even with maxResults=1."""
        resp = self.batch.describe_compute_environments(computeEnvironments=self.ces[:3],
                                                        maxResults=1)
        self.assertEqual([c["computeEnvironmentArn"] for c in resp["computeEnvironments"]],
                         self.ces[:3])
        self.assertNotIn("nextToken", resp)

    def test_token_stays_valid_after_deleting_the_last_item_seen(self):
        """Given a token, deleting the item that ended its page should not break or repeat the next page."""
        b = self.batch
        extra = [b.create_compute_environment(computeEnvironmentName="pdel-%d" % i,
                                              type="UNMANAGED", state="DISABLED")
                 ["computeEnvironmentArn"] for i in range(3)]
        try:
            first = b.describe_compute_environments(maxResults=N + 1)
            self.assertEqual([c["computeEnvironmentArn"] for c in first["computeEnvironments"]],
                             self.ces + extra[:1])
            b.delete_compute_environment(computeEnvironment=extra[0])
            rest = b.describe_compute_environments(maxResults=10, nextToken=first["nextToken"])
            self.assertEqual([c["computeEnvironmentArn"] for c in rest["computeEnvironments"]],
                             extra[1:])
        finally:
            for arn in extra:  # leave the fixture as it was for the other tests
                try:
                    b.delete_compute_environment(computeEnvironment=arn)
                except b.exceptions.ClientException:
                    pass


if __name__ == "__main__":
    unittest.main()
