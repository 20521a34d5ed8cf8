"""Apache for the end-to-end tests: `apache2 -f` with a config of our own
(ServerRoot, PidFile, port, logs and runtime files in the test's folder),
the modules from Debian's build, and a site config from conf/apache/.
Started in the foreground and stopped by the PID we started, like nginx in
stack.py.
"""
import os

from stack import Proc, REPO, Stack, fill, free_port, port_open, wait_for

MODULES = "/usr/lib/apache2/modules"
# What every mode needs; each mode adds its own (proxy_fcgi, fcgid, cgid).
BASE_MODULES = ["mpm_event", "authz_core", "mime", "alias", "env"]
MODULE_FILES = {"proxy": "mod_proxy.so", "proxy_fcgi": "mod_proxy_fcgi.so", "fcgid": "mod_fcgid.so",
                "cgid": "mod_cgid.so"}


class Apache:
    def __init__(self, workdir, modules, site_conf, values=None, extra=""):
        """site_conf: a file of conf/apache/ (or None), filled with values the
        way stack.py fills conf/nginx/bosh.conf; extra: more server config."""
        self.dir = workdir
        self.port = free_port()
        self.modules = BASE_MODULES + list(modules)
        self.site_conf = site_conf
        self.values = values or {}
        self.extra = extra
        self.proc = None
        self.htdocs = os.path.join(self.dir, "htdocs")
        self.error_log = os.path.join(self.dir, "error.log")
        self.as_root = os.geteuid() == 0
        for d in (self.dir, self.htdocs, os.path.join(self.dir, "run")):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)

    def url(self, path="/http-bind"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _load_lines(self):
        lines = []
        for m in self.modules:
            f = MODULE_FILES.get(m, "mod_%s.so" % m)
            lines.append("LoadModule %s_module %s/%s" % (m, MODULES, f))
        return "\n".join(lines)

    def write_conf(self):
        site = ""
        if self.site_conf:
            site = os.path.join(self.dir, os.path.basename(self.site_conf))
            with open(site, "w") as f:
                f.write(fill(os.path.join(REPO, self.site_conf), self.values))
        conf = os.path.join(self.dir, "httpd.conf")
        with open(conf, "w") as f:
            f.write("""# written by tests/e2e/apache.py
ServerRoot "%(d)s"
ServerName 127.0.0.1
Listen 127.0.0.1:%(port)d
PidFile %(d)s/httpd.pid
DefaultRuntimeDir %(d)s/run
Mutex file:%(d)s/run default
ErrorLog %(d)s/error.log
LogLevel info
LogFormat "%%h \\"%%r\\" %%>s %%b %%Dus" timed
%(modules)s
CustomLog %(d)s/access.log timed
%(user)s
TypesConfig /etc/mime.types
DocumentRoot "%(d)s/htdocs"
<Directory />
	AllowOverride None
	Require all denied
</Directory>
# A shared host: users may put their own .htaccess in their folders.
<Directory "%(d)s/htdocs">
	AllowOverride All
	Require all granted
</Directory>
# Longer than max_wait (20 s in the tests), as conf/apache/ asks.
Timeout 60
StartServers 1
ServerLimit 2
ThreadsPerChild 32
MaxRequestWorkers 64
MinSpareThreads 8
MaxSpareThreads 64
<IfModule cgid_module>
	ScriptSock %(d)s/run/cgid.sock
</IfModule>
<IfModule fcgid_module>
	FcgidIPCDir %(d)s/run/fcgid
	FcgidProcessTableFile %(d)s/run/fcgid.shm
</IfModule>
%(extra)s
%(include)s
""" % {"d": self.dir, "port": self.port, "modules": self._load_lines(),
                "user": "User nobody\nGroup nogroup" if self.as_root else "",
                "extra": self.extra, "include": "Include %s" % site if site else ""})
        return conf

    def start(self):
        conf = self.write_conf()
        log = os.path.join(self.dir, "stdout.log")
        self.proc = Proc("apache2", ["apache2", "-f", conf, "-d", self.dir, "-DFOREGROUND"], log)
        wait_for(lambda: port_open(self.port) or not self.proc.alive(), 20, "apache2")
        if not self.proc.alive():
            raise RuntimeError("apache2 did not start:\n" + tail(self.error_log) + tail(log))
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None


tail = Stack.tail
