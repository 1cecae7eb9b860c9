"""Ferrobase's S3 endpoint through boto3, the AWS SDK for Python, unchanged.

Run by `tests/tests/s3_clients.rs` against the real binary, with:
  S3_ENDPOINT                                   the S3 endpoint, e.g. http://127.0.0.1:9000
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY     a service key of namespace FERROBASE_NS
  FERROBASE_USER_KEY_ID / FERROBASE_USER_SECRET a user key of the same namespace (no policy)
  FERROBASE_ALICE_KEY_ID / FERROBASE_ALICE_SECRET a user key made with `--sub alice`
  FERROBASE_URL / FERROBASE_TOKEN / FERROBASE_NS the HTTP API and an admin token, for events
"""

import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import subprocess
import tempfile
import unittest
import urllib.parse
import urllib.request
import uuid
import zlib
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
NS = os.environ["FERROBASE_NS"]
MIB = 1024 * 1024


def client(key_id=None, secret=None, **config):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=key_id or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


S3 = client()


def new_bucket():
    name = "py-" + uuid.uuid4().hex[:12]
    S3.create_bucket(Bucket=name)
    return name


def error_code(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ClientError as error:
        return error.response["Error"]["Code"]
    raise AssertionError("the call succeeded")


def events(subject_prefix):
    """Storage events of the namespace whose subject starts with `subject_prefix`, in order."""
    found, after = [], 0
    while True:
        query = urllib.parse.urlencode({"after": after, "limit": 1000, "type": "ferrobase.storage."})
        request = urllib.request.Request(
            f"{os.environ['FERROBASE_URL']}/v1/events/{NS}?{query}",
            headers={"Authorization": f"Bearer {os.environ['FERROBASE_TOKEN']}"},
        )
        with urllib.request.urlopen(request) as response:
            page = json.load(response)["events"]
        if not page:
            return found
        after = page[-1]["ferrobaseseq"]
        found.extend(
            (event["type"], event["subject"], event["data"])
            for event in page
            if event["subject"].startswith(subject_prefix)
        )


def signed(method, path, body=b"", headers=None, chunked=False):
    """Sends a request signed with the service key as botocore signs it, without botocore
    adding or fixing anything (`chunked`: with no length, in HTTP chunks); answers the
    status, the S3 error code (None on success) and the body."""
    import re

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=ENDPOINT + path, data=body, headers=dict(headers or {}))
    credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    prepared = request.prepare()
    url = urllib.parse.urlsplit(prepared.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    target = url.path + ("?" + url.query if url.query else "")
    sent_headers = dict(prepared.headers)
    if chunked:
        sent_headers.pop("Content-Length", None)
        whole = body
        body = (whole[i : i + 65536] for i in range(0, len(whole), 65536))
    try:
        connection.request(method, target, body=body, headers=sent_headers, encode_chunked=chunked)
    except (BrokenPipeError, ConnectionResetError):
        pass  # The server may answer (and close) before reading all of a body it refuses.
    response = connection.getresponse()
    answer = response.read().decode(errors="replace")
    connection.close()
    code = re.search(r"<Code>(.*?)</Code>", answer)
    return response.status, code.group(1) if code else None, answer


def delete_xml(keys):
    objects = "".join(f"<Object><Key>{key}</Key></Object>" for key in keys)
    return f'<?xml version="1.0" encoding="UTF-8"?><Delete>{objects}</Delete>'.encode()


def put_policy(policy):
    """Replaces the namespace's policy through the HTTP API."""
    request = urllib.request.Request(
        f"{os.environ['FERROBASE_URL']}/v1/policies/{NS}",
        data=json.dumps(policy).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {os.environ['FERROBASE_TOKEN']}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request).close()


def alice():
    return client(os.environ["FERROBASE_ALICE_KEY_ID"], os.environ["FERROBASE_ALICE_SECRET"])


def pattern(size, seed):
    block = hashlib.sha256(str(seed).encode()).digest() * (MIB // 32)
    return (block * (size // len(block) + 1))[:size]


class BucketLifecycle(unittest.TestCase):
    def test_create_head_list_delete(self):
        name = new_bucket()
        S3.head_bucket(Bucket=name)
        self.assertIn(name, [b["Name"] for b in S3.list_buckets()["Buckets"]])
        S3.create_bucket(Bucket=name)  # Already owned: 200, as in us-east-1.
        S3.put_object(Bucket=name, Key="k", Body=b"v")
        self.assertEqual(error_code(S3.delete_bucket, Bucket=name), "BucketNotEmpty")
        S3.delete_object(Bucket=name, Key="k")
        S3.delete_bucket(Bucket=name)
        self.assertEqual(error_code(S3.head_bucket, Bucket=name), "404")
        self.assertEqual(error_code(S3.get_object, Bucket=name, Key="k"), "NoSuchBucket")
        self.assertEqual(error_code(S3.delete_bucket, Bucket=name), "NoSuchBucket")


class Objects(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()

    def test_put_get_head_delete_with_metadata_and_events(self):
        body = b"hello, ferrobase"
        put = S3.put_object(
            Bucket=self.bucket,
            Key="docs/a.txt",
            Body=body,
            ContentType="text/plain",
            Metadata={"owner": "alice", "Mixed-Case": "Value"},
        )
        self.assertEqual(put["ETag"], '"%s"' % hashlib.md5(body).hexdigest())
        got = S3.get_object(Bucket=self.bucket, Key="docs/a.txt")
        self.assertEqual(got["Body"].read(), body)
        self.assertEqual(got["ContentType"], "text/plain")
        self.assertEqual(got["Metadata"], {"owner": "alice", "mixed-case": "Value"})
        head = S3.head_object(Bucket=self.bucket, Key="docs/a.txt")
        self.assertEqual(head["ContentLength"], len(body))
        self.assertEqual(head["ETag"], put["ETag"])
        self.assertEqual(head["Metadata"]["owner"], "alice")
        S3.delete_object(Bucket=self.bucket, Key="docs/a.txt")
        self.assertEqual(error_code(S3.get_object, Bucket=self.bucket, Key="docs/a.txt"), "NoSuchKey")
        self.assertEqual(error_code(S3.head_object, Bucket=self.bucket, Key="docs/a.txt"), "404")
        # Deleting what is not there is not an error in S3.
        S3.delete_object(Bucket=self.bucket, Key="docs/a.txt")
        logged = events(f"{self.bucket}/docs/a.txt")
        self.assertEqual(
            [kind for kind, _, _ in logged],
            ["ferrobase.storage.object.created", "ferrobase.storage.object.deleted"],
        )
        self.assertEqual(logged[0][2]["etag"], hashlib.md5(body).hexdigest())
        self.assertEqual(logged[0][2]["size"], len(body))
        self.assertEqual(logged[0][2]["content_type"], "text/plain")

    def test_ranges(self):
        S3.put_object(Bucket=self.bucket, Key="digits", Body=b"0123456789")
        get = lambda r: S3.get_object(Bucket=self.bucket, Key="digits", Range=r)
        part = get("bytes=2-4")
        self.assertEqual(part["Body"].read(), b"234")
        self.assertEqual(part["ContentRange"], "bytes 2-4/10")
        self.assertEqual(part["ResponseMetadata"]["HTTPStatusCode"], 206)
        self.assertEqual(get("bytes=7-")["Body"].read(), b"789")
        self.assertEqual(get("bytes=-3")["Body"].read(), b"789")
        self.assertEqual(get("bytes=8-100")["Body"].read(), b"89")
        self.assertEqual(error_code(get, "bytes=10-20"), "InvalidRange")

    def test_conditional_requests(self):
        put = S3.put_object(Bucket=self.bucket, Key="cond", Body=b"v1")
        etag = put["ETag"]
        get = lambda **kw: S3.get_object(Bucket=self.bucket, Key="cond", **kw)
        self.assertEqual(get(IfMatch=etag)["Body"].read(), b"v1")
        self.assertEqual(error_code(get, IfMatch='"0000"'), "PreconditionFailed")
        self.assertEqual(error_code(get, IfNoneMatch=etag), "304")
        self.assertEqual(get(IfNoneMatch='"0000"')["Body"].read(), b"v1")
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        earlier = datetime.now(timezone.utc) - timedelta(hours=1)
        self.assertEqual(error_code(get, IfModifiedSince=later), "304")
        self.assertEqual(get(IfModifiedSince=earlier)["Body"].read(), b"v1")
        self.assertEqual(error_code(get, IfUnmodifiedSince=earlier), "PreconditionFailed")
        # Create-only writes.
        self.assertEqual(
            error_code(S3.put_object, Bucket=self.bucket, Key="cond", Body=b"v2", IfNoneMatch="*"),
            "PreconditionFailed",
        )
        S3.put_object(Bucket=self.bucket, Key="cond-new", Body=b"x", IfNoneMatch="*")
        self.assertEqual(get()["Body"].read(), b"v1")

    def test_content_md5_is_checked(self):
        wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        self.assertEqual(
            error_code(S3.put_object, Bucket=self.bucket, Key="md5", Body=b"data", ContentMD5=wrong),
            "BadDigest",
        )
        self.assertEqual(error_code(S3.head_object, Bucket=self.bucket, Key="md5"), "404")
        right = base64.b64encode(hashlib.md5(b"data").digest()).decode()
        S3.put_object(Bucket=self.bucket, Key="md5", Body=b"data", ContentMD5=right)
        self.assertEqual(events(f"{self.bucket}/md5")[0][0], "ferrobase.storage.object.created")
        self.assertEqual(len(events(f"{self.bucket}/md5")), 1)

    def test_large_single_puts_get_a_blake3_etag_unless_content_md5_is_sent(self):
        """Over 8 MiB, sent without Content-MD5, a body's ETag is `{BLAKE3 hash}-1` rather than
        its MD5 (storage/src/digest.rs says why); it works as an ETag everywhere."""
        body = pattern(9 * MIB, 5)
        md5 = hashlib.md5(body)
        put = S3.put_object(Bucket=self.bucket, Key="large", Body=body)
        self.assertRegex(put["ETag"], r'^"[0-9a-f]{32}-1"$')
        self.assertNotIn(md5.hexdigest(), put["ETag"])
        self.assertEqual(S3.put_object(Bucket=self.bucket, Key="large-again", Body=body)["ETag"], put["ETag"])
        other = S3.put_object(Bucket=self.bucket, Key="large-other", Body=pattern(9 * MIB, 6))
        self.assertNotEqual(other["ETag"], put["ETag"])
        got = S3.get_object(Bucket=self.bucket, Key="large", IfMatch=put["ETag"])
        self.assertEqual(got["ETag"], put["ETag"])
        self.assertEqual(hashlib.md5(got["Body"].read()).digest(), md5.digest())
        self.assertEqual(error_code(S3.get_object, Bucket=self.bucket, Key="large", IfNoneMatch=put["ETag"]), "304")
        self.assertEqual(events(f"{self.bucket}/large")[0][2]["etag"], put["ETag"].strip('"'))
        # With Content-MD5 every byte is hashed with MD5 and checked, and the ETag is the MD5.
        sent = base64.b64encode(md5.digest()).decode()
        checked = S3.put_object(Bucket=self.bucket, Key="large-md5", Body=body, ContentMD5=sent)
        self.assertEqual(checked["ETag"], '"%s"' % md5.hexdigest())
        # Up to 8 MiB a body's ETag is its MD5.
        at_limit = pattern(8 * MIB, 7)
        self.assertEqual(
            S3.put_object(Bucket=self.bucket, Key="at-limit", Body=at_limit)["ETag"],
            '"%s"' % hashlib.md5(at_limit).hexdigest(),
        )

    def test_copy_and_batch_delete(self):
        S3.put_object(Bucket=self.bucket, Key="src", Body=b"payload", Metadata={"m": "1"})
        S3.copy_object(Bucket=self.bucket, Key="copy1", CopySource={"Bucket": self.bucket, "Key": "src"})
        self.assertEqual(S3.head_object(Bucket=self.bucket, Key="copy1")["Metadata"], {"m": "1"})
        S3.copy_object(
            Bucket=self.bucket,
            Key="copy2",
            CopySource=f"{self.bucket}/src",
            MetadataDirective="REPLACE",
            Metadata={"m": "2"},
            ContentType="application/json",
        )
        head = S3.head_object(Bucket=self.bucket, Key="copy2")
        self.assertEqual((head["Metadata"], head["ContentType"]), ({"m": "2"}, "application/json"))
        self.assertEqual(S3.get_object(Bucket=self.bucket, Key="copy2")["Body"].read(), b"payload")
        deleted = S3.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": "src"}, {"Key": "copy1"}, {"Key": "copy2"}]},
        )
        self.assertEqual(sorted(d["Key"] for d in deleted["Deleted"]), ["copy1", "copy2", "src"])
        self.assertEqual(error_code(S3.head_object, Bucket=self.bucket, Key="src"), "404")
        kinds = [kind.rsplit(".", 1)[1] for kind, _, _ in events(f"{self.bucket}/copy2")]
        self.assertEqual(kinds, ["created", "deleted"])

    def test_key_too_long(self):
        self.assertEqual(
            error_code(S3.put_object, Bucket=self.bucket, Key="k" * 1100, Body=b"x"),
            "KeyTooLongError",
        )


class Listing(unittest.TestCase):
    KEYS = 2500

    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()
        keys = [f"dir{i % 5}/file{i:05d}" for i in range(cls.KEYS)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda key: S3.put_object(Bucket=cls.bucket, Key=key, Body=b"x"), keys))
        cls.keys = sorted(keys)

    def test_pagination_over_all_keys(self):
        seen, pages = [], 0
        for page in S3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, PaginationConfig={"PageSize": 1000}):
            pages += 1
            seen.extend(obj["Key"] for obj in page.get("Contents", []))
        self.assertEqual(seen, self.keys)
        self.assertEqual(pages, 3)

    def test_delimiter_prefix_start_after_and_max_keys(self):
        top = S3.list_objects_v2(Bucket=self.bucket, Delimiter="/")
        self.assertEqual([p["Prefix"] for p in top["CommonPrefixes"]], [f"dir{i}/" for i in range(5)])
        self.assertEqual(top.get("KeyCount"), 5)
        self.assertNotIn("Contents", top)
        under = S3.list_objects_v2(Bucket=self.bucket, Prefix="dir3/", MaxKeys=7)
        self.assertEqual([o["Key"] for o in under["Contents"]], [k for k in self.keys if k.startswith("dir3/")][:7])
        self.assertTrue(under["IsTruncated"])
        rest = S3.list_objects_v2(Bucket=self.bucket, Prefix="dir3/", ContinuationToken=under["NextContinuationToken"], MaxKeys=1000)
        self.assertEqual(len(rest["Contents"]), 500 - 7)
        self.assertFalse(rest["IsTruncated"])
        after = S3.list_objects_v2(Bucket=self.bucket, StartAfter="dir4/file02490")
        self.assertEqual([o["Key"] for o in after["Contents"]], ["dir4/file02494", "dir4/file02499"])
        two = S3.list_objects_v2(Bucket=self.bucket, Delimiter="/", MaxKeys=2)
        self.assertEqual([p["Prefix"] for p in two["CommonPrefixes"]], ["dir0/", "dir1/"])
        more = S3.list_objects_v2(Bucket=self.bucket, Delimiter="/", MaxKeys=2, ContinuationToken=two["NextContinuationToken"])
        self.assertEqual([p["Prefix"] for p in more["CommonPrefixes"]], ["dir2/", "dir3/"])

    def test_v1_marker_pagination_over_all_keys(self):
        seen, marker = [], ""
        while True:
            page = S3.list_objects(Bucket=self.bucket, Marker=marker, MaxKeys=1000)
            keys = [obj["Key"] for obj in page.get("Contents", [])]
            self.assertEqual(page["Marker"], marker)
            self.assertNotIn("NextMarker", page, "NextMarker comes only with a delimiter")
            seen.extend(keys)
            if not page["IsTruncated"]:
                break
            marker = keys[-1]
        self.assertEqual(seen, self.keys)
        paged = S3.get_paginator("list_objects").paginate(Bucket=self.bucket, Prefix="dir2/", PaginationConfig={"PageSize": 150})
        pages = list(paged)
        self.assertEqual(len(pages), 4)
        self.assertEqual([o["Key"] for p in pages for o in p["Contents"]], [k for k in self.keys if k.startswith("dir2/")])

    def test_v1_delimiter_with_next_marker(self):
        two = S3.list_objects(Bucket=self.bucket, Delimiter="/", MaxKeys=2)
        self.assertEqual([p["Prefix"] for p in two["CommonPrefixes"]], ["dir0/", "dir1/"])
        self.assertEqual((two["IsTruncated"], two["NextMarker"], two["Delimiter"]), (True, "dir1/", "/"))
        rest = S3.list_objects(Bucket=self.bucket, Delimiter="/", Marker=two["NextMarker"])
        self.assertEqual([p["Prefix"] for p in rest["CommonPrefixes"]], ["dir2/", "dir3/", "dir4/"])
        self.assertFalse(rest["IsTruncated"])
        self.assertNotIn("NextMarker", rest)
        within = S3.list_objects(Bucket=self.bucket, Prefix="dir4/file0249", Delimiter="/", MaxKeys=1)
        self.assertEqual([o["Key"] for o in within["Contents"]], ["dir4/file02494"])
        self.assertEqual(within["NextMarker"], "dir4/file02494")
        self.assertEqual(error_code(S3.list_objects, Bucket="py-no-such-bucket"), "NoSuchBucket")


class Multipart(unittest.TestCase):
    PART = 8 * MIB
    SIZE = 100 * MIB

    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()

    def test_100_mib_upload_with_an_interrupted_part_retried(self):
        key = "big/file.bin"
        upload = S3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType="application/x-big", Metadata={"kind": "big"})
        upload_id = upload["UploadId"]
        parts, md5s, whole = [], [], hashlib.md5()
        count = (self.SIZE + self.PART - 1) // self.PART
        for number in range(1, count + 1):
            size = min(self.PART, self.SIZE - (number - 1) * self.PART)
            data = pattern(size, number)
            if number == 3:
                self.interrupt_part(key, upload_id, number, size)
                # The interrupted attempt left nothing that counts as part 3.
                listed = S3.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id)["Parts"]
                self.assertNotIn(3, [p["PartNumber"] for p in listed])
            result = S3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
            parts.append({"PartNumber": number, "ETag": result["ETag"]})
            md5s.append(hashlib.md5(data).digest())
            whole.update(data)
        listed = S3.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id)
        self.assertEqual([p["PartNumber"] for p in listed["Parts"]], list(range(1, count + 1)))
        uploads = S3.list_multipart_uploads(Bucket=self.bucket)["Uploads"]
        self.assertEqual([u["UploadId"] for u in uploads], [upload_id])
        self.assertEqual(events(f"{self.bucket}/big/"), [], "nothing is visible before completion")
        done = S3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        expected = '"%s-%d"' % (hashlib.md5(b"".join(md5s)).hexdigest(), count)
        self.assertEqual(done["ETag"], expected)
        head = S3.head_object(Bucket=self.bucket, Key=key)
        self.assertEqual((head["ContentLength"], head["ETag"]), (self.SIZE, expected))
        self.assertEqual((head["ContentType"], head["Metadata"]), ("application/x-big", {"kind": "big"}))
        body = S3.get_object(Bucket=self.bucket, Key=key)["Body"]
        read = hashlib.md5()
        for chunk in iter(lambda: body.read(4 * MIB), b""):
            read.update(chunk)
        self.assertEqual(read.hexdigest(), whole.hexdigest())
        across = S3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={self.PART - 5}-{self.PART + 4}")["Body"].read()
        self.assertEqual(across, pattern(self.PART, 1)[-5:] + pattern(self.PART, 2)[:5])
        created = events(f"{self.bucket}/big/")
        self.assertEqual([(kind, data["etag"]) for kind, _, data in created], [("ferrobase.storage.object.created", expected.strip('"'))])
        self.assertEqual(S3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []), [])

    def interrupt_part(self, key, upload_id, number, size):
        """Starts part `number` through a presigned URL, sends a tenth of it, and hangs up."""
        url = urllib.parse.urlsplit(
            S3.generate_presigned_url(
                "upload_part",
                Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number},
            )
        )
        connection = http.client.HTTPConnection(url.hostname, url.port)
        connection.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        connection.send(pattern(size // 10, 99))
        connection.close()

    def test_abort_and_multipart_errors(self):
        key = "aborted.bin"
        upload_id = S3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        small = [
            {"PartNumber": n, "ETag": S3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=b"tiny")["ETag"]}
            for n in (1, 2)
        ]
        self.assertEqual(
            error_code(S3.complete_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": small}),
            "EntityTooSmall",
        )
        self.assertEqual(
            error_code(
                S3.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]},
            ),
            "InvalidPart",
        )
        self.assertEqual(
            error_code(S3.complete_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": list(reversed(small))}),
            "InvalidPartOrder",
        )
        S3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        self.assertEqual(error_code(S3.list_parts, Bucket=self.bucket, Key=key, UploadId=upload_id), "NoSuchUpload")
        self.assertEqual(
            error_code(S3.upload_part, Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=3, Body=b"x"),
            "NoSuchUpload",
        )
        self.assertEqual(error_code(S3.head_object, Bucket=self.bucket, Key=key), "404")
        self.assertEqual(events(f"{self.bucket}/{key}"), [], "an aborted upload emits nothing")

    def test_list_multipart_uploads_pages(self):
        bucket = new_bucket()
        keys = ["mp/a", "mp/a", "mp/b", "mp/c", "mp/c", "mp/dir/x", "other"]
        for key in keys:
            S3.create_multipart_upload(Bucket=bucket, Key=key)
        everything = S3.list_multipart_uploads(Bucket=bucket)
        self.assertFalse(everything["IsTruncated"])
        listed = [(u["Key"], u["UploadId"]) for u in everything["Uploads"]]
        self.assertEqual([key for key, _ in listed], sorted(keys))
        seen, key_marker, id_marker = [], "", ""
        while True:
            page = S3.list_multipart_uploads(Bucket=bucket, MaxUploads=2, KeyMarker=key_marker, UploadIdMarker=id_marker)
            self.assertEqual(page["MaxUploads"], 2)
            seen.extend((u["Key"], u["UploadId"]) for u in page["Uploads"])
            if not page["IsTruncated"]:
                break
            self.assertEqual((page["NextKeyMarker"], page["NextUploadIdMarker"]), seen[-1])
            key_marker, id_marker = page["NextKeyMarker"], page["NextUploadIdMarker"]
        self.assertEqual(seen, listed)
        paged = S3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
        self.assertEqual([(u["Key"], u["UploadId"]) for p in paged for u in p["Uploads"]], listed)
        after_a = S3.list_multipart_uploads(Bucket=bucket, KeyMarker="mp/a")
        self.assertEqual([u["Key"] for u in after_a["Uploads"]], ["mp/b", "mp/c", "mp/c", "mp/dir/x", "other"])
        rolled = S3.list_multipart_uploads(Bucket=bucket, Prefix="mp/", Delimiter="/", MaxUploads=3)
        self.assertEqual([u["Key"] for u in rolled["Uploads"]], ["mp/a", "mp/a", "mp/b"])
        self.assertTrue(rolled["IsTruncated"])
        rest = S3.list_multipart_uploads(
            Bucket=bucket, Prefix="mp/", Delimiter="/", KeyMarker=rolled["NextKeyMarker"], UploadIdMarker=rolled["NextUploadIdMarker"]
        )
        self.assertEqual([u["Key"] for u in rest["Uploads"]], ["mp/c", "mp/c"])
        self.assertEqual([p["Prefix"] for p in rest["CommonPrefixes"]], ["mp/dir/"])
        self.assertFalse(rest["IsTruncated"])
        for key, upload_id in listed:
            S3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)


class Checksums(unittest.TestCase):
    """Additional checksums (`x-amz-checksum-*`), which boto3 sends with every upload."""

    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()

    def test_the_default_crc32_is_checked_kept_and_returned(self):
        body = b"checksummed body"
        crc32 = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        put = S3.put_object(Bucket=self.bucket, Key="crc", Body=body)
        self.assertEqual(put["ChecksumCRC32"], crc32)
        head = S3.head_object(Bucket=self.bucket, Key="crc", ChecksumMode="ENABLED")
        self.assertEqual(head["ChecksumCRC32"], crc32)
        self.assertNotIn("ChecksumCRC32", S3.head_object(Bucket=self.bucket, Key="crc"))
        # boto3 checks a returned checksum against the body it reads.
        got = S3.get_object(Bucket=self.bucket, Key="crc", ChecksumMode="ENABLED")
        self.assertEqual((got["ChecksumCRC32"], got["Body"].read()), (crc32, body))
        ranged = S3.get_object(Bucket=self.bucket, Key="crc", ChecksumMode="ENABLED", Range="bytes=0-3")
        self.assertNotIn("ChecksumCRC32", ranged)

    def test_other_algorithms_and_a_wrong_checksum(self):
        body = pattern(3 * MIB, 8)
        put = S3.put_object(Bucket=self.bucket, Key="sha", Body=body, ChecksumAlgorithm="SHA256")
        self.assertEqual(put["ChecksumSHA256"], base64.b64encode(hashlib.sha256(body).digest()).decode())
        wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
        self.assertEqual(error_code(S3.put_object, Bucket=self.bucket, Key="bad", Body=body, ChecksumSHA1=wrong), "BadDigest")
        self.assertEqual(error_code(S3.head_object, Bucket=self.bucket, Key="bad"), "404")

    def test_parts_are_checked(self):
        upload_id = S3.create_multipart_upload(Bucket=self.bucket, Key="parts", ChecksumAlgorithm="CRC32")["UploadId"]
        wrong = S3.upload_part
        self.assertEqual(
            error_code(wrong, Bucket=self.bucket, Key="parts", UploadId=upload_id, PartNumber=1, Body=b"part", ChecksumCRC32="AAAAAA=="),
            "BadDigest",
        )
        data = [pattern(5 * MIB, 1), b"part"]
        crcs = [zlib.crc32(piece).to_bytes(4, "big") for piece in data]
        parts = []
        for number, piece in enumerate(data, 1):
            part = S3.upload_part(Bucket=self.bucket, Key="parts", UploadId=upload_id, PartNumber=number, Body=piece)
            self.assertEqual(part["ChecksumCRC32"], base64.b64encode(crcs[number - 1]).decode())
            parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumCRC32": part["ChecksumCRC32"]})
        wrong = [parts[0], dict(parts[1], ChecksumCRC32="AAAAAA==")]
        complete = lambda parts: S3.complete_multipart_upload(
            Bucket=self.bucket, Key="parts", UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        self.assertEqual(error_code(complete, wrong), "InvalidPart")
        done = complete(parts)
        # S3's composite checksum: the CRC32 of the parts' CRC32s, then the part count.
        composite = base64.b64encode(zlib.crc32(b"".join(crcs)).to_bytes(4, "big")).decode() + "-2"
        self.assertEqual((done["ChecksumCRC32"], done["ChecksumType"]), (composite, "COMPOSITE"))
        head = S3.head_object(Bucket=self.bucket, Key="parts", ChecksumMode="ENABLED")
        self.assertEqual((head["ChecksumCRC32"], head["ChecksumType"]), (composite, "COMPOSITE"))
        got = S3.get_object(Bucket=self.bucket, Key="parts", ChecksumMode="ENABLED")["Body"].read()
        self.assertEqual(got, b"".join(data))

    def test_the_transfer_manager_round_trips_a_multipart_file(self):
        """upload_file sends part checksums and names them again on completion."""
        data = pattern(20 * MIB, 3)
        with tempfile.TemporaryDirectory() as scratch:
            source, back = os.path.join(scratch, "up.bin"), os.path.join(scratch, "down.bin")
            with open(source, "wb") as file:
                file.write(data)
            S3.upload_file(source, self.bucket, "managed.bin")
            S3.download_file(self.bucket, "managed.bin", back)
            with open(back, "rb") as file:
                self.assertEqual(hashlib.sha256(file.read()).digest(), hashlib.sha256(data).digest())
        head = S3.head_object(Bucket=self.bucket, Key="managed.bin", ChecksumMode="ENABLED")
        self.assertRegex(head["ETag"], r'-3"$')
        self.assertEqual(head.get("ChecksumType"), "COMPOSITE", head)

    def test_a_checksum_sent_as_a_trailer_of_an_aws_chunked_body(self):
        """What SDKs send over HTTPS: the checksum follows the body, in an `aws-chunked` trailer."""
        body = pattern(100_000, 9)
        crc32 = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        self.assertEqual(self.put_with_trailer("trailer", body, crc32)[0], 200)
        head = S3.head_object(Bucket=self.bucket, Key="trailer", ChecksumMode="ENABLED")
        self.assertEqual((head["ContentLength"], head["ChecksumCRC32"]), (len(body), crc32))
        status, answer = self.put_with_trailer("trailer-bad", body, "AAAAAA==")
        self.assertEqual((status, "<Code>BadDigest</Code>" in answer), (400, True), answer)
        self.assertEqual(error_code(S3.head_object, Bucket=self.bucket, Key="trailer-bad"), "404")

    def put_with_trailer(self, key, body, crc32):
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        chunks = b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in (body[:65536], body[65536:]))
        payload = chunks + b"0\r\n" + f"x-amz-checksum-crc32:{crc32}\r\n\r\n".encode()
        request = AWSRequest(
            method="PUT",
            url=f"{ENDPOINT}/{self.bucket}/{key}",
            data=payload,
            headers={
                "Content-Encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(body)),
                "x-amz-trailer": "x-amz-checksum-crc32",
                "Content-Length": str(len(payload)),
            },
        )
        # Signs the headers only, with STREAMING-UNSIGNED-PAYLOAD-TRAILER as the payload hash.
        request.context["checksum"] = {"request_algorithm": {"algorithm": "crc32", "in": "trailer", "name": "x-amz-checksum-crc32"}}
        credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
        prepared = request.prepare()
        url = urllib.parse.urlsplit(prepared.url)
        connection = http.client.HTTPConnection(url.hostname, url.port)
        connection.request("PUT", url.path, body=payload, headers=dict(prepared.headers))
        response = connection.getresponse()
        answer = response.read().decode()
        connection.close()
        return response.status, answer


class Presigned(unittest.TestCase):
    def test_get_and_put_through_curl(self):
        bucket = new_bucket()
        put_url = S3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up.txt"}, ExpiresIn=300)
        with tempfile.NamedTemporaryFile() as file:
            file.write(b"uploaded by curl")
            file.flush()
            subprocess.run(["curl", "-sf", "-X", "PUT", "--upload-file", file.name, put_url], check=True)
        self.assertEqual(S3.get_object(Bucket=bucket, Key="up.txt")["Body"].read(), b"uploaded by curl")
        get_url = S3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "up.txt"}, ExpiresIn=300)
        out = subprocess.run(["curl", "-sf", get_url], check=True, capture_output=True).stdout
        self.assertEqual(out, b"uploaded by curl")
        tampered = get_url.replace("up.txt", "other.txt")
        status = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", tampered], capture_output=True, text=True).stdout
        self.assertEqual(status, "403")
        expired = client().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "up.txt"}, ExpiresIn=1)
        import time

        time.sleep(2)
        body = subprocess.run(["curl", "-s", expired], capture_output=True, text=True).stdout
        self.assertIn("<Code>AccessDenied</Code>", body)


class AuthErrors(unittest.TestCase):
    def test_signature_and_key_errors(self):
        wrong_secret = client(secret="x" * 40)
        self.assertEqual(error_code(wrong_secret.list_buckets), "SignatureDoesNotMatch")
        unknown = client(key_id="FBAAAAAAAAAAAAAAAAAA", secret="x" * 40)
        self.assertEqual(error_code(unknown.list_buckets), "InvalidAccessKeyId")
        from botocore import UNSIGNED

        anonymous = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1", config=Config(signature_version=UNSIGNED))
        self.assertEqual(error_code(anonymous.list_buckets), "AccessDenied")

    def test_user_keys_get_only_what_the_policy_grants(self):
        bucket = new_bucket()
        S3.put_object(Bucket=bucket, Key="secret", Body=b"x")
        user = client(os.environ["FERROBASE_USER_KEY_ID"], os.environ["FERROBASE_USER_SECRET"])
        self.assertEqual(error_code(user.get_object, Bucket=bucket, Key="secret"), "AccessDenied")
        self.assertEqual(error_code(user.put_object, Bucket=bucket, Key="mine", Body=b"x"), "AccessDenied")

    def test_user_keys_with_a_subject_follow_sub_patterns(self):
        bucket = new_bucket()
        put_policy({"rules": [{"roles": ["user"], "actions": ["read", "write"], "resources": [f"storage:{bucket}/{{sub}}/**"]}]})
        S3.put_object(Bucket=bucket, Key="bob/me.png", Body=b"bob")
        alice = client(os.environ["FERROBASE_ALICE_KEY_ID"], os.environ["FERROBASE_ALICE_SECRET"])
        alice.put_object(Bucket=bucket, Key="alice/me.png", Body=b"alice")
        self.assertEqual(alice.get_object(Bucket=bucket, Key="alice/me.png")["Body"].read(), b"alice")
        self.assertEqual(error_code(alice.get_object, Bucket=bucket, Key="bob/me.png"), "AccessDenied")
        self.assertEqual(error_code(alice.put_object, Bucket=bucket, Key="bob/me.png", Body=b"x"), "AccessDenied")
        key_id = os.environ["FERROBASE_ALICE_KEY_ID"]
        self.assertEqual(error_code(alice.put_object, Bucket=bucket, Key=f"{key_id}/me.png", Body=b"x"), "AccessDenied")
        self.assertEqual(S3.get_object(Bucket=bucket, Key="bob/me.png")["Body"].read(), b"bob")


class DeleteObjectsChecksItsBody(unittest.TestCase):
    """DeleteObjects deletes nothing unless its body is the one the client vouched for."""

    def setUp(self):
        self.bucket = new_bucket()
        for key in ("a", "b"):
            S3.put_object(Bucket=self.bucket, Key=key, Body=b"x")

    def keys(self):
        return [o["Key"] for o in S3.list_objects_v2(Bucket=self.bucket).get("Contents", [])]

    def test_a_wrong_or_malformed_digest_deletes_nothing(self):
        body = delete_xml(["a", "b"])
        md5 = lambda data: base64.b64encode(hashlib.md5(data).digest()).decode()
        crc32 = lambda data: base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        path = f"/{self.bucket}?delete"
        cases = [
            ({"Content-MD5": md5(delete_xml(["other"]))}, "BadDigest"),
            ({"Content-MD5": "not-an-md5!"}, "InvalidDigest"),
            ({"Content-MD5": base64.b64encode(b"short").decode()}, "InvalidDigest"),
            ({"x-amz-checksum-crc32": crc32(b"another body")}, "BadDigest"),
            ({"x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(b"x").digest()).decode()}, "BadDigest"),
        ]
        for headers, code in cases:
            status, got, answer = signed("POST", path, body, headers)
            self.assertEqual((status, got), (400, code), (headers, answer))
            self.assertEqual(self.keys(), ["a", "b"], headers)
        status, got, answer = signed("POST", path, body, {"Content-MD5": md5(body), "x-amz-checksum-crc32": crc32(body)})
        self.assertEqual((status, got), (200, None), answer)
        self.assertEqual(self.keys(), [])

    def test_more_than_1000_keys_is_malformed(self):
        body = delete_xml([f"k{i}" for i in range(1001)] + ["a"])
        status, code, answer = signed("POST", f"/{self.bucket}?delete", body, {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()})
        self.assertEqual((status, code), (400, "MalformedXML"), answer)
        self.assertEqual(self.keys(), ["a", "b"])
        # boto3, which sends its own checksum, deletes 1,000 at once.
        S3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(999)] + [{"Key": "a"}]})
        self.assertEqual(self.keys(), ["b"])


class RequestsAreBounded(unittest.TestCase):
    """Oversized or malformed requests get S3 errors that echo little of what was sent."""

    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()

    def test_an_oversized_complete_multipart_upload_body(self):
        upload = S3.create_multipart_upload(Bucket=self.bucket, Key="big-xml")["UploadId"]
        part = '<Part><PartNumber>1</PartNumber><ETag>"%s"</ETag></Part>' % ("0" * 32)
        body = ("<CompleteMultipartUpload>" + part * (20_000_000 // len(part)) + "</CompleteMultipartUpload>").encode()
        status, code, answer = signed("POST", f"/{self.bucket}/big-xml?uploadId={upload}", body)
        self.assertEqual((status, code), (400, "MaxMessageLengthExceeded"), answer[:300])
        # Without a declared length it is refused too, as S3 does.
        status, code, answer = signed("POST", f"/{self.bucket}/big-xml?uploadId={upload}", body, chunked=True)
        self.assertEqual((status, code), (411, "MissingContentLength"), answer[:300])

    def test_a_huge_etag_is_not_echoed(self):
        upload = S3.create_multipart_upload(Bucket=self.bucket, Key="huge-etag")["UploadId"]
        S3.upload_part(Bucket=self.bucket, Key="huge-etag", UploadId=upload, PartNumber=1, Body=b"x")
        etag = "e" * 4_000_000
        body = f'<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"{etag}"</ETag></Part></CompleteMultipartUpload>'.encode()
        status, code, answer = signed("POST", f"/{self.bucket}/huge-etag?uploadId={upload}", body)
        self.assertEqual((status, code), (400, "InvalidPart"), answer[:300])
        self.assertLess(len(answer), 2000)

    def test_a_bogus_metadata_directive(self):
        S3.put_object(Bucket=self.bucket, Key="src", Body=b"x")
        status, code, answer = signed(
            "PUT",
            f"/{self.bucket}/dst",
            headers={"x-amz-copy-source": f"/{self.bucket}/src", "x-amz-metadata-directive": "BOGUS"},
        )
        self.assertEqual((status, code), (400, "InvalidArgument"), answer)
        self.assertEqual(error_code(S3.head_object, Bucket=self.bucket, Key="dst"), "404")

    def test_copying_an_object_onto_itself_must_change_its_metadata(self):
        S3.put_object(Bucket=self.bucket, Key="self", Body=b"x", Metadata={"v": "1"})
        source = {"Bucket": self.bucket, "Key": "self"}
        try:
            S3.copy_object(Bucket=self.bucket, Key="self", CopySource=source)
            raise AssertionError("the copy succeeded")
        except ClientError as error:
            self.assertEqual(error.response["Error"]["Code"], "InvalidRequest")
            self.assertIn("copy an object to itself without changing", error.response["Error"]["Message"])
        self.assertEqual(error_code(S3.copy_object, Bucket=self.bucket, Key="self", CopySource=source, MetadataDirective="COPY"), "InvalidRequest")
        S3.copy_object(Bucket=self.bucket, Key="self", CopySource=source, MetadataDirective="REPLACE", Metadata={"v": "2"})
        self.assertEqual(S3.head_object(Bucket=self.bucket, Key="self")["Metadata"], {"v": "2"})


class ListingsShowOnlyWhatTheCallerMayRead(unittest.TestCase):
    """A user whose policy grants `users/{sub}/**` lists a shared bucket: other users' keys,
    their prefixes and cursors naming them never appear."""

    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket()
        cls.hidden = ["aaa/hidden.txt", "users/bob/secret-plan.txt", "users/bob/x/y.txt", "users/carol.txt", "zzz-top.txt"]
        cls.mine = ["users/alice/a.txt", "users/alice/b/c.txt"]
        for key in cls.hidden + cls.mine:
            S3.put_object(Bucket=cls.bucket, Key=key, Body=b"x")
        put_policy({"rules": [{"roles": ["user"], "actions": ["read", "write"], "resources": [f"storage:{cls.bucket}/users/{{sub}}/**"]}]})

    def assert_names_nothing_hidden(self, value):
        if value is None:
            return
        texts = [value]
        try:
            texts.append(base64.urlsafe_b64decode(value.lstrip("~") + "=" * (-len(value.lstrip("~")) % 4)).decode("latin-1"))
        except ValueError:
            pass
        for text in texts:
            for word in ("bob", "carol", "aaa", "zzz"):
                self.assertNotIn(word, text)

    def test_v2_keys_prefixes_and_tokens(self):
        user = alice()
        listed = user.list_objects_v2(Bucket=self.bucket)
        self.assertEqual([o["Key"] for o in listed["Contents"]], self.mine)
        self.assertEqual(listed["KeyCount"], 2)
        top = user.list_objects_v2(Bucket=self.bucket, Delimiter="/")
        self.assertEqual([p["Prefix"] for p in top.get("CommonPrefixes", [])], ["users/"])
        self.assertNotIn("Contents", top)
        users = user.list_objects_v2(Bucket=self.bucket, Prefix="users/", Delimiter="/")
        self.assertEqual([p["Prefix"] for p in users.get("CommonPrefixes", [])], ["users/alice/"])
        self.assertNotIn("Contents", users)
        keys, token, pages = [], None, 0
        while True:
            page = user.list_objects_v2(Bucket=self.bucket, MaxKeys=1, **({"ContinuationToken": token} if token else {}))
            keys += [o["Key"] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            self.assert_names_nothing_hidden(token)
            pages += 1
            if not page["IsTruncated"]:
                break
            self.assertLess(pages, 20)
        self.assertEqual(keys, self.mine)
        # The paginator boto3 users reach for gives the same.
        paged = [o["Key"] for page in user.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, PaginationConfig={"PageSize": 1}) for o in page.get("Contents", [])]
        self.assertEqual(paged, self.mine)
        # A forged or foreign cursor is refused, not followed.
        self.assertEqual(error_code(user.list_objects_v2, Bucket=self.bucket, ContinuationToken="~" + "A" * 80), "InvalidArgument")
        # A service key still reads everything, with plain tokens that resume after a key.
        everything = [o["Key"] for page in S3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, PaginationConfig={"PageSize": 2}) for o in page.get("Contents", [])]
        self.assertEqual(everything, sorted(self.hidden + self.mine))

    def test_v1_keys_and_markers(self):
        user = alice()
        keys, marker, pages = [], "", 0
        while True:
            page = user.list_objects(Bucket=self.bucket, MaxKeys=1, Marker=marker)
            contents = [o["Key"] for o in page.get("Contents", [])]
            keys += contents
            self.assert_names_nothing_hidden(page.get("NextMarker"))
            pages += 1
            if not page["IsTruncated"]:
                break
            self.assertLess(pages, 20)
            marker = page.get("NextMarker") or contents[-1]
        self.assertEqual(keys, self.mine)
        users = user.list_objects(Bucket=self.bucket, Prefix="users/", Delimiter="/")
        self.assertEqual([p["Prefix"] for p in users.get("CommonPrefixes", [])], ["users/alice/"])
        paged = [o["Key"] for page in user.get_paginator("list_objects").paginate(Bucket=self.bucket, PaginationConfig={"PageSize": 1}) for o in page.get("Contents", [])]
        self.assertEqual(paged, self.mine)

    def test_multipart_uploads(self):
        user = alice()
        others = [S3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"] for key in ["users/bob/big.bin", "users/bob/dir/part.bin", "zzz.bin"]]
        # ListParts answers only for a key the caller may read, and only that key's uploads.
        self.assertEqual(error_code(user.list_parts, Bucket=self.bucket, Key="users/bob/big.bin", UploadId=others[0]), "AccessDenied")
        self.assertEqual(error_code(user.list_parts, Bucket=self.bucket, Key="users/alice/big.bin", UploadId=others[0]), "NoSuchUpload")
        mine = user.create_multipart_upload(Bucket=self.bucket, Key="users/alice/big.bin")["UploadId"]
        listed = user.list_multipart_uploads(Bucket=self.bucket)
        self.assertEqual([(u["Key"], u["UploadId"]) for u in listed.get("Uploads", [])], [("users/alice/big.bin", mine)])
        rolled = user.list_multipart_uploads(Bucket=self.bucket, Prefix="users/", Delimiter="/")
        self.assertEqual([p["Prefix"] for p in rolled.get("CommonPrefixes", [])], ["users/alice/"])
        marker, pages = {}, 0
        while True:
            page = user.list_multipart_uploads(Bucket=self.bucket, MaxUploads=1, **marker)
            self.assert_names_nothing_hidden(page.get("NextKeyMarker"))
            pages += 1
            if not page["IsTruncated"]:
                break
            self.assertLess(pages, 20)
            marker = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
        self.assertEqual(len(S3.list_multipart_uploads(Bucket=self.bucket)["Uploads"]), 4)


if __name__ == "__main__":
    unittest.main(verbosity=2)
