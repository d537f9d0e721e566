"""SigV4 authentication and the HTTP surface: every request but GET /healthz
must be signed correctly, failures carry AWS's error types, every response has
x-amzn-RequestId, and unknown routes are 404."""

import datetime
import json
import unittest
from unittest import mock

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from harness import ACCESS_KEY, SECRET_KEY, DroverTestCase, http


class AuthTest(DroverTestCase):

    def send_signed(self, path, body="{}", method="POST", service="batch", region=None,
                    key=ACCESS_KEY, secret=SECRET_KEY, when=None, send_body=None):
        """Signs a request with botocore's SigV4Auth (optionally as if at `when`, UTC)
        and sends it with urllib (optionally with a different body than signed)."""
        url = self.server.endpoint + path
        req = AWSRequest(method=method, url=url, data=body.encode() if body else None,
                         headers={"Content-Type": "application/json"})
        signer = SigV4Auth(Credentials(key, secret), service, region or self.server.region)
        if when is None:
            signer.add_auth(req)
        else:
            with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
                signer.add_auth(req)
        prepared = req.prepare()
        payload = body if send_body is None else send_body
        headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
        return http(method, prepared.url, body=payload or None, headers=headers)

    def assertAwsError(self, resp, status, error_type, contains=None):
        code, headers, body = resp
        self.assertEqual(code, status, body)
        doc = json.loads(body)
        self.assertEqual(doc["__type"], error_type, doc)
        self.assertTrue(doc.get("message"), doc)
        self.assertEqual(headers.get("x-amzn-errortype", "").split(":")[0], error_type, headers)
        self.assertTrue(headers.get("x-amzn-requestid"), headers)
        if contains:
            self.assertIn(contains.lower(), doc["message"].lower(), doc)
        return doc

    def utc_now(self):
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)

    def test_healthz_works_unsigned(self):
        """Given an unsigned GET /healthz, the server should answer 200 with a request id."""
        status, headers, body = http("GET", self.server.endpoint + "/healthz")
        self.assertEqual(status, 200, body)
        self.assertTrue(headers.get("x-amzn-requestid"))

    def test_correctly_signed_raw_request_is_accepted(self):
        """Given a request signed now by botocore and sent by urllib, the server should answer 200 (control for the tests below)."""
        status, _, body = self.send_signed("/v1/describejobqueues")
        self.assertEqual(status, 200, body)
        self.assertIn("jobQueues", json.loads(body))

    def test_unsigned_request_is_refused(self):
        """Given a plain POST without Authorization, the server should answer 403 MissingAuthenticationTokenException."""
        resp = http("POST", self.server.endpoint + "/v1/describecomputeenvironments", body="{}",
                    headers={"Content-Type": "application/json"})
        self.assertAwsError(resp, 403, "MissingAuthenticationTokenException")

    def test_unsigned_create_changes_nothing(self):
        """Given an unsigned create, the server should refuse it and create nothing."""
        before = self.snapshot()
        resp = http("POST", self.server.endpoint + "/v1/createcomputeenvironment",
                    body=json.dumps({"computeEnvironmentName": "unsigned", "type": "UNMANAGED"}),
                    headers={"Content-Type": "application/json"})
        self.assertEqual(resp[0], 403)
        self.assertEqual(self.snapshot(), before)

    def test_wrong_secret_is_invalid_signature(self):
        """Given a client with the right key id but a wrong secret, the server should answer 403 InvalidSignatureException."""
        forged = self.server.client(secret_key="wrongSecretKey0123456789abcdefXYZ")
        self.assertClientError(forged.describe_job_queues, error_code="InvalidSignatureException",
                               http_status=403)
        before = self.snapshot()
        self.assertClientError(forged.create_compute_environment,
                               computeEnvironmentName=self.name("ce"), type="UNMANAGED",
                               error_code="InvalidSignatureException", http_status=403)
        self.assertEqual(self.snapshot(), before)

    def test_unknown_key_is_unrecognized_client(self):
        """Given a key id the server does not know, it should answer 403 UnrecognizedClientException."""
        stranger = self.server.client(access_key="AKIDUNKNOWNKEY000001",
                                      secret_key="someSecretKey0123456789abcdef")
        self.assertClientError(stranger.describe_compute_environments,
                               error_code="UnrecognizedClientException", http_status=403)

    def test_malformed_authorization_is_incomplete_signature(self):
        """Given an Authorization header without Credential/SignedHeaders/Signature, the server should answer 400 IncompleteSignatureException."""
        resp = http("POST", self.server.endpoint + "/v1/describejobqueues", body="{}",
                    headers={"Content-Type": "application/json",
                             "X-Amz-Date": self.utc_now().strftime("%Y%m%dT%H%M%SZ"),
                             "Authorization": "AWS4-HMAC-SHA256 garbage"})
        self.assertAwsError(resp, 400, "IncompleteSignatureException")

    def test_signature_from_20_minutes_ago_is_refused_with_date(self):
        """Given a request signed 20 minutes in the past, the server should answer 403 InvalidSignatureException with a Date header."""
        past = self.utc_now() - datetime.timedelta(minutes=20)
        resp = self.send_signed("/v1/describejobqueues", when=past)
        self.assertAwsError(resp, 403, "InvalidSignatureException", contains="expired")
        self.assertTrue(resp[1].get("date"), resp[1])
        # And as much in the future.
        future = self.utc_now() + datetime.timedelta(minutes=20)
        self.assertAwsError(self.send_signed("/v1/describejobqueues", when=future), 403,
                            "InvalidSignatureException")
        # Within the 15-minute window it is fine.
        recent = self.utc_now() - datetime.timedelta(minutes=5)
        self.assertEqual(self.send_signed("/v1/describejobqueues", when=recent)[0], 200)

    def test_wrong_region_in_scope_is_refused(self):
        """Given a client signing for eu-west-1 against a us-east-1 server, the request should be refused (403 InvalidSignatureException)."""
        eu = self.server.client(region_name="eu-west-1")
        self.assertClientError(eu.describe_job_queues, error_code="InvalidSignatureException",
                               http_status=403, contains="region")

    def test_wrong_service_in_scope_is_refused(self):
        """Given a request signed for service ec2, the server should answer 403 InvalidSignatureException."""
        resp = self.send_signed("/v1/describejobqueues", service="ec2")
        self.assertAwsError(resp, 403, "InvalidSignatureException", contains="service")

    def test_body_changed_after_signing_is_refused(self):
        """Given a create whose body was altered after signing, the server should refuse it and create nothing."""
        before = self.snapshot()
        signed = json.dumps({"computeEnvironmentName": "signed-one", "type": "UNMANAGED"})
        sent = json.dumps({"computeEnvironmentName": "evil-one", "type": "UNMANAGED"})
        resp = self.send_signed("/v1/createcomputeenvironment", body=signed, send_body=sent)
        self.assertAwsError(resp, 403, "InvalidSignatureException")
        self.assertEqual(self.snapshot(), before)

    def test_unknown_route_is_404(self):
        """Given a signed request to a path or method no operation has, the server should answer 404 UnknownOperationException."""
        self.assertAwsError(self.send_signed("/v1/nosuchoperation"), 404,
                            "UnknownOperationException")
        self.assertAwsError(self.send_signed("/v1/describejobqueues", method="GET", body=""),
                            404, "UnknownOperationException")

    def test_client_errors_have_aws_json_shape(self):
        """Given a refused request, the response should be 400 with x-amzn-ErrorType and a {__type, message} JSON body."""
        resp = self.send_signed("/v1/deletejobqueue", body=json.dumps({"jobQueue": "ghost"}))
        self.assertAwsError(resp, 400, "ClientException")
        self.assertIn("application/json", resp[1].get("content-type", ""))
        resp = self.send_signed("/v1/createjobqueue", body="{not json")
        self.assertAwsError(resp, 400, "ClientException")

    def test_every_response_has_a_distinct_request_id(self):
        """Given a success, a ClientException, an auth error, a 404 and /healthz, each response should carry its own x-amzn-RequestId."""
        ids = []
        ok = self.batch.describe_compute_environments()
        ids.append(ok["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid"))
        err = self.assertClientError(self.raw.delete_job_queue, jobQueue="ghost")
        ids.append(err["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid"))
        for resp in [http("POST", self.server.endpoint + "/v1/describejobqueues", body="{}"),
                     self.send_signed("/v1/nosuchoperation"),
                     self.send_signed("/v1/describejobqueues", service="ec2"),
                     http("GET", self.server.endpoint + "/healthz")]:
            ids.append(resp[1].get("x-amzn-requestid"))
        self.assertTrue(all(ids), ids)
        self.assertEqual(len(set(ids)), len(ids), ids)


if __name__ == "__main__":
    unittest.main()
