"""Tags on every taggable resource type through boto3 (TagResource,
UntagResource, ListTagsForResource and tags given at creation)."""

import unittest

from harness import DroverTestCase


class TagTest(DroverTestCase):

    def make_all(self, tags=None):
        """One resource of each taggable type; returns {kind: ARN}."""
        kw = {"tags": tags} if tags is not None else {}
        ce = self.make_ce(**kw)
        return {
            "compute-environment": ce,
            "job-queue": self.make_queue(ces=[ce], **kw),
            "job-definition": self.register_jd(**kw)["jobDefinitionArn"],
            "scheduling-policy": self.make_policy(**kw),
            "consumable-resource": self.make_consumable(**kw),
        }

    def tags_of(self, arn):
        return self.batch.list_tags_for_resource(resourceArn=arn)["tags"]

    def described_tags(self, kind, arn):
        b = self.batch
        if kind == "compute-environment":
            return self.describe_ce(arn).get("tags")
        if kind == "job-queue":
            return self.describe_queue(arn).get("tags")
        if kind == "job-definition":
            return b.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"][0].get("tags")
        if kind == "scheduling-policy":
            return self.describe_policy(arn).get("tags")
        return b.describe_consumable_resource(consumableResource=arn).get("tags")

    def test_tags_given_at_creation_are_listed_and_described(self):
        """Given tags at creation on every resource type, ListTagsForResource and describe should return them."""
        tags = {"team": "e2e", "cost-center": "42", "empty": ""}
        for kind, arn in self.make_all(tags).items():
            with self.subTest(kind=kind):
                self.assertEqual(self.tags_of(arn), tags)
                self.assertEqual(self.described_tags(kind, arn), tags)

    def test_tag_and_untag_every_resource_type(self):
        """Given TagResource then UntagResource on every resource type, the tags should be added, overwritten and removed."""
        for kind, arn in self.make_all({"keep": "1", "owner": "old"}).items():
            with self.subTest(kind=kind):
                self.batch.tag_resource(resourceArn=arn, tags={"owner": "new", "env": "test"})
                want = {"keep": "1", "owner": "new", "env": "test"}
                self.assertEqual(self.tags_of(arn), want)
                self.assertEqual(self.described_tags(kind, arn), want)
                self.batch.untag_resource(resourceArn=arn, tagKeys=["owner", "env", "absent"])
                self.assertEqual(self.tags_of(arn), {"keep": "1"})
                self.assertEqual(self.described_tags(kind, arn), {"keep": "1"})

    def test_untagged_resource_lists_no_tags(self):
        """Given a resource created without tags, ListTagsForResource should return an empty map."""
        self.assertEqual(self.tags_of(self.make_ce()), {})

    def test_keys_with_special_characters_round_trip(self):
        """Given tag keys with spaces, slashes, colons and '+', tag, list and untag should round-trip them."""
        arn = self.make_ce()
        tags = {"a b": "1", "path/to": "2", "k:v": "3", "x+y": "4", "q=r&s": "5",
                "ünï": "vålüe ✓"}
        self.batch.tag_resource(resourceArn=arn, tags=tags)
        self.assertEqual(self.tags_of(arn), tags)
        self.batch.untag_resource(resourceArn=arn, tagKeys=["a b", "x+y", "q=r&s", "ünï"])
        self.assertEqual(self.tags_of(arn), {"path/to": "2", "k:v": "3"})

    def test_fifty_tags_allowed_fifty_one_refused(self):
        """Given 45 tags, adding 5 should succeed (50) and adding one more should be refused with no change."""
        arn = self.make_ce(tags={"k%02d" % i: "v" for i in range(45)})
        self.batch.tag_resource(resourceArn=arn, tags={"n%02d" % i: "v" for i in range(5)})
        self.assertEqual(len(self.tags_of(arn)), 50)
        self.assertRefusedUnchanged(self.raw.tag_resource, resourceArn=arn, tags={"one": "more"})
        self.assertEqual(len(self.tags_of(arn)), 50)
        # Overwriting an existing key keeps the count at 50: allowed.
        self.batch.tag_resource(resourceArn=arn, tags={"k00": "changed"})
        self.assertEqual(self.tags_of(arn)["k00"], "changed")

    def test_fifty_one_tags_at_creation_are_refused(self):
        """Given 51 tags at creation, create should be refused and create nothing."""
        name = self.name("ce")
        self.assertRefusedUnchanged(self.raw.create_compute_environment,
                                    computeEnvironmentName=name, type="UNMANAGED",
                                    tags={"k%02d" % i: "v" for i in range(51)})
        self.assertRefusedUnchanged(self.raw.create_scheduling_policy, name=self.name("sp"),
                                    tags={"k%02d" % i: "v" for i in range(51)})

    def test_aws_prefixed_keys_are_refused(self):
        """Given a tag key starting with 'aws:', create and TagResource should be refused with no change."""
        arn = self.make_ce(tags={"a": "1"})
        self.assertRefusedUnchanged(self.raw.tag_resource, resourceArn=arn,
                                    tags={"aws:owner": "me", "b": "2"}, contains="aws:")
        self.assertRefusedUnchanged(self.raw.create_compute_environment,
                                    computeEnvironmentName=self.name("ce"), type="UNMANAGED",
                                    tags={"aws:x": "1"})
        self.assertRefusedUnchanged(self.raw.register_job_definition,
                                    jobDefinitionName=self.name("jd"), type="container",
                                    containerProperties={"image": "busybox"},
                                    tags={"aws:x": "1"})
        self.assertEqual(self.tags_of(arn), {"a": "1"})

    def test_unknown_resource_is_refused(self):
        """Given an ARN that names nothing, tag, untag and list should be ClientExceptions with no change."""
        ghost = self.arn("compute-environment", self.name("ghost"))
        self.assertRefusedUnchanged(self.raw.tag_resource, resourceArn=ghost, tags={"a": "1"})
        self.assertRefusedUnchanged(self.raw.untag_resource, resourceArn=ghost, tagKeys=["a"])
        self.assertClientError(self.raw.list_tags_for_resource, resourceArn=ghost)
        # A job definition is addressed with its revision.
        jd = self.register_jd()
        self.assertClientError(self.raw.list_tags_for_resource,
                               resourceArn=jd["jobDefinitionArn"].rsplit(":", 1)[0] + ":99")

    def test_deleted_resource_tags_are_gone(self):
        """Given a tagged CE that is deleted and re-created, the new CE should start without the old tags."""
        name = self.name("ce")
        arn = self.make_ce(name, state="DISABLED", tags={"old": "1"})
        self.batch.delete_compute_environment(computeEnvironment=arn)
        self.assertClientError(self.raw.list_tags_for_resource, resourceArn=arn)
        self.make_ce(name)
        self.assertEqual(self.tags_of(arn), {})


if __name__ == "__main__":
    unittest.main()
