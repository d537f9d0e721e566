#include "auth/sigv4.h"

#include <gtest/gtest.h>

#include <cctype>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace drover::auth {
namespace {

// The AWS SigV4 test suite's fixed inputs (aws-sig-v4-test-suite, context of every case).
constexpr char kSuiteKey[] = "AKIDEXAMPLE";
constexpr char kSuiteSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kSuiteDate[] = "20150830T123600Z";
constexpr int64_t kSuiteMs = 1440938160000;  // 2015-08-30T12:36:00Z
constexpr char kSuiteScope[] = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
constexpr char kBatchScope[] = "AKIDEXAMPLE/20150830/us-east-1/batch/aws4_request";
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr int64_t kMinute = 60 * 1000;

constexpr char kMismatch[] =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";

SecretLookup SuiteLookup() {
  return [](std::string_view id) -> std::optional<std::string> {
    if (id == kSuiteKey) return std::string(kSuiteSecret);
    return std::nullopt;
  };
}

VerifyOptions Opts(std::string service, int64_t now_ms = kSuiteMs) {
  VerifyOptions o;
  o.region = "us-east-1";
  o.services = {std::move(service)};
  o.now_ms = now_ms;
  return o;
}

std::string Authz(const std::string& scope, const std::string& signed_headers,
                  const std::string& signature) {
  return "AWS4-HMAC-SHA256 Credential=" + scope + ", SignedHeaders=" + signed_headers +
         ", Signature=" + signature;
}

std::variant<Identity, AuthError> Check(std::string_view method, std::string_view target,
                                        const std::vector<Header>& headers, std::string_view body,
                                        const VerifyOptions& opts) {
  return Verify(RequestView{method, target, &headers, body}, SuiteLookup(), opts);
}

void ExpectOk(const std::variant<Identity, AuthError>& r) {
  if (const auto* e = std::get_if<AuthError>(&r)) {
    FAIL() << e->type << " " << e->http_status << ": " << e->message;
  }
  EXPECT_EQ(std::get<Identity>(r).access_key_id, kSuiteKey);
}

AuthError ExpectError(const std::variant<Identity, AuthError>& r) {
  EXPECT_TRUE(std::holds_alternative<AuthError>(r)) << "request unexpectedly verified";
  if (const auto* e = std::get_if<AuthError>(&r)) return *e;
  return AuthError{"", 0, ""};
}

std::string AuthorizationOf(const std::vector<Header>& headers) {
  for (const Header& h : headers) {
    if (h.name == "authorization") return h.value;
  }
  return "";
}

// ------------------------------------------------------------------ helpers

TEST(Sha256Test, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""), kEmptySha256);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HmacSha256Test, Rfc4231Case2) {
  std::string mac = HmacSha256("Jefe", "what do ya want for nothing?");
  ASSERT_EQ(mac.size(), 32u);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : mac) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 0xf]);
  }
  EXPECT_EQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(AmzDateTest, FormatsAndParses) {
  EXPECT_EQ(FormatAmzDate(kSuiteMs), kSuiteDate);
  EXPECT_EQ(FormatAmzDate(kSuiteMs + 999), kSuiteDate);  // Milliseconds are truncated.
  EXPECT_EQ(FormatAmzDate(0), "19700101T000000Z");
  EXPECT_EQ(FormatAmzDate(951782400000), "20000229T000000Z");  // Leap day.
  EXPECT_EQ(ParseAmzDate(kSuiteDate), kSuiteMs);
  EXPECT_EQ(ParseAmzDate("20000229T000000Z"), 951782400000);
  EXPECT_EQ(ParseAmzDate("Sun, 30 Aug 2015 12:36:00 GMT"), kSuiteMs);
  EXPECT_EQ(ParseAmzDate("Sun, 30 Aug 2015 12:36:00 -0000"), kSuiteMs);  // botocore's formatdate
  EXPECT_EQ(ParseAmzDate("Sun, 30 Aug 2015 14:36:00 +0200"), kSuiteMs);
  EXPECT_EQ(ParseAmzDate("30 Aug 2015 12:36:00 UTC"), kSuiteMs);
}

TEST(AmzDateTest, RejectsMalformed) {
  for (const char* bad :
       {"", "2015-08-30T12:36:00Z", "20150830T123600", "20150830 123600Z", "20151330T123600Z",
        "20150229T123600Z", "20150830T243600Z", "20150830T126000Z", "2015083XT123600Z",
        "Sun, 30 Aug 2015 12:36:00", "Sun, 30 Foo 2015 12:36:00 GMT",
        "Xyz, 30 Aug 2015 12:36:00 GMT", "Sun, 32 Aug 2015 12:36:00 GMT",
        "Sun, 30 Aug 2015 12:36 GMT", "2015/08/30T12/36/00Z"}) {
    EXPECT_EQ(ParseAmzDate(bad), std::nullopt) << bad;
  }
}

TEST(CanonicalUriTest, EncodesEachSegmentOfTheRawPathAgain) {
  EXPECT_EQ(CanonicalUri(""), "/");
  EXPECT_EQ(CanonicalUri("/"), "/");
  EXPECT_EQ(CanonicalUri("/v1/createjobqueue"), "/v1/createjobqueue");
  EXPECT_EQ(CanonicalUri("/v1/tags/arn%3Aaws%3Abatch%3Aus-east-1%3A123456789012%3Ajob-queue%2Fq1"),
            "/v1/tags/arn%253Aaws%253Abatch%253Aus-east-1%253A123456789012%253Ajob-queue%252Fq1");
  EXPECT_EQ(CanonicalUri("/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
            "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
  EXPECT_EQ(CanonicalUri("/a b/c+d$"), "/a%20b/c%2Bd%24");
  EXPECT_EQ(CanonicalUri("/documents and settings/"), "/documents%20and%20settings/");
}

TEST(CanonicalUriTest, NormalizesLikeBotocore) {
  // botocore's remove_dot_segments: dot segments resolved, empty segments dropped.
  EXPECT_EQ(CanonicalUri("//example//"), "/example/");
  EXPECT_EQ(CanonicalUri("/example/.."), "/");
  EXPECT_EQ(CanonicalUri("/example1/example2/../.."), "/");
  EXPECT_EQ(CanonicalUri("/./"), "/");
  EXPECT_EQ(CanonicalUri("/a/./b/../c"), "/a/c");
}

TEST(CanonicalQueryTest, SortsAndReencodes) {
  EXPECT_EQ(CanonicalQuery(""), "");
  EXPECT_EQ(CanonicalQuery("Param2=value2&Param1=value1"), "Param1=value1&Param2=value2");
  EXPECT_EQ(CanonicalQuery("Param1=value2&Param1=Value1"), "Param1=Value1&Param1=value2");
  EXPECT_EQ(CanonicalQuery("b=2&a=x%20y&a=1&c=%2F~&d"), "a=1&a=x%20y&b=2&c=%2F~&d=");
  EXPECT_EQ(CanonicalQuery("c=%7e&k=a b"), "c=~&k=a%20b");  // Decoded, then re-encoded strictly.
  EXPECT_EQ(CanonicalQuery("%E1%88%B4=bar"), "%E1%88%B4=bar");
  EXPECT_EQ(CanonicalQuery("\xE1\x88\xB4=bar"), "%E1%88%B4=bar");
  EXPECT_EQ(CanonicalQuery("a=b+c"), "a=b%2Bc");
  EXPECT_EQ(CanonicalQuery("a=%zz"), "a=%25zz");
}

// --------------------------------------------------- the AWS SigV4 test suite
//
// Published signatures of aws-sig-v4-test-suite (docs.aws.amazon.com/general/latest/gr/
// signature-v4-test-suite.html; also awslabs/aws-c-auth tests/aws-signing-test-suite/v4),
// each request exactly as the suite's request.txt sends it.

struct SuiteCase {
  const char* name;
  const char* method;
  const char* target;
  std::vector<Header> extra;  // Headers besides Host and X-Amz-Date.
  const char* body;
  const char* signed_headers;
  const char* signature;
};

std::vector<SuiteCase> SuiteCases() {
  return {
      {"get-vanilla",
       "GET",
       "/",
       {},
       "",
       "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-vanilla-query-order-key-case",
       "GET",
       "/?Param2=value2&Param1=value1",
       {},
       "",
       "host;x-amz-date",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"post-vanilla",
       "POST",
       "/",
       {},
       "",
       "host;x-amz-date",
       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"post-x-www-form-urlencoded",
       "POST",
       "/",
       {{"Content-Type", "application/x-www-form-urlencoded"}},
       "Param1=value1",
       "content-type;host;x-amz-date",
       "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
      {"get-header-value-trim",
       "GET",
       "/",
       {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}},
       "",
       "host;my-header1;my-header2;x-amz-date",
       "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"get-header-value-order",
       "GET",
       "/",
       {{"My-Header1", "value4"},
        {"My-Header1", "value1"},
        {"My-Header1", "value3"},
        {"My-Header1", "value2"}},
       "",
       "host;my-header1;x-amz-date",
       "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
      {"get-vanilla-query-unreserved",
       "GET",
       "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       {},
       "",
       "host;x-amz-date",
       "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
      {"get-vanilla-utf8-query",
       "GET",
       "/?\xE1\x88\xB4=bar",
       {},
       "",
       "host;x-amz-date",
       "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
  };
}

std::vector<Header> SuiteHeaders(const SuiteCase& c) {
  std::vector<Header> h = {{"Host", "example.amazonaws.com"}};
  h.insert(h.end(), c.extra.begin(), c.extra.end());
  h.push_back({"X-Amz-Date", kSuiteDate});
  h.push_back({"Authorization", Authz(kSuiteScope, c.signed_headers, c.signature)});
  return h;
}

TEST(SuiteTest, PublishedVectorsVerify) {
  for (const SuiteCase& c : SuiteCases()) {
    SCOPED_TRACE(c.name);
    ExpectOk(Check(c.method, c.target, SuiteHeaders(c), c.body, Opts("service")));
  }
}

TEST(SuiteTest, PublishedVectorsFailWithAnyOtherSignature) {
  for (const SuiteCase& c : SuiteCases()) {
    SCOPED_TRACE(c.name);
    std::string sig = c.signature;
    sig[10] = sig[10] == '0' ? '1' : '0';
    SuiteCase wrong = c;
    wrong.signature = sig.c_str();
    AuthError e =
        ExpectError(Check(c.method, c.target, SuiteHeaders(wrong), c.body, Opts("service")));
    EXPECT_EQ(e.type, "InvalidSignatureException");
    EXPECT_EQ(e.http_status, 403);
    EXPECT_EQ(e.message, kMismatch);
  }
}

TEST(SuiteTest, SignReproducesPublishedAuthorization) {
  for (const SuiteCase& c : SuiteCases()) {
    SCOPED_TRACE(c.name);
    SigningInput in;
    in.method = c.method;
    in.target = c.target;
    in.body = c.body;
    in.host = "example.amazonaws.com";
    in.region = "us-east-1";
    in.service = "service";
    in.access_key_id = kSuiteKey;
    in.secret = kSuiteSecret;
    in.now_ms = kSuiteMs;
    in.extra_headers = c.extra;
    EXPECT_EQ(AuthorizationOf(Sign(in)), Authz(kSuiteScope, c.signed_headers, c.signature));
  }
}

// ------------------------------------------------------ botocore-signed vectors
//
// Generated with the installed botocore 1.43.11 (python3):
//
//   import datetime
//   from unittest import mock
//   import botocore.auth
//   from botocore.awsrequest import AWSRequest
//   from botocore.credentials import Credentials
//   NOW = datetime.datetime(2015, 8, 30, 12, 36, 0)
//   CREDS = Credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY')
//   def sign(method, url, headers, body, service, region='us-east-1'):
//       req = AWSRequest(method=method, url=url, headers=headers, data=body)
//       with mock.patch('botocore.auth.get_current_datetime', return_value=NOW):
//           botocore.auth.SigV4Auth(CREDS, service, region).add_auth(req)
//       return dict(req.headers.items())
//
// (botocore 1.43 reads the clock through botocore.auth.get_current_datetime, so that is
// what is patched.) Each test names the sign(...) call that produced its signature.

constexpr char kCreateJobQueueBody[] =
    "{\"jobQueueName\":\"q1\",\"priority\":1,"
    "\"computeEnvironmentOrder\":[{\"order\":1,\"computeEnvironment\":\"ce1\"}]}";

TEST(BotocoreTest, CreateJobQueueJsonBody) {
  // sign('POST', 'https://batch.us-east-1.amazonaws.com/v1/createjobqueue',
  //      {'Content-Type': 'application/json'}, <kCreateJobQueueBody as bytes>, 'batch')
  std::vector<Header> h = {
      {"Host", "batch.us-east-1.amazonaws.com"},
      {"Content-Type", "application/json"},
      {"X-Amz-Date", kSuiteDate},
      {"Authorization", Authz(kBatchScope, "content-type;host;x-amz-date",
                              "bceb8e74a7aad8e4bc393e16b792ae8ab409ca14813ef13a7389c8edec143a55")},
  };
  ExpectOk(Check("POST", "/v1/createjobqueue", h, kCreateJobQueueBody, Opts("batch")));
  // The body is covered by the signature.
  std::string other = kCreateJobQueueBody;
  other.replace(other.find("q1"), 2, "q2");
  AuthError e = ExpectError(Check("POST", "/v1/createjobqueue", h, other, Opts("batch")));
  EXPECT_EQ(e.message, kMismatch);
}

TEST(BotocoreTest, TagsPathWithArnIsDoubleEncoded) {
  // sign('GET', 'https://batch.us-east-1.amazonaws.com/v1/tags/'
  //      'arn%3Aaws%3Abatch%3Aus-east-1%3A123456789012%3Ajob-queue%2Fq1', {}, b'', 'batch')
  std::vector<Header> h = {
      {"Host", "batch.us-east-1.amazonaws.com"},
      {"X-Amz-Date", kSuiteDate},
      {"Authorization", Authz(kBatchScope, "host;x-amz-date",
                              "1ea38a16610776baa72adb84470f54f4bd2bb0d6dbdb228053cbf8f7102d9639")},
  };
  ExpectOk(Check("GET", "/v1/tags/arn%3Aaws%3Abatch%3Aus-east-1%3A123456789012%3Ajob-queue%2Fq1", h,
                 "", Opts("batch")));
  // The same ARN decoded on the wire is a different canonical URI.
  AuthError e = ExpectError(Check(
      "GET", "/v1/tags/arn:aws:batch:us-east-1:123456789012:job-queue/q1", h, "", Opts("batch")));
  EXPECT_EQ(e.message, kMismatch);
}

TEST(BotocoreTest, QueryStringIsSortedAndEncoded) {
  // sign('GET', 'https://batch.us-east-1.amazonaws.com/v1/x?b=2&a=x%20y&a=1&c=%2F~&d', {}, b'',
  //      'batch')
  std::vector<Header> h = {
      {"Host", "batch.us-east-1.amazonaws.com"},
      {"X-Amz-Date", kSuiteDate},
      {"Authorization", Authz(kBatchScope, "host;x-amz-date",
                              "31699476d297ee6452ee4fdc8913dd1b6e6162156611bf4c05c3232eaf7d8324")},
  };
  ExpectOk(Check("GET", "/v1/x?b=2&a=x%20y&a=1&c=%2F~&d", h, "", Opts("batch")));
}

TEST(BotocoreTest, UnsignedPayload) {
  // sign('POST', 'https://batch.us-east-1.amazonaws.com/v1/submitjob',
  //      {'Content-Type': 'application/json', 'X-Amz-Content-SHA256': 'UNSIGNED-PAYLOAD'},
  //      b'{"jobName":"j"}', 'batch')
  std::vector<Header> h = {
      {"Host", "batch.us-east-1.amazonaws.com"},
      {"Content-Type", "application/json"},
      {"X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"},
      {"X-Amz-Date", kSuiteDate},
      {"Authorization", Authz(kBatchScope, "content-type;host;x-amz-content-sha256;x-amz-date",
                              "c1c8d0fd729a45015513df4cfa90fe311fab58de845f737184b090201ccb5b39")},
  };
  ExpectOk(Check("POST", "/v1/submitjob", h, R"({"jobName":"j"})", Opts("batch")));
  ExpectOk(Check("POST", "/v1/submitjob", h, R"({"jobName":"other"})", Opts("batch")));
}

TEST(BotocoreTest, DateHeaderInsteadOfXAmzDate) {
  // sign('POST', 'https://example.amazonaws.com/', {'Date': 'x'}, b'', 'service'): botocore
  // then replaces Date with formatdate(...) = 'Sun, 30 Aug 2015 12:36:00 -0000' and signs it.
  std::vector<Header> h = {
      {"Host", "example.amazonaws.com"},
      {"Date", "Sun, 30 Aug 2015 12:36:00 -0000"},
      {"Authorization", Authz(kSuiteScope, "date;host",
                              "ecdca7d82dea4984085905a4be01f6c5d47639b543cb0d5001d1bb9fa2b1fb73")},
  };
  ExpectOk(Check("POST", "/", h, "", Opts("service")));
}

TEST(BotocoreTest, FullBatchClientRequest) {
  // What botocore's own batch client sends (extra headers unsigned), captured with:
  //   c = botocore.session.get_session().create_client('batch', region_name='us-east-1',
  //       endpoint_url='http://localhost:8080', aws_access_key_id='AKIDEXAMPLE',
  //       aws_secret_access_key='wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY')
  //   c.meta.events.register('before-send', <capture the request, return a stub response>)
  //   with mock.patch('botocore.auth.get_current_datetime', return_value=NOW):
  //       c.list_tags_for_resource(resourceArn='arn:aws:batch:us-east-1:123456789012:job-queue/q1')
  //       c.describe_job_queues(jobQueues=['q 1'])
  const char* ua =
      "Botocore/1.43.11 ua/2.1 os/linux#6.18.44-fc-v669 md/arch#x86_64 lang/python#3.11.7 "
      "md/pyimpl#CPython m/D,e,Z,b,N cfg/retry-mode#legacy";
  std::vector<Header> tags = {
      {"Host", "localhost:8080"},
      {"User-Agent", ua},
      {"X-Amz-Date", kSuiteDate},
      {"Authorization", Authz(kBatchScope, "host;x-amz-date",
                              "7ce7f6b8bd494d09c12c7cd2f9aba8108e52f77db5e10fc6f2111205395509c0")},
      {"amz-sdk-invocation-id", "975a3f6c-06a6-4d1c-97a1-aa9913e70e50"},
      {"amz-sdk-request", "attempt=1"},
  };
  ExpectOk(Check("GET", "/v1/tags/arn%3Aaws%3Abatch%3Aus-east-1%3A123456789012%3Ajob-queue%2Fq1",
                 tags, "", Opts("batch")));
  std::vector<Header> describe = {
      {"Host", "localhost:8080"},
      {"Content-Type", "application/json"},
      {"User-Agent", ua},
      {"X-Amz-Date", kSuiteDate},
      {"Authorization", Authz(kBatchScope, "content-type;host;x-amz-date",
                              "9d920fbba1c89f59c14717b0940a50b13eb1050c1b687c1af47bbbb825ad00e2")},
      {"amz-sdk-invocation-id", "b4f950a0-65c7-4a6a-b17f-ee929208a8d3"},
      {"amz-sdk-request", "attempt=1"},
      {"Content-Length", "22"},
  };
  ExpectOk(
      Check("POST", "/v1/describejobqueues", describe, R"({"jobQueues": ["q 1"]})", Opts("batch")));
}

// ------------------------------------------------------------------ errors

std::vector<Header> GetVanillaHeaders() { return SuiteHeaders(SuiteCases()[0]); }

TEST(VerifyErrorTest, MissingAuthorization) {
  std::vector<Header> h = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kSuiteDate}};
  AuthError e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "MissingAuthenticationTokenException");
  EXPECT_EQ(e.http_status, 403);
  EXPECT_EQ(e.message, "Missing Authentication Token");

  e = ExpectError(Verify(RequestView{"GET", "/", nullptr, ""}, SuiteLookup(), Opts("service")));
  EXPECT_EQ(e.type, "MissingAuthenticationTokenException");

  h.push_back({"Authorization", "  "});
  e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "MissingAuthenticationTokenException");
}

TEST(VerifyErrorTest, PresignedQueryIsNotMissingButUnsupported) {
  std::vector<Header> h = {{"Host", "example.amazonaws.com"}};
  AuthError e = ExpectError(
      Check("GET", "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830", h,
            "", Opts("service")));
  EXPECT_EQ(e.type, "IncompleteSignatureException");
  EXPECT_EQ(e.http_status, 400);
}

TEST(VerifyErrorTest, IncompleteHeader) {
  const std::string no_sig =
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date";
  std::vector<Header> h = {
      {"Host", "example.amazonaws.com"}, {"X-Amz-Date", kSuiteDate}, {"Authorization", no_sig}};
  AuthError e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "IncompleteSignatureException");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.message,
            "Authorization header requires 'Signature' parameter. Authorization=" + no_sig);

  h = {{"Host", "example.amazonaws.com"}, {"Authorization", "AWS4-HMAC-SHA256"}};
  e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "IncompleteSignatureException");
  EXPECT_EQ(e.message,
            "Authorization header requires 'Credential' parameter. Authorization header requires "
            "'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. "
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
            "Authorization=AWS4-HMAC-SHA256");
}

TEST(VerifyErrorTest, NoDateHeader) {
  std::vector<Header> h = GetVanillaHeaders();
  h.erase(h.begin() + 1);  // X-Amz-Date
  ASSERT_EQ(h[1].name, "Authorization");
  AuthError e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "IncompleteSignatureException");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.message,
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
            "Authorization=" +
                h[1].value);
}

TEST(VerifyErrorTest, MalformedDate) {
  std::vector<Header> h = GetVanillaHeaders();
  h[1].value = "2015-08-30T12:36:00Z";
  AuthError e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "IncompleteSignatureException");
  EXPECT_EQ(e.message,
            "Date must be in ISO-8601 'basic format'. Got '2015-08-30T12:36:00Z'. See "
            "http://en.wikipedia.org/wiki/ISO_8601");
}

TEST(VerifyErrorTest, MalformedPairsAndAlgorithm) {
  std::vector<Header> h = {{"Host", "example.amazonaws.com"},
                           {"X-Amz-Date", kSuiteDate},
                           {"Authorization", "AWS4-HMAC-SHA256 FooBar, BazBurp"}};
  AuthError e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "IncompleteSignatureException");
  EXPECT_EQ(e.message,
            "'FooBar' not a valid key=value pair (missing equal-sign) in Authorization header: "
            "'AWS4-HMAC-SHA256 FooBar, BazBurp'");

  h[2].value = "AWS5-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00";
  e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "IncompleteSignatureException");
  EXPECT_EQ(e.message, "Unsupported AWS 'algorithm': 'AWS5-HMAC-SHA256'.");

  h[2].value = "Bearer abc";
  e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "IncompleteSignatureException");
}

TEST(VerifyErrorTest, BadCredentialFormat) {
  std::vector<Header> h = GetVanillaHeaders();
  h[2].value =
      Authz("AKIDEXAMPLE/20150830/us-east-1/service", "host;x-amz-date", SuiteCases()[0].signature);
  AuthError e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "IncompleteSignatureException");
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.message,
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            "keyid/date/region/service/term, got 'AKIDEXAMPLE/20150830/us-east-1/service'");
}

TEST(VerifyErrorTest, HostAndDateMustBeSigned) {
  std::vector<Header> h = GetVanillaHeaders();
  h[2].value = Authz(kSuiteScope, "x-amz-date", SuiteCases()[0].signature);
  AuthError e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "InvalidSignatureException");
  EXPECT_EQ(e.message, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");

  h[2].value = Authz(kSuiteScope, "host", SuiteCases()[0].signature);
  e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "InvalidSignatureException");
  EXPECT_EQ(e.message, "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.");
}

TEST(VerifyErrorTest, UnknownAccessKey) {
  std::vector<Header> h = GetVanillaHeaders();
  h[2].value = Authz("AKIDUNKNOWN/20150830/us-east-1/service/aws4_request", "host;x-amz-date",
                     SuiteCases()[0].signature);
  AuthError e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "UnrecognizedClientException");
  EXPECT_EQ(e.http_status, 403);
  EXPECT_EQ(e.message, "The security token included in the request is invalid.");
}

TEST(VerifyErrorTest, WrongSecretOrTamperedRequest) {
  std::vector<Header> h = GetVanillaHeaders();
  auto other_secret = [](std::string_view) -> std::optional<std::string> {
    return std::string("not-the-secret");
  };
  auto r = Verify(RequestView{"GET", "/", &h, ""}, other_secret, Opts("service"));
  AuthError e = ExpectError(r);
  EXPECT_EQ(e.type, "InvalidSignatureException");
  EXPECT_EQ(e.http_status, 403);
  EXPECT_EQ(e.message, kMismatch);

  EXPECT_EQ(ExpectError(Check("POST", "/", h, "", Opts("service"))).message, kMismatch);
  EXPECT_EQ(ExpectError(Check("GET", "/x", h, "", Opts("service"))).message, kMismatch);
  EXPECT_EQ(ExpectError(Check("GET", "/?a=1", h, "", Opts("service"))).message, kMismatch);
  EXPECT_EQ(ExpectError(Check("GET", "/", h, "body", Opts("service"))).message, kMismatch);
  h[0].value = "evil.example.com";
  EXPECT_EQ(ExpectError(Check("GET", "/", h, "", Opts("service"))).message, kMismatch);
}

TEST(VerifyErrorTest, SignatureExpired) {
  // The request is 30 minutes old.
  AuthError e = ExpectError(
      Check("GET", "/", GetVanillaHeaders(), "", Opts("service", kSuiteMs + 30 * kMinute)));
  EXPECT_EQ(e.type, "InvalidSignatureException");
  EXPECT_EQ(e.http_status, 403);
  EXPECT_EQ(e.message,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T125100Z "
            "(20150830T130600Z - 15 min.)");
  // Exactly 15 minutes old is still accepted; one second more is not.
  ExpectOk(Check("GET", "/", GetVanillaHeaders(), "", Opts("service", kSuiteMs + 15 * kMinute)));
  ExpectError(
      Check("GET", "/", GetVanillaHeaders(), "", Opts("service", kSuiteMs + 15 * kMinute + 1000)));
}

TEST(VerifyErrorTest, SignatureNotYetCurrent) {
  // The request is 30 minutes in the future.
  AuthError e = ExpectError(
      Check("GET", "/", GetVanillaHeaders(), "", Opts("service", kSuiteMs - 30 * kMinute)));
  EXPECT_EQ(e.type, "InvalidSignatureException");
  EXPECT_EQ(e.http_status, 403);
  EXPECT_EQ(e.message,
            "Signature not yet current: 20150830T123600Z is still later than 20150830T122100Z "
            "(20150830T120600Z + 15 min.)");
  ExpectOk(Check("GET", "/", GetVanillaHeaders(), "", Opts("service", kSuiteMs - 15 * kMinute)));
}

TEST(VerifyErrorTest, WrongRegion) {
  VerifyOptions o = Opts("service");
  o.region = "us-west-2";
  AuthError e = ExpectError(Check("GET", "/", GetVanillaHeaders(), "", o));
  EXPECT_EQ(e.type, "InvalidSignatureException");
  EXPECT_EQ(e.http_status, 403);
  EXPECT_EQ(e.message, "Credential should be scoped to a valid region. ");
}

TEST(VerifyErrorTest, WrongService) {
  VerifyOptions o = Opts("batch");
  o.services.push_back("logs");
  AuthError e = ExpectError(Check("GET", "/", GetVanillaHeaders(), "", o));
  EXPECT_EQ(e.type, "InvalidSignatureException");
  EXPECT_EQ(e.http_status, 403);
  EXPECT_EQ(e.message, "Credential should be scoped to correct service: 'batch'. ");
  // Any of the accepted services verifies.
  o.services.push_back("service");
  ExpectOk(Check("GET", "/", GetVanillaHeaders(), "", o));
}

TEST(VerifyErrorTest, ScopeDateMustBeTheRequestDay) {
  std::vector<Header> h = GetVanillaHeaders();
  h[2].value = Authz("AKIDEXAMPLE/20150831/us-east-1/service/aws4_request", "host;x-amz-date",
                     SuiteCases()[0].signature);
  AuthError e = ExpectError(Check("GET", "/", h, "", Opts("service")));
  EXPECT_EQ(e.type, "InvalidSignatureException");
  EXPECT_EQ(e.message,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
            "HTTP: '20150831' != '20150830', from '20150830T123600Z'. ");
}

TEST(VerifyErrorTest, ThrowingLookupDoesNotEscape) {
  std::vector<Header> h = GetVanillaHeaders();
  auto throwing = [](std::string_view) -> std::optional<std::string> {
    throw std::runtime_error("database is down");
  };
  AuthError e = ExpectError(Verify(RequestView{"GET", "/", &h, ""}, throwing, Opts("service")));
  EXPECT_EQ(e.type, "InternalFailure");
  EXPECT_EQ(e.http_status, 500);
}

// ------------------------------------------------------------------ round trip

SigningInput BatchInput() {
  SigningInput in;
  in.method = "POST";
  in.target = "/v1/createjobqueue";
  in.body = kCreateJobQueueBody;
  in.host = "localhost:8080";
  in.region = "us-east-1";
  in.service = "batch";
  in.access_key_id = kSuiteKey;
  in.secret = kSuiteSecret;
  in.now_ms = kSuiteMs + 234;  // Sub-second part is truncated.
  in.extra_headers = {{"Content-Type", "application/json"},
                      {"X-Amz-Target", "AWSBatch.CreateJobQueue"}};
  return in;
}

TEST(SignTest, ReturnsSignedHeaders) {
  std::vector<Header> h = Sign(BatchInput());
  ASSERT_EQ(h.size(), 5u);
  EXPECT_EQ(h[0].name, "host");
  EXPECT_EQ(h[0].value, "localhost:8080");
  EXPECT_EQ(h[1].name, "x-amz-date");
  EXPECT_EQ(h[1].value, kSuiteDate);
  EXPECT_EQ(h[2].name, "Content-Type");
  EXPECT_EQ(h[3].name, "X-Amz-Target");
  EXPECT_EQ(h[4].name, "authorization");
  EXPECT_EQ(h[4].value.rfind("AWS4-HMAC-SHA256 Credential=" + std::string(kBatchScope) +
                                 ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
                                 "Signature=",
                             0),
            0u)
      << h[4].value;
}

TEST(SignTest, RoundTripsThroughVerify) {
  SigningInput in = BatchInput();
  std::vector<Header> h = Sign(in);
  ExpectOk(Check(in.method, in.target, h, in.body, Opts("batch", kSuiteMs + 5 * kMinute)));

  // Header names arrive in any case, and unsigned headers may be added.
  std::vector<Header> upper = h;
  for (Header& x : upper) {
    for (char& c : x.name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  upper.push_back({"User-Agent", "aws-cli/2.15.0"});
  ExpectOk(Check(in.method, in.target, upper, in.body, Opts("batch")));

  // A signed header changed in transit breaks the signature.
  std::vector<Header> tampered = h;
  tampered[3].value = "AWSBatch.DeleteJobQueue";
  EXPECT_EQ(ExpectError(Check(in.method, in.target, tampered, in.body, Opts("batch"))).message,
            kMismatch);
  // A signed header sent twice is a different canonical value.
  tampered = h;
  tampered.push_back({"x-amz-target", "AWSBatch.CreateJobQueue"});
  EXPECT_EQ(ExpectError(Check(in.method, in.target, tampered, in.body, Opts("batch"))).message,
            kMismatch);
}

TEST(SignTest, RoundTripsPathsAndQueriesThatNeedEncoding) {
  SigningInput in = BatchInput();
  in.method = "GET";
  in.body = "";
  in.extra_headers.clear();
  in.target =
      "/v1/tags/arn%3Aaws%3Abatch%3Aus-east-1%3A123456789012%3Ajob-queue%2Fq1?b=x%20y&a=%E1%88%B4";
  std::vector<Header> h = Sign(in);
  ExpectOk(Check(in.method, in.target, h, in.body, Opts("batch")));
}

TEST(SignTest, SignatureDependsOnTheSecret) {
  SigningInput in = BatchInput();
  std::string a = AuthorizationOf(Sign(in));
  in.secret = "another-secret";
  EXPECT_NE(a, AuthorizationOf(Sign(in)));
  std::vector<Header> h = Sign(in);
  EXPECT_EQ(ExpectError(Check(in.method, in.target, h, in.body, Opts("batch"))).message, kMismatch);
}

}  // namespace
}  // namespace drover::auth
