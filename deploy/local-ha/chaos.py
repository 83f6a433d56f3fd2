#!/usr/bin/env python3
"""Chaos under load against deploy/local-ha (standard library only; run as root).

    deploy/local-ha/up.sh && python3 deploy/local-ha/chaos.py [SCENARIO ...]; deploy/local-ha/down.sh

Each scenario runs a steady mixed load through the load balancer (redirects over LINKS links,
creates carrying Idempotency-Keys and retried with the same key until acknowledged, edits of a
few links retried until acknowledged), injects its fault, heals it, and then checks the
recorded history:
  - no code was acknowledged by two creates (it would map to two URLs);
  - every acknowledged link exists with its exact URL (for an edited link: the latest
    acknowledged one, or one whose edit had an unknown outcome at some point);
  - no redirect answered a URL the code never had, nor one replaced more than the scenario's
    staleness bound before the redirect was asked for;
  - every create or edit whose outcome was unknown was resolved by its idempotent retry;
  - clicks: every redirect answered 302 is counted once (none lost beyond the scenario's
    documented bound, none counted twice).
It prints one JSON row per scenario as it ends, then a table. Exit status 1 if a check fails.
Scenarios: see SCENARIOS at the end (all of them run when none is named).
"""

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

LINKS = 200
EDITED = 10
STALE_BOUND = 2.0  # seconds an edit may take to reach every instance in rotation
FAILOVER_STALE_BOUND = 15.0  # the goal for a primary's failover (see SCENARIOS)
SWITCHOVER_STALE_BOUND = 5.0  # the goal for a switchover


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
PORT = int(E["HA_PORT"])
INSTANCES = int(E["SNIP_INSTANCES"])
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def api(method, path, body=None, headers=None, timeout=10, base=None):
    h = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
    h.update(headers or {})
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request((base or URL) + path, data=data, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.load(r) if r.status != 204 else None


def instance_url(i):
    return f"http://127.0.0.1:{PORT + 80 + i}"


def sh(cmd):
    subprocess.run(cmd, shell=True, check=False)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class History:
    def __init__(self):
        self.lock = threading.Lock()
        # code -> list of (acknowledged_at, url, certain), in acknowledgement order; an edit
        # whose outcome is unknown is a possible URL, never a replacement to be stale against
        self.urls = {}
        self.create_ok = []  # times of acknowledged creates
        self.unknown = 0  # creates and edits that had an unknown outcome...
        self.unknown_resolved = 0  # ...and were then acknowledged by a retry
        self.mapped_twice = 0  # codes returned by two different creates
        self.redirects = {"ok": 0, "failed": 0, "wrong": 0, "stale": 0}
        self.cached = {"ok": 0, "total": 0}
        self.wrong = []
        self.max_staleness = 0.0  # longest a replaced destination was still answered
        self.edited = set()
        # (code, url) of edits that had an unknown outcome: an attempt given up on by the client
        # may still commit later, after a newer edit (the final URL may then be this one).
        self.ambiguous = set()
        # Clicks: per code, redirects answered 302, and attempts with no answer (which the
        # server may or may not have counted).
        self.clicks = {}
        self.clicks_unknown = {}

    def acked(self, code, url, certain=True):
        with self.lock:
            self.urls.setdefault(code, []).append((time.time(), url, certain))


def retried(h, stop, attempt):
    """Runs `attempt` until it is acknowledged; once it had an unknown outcome, even after
    `stop` (the retry is what resolves it). Returns its result, or None if stopped first."""
    unknown = False
    while not stop.is_set() or unknown:
        try:
            result = attempt(unknown)
            with h.lock:
                h.unknown_resolved += unknown
            return result
        except Exception:
            # 503, timeout, reset: unknown until the retry answers.
            if not unknown:
                with h.lock:
                    h.unknown += 1
            unknown = True
            time.sleep(0.2)
    return None


def create(h, i, stop):
    url = f"https://example.com/chaos/{i}"
    key = str(uuid.uuid4())

    def attempt(_):
        _, link = api("POST", "/api/v1/links", {"url": url}, {"Idempotency-Key": key})
        return link

    link = retried(h, stop, attempt)
    if link is not None:
        with h.lock:
            # A code acknowledged by two creates would map to two URLs.
            h.mapped_twice += link["code"] in h.urls
        h.acked(link["code"], url)
        with h.lock:
            h.create_ok.append(time.time())


def edit(h, code, url, stop):
    # Possible from the moment it is sent (a redirect may answer it before the acknowledgement).
    h.acked(code, url, certain=False)

    def attempt(retry):
        if retry:
            with h.lock:
                h.ambiguous.add((code, url))
        return api("PATCH", f"/api/v1/links/{code}", {"url": url})

    if retried(h, stop, attempt) is not None:
        h.acked(code, url)


def redirect_check(h, code, stale_bound):
    started = time.time()
    counted = None  # True: a 302; None: no answer (may have been counted)
    try:
        OPENER.open(URL + "/" + code, timeout=10)
        result, counted = "failed", False  # not a redirect
    except urllib.error.HTTPError as e:
        if e.code != 302:
            result, counted = "failed", False
        else:
            counted = True
            loc = e.headers["Location"]
            with h.lock:
                versions = list(h.urls.get(code, []))
            idx = [i for i, (_, u, _) in enumerate(versions) if u == loc]
            if not idx:
                result = "wrong"
                h.wrong.append((code, loc))
            else:
                later = [t for t, _, certain in versions[idx[-1] + 1:] if certain]
                replaced = later[0] if later else None
                stale = replaced is not None and started - replaced > stale_bound
                result = "stale" if stale else "ok"
                if replaced is not None:
                    with h.lock:
                        h.max_staleness = max(h.max_staleness, started - replaced)
                if stale:
                    h.wrong.append((code, loc, "stale by", round(started - replaced, 2)))
    except Exception:
        result = "failed"
    with h.lock:
        h.redirects[result] += 1
        if counted:
            h.clicks[code] = h.clicks.get(code, 0) + 1
        elif counted is None:
            h.clicks_unknown[code] = h.clicks_unknown.get(code, 0) + 1
        # Links never edited stay cached on every instance (warmed before the load).
        if code not in h.edited:
            h.cached["total"] += 1
            h.cached["ok"] += result == "ok"


def load(h, stop, codes, stale_bound):
    def redirects():
        while not stop.is_set():
            redirect_check(h, random.choice(codes), stale_bound)

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
            n += 1
            edit(h, code, f"https://example.com/edited/{code}/{n}", stop)
            time.sleep(0.3)

    with h.lock:
        h.edited.update(codes[:EDITED])
    threads = [
        threading.Thread(target=f, daemon=True)
        for f in (redirects, redirects, creates, edits)
    ]
    for t in threads:
        t.start()
    return threads


# --- the topology -------------------------------------------------------------------------


def patroni_cluster():
    for n in (1, 2, 3):
        try:
            port = PORT + 7 + n
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/cluster", timeout=2) as r:
                return json.load(r)["members"]
        except Exception:
            continue
    return []


def leader():
    names = [m["name"] for m in patroni_cluster() if m["role"] == "leader"]
    return names[0] if names else None


def sync_standby():
    names = [m["name"] for m in patroni_cluster() if m["role"] == "sync_standby"]
    return names[0] if names else None


def start_patroni(name):
    sh(f"cd / && setsid -f runuser -u postgres -- patroni {HA}/conf/{name}.yml "
       f"</dev/null >>{HA}/log/patroni-{name}.log 2>&1")


def kill_postmaster(name):
    try:
        pid = int(open(f"{HA}/{name}/data/postmaster.pid").readline())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def kill_patroni(name):
    sh(f"pkill -9 -f 'patroni {HA}/conf/{name}.yml'")


def status(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return None


def cluster_healthy():
    members = patroni_cluster()
    leaders = [m for m in members if m["role"] == "leader" and m["state"] == "running"]
    streaming = [m for m in members if m["role"] != "leader" and m["state"] in ("streaming", "running")]
    syncs = [m for m in members if m["role"] == "sync_standby"]
    return len(leaders) == 1 and len(streaming) == 2 and len(syncs) >= 1


def wait_healthy(limit=180):
    """Until the database cluster has a leader, two replicas and a synchronous standby, and
    every snip instance answers /health with 200 (it hears the database)."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if cluster_healthy() and all(
            status(instance_url(i) + "/health") == 200 for i in range(1, INSTANCES + 1)
        ):
            time.sleep(3)  # HAProxy's rise 2 on every instance
            return
        time.sleep(0.5)
    raise SystemExit(f"the topology did not become healthy within {limit}s")


def instance_pid(i):
    try:
        return int(open(f"{HA}/run/snip{i}.pid").read())
    except (OSError, ValueError):
        return None


def start_instance(i, extra=()):
    with open(f"{HA}/log/snip{i}.log", "a") as out:
        p = subprocess.Popen(
            [E["SNIP_BIN"], "serve", "--config", f"{HA}/conf/snip{i}.toml", "--admin-key", KEY,
             *extra],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
    with open(f"{HA}/run/snip{i}.pid", "w") as f:
        f.write(str(p.pid))
    deadline = time.time() + 30
    while status(instance_url(i) + "/health/ready") != 200:
        if time.time() > deadline:
            raise SystemExit(f"snip instance {i} did not become ready")
        time.sleep(0.1)


def stop_instance(i, sig=signal.SIGTERM, limit=30):
    pid = instance_pid(i)
    if pid is None:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            # A child of this process after a restart: reap it; otherwise poll its existence.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    raise SystemExit(f"snip instance {i} did not stop within {limit}s")


EXTRA_ARGS = []  # arguments the instances currently run with (beyond their configuration)


def restart_all(extra):
    """Gracefully restarts every instance, one at a time, with `extra` arguments."""
    EXTRA_ARGS[:] = extra
    for i in range(1, INSTANCES + 1):
        stop_instance(i)
        start_instance(i, EXTRA_ARGS)
        deadline = time.time() + 30
        while status(instance_url(i) + "/health") != 200 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)  # back in rotation (rise 2)


NFT_TABLE = "snip_chaos"


def nft(rules):
    if shutil.which("nft") is None:
        log("installing nftables (Debian package) for the network faults")
        sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null 2>&1 || "
           "{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables; } >/dev/null 2>&1")
    script = (f"table ip {NFT_TABLE} {{\n chain out {{ type filter hook output priority 0; }}\n}}\n"
              f"flush table ip {NFT_TABLE}\n")
    script += "".join(f"add rule ip {NFT_TABLE} out {r}\n" for r in rules)
    subprocess.run(["nft", "-f", "-"], input=script.encode(), check=True)


def nft_clear():
    sh(f"nft delete table ip {NFT_TABLE} 2>/dev/null")


def db_addr(i):
    return f"127.0.0.{10 + i}"


# --- faults -------------------------------------------------------------------------------
# Each returns when the fault is healed (or is left to heal by itself).


def fault_instance_kill():
    stop_instance(2, signal.SIGKILL)
    time.sleep(5)
    start_instance(2, EXTRA_ARGS)


def fault_rolling_restart():
    restart_all(EXTRA_ARGS)


def fault_primary_kill():
    name = leader()
    kill_patroni(name)
    kill_postmaster(name)
    time.sleep(15)
    start_patroni(name)  # rejoins as a replica (pg_rewind)


def fault_switchover():
    name, candidate = leader(), sync_standby()
    body = json.dumps({"leader": name, "candidate": candidate}).encode()
    port = PORT + 7 + int(name[2:])
    req = urllib.request.Request(f"http://127.0.0.1:{port}/switchover", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            log(f"switchover {name} -> {candidate}: {r.status} {r.read().decode().strip()}")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"switchover refused: {e.code} {e.read().decode()}")


def fault_patroni_kill():
    # The postmaster keeps running as an orphan primary; the sync standby is promoted once the
    # leader key expires, and the restarted Patroni demotes the orphan and rewinds it.
    name = leader()
    kill_patroni(name)
    time.sleep(20)
    start_patroni(name)


def fault_redis_kill():
    redis = os.path.join(ROOT, "scripts", "redis.sh")
    sh(f"bash {redis} stop {HA}/redis")
    time.sleep(5)
    sh(f"bash {redis} start {HA}/redis >/dev/null")


def fault_db_link_cut():
    a = db_addr(INSTANCES)
    nft([f"ip daddr {a} drop", f"ip saddr {a} drop"])
    time.sleep(20)
    nft_clear()


def fault_db_link_slow():
    a = db_addr(INSTANCES)
    nft([f"ip daddr {a} numgen random mod 100 < 15 drop",
         f"ip saddr {a} numgen random mod 100 < 15 drop"])
    time.sleep(20)
    nft_clear()


def fault_cluster_down():
    names = [f"pg{n}" for n in (1, 2, 3)]
    for name in names:
        kill_patroni(name)
    for name in names:
        kill_postmaster(name)
    time.sleep(30)
    for name in names:
        start_patroni(name)


# Redirects a client has in flight at any moment (the two redirect threads of the load).
IN_FLIGHT = 2

# name: (fault, staleness bound through the LB, clicks-loss bound, clicks counted twice bound,
#        extra instance arguments)
# Clicks-loss bound "flush": one click flush interval of the killed instance's clicks
# (buffered mode, kill -9). "flush-all": the last flush of every instance, for faults that kill
# a primary: click flushes commit with synchronous_commit=local (--click-durability local) and
# may not have reached the standby that takes over. 0 everywhere else. Counted twice: a redirect in flight at an
# instance killed after it counted the click is retried by the LB on another instance, which
# counts it too (at most one per redirect in flight); 0 everywhere else.
SCENARIOS = {
    "instance-kill": (fault_instance_kill, STALE_BOUND, "flush", IN_FLIGHT, []),
    "instance-kill-exact": (fault_instance_kill, STALE_BOUND, 0, IN_FLIGHT,
                            ["--click-mode", "exact"]),
    "rolling-restart": (fault_rolling_restart, STALE_BOUND, 0, 0, []),
    # A change committed at the instant the primary stops may not have been announced to
    # the other instances' listeners: they clear their caches when they listen again, on the
    # new primary. So the staleness bound is the failover time (measured: far below).
    "primary-kill": (fault_primary_kill, FAILOVER_STALE_BOUND, "flush-all", 0, []),
    # The same kill with every write, click flushes included, confirmed by the synchronous
    # standby (quorum: synchronous_commit=on) or applied on it (all: remote_apply) before it is
    # acknowledged: the standby Patroni promotes holds all of it, so no click may be lost.
    "primary-kill-quorum": (fault_primary_kill, FAILOVER_STALE_BOUND, 0, 0,
                            ["--write-consistency", "links=quorum,clicks=quorum"]),
    "primary-kill-all": (fault_primary_kill, FAILOVER_STALE_BOUND, 0, 0,
                         ["--write-consistency", "links=all,clicks=all"]),
    "switchover": (fault_switchover, SWITCHOVER_STALE_BOUND, 0, 0, []),
    "patroni-kill": (fault_patroni_kill, FAILOVER_STALE_BOUND, "flush-all", 0, []),
    "redis-kill": (fault_redis_kill, STALE_BOUND, 0, 0, []),
    # Until the LB has taken the cut-off instance out (3 failed checks of /health), it may
    # answer a destination it cached before the cut.
    "db-link-cut": (fault_db_link_cut, 5.0, 0, 0, []),
    "db-link-slow": (fault_db_link_slow, 5.0, 0, 0, []),
    "cluster-down": (fault_cluster_down, 30 + FAILOVER_STALE_BOUND, "flush-all", 0, []),
}


def total_clicks(code):
    _, stats = api("GET", f"/api/v1/links/{code}/stats")
    return stats["total_clicks"]


# Each instance folds its clicks into the shared tables every --click-fold-interval (10 s in
# up.sh), and replays a killed instance's journal within a housekeeping round (5 s): counts
# unchanged for longer than that are settled.
SETTLED_AFTER = 16


def settled_clicks(codes, expected, limit=45):
    """Total clicks per code once the instances have folded them (until they match what the
    history expects, or stop changing for SETTLED_AFTER seconds)."""
    deadline = time.time() + limit
    last, since = None, time.time()
    while True:
        got = {}
        for c in codes:
            try:
                got[c] = total_clicks(c)
            except Exception:
                got[c] = None
        done = all(got[c] is not None and got[c] >= expected.get(c, 0) for c in codes)
        if got != last or None in got.values():
            last, since = got, time.time()
        if done or time.time() > deadline or time.time() - since > SETTLED_AFTER:
            return got
        time.sleep(2)


def run(name):
    fault, stale_bound, click_bound, twice_bound, extra = SCENARIOS[name]
    log(f"{name}: waiting for a healthy topology")
    wait_healthy()
    if extra != EXTRA_ARGS:
        log(f"{name}: restarting the instances with {extra or 'their configuration'}")
        restart_all(extra)
        wait_healthy()
    h = History()
    codes = []
    for i in range(LINKS):
        url = f"https://example.com/base/{name}/{i}"
        _, link = api("POST", "/api/v1/links", {"url": url})
        h.acked(link["code"], url)
        codes.append(link["code"])
    # Cached on every instance (directly, not through the balancer); these redirects count.
    for i in range(1, INSTANCES + 1):
        for c in codes:
            try:
                OPENER.open(f"{instance_url(i)}/{c}", timeout=5)
            except urllib.error.HTTPError as e:
                if e.code == 302:
                    h.clicks[c] = h.clicks.get(c, 0) + 1
    h.redirects = {k: 0 for k in h.redirects}
    h.cached = {"ok": 0, "total": 0}
    stop = threading.Event()
    started = time.time()
    threads = load(h, stop, codes, stale_bound)
    time.sleep(5)
    log(f"{name}: fault")
    fault_at = time.time()
    fault()
    log(f"{name}: healed; load goes on for 10 s")
    time.sleep(10)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    duration = time.time() - started
    # Longest gap between acknowledged creates from 5 s before the fault.
    ok = sorted(t for t in h.create_ok if t >= fault_at - 5)
    gaps = [b - a for a, b in zip(ok, ok[1:])]
    outage = max(gaps) if gaps else float("nan")
    # Every acknowledged link exists with its exact URL.
    lost = wrong_final = 0
    for code, versions in h.urls.items():
        try:
            _, link = api("GET", f"/api/v1/links/{code}")
        except Exception:
            lost += 1
            continue
        certain = [u for _, u, c in versions if c]
        allowed = set(certain[-1:]) | {u for c, u in h.ambiguous if c == code}
        if link["url"] not in allowed:
            wrong_final += 1
            h.wrong.append((code, "final", link["url"], certain[-1:]))
    # Clicks.
    counted = settled_clicks(codes, h.clicks)
    clicks_lost = sum(max(0, h.clicks.get(c, 0) - (counted[c] or 0)) for c in codes)
    clicks_extra = sum(
        max(0, (counted[c] or 0) - h.clicks.get(c, 0) - h.clicks_unknown.get(c, 0)) for c in codes
    )
    served = sum(h.clicks.values())
    if click_bound == "flush":
        # One flush interval (1 s) of one instance's share of the redirects, doubled.
        bound = math.ceil(2 * served / duration / INSTANCES)
    elif click_bound == "flush-all":
        bound = math.ceil(2 * served / duration)
    else:
        bound = click_bound
    r = h.redirects
    total = sum(r.values())
    row = {
        "scenario": name,
        "redirects": total,
        "redirect_success": round(r["ok"] / total, 5) if total else None,
        "cached_redirect_success": round(h.cached["ok"] / max(1, h.cached["total"]), 5),
        "wrong_redirects": r["wrong"],
        "stale_beyond_bound": r["stale"],
        "stale_bound_s": stale_bound,
        "max_staleness_s": round(h.max_staleness, 2),
        "write_outage_s": round(outage, 2),
        "links_acked": len(h.urls),
        "links_lost": lost,
        "wrong_final_url": wrong_final,
        "codes_mapped_twice": h.mapped_twice,
        "unknown_outcomes": h.unknown,
        "unknown_resolved": h.unknown_resolved,
        "clicks_served": served,
        "clicks_lost": clicks_lost,
        "clicks_loss_bound": bound,
        "clicks_counted_twice": clicks_extra,
        "clicks_twice_bound": twice_bound,
    }
    passed = (
        lost == 0
        and wrong_final == 0
        and h.mapped_twice == 0
        and r["wrong"] == 0
        and r["stale"] == 0
        and h.unknown == h.unknown_resolved
        and clicks_lost <= bound
        and clicks_extra <= twice_bound
    )
    if not passed:
        log(f"{name}: FAILED: {h.wrong[:20]}")
    return row, passed


def pct(x):
    return "–" if x is None else f"{100 * x:.2f} %"


def table(rows):
    out = ["| scenario | redirects OK (all / cached) | wrong / stale (max staleness) | write outage | "
           "links lost | clicks lost (bound) / counted twice (bound) | result |",
           "|---|---:|---:|---:|---:|---:|---|"]
    for row, passed in rows:
        out.append(
            f"| {row['scenario']} | {pct(row['redirect_success'])} / "
            f"{pct(row['cached_redirect_success'])} ({row['redirects']:,}) | "
            f"{row['wrong_redirects']} / {row['stale_beyond_bound']} ({row['max_staleness_s']} s) | "
            f"{row['write_outage_s']} s | "
            f"{row['links_lost']} of {row['links_acked']} | "
            f"{row['clicks_lost']} of {row['clicks_served']:,} (≤ {row['clicks_loss_bound']}) / "
            f"{row['clicks_counted_twice']} (≤ {row['clicks_twice_bound']}) | "
            f"{'PASS' if passed else 'FAIL'} |"
        )
    return "\n".join(out)


def main():
    names = sys.argv[1:] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    rows = []
    try:
        for n in names:
            row, passed = run(n)
            rows.append((row, passed))
            print(json.dumps(row), "PASS" if passed else "FAIL", flush=True)
    finally:
        nft_clear()
    print()
    print(table(rows))
    sys.exit(0 if all(p for _, p in rows) else 1)


if __name__ == "__main__":
    main()
