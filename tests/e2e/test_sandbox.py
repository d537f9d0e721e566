"""Jobs in sandboxes over local images: `drover image import`, then jobs whose image is in
the store run in bubblewrap over it (every namespace, an overlay per attempt, declared
mounts), and a compute environment tagged drover.images=isolate refuses jobs whose image
is missing with CannotPullContainerError, as AWS does for an image it cannot pull."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import DROVER_BIN
from test_jobs import JobsTestCase

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
CAN_SANDBOX = (os.geteuid() == 0 and os.path.exists(BUSYBOX) and shutil.which("bwrap"))


def make_rootfs(path):
    """A tiny image: a static busybox and its applets."""
    for d in ("bin", "etc", "proc", "dev", "tmp", "data", "out"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy(BUSYBOX, os.path.join(path, "bin", "busybox"))
    for applet in ("sh", "ls", "cat", "echo", "grep", "wc", "touch", "id", "ps", "hostname"):
        os.symlink("busybox", os.path.join(path, "bin", applet))
    with open(os.path.join(path, "etc", "image-marker"), "w") as f:
        f.write("inside the image\n")


@unittest.skipUnless(CAN_SANDBOX, "needs root, busybox-static and bubblewrap (scripts/deps.sh)")
class SandboxTest(JobsTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="drover-sandbox-")
        os.chmod(cls.work, 0o755)
        rootfs = os.path.join(cls.work, "rootfs")
        make_rootfs(rootfs)
        tarball = os.path.join(cls.work, "image.tar.gz")
        subprocess.run(["tar", "-czf", tarball, "-C", rootfs, "."], check=True)
        p = subprocess.run([DROVER_BIN, "image", "import", "sandbox-test:1", tarball,
                            "--data", cls.server.data_dir], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        cls.shared = os.path.join(cls.work, "shared")
        cls.out = os.path.join(cls.work, "out")
        for d in (cls.shared, cls.out):
            os.makedirs(d)
            os.chmod(d, 0o777)
        with open(os.path.join(cls.shared, "input.txt"), "w") as f:
            f.write("from the host\n")
        cls.secret = os.path.join(cls.work, "host-only.txt")
        with open(cls.secret, "w") as f:
            f.write("secret\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)
        super().tearDownClass()

    def image_jd(self, command, **extra):
        props = dict(image="public.ecr.aws/docker/library/sandbox-test:1",
                     volumes=[{"name": "in", "host": {"sourcePath": self.shared}},
                              {"name": "out", "host": {"sourcePath": self.out}}],
                     mountPoints=[{"sourceVolume": "in", "containerPath": "/data",
                                   "readOnly": True},
                                  {"sourceVolume": "out", "containerPath": "/out"}])
        props.update(extra)
        return self.new_jd(command=["sh", "-c", command], **props)

    def test_image_list_shows_the_import(self):
        """Given the imported image, `drover image ls` should list it."""
        p = subprocess.run([DROVER_BIN, "image", "ls", "--data", self.server.data_dir],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("sandbox-test:1", p.stdout)

    def test_a_job_sees_its_image_and_mounts_not_the_host(self):
        """Given a job whose image is in the store, it should see the image's files and its declared mounts, not host files, only its own processes, and only the loopback network."""
        jd = self.image_jd("cat /etc/image-marker; cat /data/input.txt; "
                           "test -e %s || echo host-hidden; "
                           "ls /proc | grep -c '^[0-9]'; grep -c ':' /proc/net/dev; "
                           "echo result > /out/result.txt" % self.secret)
        job = self.run_job(jd=jd)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        lines = self.output(job["jobId"])
        self.assertEqual(lines[:3], ["inside the image", "from the host", "host-hidden"], lines)
        self.assertLessEqual(int(lines[3]), 5, "only the sandbox's processes are visible")
        self.assertEqual(lines[4], "1", "only lo")
        with open(os.path.join(self.out, "result.txt")) as f:
            self.assertEqual(f.read(), "result\n")
        header = [m for m in self.messages(self.stream_of(job["jobId"])) if m.startswith("[drover]")]
        self.assertTrue(any("sandbox: image" in h for h in header), header)

    def test_read_only_mounts_and_root_refuse_writes(self):
        """Given a read-only mount and readonlyRootFilesystem, writes to both should fail while /tmp stays writable."""
        jd = self.image_jd("touch /data/x 2>/dev/null || echo ro-mount; "
                           "touch /newfile 2>/dev/null || echo ro-root; "
                           "echo ok > /tmp/t && cat /tmp/t", readonlyRootFilesystem=True)
        job = self.run_job(jd=jd)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(job["jobId"]), ["ro-mount", "ro-root", "ok"])
        self.assertFalse(os.path.exists(os.path.join(self.shared, "x")))

    def test_writes_to_the_root_stay_in_the_attempt(self):
        """Given a writable root, a file a job writes at / should not appear in the image or in the next job."""
        first = self.run_job(jd=self.image_jd("echo mine > /scribble && cat /scribble"))
        self.assertEqual(self.output(first["jobId"]), ["mine"])
        second = self.run_job(jd=self.image_jd("test -e /scribble && echo leaked || echo clean"))
        self.assertEqual(self.output(second["jobId"]), ["clean"])

    def test_user_and_ulimits_apply_in_the_sandbox(self):
        """Given user 1234:1234 and a nofile ulimit of 77, the job should run as uid 1234 and see 77 open files at most; an unknown user name fails the attempt."""
        jd = self.image_jd("id -u; id -g; ulimit -n", user="1234:1234",
                           ulimits=[{"name": "nofile", "softLimit": 77, "hardLimit": 77}])
        job = self.run_job(jd=jd)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(job["jobId"]), ["1234", "1234", "77"])
        job = self.run_job(jd=self.image_jd("true", user="nosuchuser"))
        self.assertEqual(job["status"], "FAILED", job)
        self.assertIn("nosuchuser", job["statusReason"])

    def test_linux_parameters_tmpfs_devices_and_shm(self):
        """Given linuxParameters with a 1 MiB tmpfs, /dev/null mapped as a device at /dev/mine and a 2 MiB /dev/shm, the job should see all three."""
        jd = self.image_jd("grep ' /scratchfs ' /proc/mounts | grep -c tmpfs; "
                           "test -c /dev/mine && echo device; "
                           "grep ' /dev/shm ' /proc/mounts | grep -c size=2048k",
                           linuxParameters={"tmpfs": [{"containerPath": "/scratchfs", "size": 1}],
                                            "devices": [{"hostPath": "/dev/null",
                                                         "containerPath": "/dev/mine"}],
                                            "sharedMemorySize": 2})
        job = self.run_job(jd=jd)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(job["jobId"]), ["1", "device", "1"])

    @unittest.skipUnless(shutil.which("umoci"), "umoci is installed by scripts/deps.sh")
    def test_an_oci_image_layout_imports_and_runs(self):
        """Given an OCI image layout built with umoci, `drover image import` should unpack its tag and a job should run in it."""
        layout = os.path.join(self.work, "oci-layout")
        bundle = os.path.join(self.work, "oci-bundle")
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("umoci", "init", "--layout", layout)
        run("umoci", "new", "--image", layout + ":v1")
        run("umoci", "unpack", "--image", layout + ":v1", bundle)
        make_rootfs(os.path.join(bundle, "rootfs"))
        with open(os.path.join(bundle, "rootfs", "etc", "image-marker"), "w") as f:
            f.write("from an OCI layout\n")
        run("umoci", "repack", "--image", layout + ":v1", bundle)
        p = subprocess.run([DROVER_BIN, "image", "import", "oci-test:v1", layout,
                            "--data", self.server.data_dir], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        jd = self.new_jd(command=["cat", "/etc/image-marker"], image="oci-test:v1")
        job = self.run_job(jd=jd)
        self.assertEqual(job["status"], "SUCCEEDED", job)
        self.assertEqual(self.output(job["jobId"]), ["from an OCI layout"])

    def test_an_isolating_environment_refuses_a_missing_image(self):
        """Given a compute environment tagged drover.images=isolate, a job whose image is not in the store should fail with CannotPullContainerError, and one whose image is should run."""
        ce = self.name("ce")
        self.batch.create_compute_environment(
            computeEnvironmentName=ce, type="MANAGED", tags={"drover.images": "isolate"},
            computeResources={"type": "EC2", "maxvCpus": 2, "subnets": ["subnet-1"]})
        queue = self.new_queue(ce=ce)
        missing = self.new_jd(command=["true"], image="not-imported:9")
        job = self.run_job(jd=missing, queue=queue)
        self.assertEqual(job["status"], "FAILED", job)
        self.assertTrue(job["statusReason"].startswith("CannotPullContainerError"), job)
        ok = self.run_job(jd=self.image_jd("cat /etc/image-marker"), queue=queue)
        self.assertEqual(ok["status"], "SUCCEEDED", ok)


if __name__ == "__main__":
    unittest.main()
