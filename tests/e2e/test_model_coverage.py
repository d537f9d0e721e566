"""Every operation of the installed botocore Batch model gets a deliberate
answer from the server: handled (HTTP 200) or refused with a ClientException
that says why -- never a 404 (unrouted), a 500, or a dropped connection.

Prints a table operation -> handled / refused-with-reason, and checks that
docs/api-compat.md names every operation."""

import os
import re
import sys
import unittest

import botocore
import botocore.session
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from harness import DroverTestCase

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
API_COMPAT = os.path.join(REPO_ROOT, "docs", "api-compat.md")

QUOTA_SHARES = {"CreateQuotaShare", "UpdateQuotaShare", "DeleteQuotaShare", "DescribeQuotaShare",
                "ListQuotaShares"}
SAGEMAKER = {"CreateServiceEnvironment", "UpdateServiceEnvironment", "DeleteServiceEnvironment",
             "DescribeServiceEnvironments", "SubmitServiceJob", "DescribeServiceJob",
             "ListServiceJobs", "TerminateServiceJob", "UpdateServiceJob"}
# What a refusal must say, per family (lower-cased substrings). Jobs operations
# are not listed: they were first refused ("not supported yet") and are being
# implemented, so with this test's placeholder ids they may answer 200 or a
# ClientException about the missing job/queue -- either is a deliberate answer.
REFUSAL_WORDS = {**{op: ["quota share"] for op in QUOTA_SHARES},
                 **{op: ["sagemaker"] for op in SAGEMAKER}}

CONTAINER = {"image": "busybox", "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                         {"type": "MEMORY", "value": "128"}]}


def batch_model():
    return botocore.session.get_session().get_service_model("batch")


def minimal_value(shape, depth=0):
    """A minimal value of `shape` that botocore serializes: required members only,
    first enum value, lengths and numbers at their model minimum."""
    t = shape.type_name
    meta = shape.metadata
    if t == "structure":
        if depth > 8:
            return {}
        return {name: minimal_value(shape.members[name], depth + 1)
                for name in shape.required_members}
    if t == "list":
        n = meta.get("min", 0)
        return [minimal_value(shape.member, depth + 1) for _ in range(n)]
    if t == "map":
        return {}
    if t == "string":
        if shape.enum:
            return shape.enum[0]
        return "x" * max(1, meta.get("min", 1))
    if t in ("integer", "long"):
        return max(1, meta.get("min", 1))
    if t in ("float", "double"):
        return float(max(1, meta.get("min", 1)))
    if t == "boolean":
        return False
    if t == "timestamp":
        return 0
    if t == "blob":
        return b"x"
    raise AssertionError("unexpected shape type %s" % t)


class ModelCoverageTest(DroverTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        b = cls.batch
        arn = cls.server.arn
        cls.ce = b.create_compute_environment(computeEnvironmentName="mc-ce",
                                              type="UNMANAGED")["computeEnvironmentArn"]
        b.create_compute_environment(computeEnvironmentName="mc-ce-del", type="UNMANAGED",
                                     state="DISABLED")
        order = [{"order": 1, "computeEnvironment": cls.ce}]
        cls.queue = b.create_job_queue(jobQueueName="mc-jq", priority=1,
                                       computeEnvironmentOrder=order)["jobQueueArn"]
        b.create_job_queue(jobQueueName="mc-jq-del", priority=1, state="DISABLED",
                           computeEnvironmentOrder=order)
        b.register_job_definition(jobDefinitionName="mc-jd", type="container",
                                  containerProperties=CONTAINER)
        cls.sp = b.create_scheduling_policy(name="mc-sp")["arn"]
        cls.sp_del = b.create_scheduling_policy(name="mc-sp-del")["arn"]
        cls.cr = b.create_consumable_resource(consumableResourceName="mc-cr",
                                              totalQuantity=1)["consumableResourceArn"]
        b.create_consumable_resource(consumableResourceName="mc-cr-del")
        b.tag_resource(resourceArn=cls.ce, tags={"untag-me": "1"})
        # Parameters for the operations Drover implements: each should succeed.
        cls.handled = {
            "CreateComputeEnvironment": dict(computeEnvironmentName="mc-ce-new",
                                             type="UNMANAGED"),
            "UpdateComputeEnvironment": dict(computeEnvironment=cls.ce, state="ENABLED"),
            "DeleteComputeEnvironment": dict(computeEnvironment="mc-ce-del"),
            "DescribeComputeEnvironments": {},
            "CreateJobQueue": dict(jobQueueName="mc-jq-new", priority=2,
                                   computeEnvironmentOrder=order),
            "UpdateJobQueue": dict(jobQueue=cls.queue, priority=3),
            "DeleteJobQueue": dict(jobQueue="mc-jq-del"),
            "DescribeJobQueues": {},
            "RegisterJobDefinition": dict(jobDefinitionName="mc-jd-new", type="container",
                                          containerProperties=CONTAINER),
            "DeregisterJobDefinition": dict(jobDefinition="mc-jd:1"),
            "DescribeJobDefinitions": {},
            "CreateSchedulingPolicy": dict(name="mc-sp-new"),
            "UpdateSchedulingPolicy": dict(arn=cls.sp, fairsharePolicy={"shareDecaySeconds": 60}),
            "DeleteSchedulingPolicy": dict(arn=cls.sp_del),
            "DescribeSchedulingPolicies": dict(arns=[cls.sp]),
            "ListSchedulingPolicies": {},
            "CreateConsumableResource": dict(consumableResourceName="mc-cr-new"),
            "UpdateConsumableResource": dict(consumableResource=cls.cr, operation="SET",
                                             quantity=2),
            "DeleteConsumableResource": dict(consumableResource="mc-cr-del"),
            "DescribeConsumableResource": dict(consumableResource=cls.cr),
            "ListConsumableResources": {},
            "ListJobsByConsumableResource": dict(consumableResource=cls.cr),
            "TagResource": dict(resourceArn=cls.ce, tags={"k": "v"}),
            "UntagResource": dict(resourceArn=cls.ce, tagKeys=["untag-me"]),
            "ListTagsForResource": dict(resourceArn=cls.ce),
        }
        cls.table = []

    @classmethod
    def tearDownClass(cls):
        if cls.table:
            width = max(len(op) for op, _ in cls.table)
            lines = ["", "Batch operation coverage (botocore %s, %d operations):"
                     % (botocore.__version__, len(cls.table))]
            lines += ["  %-*s  %s" % (width, op, verdict) for op, verdict in sorted(cls.table)]
            print("\n".join(lines), file=sys.stderr)
        super().tearDownClass()

    def test_botocore_is_at_least_1_43(self):
        """Given the installed botocore, its version should be >= 1.43 (the model Drover is built from)."""
        major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", botocore.__version__).groups())
        self.assertGreaterEqual((major, minor), (1, 43), botocore.__version__)

    def test_every_operation_gets_a_deliberate_answer(self):
        """Given every operation of the botocore Batch model, the server should handle it (200) or refuse it with a ClientException that says why -- never 404/500/connection error."""
        model = batch_model()
        self.assertGreaterEqual(len(model.operation_names), 45)
        for op in model.operation_names:
            with self.subTest(operation=op):
                self.check_operation(model, op)

    def check_operation(self, model, op):
        method = botocore.xform_name(op)
        if op in self.handled:
            fn, params = getattr(self.batch, method), self.handled[op]
        else:
            fn = getattr(self.raw, method)
            params = minimal_value(model.operation_model(op).input_shape)
        try:
            resp = fn(**params)
            status, code, message = resp["ResponseMetadata"]["HTTPStatusCode"], None, ""
        except ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            code = e.response["Error"].get("Code")
            message = e.response["Error"].get("Message", "")
        except (EndpointConnectionError, ConnectionClosedError) as e:
            self.table.append((op, "CONNECTION ERROR: %s" % e))
            self.fail("%s: connection error %s (server exit code %s)"
                      % (op, e, self.server.proc.poll()))
        if code is None:
            self.table.append((op, "handled (HTTP %d)" % status))
        else:
            self.table.append((op, "refused %s %d: %s" % (code, status, message)))
        self.assertNotIn(status, (404, 500), (op, code, message))
        self.assertNotIn(code, ("UnknownOperationException", "ServerException",
                                "InternalFailure"), (op, message))
        if op in self.handled:
            self.assertEqual((status, code), (200, None),
                             "%s is implemented but was refused: %s" % (op, message))
        elif op in REFUSAL_WORDS:
            self.assertEqual((status, code), (400, "ClientException"), (op, message))
            for word in REFUSAL_WORDS[op]:
                self.assertIn(word, message.lower(), (op, message))
        else:  # jobs operations, or operations newer than this test: any deliberate answer
            self.assertTrue(status == 200 or (code == "ClientException" and message),
                            (op, status, code, message))
        self.assertIsNone(self.server.proc.poll(), "the server died on %s" % op)

    def test_api_compat_doc_names_every_operation(self):
        """Given docs/api-compat.md, it should mention every Batch operation by name."""
        if not os.path.exists(API_COMPAT):
            self.skipTest("%s does not exist yet (written by the server work)" % API_COMPAT)
        with open(API_COMPAT) as f:
            text = f.read()
        missing = [op for op in batch_model().operation_names
                   if not re.search(r"\b%s\b" % op, text)]
        self.assertEqual(missing, [], "operations missing from docs/api-compat.md")


if __name__ == "__main__":
    unittest.main()
