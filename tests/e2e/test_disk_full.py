"""A full disk: writes fail with ServerException, reads keep working, nothing is corrupted,
and the server recovers once space returns. The data dir is a small tmpfs (needs root)."""
import os
import subprocess
import tempfile
import unittest

import botocore.exceptions

from harness import DroverServer, using_pg


@unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root")
@unittest.skipIf(using_pg(), "fills the data dir, where the SQLite store lives; with --store "
                 "postgres:// the state is in PostgreSQL, whose disk this test does not control")
class DiskFullTest(unittest.TestCase):

    def test_writes_fail_cleanly_and_recover_when_space_returns(self):
        """Given a data dir on a 8 MiB tmpfs that fills up, creates should fail with ServerException 500 and change nothing, describes should still answer, and after space is freed creates should work and everything acknowledged should be there."""
        server = DroverServer()
        self.addCleanup(server.cleanup)
        os.makedirs(server.data_dir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", server.data_dir],
                       check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", server.data_dir])
        server.start()
        batch = server.client()
        batch.create_scheduling_policy(name="before")
        filler = os.path.join(server.data_dir, "filler")
        with open(filler, "wb") as f:  # fill the disk to the last byte
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        failures = 0
        for i in range(50):  # large enough documents that the WAL must grow
            try:
                batch.create_scheduling_policy(
                    name="full%d" % i, tags={"k%d" % t: "v" * 200 for t in range(40)})
            except botocore.exceptions.ClientError as e:
                self.assertEqual(e.response["Error"]["Code"], "ServerException")
                self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 500)
                failures += 1
        self.assertGreater(failures, 0, "the disk never filled up")
        listed = {p["arn"].rsplit("/", 1)[1]
                  for p in batch.list_scheduling_policies()["schedulingPolicies"]}
        self.assertIn("before", listed)  # reads still answer
        os.remove(filler)
        batch.create_scheduling_policy(name="after")
        server.stop()
        server.start()
        batch = server.client()
        after = {p["arn"].rsplit("/", 1)[1]
                 for p in batch.list_scheduling_policies()["schedulingPolicies"]}
        self.assertTrue({"before", "after"} <= after)
        # What failed is absent; what succeeded before the disk filled is there.
        self.assertEqual(after - {"before", "after"}, listed - {"before"})


if __name__ == "__main__":
    unittest.main()
