"""S3 behaviour that real tools rely on beyond the basics (issue 15): version-aware listing of
unversioned buckets, UploadPartCopy, canned ACLs, object attributes, listing and conditional
edge cases, kept headers and CORS, through boto3 unchanged.

Run by `tests/tests/s3_clients.rs` against the real binary, with the environment described
in `test_s3_boto3.py`, whose helpers it shares.
"""

import gzip
import http.client
import os
import unittest
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from test_s3_boto3 import MIB, NS, S3, error_code, new_bucket, pattern, signed


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


class Acls(unittest.TestCase):
    """Only the canned `private` ACL exists: reads answer the owner's FULL_CONTROL grant,
    writes of `private` are accepted, anything else is refused by name."""

    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()
        S3.put_object(Bucket=cls.bucket, Key="k", Body=b"v")

    def assert_owner_only(self, acl):
        owner = acl["Owner"]["ID"]
        self.assertEqual(owner, NS)
        self.assertEqual([(g["Grantee"]["Type"], g["Grantee"]["ID"], g["Permission"]) for g in acl["Grants"]], [("CanonicalUser", owner, "FULL_CONTROL")])

    def test_reads_answer_the_owner_full_control(self):
        self.assert_owner_only(S3.get_object_acl(Bucket=self.bucket, Key="k"))
        self.assert_owner_only(S3.get_bucket_acl(Bucket=self.bucket))
        self.assertEqual(error_code(S3.get_object_acl, Bucket=self.bucket, Key="absent"), "NoSuchKey")
        self.assertEqual(error_code(S3.get_bucket_acl, Bucket="py-no-such-bucket"), "NoSuchBucket")

    def test_private_is_accepted_everything_else_refused(self):
        S3.put_object_acl(Bucket=self.bucket, Key="k", ACL="private")
        S3.put_bucket_acl(Bucket=self.bucket, ACL="private")
        S3.put_object(Bucket=self.bucket, Key="p", Body=b"v", ACL="private")
        same = S3.get_object_acl(Bucket=self.bucket, Key="k")
        S3.put_object_acl(Bucket=self.bucket, Key="k", AccessControlPolicy={"Owner": same["Owner"], "Grants": same["Grants"]})
        self.assertEqual(error_code(S3.put_object_acl, Bucket=self.bucket, Key="k", ACL="public-read"), "NotImplemented")
        self.assertEqual(error_code(S3.put_bucket_acl, Bucket=self.bucket, ACL="public-read-write"), "NotImplemented")
        self.assertEqual(error_code(S3.put_object, Bucket=self.bucket, Key="q", Body=b"v", ACL="public-read"), "NotImplemented")
        self.assertEqual(error_code(S3.put_object_acl, Bucket=self.bucket, Key="k", GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"'), "NotImplemented")
        public = {"Owner": same["Owner"], "Grants": same["Grants"] + [{"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"}]}
        self.assertEqual(error_code(S3.put_object_acl, Bucket=self.bucket, Key="k", AccessControlPolicy=public), "NotImplemented")
        self.assertEqual(error_code(S3.head_object, Bucket=self.bucket, Key="q"), "404")
        self.assertEqual(error_code(S3.put_object_acl, Bucket=self.bucket, Key="absent", ACL="private"), "NoSuchKey")


class Attributes(unittest.TestCase):
    def test_get_object_attributes(self):
        bucket = new_bucket()
        put = S3.put_object(Bucket=bucket, Key="k", Body=b"hello", ChecksumAlgorithm="SHA256")
        got = S3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ETag", "ObjectSize", "StorageClass", "Checksum"])
        # S3 writes this ETag without quotes, s3s with them; clients strip them either way.
        self.assertEqual((got["ETag"].strip('"'), got["ObjectSize"], got["StorageClass"]), (put["ETag"].strip('"'), 5, "STANDARD"))
        self.assertEqual(got["Checksum"]["ChecksumSHA256"], put["ChecksumSHA256"])
        only = S3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
        self.assertNotIn("ETag", only)
        upload = S3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
        parts = [{"PartNumber": n, "ETag": S3.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=n, Body=pattern(size, n))["ETag"]} for n, size in [(1, 5 * MIB), (2, 10)]]
        S3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=upload, MultipartUpload={"Parts": parts})
        multi = S3.get_object_attributes(Bucket=bucket, Key="m", ObjectAttributes=["ObjectParts", "ObjectSize"])
        self.assertEqual((multi["ObjectParts"]["TotalPartsCount"], multi["ObjectSize"]), (2, 5 * MIB + 10))
        self.assertEqual(error_code(S3.get_object_attributes, Bucket=bucket, Key="absent", ObjectAttributes=["ETag"]), "NoSuchKey")


class ListingEdges(unittest.TestCase):
    KEYS = ["a b/1", "a+b/2", "p%41", "tab\u00e9", "z&<>"]

    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()
        for key in cls.KEYS:
            S3.put_object(Bucket=cls.bucket, Key=key, Body=b"x")

    def raw(self, query):
        status, code, body = signed("GET", f"/{self.bucket}?{query}")
        self.assertEqual((status, code), (200, None), body)
        return body

    def test_encoding_type_url(self):
        # boto3 asks for EncodingType=url and decodes what it gets, so keys come back exact.
        for call in (S3.list_objects, S3.list_objects_v2, S3.list_object_versions):
            listed = call(Bucket=self.bucket)
            self.assertEqual([o["Key"] for o in listed.get("Contents", listed.get("Versions", []))], self.KEYS, call)
        top = S3.list_objects_v2(Bucket=self.bucket, Delimiter="/", Prefix="a")
        self.assertEqual([p["Prefix"] for p in top["CommonPrefixes"]], ["a b/", "a+b/"])
        body = self.raw("list-type=2&encoding-type=url&prefix=a%2Bb")
        self.assertIn("<Key>a%2Bb%2F2</Key>", body)
        self.assertIn("<EncodingType>url</EncodingType>", body)
        self.assertIn("<Prefix>a%2Bb</Prefix>", body)
        self.assertIn("<Key>a+b/2</Key>", self.raw("list-type=2&prefix=a%2Bb"))

    def test_empty_delimiter_is_not_echoed_and_fetch_owner(self):
        body = self.raw("list-type=2&delimiter=")
        self.assertNotIn("<Delimiter>", body)
        self.assertNotIn("<Delimiter>", self.raw("delimiter="))
        owned = S3.list_objects_v2(Bucket=self.bucket, FetchOwner=True)
        self.assertEqual(owned["Contents"][0]["Owner"]["ID"], NS)
        self.assertNotIn("Owner", S3.list_objects_v2(Bucket=self.bucket)["Contents"][0])
        self.assertEqual(S3.list_objects(Bucket=self.bucket)["Contents"][0]["Owner"]["ID"], NS)

    def test_control_characters_in_prefix_marker_and_start_after(self):
        self.assertNotIn("Contents", S3.list_objects_v2(Bucket=self.bucket, Prefix="a\n"))
        self.assertEqual([o["Key"] for o in S3.list_objects_v2(Bucket=self.bucket, StartAfter="p\n")["Contents"]], self.KEYS[2:])
        self.assertEqual([o["Key"] for o in S3.list_objects(Bucket=self.bucket, Marker="p\t")["Contents"]], self.KEYS[2:])
        self.assertEqual([o["Key"] for o in S3.list_object_versions(Bucket=self.bucket, KeyMarker="p\r")["Versions"]], self.KEYS[2:])

    def test_list_buckets_pages(self):
        mine = sorted(new_bucket() for _ in range(3))
        names, token, pages = [], None, 0
        while True:
            page = S3.list_buckets(MaxBuckets=2, **({"ContinuationToken": token} if token else {}))
            self.assertLessEqual(len(page["Buckets"]), 2)
            names += [b["Name"] for b in page["Buckets"]]
            pages += 1
            token = page.get("ContinuationToken")
            if not token:
                break
        self.assertEqual(names, sorted(names))
        self.assertTrue(set(mine) <= set(names))
        self.assertEqual(names, [b["Name"] for b in S3.list_buckets()["Buckets"]])
        self.assertGreater(pages, 1)
        prefixed = S3.list_buckets(Prefix=mine[0][:-2])
        self.assertIn(mine[0], [b["Name"] for b in prefixed["Buckets"]])
        self.assertEqual(signed("GET", "/?max-buckets=0")[:2], (400, "InvalidArgument"))


class ConditionalWrites(unittest.TestCase):
    def test_if_none_match_and_if_match_against_the_current_etag(self):
        bucket = new_bucket()
        etag = S3.put_object(Bucket=bucket, Key="k", Body=b"one")["ETag"]
        self.assertEqual(error_code(S3.put_object, Bucket=bucket, Key="k", Body=b"two", IfNoneMatch=etag), "PreconditionFailed")
        S3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch='"0000"')
        S3.put_object(Bucket=bucket, Key="new", Body=b"x", IfNoneMatch=etag)
        self.assertEqual(error_code(S3.put_object, Bucket=bucket, Key="k", Body=b"three", IfMatch=etag), "PreconditionFailed")
        current = S3.head_object(Bucket=bucket, Key="k")["ETag"]
        upload = S3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
        part = S3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"multi")
        complete = dict(Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        self.assertEqual(error_code(S3.complete_multipart_upload, **complete, IfMatch=etag), "PreconditionFailed")
        self.assertEqual(error_code(S3.complete_multipart_upload, **complete, IfNoneMatch=current), "PreconditionFailed")
        S3.complete_multipart_upload(**complete, IfMatch=current)
        self.assertEqual(S3.get_object(Bucket=bucket, Key="k")["Body"].read(), b"multi")

    def test_creating_a_bucket_you_own_succeeds(self):
        bucket = new_bucket()
        S3.put_object(Bucket=bucket, Key="k", Body=b"kept")
        S3.create_bucket(Bucket=bucket)
        self.assertEqual(S3.get_object(Bucket=bucket, Key="k")["Body"].read(), b"kept")


class Lifecycle(unittest.TestCase):
    def test_a_repeated_completion_answers_the_same(self):
        bucket = new_bucket()
        upload = S3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
        part = S3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"once")
        complete = dict(Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        first = S3.complete_multipart_upload(**complete)
        self.assertEqual(S3.complete_multipart_upload(**complete)["ETag"], first["ETag"])
        self.assertEqual(error_code(S3.complete_multipart_upload, **dict(complete, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]})), "NoSuchUpload")

    def test_delete_bucket_aborts_unfinished_uploads(self):
        bucket = new_bucket()
        upload = S3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
        S3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"part")
        S3.delete_bucket(Bucket=bucket)
        self.assertEqual(error_code(S3.head_bucket, Bucket=bucket), "404")




def rest(method, path, body=None, headers=None):
    """A request to the HTTP API with the admin token; answers the status and headers."""
    request = urllib.request.Request(
        f"{os.environ['FERROBASE_URL']}{path}",
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {os.environ['FERROBASE_TOKEN']}", **(headers or {})},
    )
    with urllib.request.urlopen(request) as response:
        response.read()
        return response.status, response.headers


class KeptHeaders(unittest.TestCase):
    """Cache-Control, Expires, Content-Disposition, Content-Encoding and Content-Language are
    kept as the writer set them and returned by every read, through S3 and the REST API."""

    EXPIRES = datetime(2044, 12, 1, 16, 0, tzinfo=timezone.utc)
    SET = {
        "CacheControl": "public, max-age=3600",
        "ContentDisposition": 'attachment; filename="report.txt"',
        "ContentEncoding": "gzip",
        "ContentLanguage": "en-GB",
        "Expires": EXPIRES,
    }

    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()

    def assert_kept(self, answer, expected=None):
        expected = expected or self.SET
        for field, value in expected.items():
            self.assertEqual(answer.get(field), value, field)

    def test_put_head_get_and_response_overrides(self):
        body = gzip.compress(b"hello")
        S3.put_object(Bucket=self.bucket, Key="report.txt", Body=body, **self.SET)
        self.assert_kept(S3.head_object(Bucket=self.bucket, Key="report.txt"))
        got = S3.get_object(Bucket=self.bucket, Key="report.txt")
        self.assert_kept(got)
        self.assertEqual(got["Body"].read(), body, "the body is stored as sent, not decoded")
        overridden = S3.get_object(
            Bucket=self.bucket,
            Key="report.txt",
            ResponseContentDisposition="inline",
            ResponseCacheControl="no-cache",
            ResponseContentType="text/plain",
            ResponseContentLanguage="fr",
        )
        self.assertEqual(overridden["ContentDisposition"], "inline")
        self.assertEqual(overridden["CacheControl"], "no-cache")
        self.assertEqual(overridden["ContentType"], "text/plain")
        self.assertEqual(overridden["ContentLanguage"], "fr")
        self.assertEqual(overridden["ContentEncoding"], "gzip")
        plain = S3.head_object(Bucket=self.bucket, Key="report.txt", ResponseCacheControl="no-cache")
        self.assertEqual(plain["CacheControl"], "no-cache")
        S3.put_object(Bucket=self.bucket, Key="none.txt", Body=b"x")
        self.assertNotIn("CacheControl", S3.head_object(Bucket=self.bucket, Key="none.txt"))

    def test_copy_keeps_or_replaces_and_multipart_keeps(self):
        S3.put_object(Bucket=self.bucket, Key="src", Body=b"x", **self.SET)
        S3.copy_object(Bucket=self.bucket, Key="kept", CopySource={"Bucket": self.bucket, "Key": "src"})
        self.assert_kept(S3.head_object(Bucket=self.bucket, Key="kept"))
        S3.copy_object(
            Bucket=self.bucket,
            Key="src",
            CopySource={"Bucket": self.bucket, "Key": "src"},
            MetadataDirective="REPLACE",
            CacheControl="no-store",
        )
        replaced = S3.head_object(Bucket=self.bucket, Key="src")
        self.assertEqual(replaced["CacheControl"], "no-store")
        self.assertNotIn("ContentDisposition", replaced)
        upload = S3.create_multipart_upload(Bucket=self.bucket, Key="big", **self.SET)
        part = S3.upload_part(Bucket=self.bucket, Key="big", UploadId=upload["UploadId"], PartNumber=1, Body=b"y")
        S3.complete_multipart_upload(
            Bucket=self.bucket,
            Key="big",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        self.assert_kept(S3.head_object(Bucket=self.bucket, Key="big"))

    def test_the_rest_api_keeps_them_too(self):
        sent = {
            "Cache-Control": "max-age=60",
            "Content-Disposition": 'attachment; filename="a.csv"',
            "Content-Encoding": "br",
            "Content-Language": "de",
            "Expires": "Thu, 01 Dec 2044 16:00:00 GMT",
        }
        path = f"/v1/storage/{NS}/{self.bucket}/rest.csv"
        rest("PUT", path, b"a,b", sent)
        for method in ("GET", "HEAD"):
            _, headers = rest(method, path)
            for name, value in sent.items():
                self.assertEqual(headers[name], value, f"{method} {name}")
        # Written through one front end, read through the other.
        self.assertEqual(S3.head_object(Bucket=self.bucket, Key="rest.csv")["ContentLanguage"], "de")
        S3.put_object(Bucket=self.bucket, Key="from-s3", Body=b"x", CacheControl="private")
        _, headers = rest("GET", f"/v1/storage/{NS}/{self.bucket}/from-s3")
        self.assertEqual(headers["Cache-Control"], "private")


def preflight(url, origin, method, headers=""):
    """A browser's unsigned CORS preflight of `url`; answers the status and headers."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        sent["Access-Control-Request-Headers"] = headers
    connection.request("OPTIONS", parts.path + ("?" + parts.query if parts.query else ""), headers=sent)
    response = connection.getresponse()
    answer = response.read().decode(errors="replace")
    connection.close()
    return response.status, response.headers, answer


class BucketCors(unittest.TestCase):
    """A bucket's CORS rules are set, read and removed through S3, and answer a browser's
    preflight of a presigned upload without a signature, and its actual request."""

    ORIGIN = "https://app.example.com"

    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()

    def test_rules_round_trip_and_go_away(self):
        self.assertEqual(error_code(S3.get_bucket_cors, Bucket=self.bucket), "NoSuchCORSConfiguration")
        rules = [
            {
                "ID": "uploads",
                "AllowedOrigins": ["https://*.example.com"],
                "AllowedMethods": ["PUT", "GET"],
                "AllowedHeaders": ["content-type", "x-amz-meta-*"],
                "ExposeHeaders": ["ETag"],
                "MaxAgeSeconds": 600,
            }
        ]
        S3.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": rules})
        self.assertEqual(S3.get_bucket_cors(Bucket=self.bucket)["CORSRules"], rules)
        bad = [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]
        self.assertEqual(
            error_code(S3.put_bucket_cors, Bucket=self.bucket, CORSConfiguration={"CORSRules": bad}),
            "InvalidArgument",
        )
        S3.delete_bucket_cors(Bucket=self.bucket)
        self.assertEqual(error_code(S3.get_bucket_cors, Bucket=self.bucket), "NoSuchCORSConfiguration")

    def test_presigned_put_from_a_browser(self):
        bucket = new_bucket()
        url = S3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "upload.txt"}, ExpiresIn=300)
        status, _, _ = preflight(url, self.ORIGIN, "PUT", "content-type")
        self.assertEqual(status, 403, "no rules: the preflight is refused")
        S3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": [self.ORIGIN],
                        "AllowedMethods": ["PUT"],
                        "AllowedHeaders": ["Content-Type", "x-amz-meta-*"],
                        "ExposeHeaders": ["ETag"],
                        "MaxAgeSeconds": 120,
                    }
                ]
            },
        )
        status, headers, answer = preflight(url, self.ORIGIN, "PUT", "content-type, x-amz-meta-owner")
        self.assertEqual(status, 200, f"{url}: {answer}")
        self.assertEqual(headers["Access-Control-Allow-Origin"], self.ORIGIN)
        self.assertIn("PUT", headers["Access-Control-Allow-Methods"])
        self.assertIn("x-amz-meta-owner", headers["Access-Control-Allow-Headers"])
        self.assertEqual(headers["Access-Control-Max-Age"], "120")
        self.assertEqual(preflight(url, "https://evil.test", "PUT")[0], 403)
        self.assertEqual(preflight(url, self.ORIGIN, "DELETE")[0], 403)
        self.assertEqual(preflight(url, self.ORIGIN, "PUT", "authorization")[0], 403)

        # The actual upload, as the browser sends it after the preflight.
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request("PUT", f"{parts.path}?{parts.query}", body=b"from a browser", headers={"Origin": self.ORIGIN})
        response = connection.getresponse()
        response.read()
        connection.close()
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["Access-Control-Allow-Origin"], self.ORIGIN)
        self.assertEqual(response.headers["Access-Control-Expose-Headers"], "ETag")
        self.assertEqual(S3.get_object(Bucket=bucket, Key="upload.txt")["Body"].read(), b"from a browser")


if __name__ == "__main__":
    unittest.main(verbosity=2)
