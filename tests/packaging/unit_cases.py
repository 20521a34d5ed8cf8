"""The systemd unit (systemd-analyze verify, as systemd itself would load
it) and the man pages (bosh.conf(5) against the parser's key table,
sessiond(8) against the signals and options main.c handles)."""
import os
import re
import shutil
import subprocess
import tempfile

from common import REPO, Skipped, build_file, case, expect

UNIT = os.path.join(REPO, "conf", "systemd", "bosh-sessiond.service")


def verify_unit(path, manpath):
    """The lines systemd-analyze verify prints about the unit at path: []
    when it is clean. Skipped when systemd-analyze cannot run here."""
    if not shutil.which("systemd-analyze"):
        raise Skipped("systemd-analyze is not installed (Debian package systemd)")
    env = dict(os.environ, MANPATH=manpath, SYSTEMD_LOG_COLOR="0")
    r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True,
                       env=env, timeout=120)
    out = (r.stdout + r.stderr).strip()
    unit = os.path.basename(path)
    about = [line for line in out.splitlines() if unit in line]
    if not about and r.returncode != 0:
        # the tool itself could not run (no manager, no /run/systemd...): say why
        raise Skipped("systemd-analyze verify cannot run here (exit %d): %s"
                      % (r.returncode, out[:300] or "no output"))
    return about


def unit_for_build(d):
    """The unit as shipped, with ExecStart's binary the one just built (verify
    checks that it is executable)."""
    with open(UNIT) as f:
        text = f.read()
    expect("ExecStart=/usr/sbin/sessiond " in text, "ExecStart is not /usr/sbin/sessiond")
    path = os.path.join(d, "bosh-sessiond.service")
    with open(path, "w") as f:
        f.write(text.replace("/usr/sbin/sessiond", build_file("sessiond")))
    return path


def unit_settings():
    settings = {}
    with open(UNIT) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, v = line.strip().split("=", 1)
                settings.setdefault(k, []).append(v)
    return settings


@case
def systemd_unit_verifies():
    d = tempfile.mkdtemp(prefix="bosh-unit-")
    try:
        problems = verify_unit(unit_for_build(d), build_file("man"))
        expect(not problems, "systemd-analyze verify:\n" + "\n".join(problems))
        s = unit_settings()
        for key, want in (("Type", "notify"), ("ExecReload", "/bin/kill -HUP $MAINPID"),
                          ("RuntimeDirectory", "bosh"), ("StateDirectory", "bosh"),
                          ("Group", "www-data"), ("NoNewPrivileges", "yes"),
                          ("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("ProtectHome", "yes")):
            expect(s.get(key) == [want], "%s=%s expected, the unit has %r" % (key, want, s.get(key)))
        expect("LimitNOFILE" in s, "no LimitNOFILE")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def systemd_verify_sees_a_broken_unit():
    """The check above can fail: a misspelt setting is reported."""
    d = tempfile.mkdtemp(prefix="bosh-unit-")
    try:
        path = unit_for_build(d)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("ProtectSystem=strict", "ProtectSystem=strickt\nNoNewPrivilege=yes"))
        problems = verify_unit(path, build_file("man"))
        expect(any("strickt" in p for p in problems) and any("NoNewPrivilege" in p for p in problems),
               "a broken unit passed systemd-analyze verify: %r" % problems)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def config_keys():
    out = subprocess.run([build_file("config-keys")], capture_output=True, text=True, check=True).stdout
    keys = {}
    for line in out.splitlines():
        name, kind, default, lo, hi, reload, alias = line.split("\t")
        keys[name] = dict(default=default, min=lo, max=hi, reload=reload == "1", alias=alias)
    return keys


def page_keys(path):
    """{key: the line of facts under it} from the KEYS section of bosh.conf(5)."""
    with open(path) as f:
        lines = f.read().split("\n")
    start = lines.index(".SH KEYS")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(".SH "))
    keys = {}
    for i in range(start, end):
        if lines[i] == ".TP" and lines[i + 1].startswith(".B "):
            keys[lines[i + 1][3:]] = lines[i + 2]
    return keys


def render_warnings(path):
    """What man (groff) warns about when it formats the page, as lintian checks it."""
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path],
                       capture_output=True, text=True, env=env)
    return r.stderr.strip()


@case
def man_bosh_conf_lists_every_key():
    """bosh.conf(5), generated again now, lists exactly the parser's keys,
    each with the parser's default, range and reload."""
    table = config_keys()
    d = tempfile.mkdtemp(prefix="bosh-man-")
    try:
        tsv, page = os.path.join(d, "keys.tsv"), os.path.join(d, "bosh.conf.5")
        subprocess.run([build_file("config-keys")], stdout=open(tsv, "w"), check=True)
        r = subprocess.run(["python3", os.path.join(REPO, "tools", "mkconfman.py"), tsv,
                            os.path.join(REPO, "man", "bosh.conf.keys"),
                            os.path.join(REPO, "man", "bosh.conf.5.in"), page],
                           capture_output=True, text=True)
        expect(r.returncode == 0, "bosh.conf(5) cannot be made:\n" + r.stderr)
        on_page = page_keys(page)
        missing = sorted(set(table) - set(on_page))
        extra = sorted(set(on_page) - set(table))
        expect(not missing, "keys of the parser missing from bosh.conf(5): %s" % missing)
        expect(not extra, "bosh.conf(5) lists keys the parser does not take: %s" % extra)
        for name, k in table.items():
            facts = on_page[name]
            if k["default"] and not k["alias"]:
                shown = k["default"].replace("-", "\\-")
                expect("Default: \\fB%s\\fR." % shown in facts, "%s: default %s not on the page: %s"
                       % (name, k["default"], facts))
            if k["min"] and not k["alias"]:
                expect(k["min"] in facts, "%s: range %s..%s not on the page: %s"
                       % (name, k["min"], k["max"], facts))
            expect(("SIGHUP applies" in facts) == k["reload"], "%s: reload wrong: %s" % (name, facts))
        warn = render_warnings(page)
        expect(not warn, "bosh.conf(5) renders with warnings:\n" + warn)
        built = build_file("man", "man5", "bosh.conf.5")
        expect(os.path.exists(built) and page_keys(built) == on_page,
               "%s is stale or missing (make man)" % built)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def man_sessiond_has_every_signal_and_option():
    """Every signal main.c handles and every option its getopt takes is in
    sessiond(8), in SIGNALS and OPTIONS."""
    with open(os.path.join(REPO, "sessiond", "main.c")) as f:
        src = f.read()
    signals = set(re.findall(r"sigaddset\(&set, (SIG[A-Z0-9]+)\)", src))
    signals |= set(re.findall(r"signal\((SIG[A-Z0-9]+), SIG_IGN\)", src))
    opts = re.search(r'getopt_long\(argc, argv, "([^"]+)"', src).group(1).replace(":", "")
    longs = set(re.findall(r'\{ "([a-z-]+)", (?:no|required)_argument', src))
    expect(len(signals) >= 5 and opts, "main.c's signals or options not found")
    with open(os.path.join(REPO, "man", "sessiond.8")) as f:
        page = f.read()

    def section(name):
        m = re.search(r"^\.SH %s\n(.*?)(?=^\.SH )" % name, page, re.S | re.M)
        expect(m, "sessiond(8) has no %s section" % name)
        return m.group(1)

    sig_text, opt_text = section("SIGNALS"), section("OPTIONS")
    missing = [s for s in sorted(signals) if not re.search(r"\b%s\b" % s, sig_text)]
    expect(not missing, "signals sessiond handles, missing from sessiond(8) SIGNALS: %s" % missing)
    missing = [o for o in opts if "\\-" + o not in opt_text and o != "h"]
    expect(not missing, "options missing from sessiond(8) OPTIONS: %s" % ["-" + o for o in missing])
    missing = [o for o in sorted(longs) if "\\-\\-" + o.replace("-", "\\-") not in page and o != "help"]
    expect(not missing, "long options missing from sessiond(8): %s" % ["--" + o for o in missing])
    for name in ("sessiond.8", "bosh-handler.8", "bosh-prebind.1", "bosh-discovery.1"):
        page_path = os.path.join(REPO, "man", name)
        warn = render_warnings(page_path)
        expect(not warn, "%s renders with warnings:\n%s" % (page_path, warn))
