"""NOT FOR PRODUCTION (devMode.moto): creates the development bucket in moto.

Waits until the moto S3 mock at MOTO_URL answers, then creates BUCKET with a
plain PUT (moto accepts unsigned requests); a bucket that exists already is
fine. moto's postStart hook runs it, so a restarted (empty) moto gets its
bucket back, and so does an init container of the sessiond pods, so they start
only once the bucket is there. Standard library only: it runs in the moto
image and in the sessiond image.
"""

import os
import sys
import time
import urllib.error
import urllib.request

url = os.environ.get("MOTO_URL", "http://127.0.0.1:5000").rstrip("/")
bucket = os.environ["BUCKET"]
deadline = time.monotonic() + float(os.environ.get("TIMEOUT_SECONDS", "120"))
while True:
    try:
        request = urllib.request.Request(f"{url}/{bucket}", method="PUT")
        with urllib.request.urlopen(request, timeout=5):
            print(f"bucket {bucket} ready at {url}")
            break
    except urllib.error.HTTPError as exc:
        if exc.code == 409:  # BucketAlreadyOwnedByYou
            print(f"bucket {bucket} ready at {url}")
            break
        error: Exception = exc
    except OSError as exc:
        error = exc
    if time.monotonic() > deadline:
        sys.exit(f"cannot create bucket {bucket} at {url}: {error}")
    time.sleep(1)
