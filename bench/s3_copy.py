"""Server-side copies of one object through the S3 endpoint, in MB/s: CopyObject beside
UploadPartCopy (the whole object as one part, and in 8 MiB ranged parts as boto3's and
aws-cli's managed copies do), each assembled with CompleteMultipartUpload.

Usage: python3 bench/s3_copy.py ENDPOINT ACCESS_KEY_ID SECRET [SIZE_MIB] [RUNS]
Run by bench/storage.sh after `ferrobase-bench storage`; needs boto3.
"""

import sys
import time
import uuid

import boto3
from botocore.config import Config

MIB = 1024 * 1024


def main():
    endpoint, key_id, secret = sys.argv[1:4]
    size = int(sys.argv[4]) * MIB if len(sys.argv) > 4 else 64 * MIB
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id,
                      aws_secret_access_key=secret, config=Config(s3={"addressing_style": "path"}))
    bucket = "bench-copy-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="src", Body=bytes(range(256)) * (size // 256))
    source = {"Bucket": bucket, "Key": "src"}

    def copy_object(n):
        s3.copy_object(Bucket=bucket, Key=f"copy-{n}", CopySource=source)

    def part_copy(n, part_size):
        key = f"parts-{part_size}-{n}"
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        parts = []
        for number, start in enumerate(range(0, size, part_size), 1):
            end = min(start + part_size, size) - 1
            result = s3.upload_part_copy(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                                         CopySource=source, CopySourceRange=f"bytes={start}-{end}")
            parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})

    phases = [
        ("CopyObject", copy_object),
        ("UploadPartCopy, 1 part", lambda n: part_copy(n, size)),
        ("UploadPartCopy, 8 MiB parts", lambda n: part_copy(n, 8 * MIB)),
    ]
    print(f"\nserver-side copies of a {size // MIB} MiB object ({runs} runs each):")
    for name, run in phases:
        start = time.perf_counter()
        for n in range(runs):
            run(n)
        seconds = time.perf_counter() - start
        print(f"{name:<30} {runs * size / seconds / 1e6:9.1f} MB/s")


if __name__ == "__main__":
    main()
