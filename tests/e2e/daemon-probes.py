#!/usr/bin/env python3
"""daemon-probes.py -- live checks of a running syncd daemon that the
case format of harness.py cannot express: /health, /ready and /metrics
read with a real HTTP client DURING the runs, and the server's request
log read for timing (SPEC §9.1, §9.3, §10.3, §10.4, §10.5).

  python3 tests/e2e/daemon-probes.py --build DIR

One scenario, one daemon (Python standard library only; reuses the
FakeApi and run helpers of harness.py):

  Slow  every 1 second, its GET takes 3 s (fakeapi delay_ms), since
        lastSync: its due runs while one is in progress are skipped, its
        runs never overlap (each request arrives >= 2.9 s after the
        previous), and SIGTERM during its second run cancels that run
        after --shutdown-timeout 1 (record "interrupted", checkpoint not
        committed), exit 0;
  Fast  every 1 second: runs while Slow runs (its requests arrive inside
        Slow's first request), one second apart at least; its checkpoint
        is committed.

and a second daemon for SIGHUP (§10.5): Tag (every 1 second) sends
env("TAG") from --env FILE; after the file changes and SIGHUP, the next
runs send the new value; after SIGHUP with an invalid file, the old
configuration stays (the runs go on with the last good value); and a
third for the second signal: SIGTERM during a 6 s request, then SIGTERM
again exits 130 at once, leaving the execution record "running" (only
the already-atomic files) and no checkpoint.

Prints one line per failed check, then "daemon-probes: N passed, M
failed", writes "N M" to DIR/test-results/daemon-probes, and exits 1 on
any failure.  Timing checks are lower bounds only; waits are polls with
generous limits, so a slow machine only makes it slower.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SUITE = "daemon-probes"

MISSIONS = """
mission Slow {
  schedule: every 1 second
  source API { auth: none, base: "@BASE@" }
  store out: memory("out")
  action A {
    get "/slow" { since: lastSync("slow") }
    store response -> out { key: .id }
  }
}

mission Fast {
  schedule: every 1 second
  source API { auth: none, base: "@BASE@" }
  store out: memory("out")
  action A {
    get "/fast" { since: lastSync("fast") }
    store response -> out { key: .id }
  }
}
"""

SCRIPT = [
    {"request": {"method": "GET", "path": "/slow"},
     "response": {"status": 200, "body": [{"id": "s"}], "delay_ms": 3000},
     "times": 10, "optional": True, "unordered": True},
    {"request": {"method": "GET", "path": "/fast"},
     "response": {"status": 200, "body": [{"id": "f"}]},
     "times": 100, "optional": True, "unordered": True},
]


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s: %s" % (SUITE, what))
        return ok


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, path):
    """(status, content type, body text); status 0 when unreachable."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), \
                r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()
    except OSError:
        return 0, "", ""


def poll(fn, limit):
    """fn() until it returns a true value or limit seconds pass."""
    deadline = time.monotonic() + limit
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def health_mission(port, name):
    st, _, body = get(port, "/health")
    if st != 200:
        return None
    for m in json.loads(body).get("missions", []):
        if m.get("name") == name:
            return m
    return None


def metric(text, line_prefix):
    """The value of the sample line starting with line_prefix, or None."""
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.split()[-1])
    return None


def scenario(build, work, c):
    api = harness.FakeApi(os.path.join(build, "fakeapi"),
                          os.path.join(work, "exchanges.json"), work)
    with open(os.path.join(work, "exchanges.json"), "w") as f:
        json.dump(SCRIPT, f)
    problem = api.start()
    if not c.check(problem is None, "fakeapi: %s" % problem):
        return
    proc = None
    try:
        src = os.path.join(work, "src")
        os.makedirs(src)
        with open(os.path.join(src, "missions.reqon"), "w") as f:
            f.write(MISSIONS.replace("@BASE@", api.base()))
        rc, _, err = harness.run_bounded(
            [os.path.join(build, "reqonc"), "src", "-o", "syncd",
             "--cflags", "-Wall -Wextra -Werror"],
            harness.COMPILE_TIMEOUT, cwd=work)
        if not c.check(rc == 0, "reqonc failed: %s" % err):
            return
        hport, mport = free_port(), free_port()
        while mport == hport:
            mport = free_port()
        env = {k: os.environ[k] for k in harness.PASS_ENV
               if k in os.environ}
        log = open(os.path.join(work, "syncd.log"), "w+")
        proc = subprocess.Popen(
            [os.path.join(work, "syncd"), "--data-dir", "data",
             "--health-port", str(hport), "--metrics-port", str(mport),
             "--shutdown-timeout", "1"],
            cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

        # /ready: 200 once the scheduler runs (§10.3).
        c.check(poll(lambda: get(hport, "/ready")[0] == 200, 20),
                "/ready never became 200")
        # Slow's first run in progress, seen through /health.
        m = poll(lambda: (health_mission(hport, "Slow") or {})
                 .get("running") == 1 and health_mission(hport, "Slow"), 20)
        c.check(bool(m), "/health never showed Slow running")
        st, ctype, body = get(hport, "/health")
        doc = json.loads(body) if st == 200 else {}
        c.check(st == 200 and ctype.startswith("application/json"),
                "/health: %d %s" % (st, ctype))
        c.check(doc.get("status") == "ok", "/health status %r" %
                doc.get("status"))
        c.check(doc.get("missionsLoaded") == 2, "missionsLoaded %r" %
                doc.get("missionsLoaded"))
        c.check([x.get("name") for x in doc.get("missions", [])] ==
                ["Slow", "Fast"], "/health missions %r" %
                doc.get("missions"))
        c.check(isinstance((m or {}).get("nextRun"), str),
                "/health Slow nextRun %r" % (m or {}).get("nextRun"))
        # The metrics port serves /metrics, not /health (§10.3, §10.4).
        c.check(get(mport, "/health")[0] == 404, "/health on metrics port")
        c.check(get(hport, "/metrics")[0] == 404, "/metrics on health port")

        # Fast completes runs while Slow's first run is still going, and
        # Slow's due runs meanwhile are skipped.
        def progressed():
            st, _, text = get(mport, "/metrics")
            if st != 200:
                return None
            fast = metric(text, 'reqon_mission_runs_total{mission="Fast",'
                          'status="success"}') or 0
            skip = metric(text, 'reqon_mission_runs_total{mission="Slow",'
                          'status="skipped"}') or 0
            return text if fast >= 2 and skip >= 1 else None
        text = poll(progressed, 20)
        c.check(bool(text), "/metrics never showed 2 Fast successes and a "
                "Slow skip")
        text = text or ""
        st, ctype, _ = get(mport, "/metrics")
        c.check(st == 200 and ctype.startswith("text/plain; version=0.0.4"),
                "/metrics: %d %s" % (st, ctype))
        c.check("# TYPE reqon_mission_runs_total counter" in text,
                "/metrics without the runs_total family")
        c.check(metric(text, 'reqon_mission_runs_in_progress{mission='
                       '"Slow"}') == 1, "Slow not in progress in /metrics")
        # Committed checkpoints only (state.c): Fast's, not Slow's yet.
        c.check((metric(text, 'reqon_sync_checkpoint_timestamp_seconds'
                        '{mission="Fast",key="fast"}') or 0) > 1e9,
                "no checkpoint gauge for Fast")
        c.check(metric(text, 'reqon_sync_checkpoint_timestamp_seconds'
                       '{mission="Slow",key="slow"}') is None,
                "a checkpoint gauge for Slow before it committed")
        c.check(metric(text, 'reqon_mission_runs_total{mission="Slow",'
                       'status="success"}') == 0,
                "Slow finished a run too early (its GET takes 3 s)")
        # Fed by http.c and store.c: each completed Fast run sent one
        # GET answered 200 and wrote one record.
        fast_ok = metric(text, 'reqon_mission_runs_total{mission="Fast",'
                         'status="success"}') or 0
        gets = metric(text, 'reqon_http_requests_total{source="API",'
                      'method="GET",code="200"}') or 0
        c.check(gets >= fast_ok, "http_requests_total %r < %r Fast runs"
                % (gets, fast_ok))
        recs = metric(text, 'reqon_records_written_total{mission="Fast",'
                      'store="out"}') or 0
        c.check(recs >= fast_ok, "records_written_total %r < %r Fast runs"
                % (recs, fast_ok))
        c.check(metric(text, 'reqon_circuit_state{source="API"}') == 0,
                "circuit_state of API not 0 (closed)")

        # Wait for Slow's SECOND run (its first ended), then SIGTERM.
        def second_slow():
            st, _, text = get(mport, "/metrics")
            ok = (metric(text, 'reqon_mission_runs_total{mission="Slow",'
                         'status="success"}') == 1 and
                  metric(text, 'reqon_mission_runs_in_progress{mission='
                         '"Slow"}') == 1)
            return st == 200 and ok
        c.check(poll(second_slow, 20), "Slow's second run never started")
        m = health_mission(hport, "Slow") or {}
        c.check(m.get("lastStatus") == "completed" and
                isinstance(m.get("lastRun"), str),
                "/health Slow after its first run: %r" % m)
        proc.send_signal(signal.SIGTERM)
        # First signal: /ready 503 while draining (§10.5), the listener
        # still up until the process ends.
        c.check(poll(lambda: get(hport, "/ready")[0] == 503, 5),
                "/ready not 503 after SIGTERM")
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            harness.kill_group(proc)
            rc = None
        c.check(rc == 0, "syncd exit %r after SIGTERM, want 0" % rc)
        log.seek(0)
        out = log.read()
        log.close()
        c.check("Slow: skipped: previous run still in progress" in out,
                "no skip line in the log")
        c.check("Slow: Interrupted" in out, "Slow not interrupted")

        # Execution records and checkpoints (§8.1, §8.2, §10.5).
        data = os.path.join(work, "data")
        recs = []
        for p in glob.glob(os.path.join(data, "executions", "*.json")):
            with open(p) as f:
                recs.append(json.load(f))
        slow = sorted([r for r in recs if r.get("mission") == "Slow"],
                      key=lambda r: r.get("startedAt", ""))
        c.check([r.get("status") for r in slow] ==
                ["completed", "interrupted"],
                "Slow records %r" % [r.get("status") for r in slow])
        c.check(all(r.get("trigger") == "schedule" for r in recs),
                "triggers %r" % [r.get("trigger") for r in recs])
        with open(os.path.join(data, "sync", "Slow.json")) as f:
            slow_cp = json.load(f)
        c.check(slow_cp["slow"]["executionId"] == slow[0].get("id"),
                "Slow's checkpoint is not its first (completed) run's")
        c.check(os.path.exists(os.path.join(data, "sync", "Fast.json")),
                "Fast's checkpoint missing")
        with open(os.path.join(data, "scheduler", "state.json")) as f:
            state = json.load(f)
        sj = state["jobs"]["Slow"]
        c.check(sj["lastStatus"] == "interrupted" and sj["runCount"] == 2
                and sj["consecutiveFailures"] == 0,
                "Slow state %r" % sj)
        c.check(state["jobs"]["Fast"]["runCount"] >= 3,
                "Fast state %r" % state["jobs"]["Fast"])
    finally:
        if proc is not None and proc.poll() is None:
            harness.kill_group(proc)
        report, problem = api.stop()
    if not c.check(report is not None, "fakeapi report: %s" % problem):
        return
    reqs = report["requests"]
    c.check(not report["unexpected"], "unexpected requests %r" %
            report["unexpected"])
    slow_t = [r["t_ms"] for r in reqs if r["path"] == "/slow"]
    fast_t = [r["t_ms"] for r in reqs if r["path"] == "/fast"]
    c.check(len(slow_t) == 2, "Slow requests at %r, want 2" % slow_t)
    # No overlap: a run starts only after the previous one ended.
    c.check(all(b - a >= 2900 for a, b in zip(slow_t, slow_t[1:])),
            "Slow runs overlap: %r" % slow_t)
    c.check(all(b - a >= 900 for a, b in zip(fast_t, fast_t[1:])),
            "Fast runs closer than its interval: %r" % fast_t)
    # Missions run in parallel: Fast ran during Slow's first request.
    c.check(bool(slow_t) and any(slow_t[0] < t < slow_t[0] + 2900
                                 for t in fast_t),
            "no Fast request during Slow's first run: %r %r" %
            (slow_t, fast_t))


HUP_MISSION = """
mission Tag {
  schedule: every 1 second
  source API { auth: none, base: "@BASE@" }
  action A { get "/tag" { query: { v: env("TAG") } } }
}
"""


def hup_scenario(build, work, c):
    with open(os.path.join(work, "exchanges.json"), "w") as f:
        json.dump([{"request": {"method": "GET", "path": "/tag",
                                "query": {"v": "*"}},
                    "response": {"status": 200, "body": []},
                    "times": 100, "optional": True, "unordered": True}], f)
    api = harness.FakeApi(os.path.join(build, "fakeapi"),
                          os.path.join(work, "exchanges.json"), work)
    problem = api.start()
    if not c.check(problem is None, "fakeapi: %s" % problem):
        return
    proc = None
    envfile = os.path.join(work, "tag.env")
    try:
        src = os.path.join(work, "src")
        os.makedirs(src)
        with open(os.path.join(src, "missions.reqon"), "w") as f:
            f.write(HUP_MISSION.replace("@BASE@", api.base()))
        rc, _, err = harness.run_bounded(
            [os.path.join(build, "reqonc"), "src", "-o", "syncd",
             "--cflags", "-Wall -Wextra -Werror"],
            harness.COMPILE_TIMEOUT, cwd=work)
        if not c.check(rc == 0, "reqonc failed: %s" % err):
            return
        with open(envfile, "w") as f:
            f.write("TAG=one\n")
        port = free_port()
        env = {k: os.environ[k] for k in harness.PASS_ENV
               if k in os.environ}
        log = open(os.path.join(work, "syncd.log"), "w+")
        proc = subprocess.Popen(
            [os.path.join(work, "syncd"), "--data-dir", "data", "--env",
             envfile, "--metrics-port", str(port)],
            cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

        def runs():
            st, _, text = get(port, "/metrics")
            if st != 200:
                return 0
            return metric(text, 'reqon_mission_runs_total{mission="Tag",'
                          'status="success"}') or 0

        def after(n):
            return poll(lambda: runs() >= n, 20)
        c.check(after(1), "Tag never ran")
        with open(envfile, "w") as f:
            f.write("TAG=two\n")
        proc.send_signal(signal.SIGHUP)
        n = runs()
        c.check(after(n + 2), "Tag stopped running after SIGHUP")
        with open(envfile, "w") as f:
            f.write("TAG=three\nthis line is not KEY=VALUE\n")
        proc.send_signal(signal.SIGHUP)
        n = runs()
        c.check(after(n + 2), "Tag stopped running after a bad SIGHUP")
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            harness.kill_group(proc)
            rc = None
        c.check(rc == 0, "syncd exit %r after SIGTERM, want 0" % rc)
        log.seek(0)
        out = log.read()
        log.close()
        c.check("SIGHUP: configuration reloaded" in out,
                "no reload line in the log")
        c.check("keeping the current configuration" in out,
                "the bad env file was not reported")
    finally:
        if proc is not None and proc.poll() is None:
            harness.kill_group(proc)
        report, problem = api.stop()
    if not c.check(report is not None, "fakeapi report: %s" % problem):
        return
    vals = [r["query"].get("v", [None])[0] for r in report["requests"]]
    c.check(not report["unexpected"], "unexpected requests %r" %
            report["unexpected"])
    # one..., then two... to the end: the bad file changed nothing.
    k = vals.index("two") if "two" in vals else len(vals)
    c.check(k > 0 and all(v == "one" for v in vals[:k]) and
            len(vals) - k >= 3 and all(v == "two" for v in vals[k:]),
            "TAG values sent: %r" % vals)


SECOND_MISSION = """
mission Long {
  schedule: every 1 hour
  source API { auth: none, base: "@BASE@" }
  action A { get "/long" { since: lastSync("long") } }
}
"""


def second_signal_scenario(build, work, c):
    with open(os.path.join(work, "exchanges.json"), "w") as f:
        json.dump([{"request": {"method": "GET", "path": "/long"},
                    "response": {"status": 200, "body": [],
                                 "delay_ms": 6000}}], f)
    api = harness.FakeApi(os.path.join(build, "fakeapi"),
                          os.path.join(work, "exchanges.json"), work)
    problem = api.start()
    if not c.check(problem is None, "fakeapi: %s" % problem):
        return
    proc = None
    try:
        src = os.path.join(work, "src")
        os.makedirs(src)
        with open(os.path.join(src, "missions.reqon"), "w") as f:
            f.write(SECOND_MISSION.replace("@BASE@", api.base()))
        rc, _, err = harness.run_bounded(
            [os.path.join(build, "reqonc"), "src", "-o", "syncd",
             "--cflags", "-Wall -Wextra -Werror"],
            harness.COMPILE_TIMEOUT, cwd=work)
        if not c.check(rc == 0, "reqonc failed: %s" % err):
            return
        port = free_port()
        env = {k: os.environ[k] for k in harness.PASS_ENV
               if k in os.environ}
        log = open(os.path.join(work, "syncd.log"), "w+")
        proc = subprocess.Popen(
            [os.path.join(work, "syncd"), "--data-dir", "data",
             "--health-port", str(port)],
            cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        c.check(poll(lambda: (health_mission(port, "Long") or {})
                     .get("running") == 1, 20), "Long never ran")
        proc.send_signal(signal.SIGTERM)
        c.check(poll(lambda: get(port, "/ready")[0] == 503, 5),
                "/ready not 503 after SIGTERM")
        c.check(proc.poll() is None, "syncd did not wait for its run")
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=5)   # the request still has seconds
        except subprocess.TimeoutExpired:
            harness.kill_group(proc)
            rc = None
        c.check(rc == 130, "syncd exit %r after a second SIGTERM, want "
                "130" % rc)
        log.close()
        data = os.path.join(work, "data")
        recs = glob.glob(os.path.join(data, "executions", "*.json"))
        status = None
        if len(recs) == 1:
            with open(recs[0]) as f:
                status = json.load(f).get("status")
        c.check(status == "running", "records %r, status %r" %
                (recs, status))
        c.check(not os.path.exists(os.path.join(data, "sync", "Long.json")),
                "a checkpoint was committed")
    finally:
        if proc is not None and proc.poll() is None:
            harness.kill_group(proc)
        report, problem = api.stop()
    c.check(report is not None and not report["unexpected"],
            "fakeapi report: %s %r" % (problem, report))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    work = os.path.join(build, "test-work", SUITE)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    c = Checks()
    for name, fn in (("live", scenario), ("sighup", hup_scenario),
                     ("second-signal", second_signal_scenario)):
        sub = os.path.join(work, name)
        os.makedirs(sub)
        try:
            fn(build, sub, c)
        except Exception as e:  # a crash of the driver is a failure too
            c.check(False, "%s: driver error: %r" % (name, e))
    print("%s: %d passed, %d failed" % (SUITE, c.passed, c.failed))
    res = os.path.join(build, "test-results")
    os.makedirs(res, exist_ok=True)
    with open(os.path.join(res, SUITE), "w") as f:
        f.write("%d %d\n" % (c.passed, c.failed))
    if c.failed == 0 and not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    elif c.failed:
        print("  kept in %s" % work)
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
