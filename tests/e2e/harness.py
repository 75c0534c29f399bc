#!/usr/bin/env python3
"""harness.py -- run end-to-end cases against build/fakeapi (stdlib only).

A case is a folder in the format of tests/conformance/README.md:
mission sources (with @BASE@), exchanges.json (the fakeapi script),
optional args / env / files/, and expect/.  Our own cases may also use

  expect/requests.json   the requests fakeapi must have received, in order:
                         a list of {"method", "path", "query"}; "query" is
                         compared like an exchange's query (exact names,
                         "*", {"regex": ...}, arrays for repeats)
  expect/files/<rel>     files the data dir (.reqon-data) must contain,
                         compared as JSON values (ignore-fields applies)
  expect/files-absent    glob patterns (relative to the data dir) that must
                         match nothing
  expect/output-absent   glob patterns (relative to --output) that must
                         match nothing ("*" = no output at all)
  expect/stdout.grep, expect/stdout.absent
                         like the stderr files, for the runs' stdout
  expect/compile-stderr.absent
                         patterns reqonc's stderr must not match (with
                         compile-exit)
  expect/data.absent     regular expressions that must match no line of any
                         file under the data dir or --output (secrets in
                         execution records, checkpoints, stores)
  expect/files-bytes/<rel>, expect/output-bytes/<rel>
                         files of the data dir / --output that must hold
                         exactly these bytes (order of keys and fields,
                         indentation), a final newline aside
  expect/modes           lines "<relpath> <octal mode>": the data dir file
                         must exist with exactly that permission mode
                         ("tokens/API.json 600")
  expect/exec-latest/<Mission>.json
                         the newest execution record of that mission
                         (data dir executions/*.json whose "mission" is
                         <Mission>; newest by startedAt, then id),
                         compared as a JSON value after ignore-fields, so
                         a fresh run's record (random id, times) can be
                         checked; @BASE@ in it is the server's URL, and
                         {"regex": R} matches a string R matches (an
                         error message with a transport error's text);
                         no such record fails the case
  args: a line may start with "@term=MS": the run is sent SIGTERM after
        MS milliseconds (daemon mode), then must exit by itself; or with
        "@kill=MS": its process group gets SIGKILL after MS milliseconds
        (a crash; the run must still be going then, and its entry in
        expect/exit is not used).  "@no-data-dir" (before or after those)
        runs without "--data-dir ./.reqon-data", so the default data
        directory is used (it is the same ./.reqon-data of the run dir).

usage: harness.py --build DIR --suite NAME [--keep] [--secrets] CASE_DIR...

--secrets (tests/run-secrets.sh): the secret-leak check instead of the
case's expectations.  Every run line gets --verbose; the case fails only
when the compile fails or a run does not finish, or when a credential
value (secret_values) appears in a run's stdout or stderr, in --output,
or in any file of the data dir except tokens/ (which legitimately holds
refreshed OAuth2 tokens).

For each case: start `fakeapi --script --port-file --report`, substitute
@BASE@, compile with `DIR/reqonc`, run each args line in a fresh work dir
with a minimal environment, compare, then SIGTERM fakeapi (by pid) and
check its report.  Prints PASS/FAIL per case, then
"<suite>: N passed, M failed", and writes "N M" to
DIR/test-results/<suite>.  Exit status 0 only when every case passed.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import base64
from urllib.parse import quote, quote_plus, unquote

CASE_CONTROL = {"exchanges.json", "args", "env", "expect", "files"}
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR",
            "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
COMPILE_TIMEOUT = 300    # seconds; reqonc runs cc, slow under sanitizers
RUN_TIMEOUT = 120        # seconds per syncd run
SERVER_START = 15        # seconds to wait for fakeapi's port file
SERVER_STOP = 15         # seconds to wait for fakeapi's report


def canon(v):
    """Canonical JSON text: arrays in order, object keys sorted.  json
    keeps 10 and 10.0 apart (int vs float), as the case format wants."""
    return json.dumps(v, sort_keys=True)


def strip_fields(v, ignore):
    if isinstance(v, list):
        return [strip_fields(x, ignore) for x in v]
    if isinstance(v, dict):
        return {k: strip_fields(x, ignore) for k, x in v.items()
                if k not in ignore}
    return v


def json_match(want, got, where):
    """None when got matches want, else why not.  Like canon() equality
    (10 and 10.0 differ), except that {"regex": R} in want matches a
    string that R matches (re.search)."""
    if isinstance(want, dict) and list(want) == ["regex"] and \
            isinstance(got, str):
        if re.search(want["regex"], got):
            return None
        return "%s: %r does not match /%s/" % (where or "/", got,
                                              want["regex"])
    if isinstance(want, dict) and isinstance(got, dict):
        if set(want) != set(got):
            return "%s: fields %s, want %s" % (where or "/", sorted(got),
                                               sorted(want))
        for k in want:
            why = json_match(want[k], got[k], "%s/%s" % (where, k))
            if why:
                return why
        return None
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return "%s: %d elements, want %d" % (where or "/", len(got),
                                                 len(want))
        for i, (w, g) in enumerate(zip(want, got)):
            why = json_match(w, g, "%s/%d" % (where, i))
            if why:
                return why
        return None
    if canon(want) != canon(got):
        return "%s: %s, want %s" % (where or "/", canon(got)[:200],
                                    canon(want)[:200])
    return None


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def read_lines(path):
    """Non-blank lines of an optional file ([] when it does not exist)."""
    if not os.path.exists(path):
        return []
    return [l for l in read_text(path).splitlines() if l.strip()]


def subst_tree(root, base):
    """Replace @BASE@ in every text file under root, in place."""
    for d, _, files in os.walk(root):
        for fn in files:
            p = os.path.join(d, fn)
            try:
                txt = read_text(p)
            except (UnicodeDecodeError, OSError):
                continue          # binary files are copied as they are
            if "@BASE@" in txt:
                with open(p, "w", encoding="utf-8") as f:
                    f.write(txt.replace("@BASE@", base))


def kill_group(proc):
    """SIGKILL a child started with start_new_session, and its children."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def run_bounded(cmd, timeout, term_after=None, kill=False, **kw):
    """subprocess.run with a timeout that also kills grandchildren (cc,
    ld...).  With term_after (seconds), SIGTERM is sent to the process
    (not its group: the daemon must stop its own children) at that time;
    with kill as well, SIGKILL goes to its whole group instead (a crash).
    Returns (returncode or None on timeout, stdout, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            **kw)
    try:
        if term_after is not None:
            try:
                out, err = proc.communicate(timeout=term_after)
                return proc.returncode, out.decode("utf-8", "replace"), \
                    err.decode("utf-8", "replace")
            except subprocess.TimeoutExpired:
                if kill:
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace"), \
            err.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        return None, out.decode("utf-8", "replace"), \
            err.decode("utf-8", "replace")


# ------------------------------------------------------------ fakeapi

class FakeApi:
    """One fakeapi process for one case."""

    def __init__(self, exe, script, work):
        self.exe = exe
        self.script = script
        self.port_file = os.path.join(work, "fakeapi.port")
        self.report_file = os.path.join(work, "fakeapi.report.json")
        self.log = open(os.path.join(work, "fakeapi.log"), "wb")
        self.proc = None
        self.port = None

    def start(self):
        """Starts the server; returns None or a problem string."""
        self.proc = subprocess.Popen(
            [self.exe, "--script", self.script, "--port-file",
             self.port_file, "--report", self.report_file],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)
        deadline = time.monotonic() + SERVER_START
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "fakeapi exited with %d before listening" % \
                    self.proc.returncode
            try:
                txt = read_text(self.port_file).strip()
                # The file may be seen half-written; wait for a number.
                if txt.isdigit() and 0 < int(txt) < 65536:
                    self.port = int(txt)
                    return None
            except OSError:
                pass
            time.sleep(0.02)
        kill_group(self.proc)
        return "fakeapi did not write its port file in %ds" % SERVER_START

    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        """SIGTERM by pid and read the report.  Returns (report or None,
        problem string or None).  Never leaves the process behind."""
        if self.proc is None:
            return None, "fakeapi was not started"
        problem = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=SERVER_STOP)
            except subprocess.TimeoutExpired:
                kill_group(self.proc)
                problem = "fakeapi ignored SIGTERM for %ds" % SERVER_STOP
        else:
            problem = "fakeapi died during the case (status %d)" % \
                self.proc.returncode
        if problem is None and self.proc.returncode != 0:
            problem = "fakeapi exited with status %d" % self.proc.returncode
        self.log.close()
        try:
            with open(self.report_file, encoding="utf-8") as f:
                return json.load(f), problem
        except (OSError, ValueError) as e:
            return None, problem or ("fakeapi report unreadable: %s" % e)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            kill_group(self.proc)
        if not self.log.closed:
            self.log.close()


# ------------------------------------------------- request comparison

def norm_query(q):
    """A request's query as {name: [values]}, whatever shape fakeapi
    reports it in: a raw query string, or an object of strings or lists.
    Percent-decoding keeps '+' as '+' (RFC 3986)."""
    out = {}
    if q is None:
        return out
    if isinstance(q, str):
        q = q[1:] if q.startswith("?") else q
        for part in q.split("&") if q else []:
            k, _, v = part.partition("=")
            out.setdefault(unquote(k), []).append(unquote(v))
        return out
    if isinstance(q, dict):
        for k, v in q.items():
            if isinstance(v, list):
                out[k] = [str(x) for x in v]
            elif v is None:
                out[k] = [""]
            else:
                out[k] = [str(v)]
    return out


def value_ok(want, got):
    """got: list of the parameter's values."""
    if isinstance(want, list):
        return got == want
    if len(got) != 1:
        return False              # a repeated parameter matches only a list
    g = got[0]
    if want == "*":
        return True
    if isinstance(want, dict) and "regex" in want:
        return re.fullmatch(want["regex"], g) is not None
    return g == want


def request_diff(want, got):
    """Returns None when request `got` (from the report) satisfies `want`
    (from expect/requests.json), else a reason."""
    m = want.get("method", "GET").upper()
    if str(got.get("method", "")).upper() != m:
        return "method %s, want %s" % (got.get("method"), m)
    gpath = got.get("path", "")
    if "?" in gpath and "query" not in got:
        gpath, _, gq = gpath.partition("?")
        got = dict(got, query=gq)
    if gpath != want.get("path"):
        return "path %s, want %s" % (gpath, want.get("path"))
    if "query" in want:
        gq = norm_query(got.get("query"))
        wq = want["query"]
        if set(gq) != set(wq):
            return "query names %s, want %s" % (sorted(gq), sorted(wq))
        for k, v in wq.items():
            if not value_ok(v, gq[k]):
                return "query %s=%s, want %s" % (k, json.dumps(gq[k]),
                                                 json.dumps(v))
    return None


def describe(req):
    q = req.get("query")
    if isinstance(q, (dict, list)):
        q = json.dumps(q)
    return "%s %s %s" % (req.get("method"), req.get("path"), q or "")


# ------------------------------------------------------ secret values

SECRET_MIN = 6           # shorter strings match too much ordinary text
SECRET_ENV = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "KEY")
# Credential-file fields that configure how a credential is sent, or
# name who is authenticating, not the credential: their values (bearer,
# X-API-Key, the token URL, a user or OAuth2 client id, which OAuth2
# sends in clear) may appear in logs.  Every other string counts.
CRED_CONFIG = {"type", "scheme", "authScheme", "header", "headerName",
               "query", "prefix", "tokenEndpoint", "tokenUrl", "expiresAt",
               "username", "user", "clientId"}
# The same for REQON_<SOURCE>_<FIELD> variables whose names contain
# TOKEN or KEY without holding one.
ENV_CONFIG = ("_ENDPOINT", "_URL", "_TYPE", "_HEADER_NAME", "_ID",
              "_USERNAME")
# "://user:password@" in a URL: group 1 is the password.
USERINFO = re.compile(r"://[^/@:\s\"']*:([^/@\s\"']+)@")
PLACEHOLDER = re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}?$")


def expand_vars(s, env):
    """SPEC §6.1 expansion: $$, ${V}, ${V:-default}, $V; unset is ""."""
    def one(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(3)
        val = env.get(name, "")
        if m.group(2) is not None and val == "":
            return m.group(2)
        return val
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|"
                  r"\$([A-Za-z_][A-Za-z0-9_]*)", one, s)


def strings_in(v, key=None):
    """(field name, string) for every string value in a JSON value."""
    if isinstance(v, dict):
        for k, x in v.items():
            yield from strings_in(x, k)
    elif isinstance(v, list):
        for x in v:
            yield from strings_in(x, key)
    elif isinstance(v, str):
        yield key, v


def auth_files(runs):
    """The --auth FILE arguments of the run lines."""
    out = []
    for args in runs:
        for i, a in enumerate(args):
            if a == "--auth" and i + 1 < len(args):
                out.append(args[i + 1])
            elif a.startswith("--auth="):
                out.append(a[len("--auth="):])
    return out


def response_tokens(script):
    """access_token / refresh_token values the server hands out."""
    try:
        with open(script, encoding="utf-8") as f:
            ex = json.load(f)
    except (OSError, ValueError):
        return []
    found = []

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k in ("access_token", "refresh_token") and \
                        isinstance(x, str):
                    found.append(x)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    for e in ex if isinstance(ex, list) else []:
        resp = e.get("response") if isinstance(e, dict) else None
        if not isinstance(resp, dict):
            continue
        walk(resp.get("body"))
        if isinstance(resp.get("body_text"), str):
            try:
                walk(json.loads(resp["body_text"]))
            except ValueError:
                pass
    return found


def leak_forms(s):
    """The ways a secret can be written: as is, JSON-escaped and
    percent-encoded (in a URL)."""
    forms = {s, json.dumps(s)[1:-1], quote(s, safe=""), quote_plus(s)}
    return [f for f in forms if len(f) >= SECRET_MIN]


# ----------------------------------------------------------- one case

class Case:
    def __init__(self, path, build, suite, keep, secrets=False):
        self.secrets_mode = secrets
        self.path = os.path.abspath(path.rstrip("/"))
        self.name = os.path.basename(self.path)
        self.build = build
        self.keep = keep
        self.work = os.path.join(build, "test-work", suite, self.name)
        self.exp = os.path.join(self.path, "expect")
        self.problems = []
        self.stderr = ""
        self.stdout = ""

    def expfile(self, n):
        p = os.path.join(self.exp, n)
        return p if os.path.exists(p) else None

    def fail(self, msg):
        self.problems.append(msg)

    def run(self):
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        if not os.path.isdir(self.path):
            self.fail("no such case directory: %s" % self.path)
            return
        compile_only = self.expfile("compile-exit") is not None
        server = None
        try:
            if compile_only:
                # Diagnostics cases never run anything: no server; any
                # well-formed base URL will do.  (Nothing to leak either:
                # the secret check skips them.)
                if not self.secrets_mode:
                    self.compile_and_check("http://127.0.0.1:9")
                return
            script = os.path.join(self.path, "exchanges.json")
            if not os.path.exists(script):
                script = os.path.join(self.work, "exchanges.json")
                with open(script, "w") as f:
                    f.write("[]\n")  # no HTTP expected: any request fails
            server = FakeApi(os.path.join(self.build, "fakeapi"), script,
                             self.work)
            err = server.start()
            if err:
                self.fail(err)
                return
            exe = self.compile_and_check(server.base())
            if exe:
                self.run_all(exe, server.base())
            report, err = server.stop()
            if self.secrets_mode:
                # Only the leaks matter here (found during the runs);
                # the e2e suite checks the case's own expectations.
                if self.problems and self.stderr:
                    self.fail("stderr tail:\n" + self.stderr[-1500:])
                return
            if err:
                self.fail(err)
            if report is not None and exe:
                # (Unused exchanges are no news when nothing could run.)
                self.check_report(report)
            if exe:
                self.check_outputs()
            if self.problems and self.stdout:
                self.fail("stdout tail:\n" + self.stdout[-800:])
            if self.problems and self.stderr:
                self.fail("stderr tail:\n" + self.stderr[-1500:])
        except Exception as e:  # a crash of the harness is a failure
            self.fail("harness error: %r" % e)
        finally:
            if server is not None:
                server.kill()
            if not self.problems and not self.keep:
                shutil.rmtree(self.work, ignore_errors=True)

    # -- compile
    def compile_and_check(self, base):
        """Copies and compiles the sources.  Returns the executable path,
        or None (also for compile-only cases, after checking them)."""
        src = os.path.join(self.work, "src")
        os.makedirs(src)
        for fn in sorted(os.listdir(self.path)):
            if fn in CASE_CONTROL:
                continue
            s, d = os.path.join(self.path, fn), os.path.join(src, fn)
            if os.path.isdir(s):
                shutil.copytree(s, d)
            else:
                shutil.copy(s, d)
        subst_tree(src, base)
        exe = os.path.join(self.work, "syncd")
        reqonc = os.path.join(self.build, "reqonc")
        # Relative paths, as a user would type them: diagnostics then read
        # "src/mission.reqon:3:5: ...".
        # The generated C must compile warning-free in every case.
        rc, _, err = run_bounded([reqonc, "src", "-o", "syncd", "--cflags",
                                  "-Wall -Wextra -Werror"],
                                 COMPILE_TIMEOUT, cwd=self.work)
        if rc is None:
            self.fail("reqonc timed out after %ds" % COMPILE_TIMEOUT)
            return None
        want = self.expfile("compile-exit")
        if want:
            want_rc = int(read_text(want).strip())
            if rc != want_rc:
                self.fail("reqonc exit %d, want %d" % (rc, want_rc))
            for pat in read_lines(os.path.join(self.exp,
                                               "compile-stderr.grep")):
                if not re.search(pat, err, re.M):
                    self.fail("reqonc stderr lacks /%s/" % pat)
            for pat in read_lines(os.path.join(self.exp,
                                               "compile-stderr.absent")):
                if re.search(pat, err, re.M):
                    self.fail("reqonc stderr must not contain /%s/" % pat)
            if self.problems:
                self.fail("reqonc stderr:\n" + err[-1500:])
            return None
        if rc != 0 or not os.path.exists(exe):
            self.fail("reqonc failed (%d):\n%s" % (rc, err[-2000:]))
            return None
        return exe

    # -- secret-leak mode
    def secret_values(self, runs, env):
        """Every credential value of the case: the string values of its
        --auth files (files/..., except CRED_CONFIG fields), its env
        values whose names contain TOKEN, SECRET, PASSWORD, PASSWD or KEY
        (except ENV_CONFIG names),
        the access/refresh tokens its server returns, --webhook-token
        values in its args, and the passwords
        of URL userinfo in its sources and env; after @BASE@ and
        $VAR expansion, at least SECRET_MIN long.  A basic credential
        also gives base64("user:password"), the header value."""
        vals = set()
        env = dict(env)
        # Variables from the case's env files count like its env lines
        # (they never override the environment, §10.1).
        envfiles = [".env"] + [a[i + 1] for a in runs for i in
                               range(len(a) - 1) if a[i] == "--env"]
        for rel in envfiles:
            for line in read_lines(os.path.join(self.run_dir, rel)) if \
                    os.path.isfile(os.path.join(self.run_dir, rel)) else []:
                line = line.strip()
                if line.startswith("export "):
                    line = line[len("export "):]
                k, eq, v = line.partition("=")
                if not eq or k.startswith("#"):
                    continue
                v = v.strip()
                if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                    v = v[1:-1]
                env.setdefault(k.strip(), v)
        for k, v in env.items():
            if k in PASS_ENV or k == "REQON_TEST_BASE":
                continue
            if any(w in k.upper() for w in SECRET_ENV) and \
                    not k.upper().endswith(ENV_CONFIG):
                vals.add(v)
        for rel in auth_files(runs):
            p = os.path.join(self.run_dir, rel)
            try:
                with open(p, encoding="utf-8") as f:
                    cred = json.load(f)
            except (OSError, ValueError):
                continue        # a case about an unreadable --auth file
            for key, s in strings_in(cred):
                if key in CRED_CONFIG:
                    continue
                vals.add(expand_vars(s, env))
            for c in cred.values() if isinstance(cred, dict) else []:
                if isinstance(c, dict) and isinstance(c.get("username"),
                                                      str) and \
                        isinstance(c.get("password"), str):
                    pair = "%s:%s" % (expand_vars(c["username"], env),
                                      expand_vars(c["password"], env))
                    vals.add(base64.b64encode(pair.encode()).decode())
        # Secrets given on the command line (--webhook-token T).
        vals.update(a[i + 1] for a in runs for i in range(len(a) - 1)
                    if a[i] == "--webhook-token")
        vals.update(response_tokens(os.path.join(self.path,
                                                 "exchanges.json")))
        vals.update(self.userinfo_passwords(env))
        return sorted(v for v in vals if len(v) >= SECRET_MIN and
                      not PLACEHOLDER.match(v))

    def userinfo_passwords(self, env):
        """Passwords of URL userinfo ("scheme://user:PASSWORD@") written
        in the case's sources, env lines and files/: logs must drop the
        userinfo of every URL (issue 3), so these count as credentials."""
        texts = list(env.values())
        for root in (self.path,):
            for dirpath, dirs, names in os.walk(root):
                if dirpath == root and "expect" in dirs:
                    dirs.remove("expect")
                for fn in names:
                    if fn == "exchanges.json":
                        continue
                    try:
                        texts.append(read_text(os.path.join(dirpath, fn)))
                    except (OSError, ValueError):
                        continue
        found = set()
        for t in texts:
            for m in USERINFO.finditer(t):
                found.add(m.group(1))
        return found

    def find_leaks(self, run_no, secrets, texts):
        """texts: (where, text) pairs of the run; adds the data dir (less
        tokens/) and --output.  One failure per secret and place."""
        data = os.path.join(self.run_dir, ".reqon-data")
        places = list(texts)
        for root in (data, self.out_dir):
            for dirpath, dirs, names in os.walk(root):
                if root == data and dirpath == data and "tokens" in dirs:
                    dirs.remove("tokens")
                for fn in sorted(names):
                    path = os.path.join(dirpath, fn)
                    try:
                        with open(path, "rb") as f:
                            t = f.read().decode("utf-8", "replace")
                    except OSError:
                        continue
                    places.append((os.path.relpath(path, self.work), t))
        for s in secrets:
            for where, text in places:
                if any(f in text for f in leak_forms(s)):
                    self.fail("run %d: credential %s...(%d chars) leaked "
                              "into %s" % (run_no, s[:2], len(s), where))

    # -- runs
    def env_for(self, base):
        env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        env["REQON_TEST_BASE"] = base
        for line in read_lines(os.path.join(self.path, "env")):
            if "=" in line:
                k, v = line.split("=", 1)
                env[k.strip()] = v.strip().replace("@BASE@", base)
        return env

    def run_all(self, exe, base):
        run_dir = os.path.join(self.work, "run")
        os.makedirs(run_dir)
        files = os.path.join(self.path, "files")
        if os.path.isdir(files):
            shutil.copytree(files, run_dir, dirs_exist_ok=True)
            subst_tree(run_dir, base)
        runs = [l.split() for l in read_lines(os.path.join(self.path,
                                                           "args"))]
        if not runs:
            runs = [["--once"]]
        exits = []
        if self.expfile("exit"):
            exits = [int(x) for x in read_text(self.expfile("exit")).split()]
        env = self.env_for(base)
        self.base = base
        self.out_dir = os.path.join(self.work, "out")
        self.run_dir = run_dir
        secrets = self.secret_values(runs, env) if self.secrets_mode \
            else []
        for i, args in enumerate(runs):
            shutil.rmtree(self.out_dir, ignore_errors=True)
            term = None
            kill = False
            data_dir = ["--data-dir", "./.reqon-data"]
            while args and args[0].startswith("@"):
                if args[0].startswith(("@term=", "@kill=")):
                    term = int(args[0][len("@term="):]) / 1000.0
                    kill = args[0].startswith("@kill=")
                elif args[0] == "@no-data-dir":
                    data_dir = []   # the default, ./.reqon-data
                else:
                    self.fail("args: unknown marker %s" % args[0])
                args = args[1:]
            if self.secrets_mode:
                args = args + ["--verbose"]
            cmd = [exe] + args + data_dir + ["--output", self.out_dir]
            rc, out, err = run_bounded(cmd, RUN_TIMEOUT, term_after=term,
                                       kill=kill, cwd=run_dir, env=env,
                                       stdin=subprocess.DEVNULL)
            self.stderr += err
            self.stdout += out
            with open(os.path.join(self.work, "run%d.log" % (i + 1)),
                      "w") as f:
                f.write("$ %s\n--- stdout\n%s--- stderr\n%s" %
                        (" ".join(cmd), out, err))
            want = exits[i] if i < len(exits) else 0
            if kill:
                want = -signal.SIGKILL   # it must not end by itself
            if rc is None:
                self.fail("run %d: timed out after %ds" % (i + 1,
                                                          RUN_TIMEOUT))
            elif self.secrets_mode:
                self.find_leaks(i + 1, secrets, [("stdout", out),
                                                 ("stderr", err)])
            elif rc != want and kill:
                self.fail("run %d (%s): ended by itself (exit %d) before "
                          "the SIGKILL" % (i + 1, " ".join(args), rc))
            elif rc != want:
                self.fail("run %d (%s): exit %d, want %d" %
                          (i + 1, " ".join(args), rc, want))
        self.run_dir = run_dir

    # -- comparisons
    def ignore(self):
        p = self.expfile("ignore-fields")
        return set(read_text(p).split()) if p else set()

    def compare_tree(self, exp_root, got_root, what):
        ignore = self.ignore()
        for d, _, files in os.walk(exp_root):
            for fn in sorted(files):
                rel = os.path.relpath(os.path.join(d, fn), exp_root)
                got_p = os.path.join(got_root, rel)
                if not os.path.exists(got_p):
                    self.fail("missing %s %s" % (what, rel))
                    continue
                with open(os.path.join(d, fn), "rb") as f:
                    raw = f.read()
                try:
                    want = json.loads(raw.decode("utf-8"))
                except ValueError:
                    # Not JSON (e.g. a corrupt store that must be left
                    # alone): compare the bytes.
                    with open(got_p, "rb") as f:
                        if f.read() != raw:
                            self.fail("%s %s changed (want its bytes "
                                      "unchanged)" % (what, rel))
                    continue
                try:
                    with open(got_p, encoding="utf-8") as f:
                        got = json.load(f)
                except ValueError as e:
                    self.fail("%s %s is not JSON: %s" % (what, rel, e))
                    continue
                g = canon(strip_fields(got, ignore))
                w = canon(strip_fields(want, ignore))
                if g != w:
                    self.fail("%s %s differs:\n  got  %s\n  want %s" %
                              (what, rel, g[:800], w[:800]))

    def compare_bytes(self, exp_root, got_root, what):
        """expect/files-bytes/, expect/output-bytes/: the file must hold
        exactly these bytes (key order, indentation, field order), except
        that a missing or extra final newline is not a difference."""
        if not os.path.isdir(exp_root):
            return
        for d, _, files in os.walk(exp_root):
            for fn in sorted(files):
                rel = os.path.relpath(os.path.join(d, fn), exp_root)
                got_p = os.path.join(got_root, rel)
                with open(os.path.join(d, fn), "rb") as f:
                    want = f.read()
                try:
                    with open(got_p, "rb") as f:
                        got = f.read()
                except OSError:
                    self.fail("%s: %s does not exist" % (what, rel))
                    continue
                if got.rstrip(b"\n") != want.rstrip(b"\n"):
                    self.fail("%s: %s differs:\n--- got\n%s\n--- want\n%s"
                              % (what, rel,
                                 got.decode("utf-8", "replace")[:600],
                                 want.decode("utf-8", "replace")[:600]))

    def latest_records(self, data):
        """{mission: newest execution record} of the data dir: newest by
        startedAt (ISO-8601 UTC text sorts by time), then by id.  A file
        that is not a JSON object fails the case."""
        newest = {}
        for p in sorted(glob.glob(os.path.join(data, "executions",
                                               "*.json"))):
            try:
                with open(p, encoding="utf-8") as f:
                    rec = json.load(f)
            except ValueError as e:
                self.fail("execution record %s is not JSON: %s" %
                          (os.path.basename(p), e))
                continue
            if not isinstance(rec, dict):
                self.fail("execution record %s is not an object" %
                          os.path.basename(p))
                continue
            m = rec.get("mission")
            key = (str(rec.get("startedAt", "")), str(rec.get("id", "")))
            if m not in newest or key > newest[m][0]:
                newest[m] = (key, rec)
        return {m: r for m, (_, r) in newest.items()}

    def check_exec_latest(self, data):
        exp_dir = os.path.join(self.exp, "exec-latest")
        if not os.path.isdir(exp_dir):
            return
        latest = self.latest_records(data)
        ignore = self.ignore()
        for fn in sorted(os.listdir(exp_dir)):
            if not fn.endswith(".json"):
                continue
            mission = fn[:-len(".json")]
            text = read_text(os.path.join(exp_dir, fn))
            want = json.loads(text.replace("@BASE@", self.base))
            if mission not in latest:
                self.fail("exec-latest: no execution record of %s" %
                          mission)
                continue
            got = strip_fields(latest[mission], ignore)
            want = strip_fields(want, ignore)
            why = json_match(want, got, "")
            if why:
                self.fail("exec-latest %s: %s\n  got  %s\n  want %s" %
                          (mission, why, canon(got)[:1200],
                           canon(want)[:1200]))

    def check_outputs(self):
        if not hasattr(self, "run_dir"):
            return
        out_exp = os.path.join(self.exp, "output")
        if os.path.isdir(out_exp):
            self.compare_tree(out_exp, self.out_dir, "output")
        data = os.path.join(self.run_dir, ".reqon-data")
        files_exp = os.path.join(self.exp, "files")
        if os.path.isdir(files_exp):
            self.compare_tree(files_exp, data, "data file")
        self.check_exec_latest(data)
        for sub, root in (("files-bytes", data),
                          ("output-bytes", self.out_dir)):
            self.compare_bytes(os.path.join(self.exp, sub), root, sub)
        for name, root in (("files-absent", data),
                           ("output-absent", self.out_dir)):
            for pat in read_lines(os.path.join(self.exp, name)):
                hits = glob.glob(os.path.join(root, pat.strip()))
                if hits:
                    self.fail("%s: %s exists" % (name, os.path.relpath(
                        hits[0], self.work)))
        for line in read_lines(os.path.join(self.exp, "modes")):
            rel, _, mode = line.strip().rpartition(" ")
            p = os.path.join(data, rel.strip())
            try:
                got = os.stat(p).st_mode & 0o7777
            except OSError:
                self.fail("modes: %s does not exist" % rel.strip())
                continue
            if got != int(mode, 8):
                self.fail("modes: %s has mode %o, want %s" %
                          (rel.strip(), got, mode))
        for pat in read_lines(os.path.join(self.exp, "data.absent")):
            for root in (data, self.out_dir):
                for dirpath, _, names in os.walk(root):
                    for fn in names:
                        path = os.path.join(dirpath, fn)
                        with open(path, "rb") as f:
                            text = f.read().decode("utf-8", "replace")
                        if re.search(pat, text, re.M):
                            self.fail("data.absent: /%s/ found in %s" % (
                                pat, os.path.relpath(path, self.work)))
        for stream, text in (("stderr", self.stderr),
                             ("stdout", self.stdout)):
            for pat in read_lines(os.path.join(self.exp, stream + ".grep")):
                if not re.search(pat, text, re.M):
                    self.fail("%s lacks /%s/" % (stream, pat))
            for pat in read_lines(os.path.join(self.exp,
                                               stream + ".absent")):
                if re.search(pat, text, re.M):
                    self.fail("%s must not contain /%s/" % (stream, pat))

    def check_report(self, report):
        unexpected = report.get("unexpected") or []
        if unexpected:
            self.fail("server got %d unexpected request(s), first: %s" %
                      (len(unexpected), describe(unexpected[0])))
        pending = report.get("pending") or []
        if pending:
            self.fail("%d expected exchange(s) never used: indices %s" %
                      (len(pending), pending[:10]))
        want_p = self.expfile("requests.json")
        if not want_p:
            return
        with open(want_p, encoding="utf-8") as f:
            want = json.load(f)
        got = report.get("requests") or []
        for i, w in enumerate(want):
            if i >= len(got):
                self.fail("request %d never came: want %s" %
                          (i + 1, describe(w)))
                break
            why = request_diff(w, got[i])
            if why:
                self.fail("request %d: %s (got %s)" % (i + 1, why,
                                                       describe(got[i])))
        if len(got) > len(want):
            self.fail("%d request(s) more than expected, first extra: %s" %
                      (len(got) - len(want), describe(got[len(want)])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--suite", required=True)
    ap.add_argument("--keep", action="store_true",
                    help="keep the work dirs of passing cases too")
    ap.add_argument("--secrets", action="store_true",
                    help="secret-leak check instead of the expectations")
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    passed = failed = 0
    for c in a.cases:
        case = Case(c, build, a.suite, a.keep, a.secrets)
        t0 = time.monotonic()
        case.run()
        dt = time.monotonic() - t0
        if case.problems:
            failed += 1
            print("FAIL %s (%.1fs, kept in %s)" % (case.name, dt, case.work))
            for p in case.problems:
                print("     " + p.replace("\n", "\n     "))
        else:
            passed += 1
            print("PASS %s (%.1fs)" % (case.name, dt))
        sys.stdout.flush()
    print("%s: %d passed, %d failed" % (a.suite, passed, failed))
    res = os.path.join(build, "test-results")
    os.makedirs(res, exist_ok=True)
    with open(os.path.join(res, a.suite), "w") as f:
        f.write("%d %d\n" % (passed, failed))
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
