"""The management plane's load for bench.py: REST mutations at a fixed rate and a /metrics
scrape every second, against a running `ferrofab serve`, while perf measures the data path.

Each mutation is an engine action persisted to the state directory (write, fsync, rename,
fsync of the directory) before it is acknowledged: alternately adding a 1 MiB null namespace
to a churn subsystem and removing it again.
"""

import http.client
import json
import threading
import time

CHURN_NQN = "nqn.2026-01.io.ferrofab:bench-churn"


class MgmtLoad:
    """Mutations at `rate` per second plus a scrape every `scrape_every` seconds, on threads."""

    def __init__(self, host, port, token, rate=100.0, scrape_every=1.0):
        self.host, self.port, self.token = host, port, token
        self.rate, self.scrape_every = rate, scrape_every
        self.stop_flag = threading.Event()
        self.mutations = 0
        self.failures = []
        self.scrapes = 0
        self.scrape_bytes = 0
        self.threads = []
        self.t0 = self.t1 = None

    def _conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def _request(self, conn, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    def setup(self):
        conn = self._conn()
        status, body = self._request(conn, "POST", "/api/v1/subsystems", {"nqn": CHURN_NQN})
        if status not in (201, 409):
            raise RuntimeError(f"cannot create {CHURN_NQN}: {status} {body[:200]!r}")
        conn.close()

    def _mutate(self):
        conn = self._conn()
        ns_path = f"/api/v1/subsystems/{CHURN_NQN}/namespaces"
        period = 1.0 / self.rate
        next_at = time.monotonic()
        # Start with whichever step applies now (an earlier run may have ended on an add).
        status, _ = self._request(conn, "GET", f"{ns_path}/1")
        add = status != 200
        while not self.stop_flag.is_set():
            try:
                if add:
                    status, body = self._request(
                        conn, "POST", ns_path, {"nsid": 1, "backend": "null", "size": "1MiB"}
                    )
                    ok = status == 201
                else:
                    status, body = self._request(conn, "DELETE", f"{ns_path}/1")
                    ok = status == 200
            except (OSError, http.client.HTTPException) as e:
                status, body, ok = None, str(e).encode(), False
                conn.close()
                conn = self._conn()
            if ok:
                self.mutations += 1
                add = not add
            elif len(self.failures) < 10:
                self.failures.append(f"{status} {body[:200]!r}")
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop_flag.wait(delay)
            else:
                # Behind schedule (the server is slower than the rate): do not burst.
                next_at = time.monotonic()
        conn.close()

    def _scrape(self):
        conn = self._conn()
        while not self.stop_flag.wait(self.scrape_every):
            try:
                status, body = self._request(conn, "GET", "/metrics")
            except (OSError, http.client.HTTPException) as e:
                status, body = None, str(e).encode()
                conn.close()
                conn = self._conn()
            if status == 200:
                self.scrapes += 1
                self.scrape_bytes += len(body)
            elif len(self.failures) < 10:
                self.failures.append(f"scrape: {status} {body[:200]!r}")
        conn.close()

    def start(self):
        self.t0 = time.monotonic()
        for f in (self._mutate, self._scrape):
            t = threading.Thread(target=f, daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=15)
        self.t1 = time.monotonic()

    def summary(self):
        secs = (self.t1 or time.monotonic()) - (self.t0 or time.monotonic())
        return {
            "seconds": secs,
            "mutations": self.mutations,
            "mutations_per_s": self.mutations / secs if secs > 0 else 0.0,
            "scrapes": self.scrapes,
            "scrape_bytes": self.scrape_bytes // max(self.scrapes, 1),
            "failures": self.failures,
        }
