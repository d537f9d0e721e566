// Drover end to end with the AWS SDK for JavaScript v3.
// README: cd tests/js && npm ci && DROVER_BIN=/path/to/build/drover node --test
//
// Starts a real `drover server` (DROVER_BIN, default ../../build/drover) on a
// temporary data dir with a fixed access key, then drives it with
// @aws-sdk/client-batch and @aws-sdk/client-cloudwatch-logs: a compute
// environment, queue and definition, a job that runs to SUCCEEDED, its output
// read back through CloudWatch Logs, and AWS errors on bad input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BatchClient,
  CreateComputeEnvironmentCommand,
  CreateJobQueueCommand,
  DescribeJobsCommand,
  ListJobsCommand,
  RegisterJobDefinitionCommand,
  SubmitJobCommand,
} from '@aws-sdk/client-batch';
import {
  CloudWatchLogsClient,
  GetLogEventsCommand,
  FilterLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';

const here = dirname(fileURLToPath(import.meta.url));
const DROVER_BIN = process.env.DROVER_BIN || resolve(here, '../../build/drover');
const ACCESS_KEY = 'AKIDDROVERJSTEST0001';
const SECRET_KEY = 'droverJsSecretKey0123456789abcdefXYZ';
const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const DEADLINE_MS = 30000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() until it returns something truthy; rejects after DEADLINE_MS.
async function waitFor(what, fn) {
  const end = Date.now() + DEADLINE_MS;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`gave up after ${DEADLINE_MS} ms waiting for ${what}`);
    await sleep(50);
  }
}

class Server {
  constructor() {
    this.tmp = mkdtempSync(join(tmpdir(), 'drover-js-'));
    // mkdtemp makes the dir 0700: the unprivileged job user (when this runs as
    // root) must be able to pass through it to its scratch dir under data/.
    chmodSync(this.tmp, 0o711);
    this.data = join(this.tmp, 'data');
    this.credentials = join(this.tmp, 'credentials');
    writeFileSync(this.credentials,
      `[default]\naws_access_key_id = ${ACCESS_KEY}\naws_secret_access_key = ${SECRET_KEY}\n`);
    this.output = '';
  }

  async start() {
    this.proc = spawn(DROVER_BIN, ['server', '--listen', '127.0.0.1:0', '--data', this.data,
      '--credentials', this.credentials, '--region', REGION, '--account-id', ACCOUNT],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.on('data', (d) => { this.output += d; });
    this.proc.stderr.on('data', (d) => { this.output += d; });
    this.exited = new Promise((r) => this.proc.on('exit', (code, signal) => r({ code, signal })));
    this.endpoint = await waitFor('the server to serve', async () => {
      if (this.proc.exitCode !== null) {
        throw new Error(`drover server exited with ${this.proc.exitCode}:\n${this.output}`);
      }
      let url;
      try {
        url = readFileSync(join(this.data, 'endpoint'), 'utf8').trim();
      } catch {
        return null;
      }
      try {
        const res = await fetch(`${url}/healthz`);
        return res.status === 200 ? url : null;
      } catch {
        return null;
      }
    });
  }

  // SIGTERM; resolves to the exit { code, signal }.
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return this.exited;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 15000);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }

  cleanup() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGKILL');
    }
    rmSync(this.tmp, { recursive: true, force: true });
  }

  clientConfig() {
    return {
      endpoint: this.endpoint,
      region: REGION,
      credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
      maxAttempts: 1,
    };
  }
}

// Neither the developer's AWS profile nor AWS_* variables may reach the SDK.
for (const k of Object.keys(process.env)) {
  if (k.startsWith('AWS_')) delete process.env[k];
}

describe('drover with the AWS SDK for JavaScript v3', () => {
  const server = new Server();
  let batch;
  let logs;
  const names = { ce: 'js-ce', queue: 'js-queue', jd: 'js-echo' };

  before(async () => {
    process.env.AWS_CONFIG_FILE = join(server.tmp, 'no-config');
    process.env.AWS_SHARED_CREDENTIALS_FILE = join(server.tmp, 'no-credentials');
    await server.start();
    batch = new BatchClient(server.clientConfig());
    logs = new CloudWatchLogsClient(server.clientConfig());
  });

  after(async () => {
    try {
      batch?.destroy();
      logs?.destroy();
      const { code, signal } = await server.stop();
      assert.equal(signal, null, `drover server was killed by ${signal}:\n${server.output}`);
      assert.equal(code, 0, `drover server exit code after SIGTERM:\n${server.output}`);
    } finally {
      server.cleanup();
    }
  });

  test('Given a CE, queue and definition, a submitted job should SUCCEED and its log should read back through CloudWatch Logs', async () => {
    const ce = await batch.send(new CreateComputeEnvironmentCommand({
      computeEnvironmentName: names.ce,
      type: 'MANAGED',
      computeResources: {
        type: 'EC2', minvCpus: 0, maxvCpus: 4, instanceTypes: ['optimal'],
        subnets: ['subnet-1'], securityGroupIds: ['sg-1'], instanceRole: 'ecsInstanceRole',
      },
    }));
    assert.equal(ce.computeEnvironmentArn,
      `arn:aws:batch:${REGION}:${ACCOUNT}:compute-environment/${names.ce}`);
    const queue = await batch.send(new CreateJobQueueCommand({
      jobQueueName: names.queue,
      priority: 1,
      computeEnvironmentOrder: [{ order: 1, computeEnvironment: names.ce }],
    }));
    assert.equal(queue.jobQueueArn, `arn:aws:batch:${REGION}:${ACCOUNT}:job-queue/${names.queue}`);
    const jd = await batch.send(new RegisterJobDefinitionCommand({
      jobDefinitionName: names.jd,
      type: 'container',
      parameters: { who: 'nobody' },
      containerProperties: {
        image: 'busybox',
        command: ['sh', '-c', 'echo "hello Ref::who from $FROM_JS"; echo second line'],
        resourceRequirements: [{ type: 'VCPU', value: '1' }, { type: 'MEMORY', value: '64' }],
      },
    }));
    assert.equal(jd.revision, 1);

    const submitted = await batch.send(new SubmitJobCommand({
      jobName: 'js-job',
      jobQueue: names.queue,
      jobDefinition: names.jd,
      parameters: { who: 'the JS SDK' },
      containerOverrides: { environment: [{ name: 'FROM_JS', value: 'node' }] },
    }));
    assert.match(submitted.jobId, /^[0-9a-f-]{36}$/);
    assert.equal(submitted.jobArn, `arn:aws:batch:${REGION}:${ACCOUNT}:job/${submitted.jobId}`);

    const job = await waitFor('the job to finish', async () => {
      const { jobs } = await batch.send(new DescribeJobsCommand({ jobs: [submitted.jobId] }));
      assert.equal(jobs.length, 1);
      return ['SUCCEEDED', 'FAILED'].includes(jobs[0].status) ? jobs[0] : null;
    });
    assert.equal(job.status, 'SUCCEEDED', JSON.stringify(job, null, 1));
    assert.equal(job.container.exitCode, 0);
    assert.equal(job.attempts.length, 1);
    assert.ok(job.startedAt <= job.stoppedAt);
    const stream = job.container.logStreamName;
    assert.match(stream, new RegExp(`^${names.jd}/default/[0-9a-f]{32}$`));

    const { jobSummaryList } = await batch.send(new ListJobsCommand({
      jobQueue: names.queue, jobStatus: 'SUCCEEDED',
    }));
    assert.deepEqual(jobSummaryList.map((s) => s.jobId), [submitted.jobId]);

    const events = await logs.send(new GetLogEventsCommand({
      logGroupName: '/aws/batch/job', logStreamName: stream, startFromHead: true,
    }));
    const messages = events.events.map((e) => e.message);
    assert.deepEqual(messages.filter((m) => !m.startsWith('[drover]')),
      ['hello the JS SDK from node', 'second line']);
    for (const e of events.events) assert.ok(e.timestamp > 1e12 && e.ingestionTime >= e.timestamp);
    // At the end, the forward token comes back unchanged.
    const end = await logs.send(new GetLogEventsCommand({
      logGroupName: '/aws/batch/job', logStreamName: stream, nextToken: events.nextForwardToken,
    }));
    assert.deepEqual(end.events, []);
    assert.equal(end.nextForwardToken, events.nextForwardToken);

    const filtered = await logs.send(new FilterLogEventsCommand({
      logGroupName: '/aws/batch/job', filterPattern: '"second line"',
    }));
    assert.deepEqual(filtered.events.map((e) => [e.logStreamName, e.message]),
      [[stream, 'second line']]);
    assert.equal(filtered.nextToken, undefined);
  });

  test('Given bad input, the APIs should reject with the AWS error name and HTTP 400', async () => {
    const refused = async (client, command, name) => {
      await assert.rejects(client.send(command), (err) => {
        assert.equal(err.name, name, String(err));
        assert.equal(err.$metadata.httpStatusCode, 400);
        assert.ok(err.message, 'the error has a message');
        return true;
      });
    };
    await refused(batch, new SubmitJobCommand({
      jobName: 'js-bad', jobQueue: 'no-such-queue', jobDefinition: names.jd,
    }), 'ClientException');
    await refused(batch, new SubmitJobCommand({
      jobName: 'js-bad', jobQueue: names.queue, jobDefinition: names.jd,
      dependsOn: [{ jobId: '00000000-0000-0000-0000-000000000000' }],
    }), 'ClientException');
    await refused(batch, new CreateJobQueueCommand({
      jobQueueName: 'js-bad-queue', priority: 1,
      computeEnvironmentOrder: [{ order: 1, computeEnvironment: 'no-such-ce' }],
    }), 'ClientException');
    await refused(logs, new GetLogEventsCommand({
      logGroupName: '/aws/batch/job', logStreamName: `${names.jd}/default/no-such-task`,
    }), 'ResourceNotFoundException');
    const { jobs } = await batch.send(new DescribeJobsCommand({ jobs: ['no-such-job'] }));
    assert.deepEqual(jobs, []);
  });
});
