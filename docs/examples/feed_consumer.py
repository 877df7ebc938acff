#!/usr/bin/env python3
"""Follows segd's change feed and never misses a change.

Long-polls GET /v1/changes, hands every change to handle(), and stores the cursor in a file
after each page. Killed at any moment and started again, it resumes from the stored cursor:
it may see the page it was in again, and skips what it has processed by comparing cursors
(they are fixed-width hex, so text order is log order).

Usage: feed_consumer.py --url http://127.0.0.1:8080 --cursor-file ./cursor [--segment A ...]
       [--max-pages N]   (stop after N pages; for tests)
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def handle(change):
    """Replace with what the consumer does: warm a cache, notify a CRM, ..."""
    print(json.dumps(change, separators=(",", ":")), flush=True)


def load_cursor(path):
    try:
        with open(path) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def store_cursor(path, cursor):
    # Write then rename, so that a crash leaves either the old cursor or the new one.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(cursor)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--cursor-file", required=True)
    parser.add_argument("--segment", action="append", default=[])
    parser.add_argument("--max-pages", type=int, default=0)
    args = parser.parse_args()

    stored = load_cursor(args.cursor_file)
    cursor = stored or "0"  # first run: from the oldest retained change
    pages = 0
    while args.max_pages == 0 or pages < args.max_pages:
        query = [("after", cursor), ("wait", "30s"), ("limit", "1000")]
        query += [("segment", s) for s in args.segment]
        url = args.url + "/v1/changes?" + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(url, timeout=40) as response:
                page = json.load(response)
        except urllib.error.HTTPError as e:
            if e.code == 410:
                sys.exit("cursor expired: the history retention dropped what follows it; "
                         "reconcile from memberships, then delete the cursor file")
            sys.exit("segd answered %d: %s" % (e.code, e.read().decode()))
        except (urllib.error.URLError, OSError) as e:
            print("segd unreachable (%s); retrying" % e, file=sys.stderr)
            time.sleep(1)
            continue
        for change in page["changes"]:
            if stored is not None and change["cursor"] <= stored:
                continue  # seen before the last restart
            handle(change)
        cursor = page["next"]
        store_cursor(args.cursor_file, cursor)
        stored = cursor
        pages += 1


if __name__ == "__main__":
    main()
