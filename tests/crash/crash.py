#!/usr/bin/env python3
"""crash.py -- the crash-safety test of SPEC §7.3/§7.4 (atomic store
writes), §8.1 (checkpoints never ahead of the data) and §8.4 (the data
directory lock); see README.md.  Python 3 standard library only.

usage: crash.py --build DIR [--seed N] [--kills 50]

Compiles mission/crash.reqon against DIR/fakeapi serving 20 pages of 50
records (each page delayed a little), then, on ONE data directory, starts
`syncd --once --mission Crash` KILLS times and SIGKILLs it after a random
delay (seeded; the seed is printed so a failure can be replayed), checking
after each kill:

  * every *.json under the data dir parses as JSON and has no duplicate
    keys (a leftover *.tmp is allowed: the rename never happened);
  * the items store holds none or all of the 1000 records, each equal to
    what the server sent (the paginated store step is one unit, §6.5);
  * if sync/Crash.json holds the checkpoint of Pull, the items store
    holds every record (§8.1 rule 3: the checkpoint is never ahead);
  * every record of the copies store is a correct copy of a served one;
  * the lock (flock on .lock) is free.

Now and then (seeded) the items store and its checkpoint are removed
together, as a reset, so the first-sync window is exercised again.
Then a clean run must exit 0 with exactly the server's records, each
once, in the stores and in --output, and no execution record left
`running`.  Then one traced run (strace -ff) checks that every data-dir
file is written as <path>.tmp, fsync'ed, renamed, and its directory
fsync'ed (skipped where strace cannot trace).  Last, the lock: while a daemon-mode syncd holds the data dir,
a second one exits 4 with `data dir <path> is in use by pid <daemon pid>`.

Prints PASS/FAIL per check, "crash: N passed, M failed", writes "N M" to
DIR/test-results/crash; exit status 0 only when everything passed.
"""
import argparse
import fcntl
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness  # noqa: E402  (FakeApi, run_bounded, kill_group)

PAGES = 20
PER_PAGE = 50
PAGE_DELAY_MS = 15
CHECKPOINT = "API:/items"
RUN_LIMIT = 120          # seconds for a clean run
PASS_ENV = harness.PASS_ENV


def record(i):
    return {"id": i, "n": i * 7, "name": "item-%d" % i}


ALL = {str(i): record(i) for i in range(1, PAGES * PER_PAGE + 1)}
COPIED = {k for k, r in ALL.items() if r["id"] % 4 == 0}


def script(runs):
    """Every page may be asked for once per run, in any order: each run
    re-reads all pages, and a killed run stops anywhere.  (fakeapi
    expands "times" into single uses, so it is kept to what is needed.)"""
    ex = []
    for p in range(1, PAGES + 2):
        lo = (p - 1) * PER_PAGE + 1
        body = [record(i) for i in range(lo, lo + PER_PAGE)] \
            if p <= PAGES else []
        ex.append({"request": {"path": "/items",
                               "query": {"page": str(p), "since": "*"}},
                   "response": {"body": body, "delay_ms": PAGE_DELAY_MS},
                   "times": runs, "optional": True})
    return ex


def no_dups(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in object")
    return dict(pairs)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=no_dups)


CALL = re.compile(r'^(\w+)\((.*)\)\s+=\s+(-?\d+)')
PATH_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


def parse_call(line):
    """(name, [path arguments], flags text, result) of one strace -ff
    line, or None for lines that are not a finished call."""
    m = CALL.match(line.strip())
    if not m:
        return None
    return (m.group(1), PATH_ARG.findall(m.group(2)), m.group(2),
            int(m.group(3)))


def check_thread(calls, data, renamed):
    """Problems in one thread's syscalls: each rename of X.tmp over a
    data-dir file X must follow an open of X.tmp (fd N) and an fsync(N),
    and be followed by an fsync of X's directory; X itself is never
    opened for writing.  Counts the renames per relative path."""
    probs = []
    fd_path = {}
    synced = set()
    pending_dir = None
    data = os.path.realpath(data)
    for c in calls:
        if c is None:
            continue
        name, paths, args, res = c
        if name in ("open", "openat", "creat") and paths and res >= 0:
            path = os.path.realpath(paths[0])
            fd_path[res] = path
            synced.discard(res)
            writing = name == "creat" or any(
                f in args for f in ("O_WRONLY", "O_RDWR", "O_CREAT",
                                    "O_TRUNC"))
            if writing and path.startswith(data + "/") and \
                    path.endswith(".json"):
                probs.append("%s opened for writing in place (%s)" %
                             (os.path.relpath(path, data), args[:80]))
        elif name in ("fsync", "fdatasync") and res == 0:
            fd = int(args.split(",")[0])
            synced.add(fd)
            if pending_dir and fd_path.get(fd) == pending_dir:
                pending_dir = None
        elif name.startswith("rename") and len(paths) == 2 and res == 0:
            src = os.path.realpath(paths[0])
            dst = os.path.realpath(paths[1])
            if not dst.startswith(data + "/"):
                continue
            rel = os.path.relpath(dst, data)
            if pending_dir:
                probs.append("directory %s not fsync'ed after a rename "
                             "into it" % pending_dir)
            if src != dst + ".tmp":
                probs.append("%s renamed from %s, want %s.tmp" %
                             (rel, src, rel))
            if not any(fd_path.get(fd) == src for fd in synced):
                probs.append("%s.tmp renamed over %s without an fsync" %
                             (rel, rel))
            renamed[rel] = renamed.get(rel, 0) + 1
            pending_dir = os.path.dirname(dst)
    if pending_dir:
        probs.append("directory %s not fsync'ed after the last rename "
                     "into it" % pending_dir)
    return probs


def lock_free(data):
    """True when nobody holds the flock on <data>/.lock (or no file)."""
    p = os.path.join(data, ".lock")
    if not os.path.exists(p):
        return True
    fd = os.open(p, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class Crash:
    def __init__(self, build, seed, kills):
        self.build = build
        self.rng = random.Random(seed)
        self.kills = kills
        self.work = os.path.join(build, "test-work", "crash")
        self.data = os.path.join(self.work, "run", ".reqon-data")
        self.passed = 0
        self.failed = 0
        self.env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}

    def result(self, name, problems, note=""):
        if problems:
            self.failed += 1
            print("FAIL %s%s" % (name, note))
            for p in problems:
                print("     " + p.replace("\n", "\n     "))
        else:
            self.passed += 1
            print("PASS %s%s" % (name, note))
        sys.stdout.flush()

    # -- state checks
    def check_state(self, final=False):
        """Problems with the data dir as a crash may leave it."""
        probs = []
        parsed = {}
        for path in sorted(glob.glob(os.path.join(self.data, "**", "*.json"),
                                     recursive=True)):
            rel = os.path.relpath(path, self.data)
            try:
                parsed[rel] = load(path)
            except (OSError, ValueError) as e:
                probs.append("%s does not parse: %s" % (rel, e))
        items = parsed.get("items.json", {})
        if not isinstance(items, dict):
            probs.append("items.json is not an object")
            items = {}
        if items and set(items) != set(ALL):
            probs.append("items.json holds %d of the %d records: a store "
                         "step was written in part" % (len(items), len(ALL)))
        for k, v in items.items():
            if ALL.get(k) != v:
                probs.append("items.json[%s] = %s, want %s" %
                             (k, json.dumps(v), json.dumps(ALL.get(k))))
                break
        sync = parsed.get("sync/Crash.json", {})
        if isinstance(sync, dict) and CHECKPOINT in sync and \
                set(items) != set(ALL):
            probs.append("checkpoint %s committed (%s) but items.json holds "
                         "%d of %d records" % (CHECKPOINT,
                                               json.dumps(sync[CHECKPOINT]),
                                               len(items), len(ALL)))
        copies = parsed.get("copies/each.json", {})
        if not isinstance(copies, dict):
            probs.append("copies/each.json is not an object")
            copies = {}
        for k, v in copies.items():
            src = ALL.get(k)
            if k not in COPIED or \
                    v != {"id": src["id"], "twice": src["n"] * 2}:
                probs.append("copies/each.json[%s] = %s is no copy" %
                             (k, json.dumps(v)))
                break
        if final:
            if set(items) != set(ALL):
                probs.append("after the clean run items.json holds %d "
                             "records, want %d" % (len(items), len(ALL)))
            if set(copies) != COPIED:
                probs.append("after the clean run copies/each.json holds %d "
                             "records, want %d" % (len(copies),
                                                   len(COPIED)))
            for rel, v in parsed.items():
                if rel.startswith("executions/") and isinstance(v, dict) \
                        and v.get("status") == "running":
                    probs.append("%s is still 'running' after a clean run "
                                 "(§8.3: crashed runs are closed)" % rel)
        if not lock_free(self.data):
            probs.append("the data dir lock is still held")
        return probs

    # -- the kill loop
    def start(self, args):
        return subprocess.Popen([self.exe] + args + ["--data-dir",
                                                     self.data],
                                cwd=os.path.dirname(self.data),
                                env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE,
                                start_new_session=True)

    def calibrate(self):
        """The duration of one whole run, on a scratch data dir, so the
        kills fall anywhere in a run, including after its end (the
        checkpoint commit).  None when the run fails."""
        data = os.path.join(self.work, "calib", ".reqon-data")
        os.makedirs(data)
        t0 = time.monotonic()
        rc, _, err = harness.run_bounded(
            [self.exe, "--once", "--mission", "Crash", "--data-dir", data],
            RUN_LIMIT, cwd=os.path.dirname(data), env=self.env,
            stdin=subprocess.DEVNULL)
        dt = time.monotonic() - t0
        self.result("calibration run", [] if rc == 0 else
                    ["exit %s, want 0\n%s" % (rc, err[-1500:])],
                    " (%.2fs)" % dt)
        return dt if rc == 0 else None

    def kill_loop(self, est):
        """est: how long a whole run takes; kills fall in [0, 1.25 est]."""
        est *= 1.25
        for i in range(1, self.kills + 1):
            delay = self.rng.uniform(0.0, est)
            reset = self.rng.random() < 0.15
            proc = self.start(["--once", "--mission", "Crash"])
            try:
                proc.wait(timeout=delay)
                how = "finished (exit %d) before the kill" % proc.returncode
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                how = "killed"
            proc.stderr.close()
            probs = self.check_state()
            self.result("kill %d" % i, probs,
                        " (%.2fs: %s%s)" % (delay, how,
                                            "; reset" if reset else ""))
            if probs:
                return            # later states would only repeat it
            if reset:
                for rel in ("items.json", "sync/Crash.json"):
                    try:
                        os.unlink(os.path.join(self.data, rel))
                    except FileNotFoundError:
                        pass

    def clean_run(self):
        out = os.path.join(self.work, "out")
        proc = self.start(["--once", "--mission", "Crash", "--output", out])
        try:
            _, err = proc.communicate(timeout=RUN_LIMIT)
        except subprocess.TimeoutExpired:
            harness.kill_group(proc)
            self.result("clean run", ["timed out"])
            return
        err = err.decode("utf-8", "replace")
        probs = []
        if proc.returncode != 0:
            probs.append("exit %d, want 0\n%s" % (proc.returncode,
                                                  err[-1500:]))
        probs += self.check_state(final=True)
        try:
            got = load(os.path.join(out, "Crash", "items.json"))
            ids = [r.get("id") for r in got]
            if sorted(ids) != sorted(r["id"] for r in ALL.values()) or \
                    any(ALL[str(r["id"])] != r for r in got):
                probs.append("--output Crash/items.json: %d records, %d "
                             "distinct, want the %d served" %
                             (len(ids), len(set(ids)), len(ALL)))
        except (OSError, ValueError, TypeError, KeyError) as e:
            probs.append("--output Crash/items.json: %s" % e)
        self.result("clean run", probs)

    def durable_writes(self):
        """§7.3 (DEFINED HERE): every data-dir file is written as
        <path>.tmp, fsync'ed, renamed over <path>, and the directory is
        fsync'ed; the file itself is never opened for writing.  A kill
        cannot show a missing fsync (the page cache survives it), so one
        whole run on a scratch data dir is traced with strace -ff (one
        trace file per thread, so no syscall lines interleave).  Skipped,
        not passed, where strace cannot trace."""
        if not shutil.which("strace"):
            print("SKIP durable writes (no strace)")
            return
        data = os.path.join(self.work, "durable", ".reqon-data")
        tdir = os.path.join(self.work, "durable", "trace")
        os.makedirs(data)
        os.makedirs(tdir)
        env = dict(self.env)
        # LeakSanitizer cannot run under ptrace; the other runs check
        # leaks.
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + \
            ":detect_leaks=0"
        rc, _, err = harness.run_bounded(
            ["strace", "-ff", "-qq", "-s", "4096", "-o",
             os.path.join(tdir, "t"), "-e",
             "trace=open,openat,creat,fsync,fdatasync,rename,renameat,"
             "renameat2", self.exe, "--once", "--mission", "Crash",
             "--data-dir", data], RUN_LIMIT, cwd=os.path.dirname(data),
            env=env, stdin=subprocess.DEVNULL)
        refused = [l for l in err.splitlines()
                   if l.startswith("strace:") and "ptrace" in l]
        if rc != 0 and refused:
            print("SKIP durable writes (strace cannot trace here: %s)" %
                  refused[0][:120])
            return
        probs = [] if rc == 0 else ["traced run: exit %s\n%s" %
                                    (rc, err[-1500:])]
        renamed = {}
        for tf in sorted(glob.glob(os.path.join(tdir, "t.*"))):
            with open(tf, encoding="utf-8", errors="replace") as f:
                calls = [parse_call(l) for l in f]
            probs += check_thread(calls, data, renamed)
        for rel in ("items.json", "copies/each.json", "sync/Crash.json"):
            if not renamed.get(rel):
                probs.append("no traced atomic write of %s" % rel)
        self.result("durable writes", probs[:10],
                    " (%d files renamed into place)" %
                    sum(renamed.values()))

    def lock_test(self):
        probs = []
        daemon = self.start(["--mission", "Beat"])
        try:
            deadline = time.monotonic() + 30
            while lock_free(self.data) and time.monotonic() < deadline and \
                    daemon.poll() is None:
                time.sleep(0.05)
            if lock_free(self.data):
                probs.append("the daemon never took the lock (exit %s)" %
                             daemon.poll())
            else:
                rc, _, err = harness.run_bounded(
                    [self.exe, "--once", "--mission", "Beat", "--data-dir",
                     self.data], 60, cwd=os.path.dirname(self.data),
                    env=self.env, stdin=subprocess.DEVNULL)
                want = "data dir %s is in use by pid %d" % (self.data,
                                                             daemon.pid)
                if rc != 4:
                    probs.append("second syncd: exit %s, want 4" % rc)
                if want not in err:
                    probs.append("second syncd's stderr lacks '%s':\n%s" %
                                 (want, err[-800:]))
            daemon.send_signal(signal.SIGTERM)
            try:
                _, err = daemon.communicate(timeout=30)
                if daemon.returncode != 0:
                    probs.append("daemon: exit %d after SIGTERM, want 0\n%s"
                                 % (daemon.returncode,
                                    err.decode("utf-8", "replace")[-800:]))
            except subprocess.TimeoutExpired:
                probs.append("daemon ignored SIGTERM for 30 s")
            if not lock_free(self.data):
                probs.append("the lock is still held after the daemon left")
        finally:
            harness.kill_group(daemon)
        self.result("lock", probs)

    def run(self):
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(os.path.join(self.work, "src"))
        os.makedirs(self.data)
        sc = os.path.join(self.work, "exchanges.json")
        with open(sc, "w") as f:
            json.dump(script(self.kills + 6), f)
        server = harness.FakeApi(os.path.join(self.build, "fakeapi"), sc,
                                 self.work)
        err = server.start()
        if err:
            self.result("fakeapi", [err])
            return
        try:
            with open(os.path.join(HERE, "mission", "crash.reqon")) as f:
                src = f.read().replace("@BASE@", server.base())
            with open(os.path.join(self.work, "src", "crash.reqon"),
                      "w") as f:
                f.write(src)
            rc, _, err = harness.run_bounded(
                [os.path.join(self.build, "reqonc"), "src", "-o", "syncd",
                 "--cflags", "-Wall -Wextra -Werror"], 300, cwd=self.work)
            self.exe = os.path.join(self.work, "syncd")
            if rc != 0:
                self.result("compile", ["reqonc exit %s:\n%s" %
                                        (rc, err[-1500:])])
                return
            est = self.calibrate()
            if est is None:
                return
            self.kill_loop(est)
            self.clean_run()
            self.durable_writes()
            self.lock_test()
            report, err = server.stop()
            probs = [err] if err else []
            if report and report.get("unexpected"):
                probs.append("fakeapi got unexpected requests, first: %s" %
                             harness.describe(report["unexpected"][0]))
            self.result("fakeapi requests", probs)
        finally:
            server.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--kills", type=int, default=50)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(
        1 << 31)
    print("crash: seed %d (replay with --seed %d)" % (seed, seed))
    build = os.path.abspath(a.build)
    c = Crash(build, seed, a.kills)
    t0 = time.monotonic()
    c.run()
    print("crash: %d passed, %d failed (%.0fs)" % (c.passed, c.failed,
                                                   time.monotonic() - t0))
    res = os.path.join(build, "test-results")
    os.makedirs(res, exist_ok=True)
    with open(os.path.join(res, "crash"), "w") as f:
        f.write("%d %d\n" % (c.passed, c.failed))
    if c.failed == 0:
        shutil.rmtree(c.work, ignore_errors=True)
    sys.exit(0 if c.failed == 0 else 1)


if __name__ == "__main__":
    main()
