#!/usr/bin/env bash
# Ferrobase's S3 endpoint through aws-cli, unchanged. Run by tests/tests/s3_clients.rs with
# S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set (see tests/python/ for the rest).
# Prints one line per check and "N passed, N failed" last; exits non-zero on any failure.
set -uo pipefail

export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_MAX_ATTEMPTS=1
aws_s3() { aws --endpoint-url "$S3_ENDPOINT" "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bucket="cli-$RANDOM$RANDOM"
passed=0 failed=0

check() { # name, command...
  local name=$1; shift
  if output=$("$@" 2>&1); then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; printf '%s\n' "$output" | sed 's/^/     /' | tail -n 5
  fi
}

# The error code of a failing aws command, e.g. NoSuchKey ("ok" when it succeeded).
code_of() { "$@" 2>&1 >/dev/null | sed -n 's/.*An error occurred (\([A-Za-z0-9]*\)).*/\1/p' | head -n 1; }
expect_code() { # expected, command...
  local expected=$1; shift
  local got; got=$(code_of "$@")
  [[ "$got" == "$expected" ]] || { echo "expected $expected, got '${got:-success}'"; return 1; }
}

same_file() { cmp -s "$1" "$2" || { echo "$1 and $2 differ"; return 1; }; }

head -c 3000000 /dev/urandom >"$work/random.bin"
printf 'hello from aws-cli\n' >"$work/hello.txt"

check "mb creates a bucket" aws_s3 s3 mb "s3://$bucket"
check "creating it again succeeds (us-east-1: you own it)" aws_s3 s3api create-bucket --bucket "$bucket"
check "ls lists the bucket" bash -c "aws --endpoint-url '$S3_ENDPOINT' s3 ls | grep -q ' $bucket\$'"
check "cp uploads a file" aws_s3 s3 cp "$work/hello.txt" "s3://$bucket/docs/hello.txt"
check "cp uploads a 3 MB file" aws_s3 s3 cp "$work/random.bin" "s3://$bucket/data/random.bin"
check "cp downloads it intact" bash -c "aws --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/data/random.bin' '$work/back.bin' && cmp -s '$work/random.bin' '$work/back.bin'"
check "cp streams to stdout" bash -c "[[ \$(aws --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/docs/hello.txt' -) == 'hello from aws-cli' ]]"
check "head-object reports size and ETag" bash -c "aws --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key docs/hello.txt | grep -q '\"ContentLength\": 19'"
check "put-object keeps metadata" aws_s3 s3api put-object --bucket "$bucket" --key meta.txt --body "$work/hello.txt" --metadata color=blue --content-type text/x-test
check "head-object returns metadata" bash -c "aws --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key meta.txt | tr -d ' \n' | grep -q '\"Metadata\":{\"color\":\"blue\"}'"
check "get-object with a range" bash -c "aws --endpoint-url '$S3_ENDPOINT' s3api get-object --bucket '$bucket' --key docs/hello.txt --range bytes=0-4 '$work/range.txt' >/dev/null && [[ \$(cat '$work/range.txt') == hello ]]"
check "an unsatisfiable range" expect_code InvalidRange aws_s3 s3api get-object --bucket "$bucket" --key docs/hello.txt --range bytes=100-200 "$work/x"
check "if-match with another ETag" expect_code PreconditionFailed aws_s3 s3api get-object --bucket "$bucket" --key docs/hello.txt --if-match '"0000"' "$work/x"
check "if-none-match with the ETag" expect_code 304 aws_s3 s3api get-object --bucket "$bucket" --key docs/hello.txt --if-none-match "\"$(md5sum "$work/hello.txt" | cut -d' ' -f1)\"" "$work/x"
check "a missing key" expect_code NoSuchKey aws_s3 s3api get-object --bucket "$bucket" --key missing "$work/x"
check "a missing bucket" expect_code NoSuchBucket aws_s3 s3api list-objects-v2 --bucket "no-such-$bucket"
check "ls with a delimiter" bash -c "aws --endpoint-url '$S3_ENDPOINT' s3 ls 's3://$bucket/' | grep -q 'PRE docs/'"
for i in $(seq 1 30); do printf '%s' "$i" >"$work/n$i"; done
check "sync uploads a directory" bash -c "mkdir '$work/tree' && cp '$work'/n* '$work/tree/' && aws --endpoint-url '$S3_ENDPOINT' s3 sync '$work/tree' 's3://$bucket/tree/' >/dev/null"
check "list-objects-v2 pages with max-items" bash -c "[[ \$(aws --endpoint-url '$S3_ENDPOINT' s3api list-objects-v2 --bucket '$bucket' --prefix tree/ --page-size 7 --query 'length(Contents)') == 30 ]]"
head -c 20000000 /dev/urandom >"$work/big.bin"
check "cp uploads 20 MB as a multipart upload" aws_s3 s3 cp "$work/big.bin" "s3://$bucket/big.bin"
check "its ETag is a multipart ETag" bash -c "aws --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key big.bin | grep -q 'ETag.*-[0-9]'"
check "it downloads intact" bash -c "aws --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/big.bin' '$work/big.back' >/dev/null && cmp -s '$work/big.bin' '$work/big.back'"
check "put-object of 20 MB in one request" aws_s3 s3api put-object --bucket "$bucket" --key big-single.bin --body "$work/big.bin"
check "its ETag is BLAKE3-based, not the MD5" bash -c "aws --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key big-single.bin | grep -Eq 'ETag.*[0-9a-f]{32}-1' && ! aws --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key big-single.bin | grep -q \"\$(md5sum '$work/big.bin' | cut -d' ' -f1)\""
check "cp downloads it intact" bash -c "aws --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/big-single.bin' '$work/big-single.back' >/dev/null && cmp -s '$work/big.bin' '$work/big-single.back'"
check "cp within the bucket copies" aws_s3 s3 cp "s3://$bucket/docs/hello.txt" "s3://$bucket/copy/hello.txt"
check "the copy reads back" bash -c "[[ \$(aws --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/copy/hello.txt' -) == 'hello from aws-cli' ]]"
check "presign makes a URL curl can GET" bash -c "[[ \$(curl -sf \"\$(aws --endpoint-url '$S3_ENDPOINT' s3 presign 's3://$bucket/docs/hello.txt' --expires-in 60)\") == 'hello from aws-cli' ]]"
check "a non-empty bucket is not removed" expect_code BucketNotEmpty aws_s3 s3api delete-bucket --bucket "$bucket"
check "rm --recursive empties it" aws_s3 s3 rm "s3://$bucket/" --recursive
check "rb removes the bucket" aws_s3 s3 rb "s3://$bucket"
check "wrong secret" expect_code SignatureDoesNotMatch env AWS_SECRET_ACCESS_KEY=wrongwrongwrongwrongwrongwrongwrongwrong aws --endpoint-url "$S3_ENDPOINT" s3api list-buckets
check "unknown key" expect_code InvalidAccessKeyId env AWS_ACCESS_KEY_ID=FBAAAAAAAAAAAAAAAAAA aws --endpoint-url "$S3_ENDPOINT" s3api list-buckets

echo "$passed passed, $failed failed"
((failed == 0))
