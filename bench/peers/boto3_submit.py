"""boto3 SubmitJob rate against any AWS Batch endpoint (moto's server mode or
Drover), the same script for both so the ratio compares servers behind the same
client (boto3 is the bottleneck for both: this is a client-bound comparison).

Usage: python3 boto3_submit.py ENDPOINT THREADS REQUESTS [REPEATS] [KEY]
Credentials from the usual AWS environment variables / shared files. Creates an
UNMANAGED, DISABLED compute environment, a queue and a definition of `true`
(ignoring "already exists"), then THREADS threads, one boto3 client each, submit
REQUESTS jobs in all, REPEATS times. Prints "KEY: median /s [min..max, n=R]".
"""
import statistics
import sys
import threading
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, threads, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
key = sys.argv[5] if len(sys.argv) > 5 else f"boto3_submit_t{threads}"
cfg = Config(retries={"max_attempts": 10, "mode": "standard"})


def client():
    return boto3.session.Session().client("batch", endpoint_url=endpoint, region_name="us-east-1",
                                          config=cfg)


def ignore_exists(f, **kw):
    try:
        f(**kw)
    except ClientError as e:
        if "exist" not in str(e).lower():
            raise


c = client()
role = "arn:aws:iam::123456789012:role/batch-service"
if sys.argv[5:] and sys.argv[5].startswith("moto"):  # moto checks the service role in its IAM
    iam = boto3.session.Session().client("iam", endpoint_url=endpoint, region_name="us-east-1")
    try:
        role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except ClientError:  # made by an earlier run against the same server
        role = iam.get_role(RoleName="batch-service")["Role"]["Arn"]
ignore_exists(c.create_compute_environment, computeEnvironmentName="boto3-ce", type="UNMANAGED",
              state="DISABLED", serviceRole=role)
for _ in range(100):  # moto: a CE is VALID at once; Drover too, but be patient
    ces = c.describe_compute_environments(computeEnvironments=["boto3-ce"])["computeEnvironments"]
    if ces and ces[0].get("status") == "VALID":
        break
    time.sleep(0.05)
ignore_exists(c.create_job_queue, jobQueueName="boto3-q", priority=1, state="ENABLED",
              computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "boto3-ce"}])
c.register_job_definition(jobDefinitionName="boto3-true", type="container",
                          containerProperties={"image": "busybox", "command": ["true"],
                                               "resourceRequirements": [
                                                   {"type": "VCPU", "value": "1"},
                                                   {"type": "MEMORY", "value": "16"}]})

rates = []
for _ in range(repeats):
    clients = [client() for _ in range(threads)]
    for cl in clients:  # open each connection before the clock starts
        cl.describe_job_queues(jobQueues=["boto3-q"])
    lock = threading.Lock()
    left = [requests]
    errors = [0]

    def work(cl):
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            try:
                cl.submit_job(jobName="b", jobQueue="boto3-q", jobDefinition="boto3-true")
            except ClientError as e:
                with lock:
                    errors[0] += 1
                    if errors[0] == 1:
                        print(f"first error: {e}", file=sys.stderr)

    ts = [threading.Thread(target=work, args=(cl,)) for cl in clients]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rates.append((requests - errors[0]) / (time.monotonic() - t0))
rates.sort()
print(f"{key}: {statistics.median(rates):.0f} /s [{rates[0]:.0f}..{rates[-1]:.0f}, n={len(rates)}]"
      f"  {threads} threads, {requests} requests per run, {errors[0]} errors in the last run",
      flush=True)
