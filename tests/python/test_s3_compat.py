"""S3 behaviour that real tools rely on beyond the basics (issue 15): version-aware listing of
unversioned buckets, UploadPartCopy, canned ACLs, object attributes, listing and conditional
edge cases, kept headers and CORS, through boto3 unchanged.

Run by `tests/tests/s3_clients.rs` against the real binary, with the environment described
in `test_s3_boto3.py`, whose helpers it shares.
"""

import unittest

from test_s3_boto3 import MIB, S3, error_code, new_bucket, pattern


class Versions(unittest.TestCase):
    """Buckets are unversioned: ListObjectVersions shows every object once, as version
    `null`, with no delete markers, so version-aware tools work against them."""

    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()
        cls.keys = ["a/1", "a/2", "a/b/3", "b", "c/x"]
        for key in cls.keys:
            S3.put_object(Bucket=cls.bucket, Key=key, Body=key.encode())

    def test_every_object_once_as_version_null(self):
        listed = S3.list_object_versions(Bucket=self.bucket)
        self.assertEqual([v["Key"] for v in listed["Versions"]], self.keys)
        self.assertTrue(all(v["VersionId"] == "null" and v["IsLatest"] for v in listed["Versions"]))
        self.assertEqual(listed["Versions"][0]["Size"], 3)
        self.assertNotIn("DeleteMarkers", listed)
        self.assertFalse(listed["IsTruncated"])
        S3.delete_object(Bucket=self.bucket, Key="gone-already")
        self.assertNotIn("DeleteMarkers", S3.list_object_versions(Bucket=self.bucket))

    def test_paging_with_key_and_version_id_markers(self):
        seen, markers, pages = [], {}, 0
        while True:
            page = S3.list_object_versions(Bucket=self.bucket, MaxKeys=2, **markers)
            seen += [v["Key"] for v in page.get("Versions", [])]
            pages += 1
            if not page["IsTruncated"]:
                break
            self.assertEqual(page["NextVersionIdMarker"], "null")
            markers = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
        self.assertEqual((seen, pages), (self.keys, 3))
        after_key = S3.list_object_versions(Bucket=self.bucket, KeyMarker="a/b/3")
        self.assertEqual([v["Key"] for v in after_key["Versions"]], ["b", "c/x"])
        paginated = S3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, PaginationConfig={"PageSize": 1})
        self.assertEqual([v["Key"] for page in paginated for v in page.get("Versions", [])], self.keys)

    def test_prefix_and_delimiter(self):
        top = S3.list_object_versions(Bucket=self.bucket, Delimiter="/")
        self.assertEqual([v["Key"] for v in top["Versions"]], ["b"])
        self.assertEqual([p["Prefix"] for p in top["CommonPrefixes"]], ["a/", "c/"])
        under = S3.list_object_versions(Bucket=self.bucket, Prefix="a/", Delimiter="/", MaxKeys=2)
        self.assertEqual([v["Key"] for v in under["Versions"]], ["a/1", "a/2"])
        self.assertTrue(under["IsTruncated"])
        rest = S3.list_object_versions(Bucket=self.bucket, Prefix="a/", Delimiter="/", KeyMarker=under["NextKeyMarker"], VersionIdMarker=under["NextVersionIdMarker"])
        self.assertEqual([p["Prefix"] for p in rest["CommonPrefixes"]], ["a/b/"])
        self.assertNotIn("Versions", rest)

    def test_version_null_reads_and_deletes_others_are_refused(self):
        bucket = new_bucket()
        S3.put_object(Bucket=bucket, Key="k", Body=b"v")
        self.assertEqual(S3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read(), b"v")
        self.assertEqual(S3.head_object(Bucket=bucket, Key="k", VersionId="null")["ContentLength"], 1)
        self.assertEqual(error_code(S3.get_object, Bucket=bucket, Key="k", VersionId="3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"), "NoSuchVersion")
        self.assertEqual(error_code(S3.list_object_versions, Bucket=bucket, VersionIdMarker="null"), "InvalidArgument")
        # The teardown of version-aware suites: every listed version deleted by its id.
        versions = S3.list_object_versions(Bucket=bucket)["Versions"]
        S3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]})
        S3.put_object(Bucket=bucket, Key="k2", Body=b"v")
        S3.delete_object(Bucket=bucket, Key="k2", VersionId="null")
        S3.delete_bucket(Bucket=bucket)

    def test_versioning_is_off_and_cannot_be_enabled(self):
        bucket = new_bucket()
        self.assertNotIn("Status", S3.get_bucket_versioning(Bucket=bucket))
        self.assertEqual(error_code(S3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}), "NotImplemented")
        S3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
        self.assertEqual(error_code(S3.get_bucket_versioning, Bucket="py-no-such-bucket"), "NoSuchBucket")


class PartCopies(unittest.TestCase):
    def test_the_managed_copy_of_a_20_mb_object(self):
        from boto3.s3.transfer import TransferConfig

        bucket = new_bucket()
        data = pattern(20 * 1000 * 1000, 3)
        S3.put_object(Bucket=bucket, Key="src.bin", Body=data)
        # Above the 8 MiB threshold, copy() is CreateMultipartUpload + UploadPartCopy.
        S3.copy({"Bucket": bucket, "Key": "src.bin"}, bucket, "dst.bin", Config=TransferConfig(multipart_chunksize=8 * MIB))
        copied = S3.get_object(Bucket=bucket, Key="dst.bin")
        self.assertEqual(copied["Body"].read(), data)
        self.assertTrue(copied["ETag"].endswith('-3"'))

    def test_ranges_conditions_and_errors(self):
        bucket = new_bucket()
        data = pattern(6 * MIB, 4)
        etag = S3.put_object(Bucket=bucket, Key="src", Body=data)["ETag"]
        upload = S3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
        source = {"Bucket": bucket, "Key": "src"}
        first = S3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload, PartNumber=1, CopySource=source, CopySourceIfMatch=etag)
        second = S3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload, PartNumber=2, CopySource=source, CopySourceRange="bytes=100-199")
        bad = dict(Bucket=bucket, Key="dst", UploadId=upload, PartNumber=3, CopySource=source)
        self.assertEqual(error_code(S3.upload_part_copy, **bad, CopySourceRange=f"bytes=0-{6 * MIB}"), "InvalidArgument")
        self.assertEqual(error_code(S3.upload_part_copy, **bad, CopySourceRange="bytes=5-"), "InvalidArgument")
        self.assertEqual(error_code(S3.upload_part_copy, **bad, CopySourceIfMatch='"0000"'), "PreconditionFailed")
        self.assertEqual(error_code(S3.upload_part_copy, **dict(bad, CopySource={"Bucket": bucket, "Key": "absent"})), "NoSuchKey")
        parts = [{"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]} for n, r in [(1, first), (2, second)]]
        S3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=upload, MultipartUpload={"Parts": parts})
        self.assertEqual(S3.get_object(Bucket=bucket, Key="dst")["Body"].read(), data + data[100:200])


if __name__ == "__main__":
    unittest.main(verbosity=2)
