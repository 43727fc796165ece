"""Edges of SiltClient.query_range against a live server: pages that end inside a run of
equal timestamps (nothing lost or read twice) and a page size above the server's limit
(stepped down to it). Prints facts as JSON. Args: SILT_URL."""

import json
import sys
import time

from silt_airflow.client import SiltClient

url = sys.argv[1]
base = (int(time.time()) - 600) * 10**9
# 30 entries in 10 timestamps (three each); the line names its timestamp group.
entries = [(base + (i // 3) * 1000, f"group {i // 3:02d} entry {i:02d}") for i in range(30)]
SiltClient(url).push({"job": "paging-edges"}, entries)

small = SiltClient(url, page_size=4)
requests = []
real = small._request
small._request = lambda m, p, *a: requests.append(p) or real(m, p, *a)
got, notes = small.query_range('{job="paging-edges"}', base, base + 10**9)
big, big_notes = SiltClient(url, page_size=6000).query_range('{job="paging-edges"}', base, base + 10**9)

print(
    json.dumps(
        {
            "pushed": len(entries),
            "read": len(got),
            "same_entries": sorted(got) == sorted(entries),
            "times_ascending": all(a[0] <= b[0] for a, b in zip(got, got[1:])),
            "groups_in_order": [line[:8] for _, line in got] == [line[:8] for _, line in entries],
            "requests": len(requests),
            "notes": notes,
            "big_page_read": len(big),
        }
    )
)
