#!/usr/bin/env python3
"""Chaos under load against deploy/local-ha (first scenarios; standard library only).

    deploy/local-ha/up.sh && python3 deploy/local-ha/chaos.py [SCENARIO ...]; deploy/local-ha/down.sh

Each scenario runs a steady mixed load through the load balancer (redirects over many links,
creates carrying Idempotency-Keys and retried with the same key until acknowledged, edits of a
few links), injects its fault, heals it, and then checks the recorded history:
  - every acknowledged link exists with its exact (latest acknowledged) URL;
  - no redirect answered a destination that was never that code's, nor one replaced longer
    than STALE_BOUND before the answer;
  - every create whose outcome was unknown was resolved by its idempotent retry.
It prints one row per scenario: redirect success ratio, longest write outage, links lost,
wrong redirects. Exit status 1 if a checker fails.
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

STALE_BOUND = 2.0  # seconds an edit may take to reach every instance (notifications: < 1 s)
LINKS = 200
EDITED = 10


def env():
    ha = os.environ.get("HA_DIR", "/tmp/snip-ha")
    out = {}
    with open(os.path.join(ha, "env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            out[k] = v
    return out


E = env()
URL, KEY, HA = E["SNIP_URL"], E["SNIP_ADMIN_KEY"], E["HA_DIR"]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def api(method, path, body=None, headers=None, timeout=10):
    h = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
    h.update(headers or {})
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.load(r) if r.status != 204 else None


class History:
    def __init__(self):
        self.lock = threading.Lock()
        # code -> list of (acknowledged_at, url, certain), in acknowledgement order; an edit
        # whose outcome is unknown is a possible URL, never a replacement to be stale against
        self.urls = {}
        self.create_ok = []  # times of acknowledged creates
        self.create_failed_attempts = 0
        self.unknown_resolved = 0
        self.redirects = {"ok": 0, "failed": 0, "wrong": 0, "stale": 0}
        self.wrong = []
        self.edited = set()

    def acked(self, code, url, certain=True):
        with self.lock:
            self.urls.setdefault(code, []).append((time.time(), url, certain))


def create(h, i, stop):
    url = f"https://example.com/chaos/{i}"
    key = str(uuid.uuid4())
    unknown = False
    while not stop.is_set() or unknown:
        try:
            _, link = api("POST", "/api/v1/links", {"url": url}, {"Idempotency-Key": key})
            h.acked(link["code"], url)
            with h.lock:
                h.create_ok.append(time.time())
                h.unknown_resolved += unknown
            return
        except Exception:
            # 503, timeout, reset: the outcome is unknown until the same key answers.
            unknown = True
            with h.lock:
                h.create_failed_attempts += 1
            time.sleep(0.2)


def redirect_check(h, code):
    started = time.time()
    try:
        OPENER.open(URL + "/" + code, timeout=5)
        result = "failed"  # not a redirect
    except urllib.error.HTTPError as e:
        if e.code != 302:
            result = "failed"
        else:
            loc = e.headers["Location"]
            with h.lock:
                versions = list(h.urls.get(code, []))
            idx = [i for i, (_, u, _) in enumerate(versions) if u == loc]
            if not idx:
                result = "wrong"
                h.wrong.append((code, loc))
            else:
                i = idx[-1]
                later = [t for t, _, certain in versions[i + 1:] if certain]
                replaced = later[0] if later else None
                result = "stale" if replaced and started - replaced > STALE_BOUND else "ok"
                if result == "stale":
                    h.wrong.append((code, loc, "stale"))
    except Exception:
        result = "failed"
    with h.lock:
        h.redirects[result] += 1
        # Links never edited stay cached on every instance (warmed before the load).
        if hasattr(h, "cached_redirects") and code not in h.edited:
            h.cached_redirects["total"] += 1
            h.cached_redirects["ok"] += result == "ok"


def load(h, stop, codes):
    def redirects():
        while not stop.is_set():
            redirect_check(h, random.choice(codes))

    def creates():
        i = 0
        while not stop.is_set():
            create(h, f"{time.time_ns()}-{i}", stop)
            i += 1
            time.sleep(0.05)

    def edits():
        n = 0
        while not stop.is_set():
            code = random.choice(codes[:EDITED])
            with h.lock:
                h.edited.add(code)
            n += 1
            url = f"https://example.com/edited/{code}/{n}"
            try:
                api("PATCH", f"/api/v1/links/{code}", {"url": url})
                h.acked(code, url)
            except Exception:
                # Unknown outcome: the new URL may or may not be in effect. Record it as possible
                # so that a redirect to it is not "wrong"; the final check reads the truth.
                h.acked(code, url, certain=False)
            time.sleep(0.3)

    threads = [threading.Thread(target=f, daemon=True) for f in (redirects, redirects, creates, edits)]
    for t in threads:
        t.start()
    return threads


def leader():
    for n in (1, 2, 3):
        try:
            port = int(E["HA_PORT"]) + 7 + n
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=2) as r:
                members = json.load(r)["members"]
            return [m["name"] for m in members if m["role"] == "leader"][0]
        except Exception:
            continue
    return None


def sh(cmd):
    subprocess.run(cmd, shell=True, check=False)


def fault_instance_kill():
    pid = int(open(f"{HA}/run/snip2.pid").read())
    os.kill(pid, signal.SIGKILL)
    time.sleep(5)
    log = open(f"{HA}/log/snip2.log", "a")
    p = subprocess.Popen(
        [E["SNIP_BIN"], "serve", "--config", f"{HA}/conf/snip2.toml", "--admin-key", KEY],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
    )
    open(f"{HA}/run/snip2.pid", "w").write(str(p.pid))


def fault_primary_kill():
    name = leader()
    sh(f"pkill -9 -f 'patroni {HA}/conf/{name}.yml'")
    sh(f"kill -9 $(head -n 1 {HA}/{name}/data/postmaster.pid)")
    time.sleep(15)
    # The old primary rejoins as a replica (pg_rewind).
    sh(f"cd / && setsid -f runuser -u postgres -- patroni {HA}/conf/{name}.yml "
       f"</dev/null >>{HA}/log/patroni-{name}.log 2>&1")


def fault_redis_kill():
    here = os.path.dirname(os.path.abspath(__file__))
    redis = os.path.join(here, "..", "..", "scripts", "redis.sh")
    sh(f"bash {redis} stop {HA}/redis")
    time.sleep(5)
    sh(f"bash {redis} start {HA}/redis >/dev/null")


SCENARIOS = {
    "instance-kill": fault_instance_kill,
    "primary-kill": fault_primary_kill,
    "redis-kill": fault_redis_kill,
}


def run(name, fault):
    h = History()
    codes = []
    for i in range(LINKS):
        url = f"https://example.com/base/{name}/{i}"
        _, link = api("POST", "/api/v1/links", {"url": url})
        h.acked(link["code"], url)
        codes.append(link["code"])
    # Cached on every instance (directly, not through the balancer).
    for i in range(1, int(E["SNIP_INSTANCES"]) + 1):
        base = f"http://127.0.0.1:{int(E['HA_PORT']) + 80 + i}"
        for c in codes:
            try:
                OPENER.open(f"{base}/{c}", timeout=5)
            except urllib.error.HTTPError:
                pass
    h.redirects = {"ok": 0, "failed": 0, "wrong": 0, "stale": 0}
    h.cached_redirects = {"ok": 0, "total": 0}
    stop = threading.Event()
    threads = load(h, stop, codes)
    time.sleep(5)
    fault_at = time.time()
    fault()
    time.sleep(10)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    # Longest gap between acknowledged creates around the fault.
    ok = sorted(t for t in h.create_ok if t >= fault_at - 5)
    gaps = [b - a for a, b in zip(ok, ok[1:])]
    outage = max(gaps) if gaps else float("nan")
    # Every acknowledged link exists with its exact latest URL (edits with unknown outcome: any
    # of their possible URLs, but a URL this history produced).
    lost = wrong_final = 0
    for code, versions in h.urls.items():
        try:
            _, link = api("GET", f"/api/v1/links/{code}")
        except Exception:
            lost += 1
            continue
        if link["url"] not in [u for _, u, _ in versions]:
            wrong_final += 1
    r = h.redirects
    total = sum(r.values())
    ratio = r["ok"] / total if total else float("nan")
    row = {
        "scenario": name,
        "redirects": total,
        "redirect_success": round(ratio, 5),
        "cached_redirect_success": round(
            h.cached_redirects["ok"] / max(1, h.cached_redirects["total"]), 5
        ),
        "wrong_redirects": r["wrong"],
        "stale_beyond_bound": r["stale"],
        "write_outage_s": round(outage, 2),
        "links_acked": len(h.urls),
        "links_lost": lost,
        "wrong_final_url": wrong_final,
        "unknown_creates_resolved": h.unknown_resolved,
    }
    passed = lost == 0 and wrong_final == 0 and r["wrong"] == 0 and r["stale"] == 0
    return row, passed


def main():
    names = sys.argv[1:] or list(SCENARIOS)
    failed = False
    for n in names:
        row, passed = run(n, SCENARIOS[n])
        failed |= not passed
        print(json.dumps(row), "PASS" if passed else "FAIL", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
