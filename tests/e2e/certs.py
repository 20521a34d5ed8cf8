"""Test certificates made with the openssl command: a CA of our own, and
server certificates signed by it (or by another CA the tests do not trust)."""
import base64
import os
import subprocess


def run(*argv, **kw):
    subprocess.run(argv, check=True, capture_output=True, timeout=60, **kw)


def make_ca(d, name):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key, "-out", crt, "-subj", "/CN=%s" % name, "-days", "3",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return key, crt


def make_cert(d, name, ca, dns=(), other_names=()):
    """other_names: openssl otherName values, e.g. '1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-client.x'."""
    key, csr, crt = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".crt"))
    ext = os.path.join(d, name + ".ext")
    sans = ["DNS:" + n for n in dns] + ["otherName:" + o for o in other_names]
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n"
                % ",".join(sans))
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=%s" % name)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
        "-out", crt, "-days", "3", "-extfile", ext)
    os.chmod(key, 0o644)  # Prosody reads it after dropping to its own user when not root
    return key, crt


def spki_pin(crt):
    """base64 SHA-256 of the certificate's SubjectPublicKeyInfo (what pin-sha256= takes)."""
    pub = subprocess.run(["openssl", "x509", "-in", crt, "-pubkey", "-noout"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True,
                         capture_output=True).stdout
    import hashlib
    return base64.b64encode(hashlib.sha256(der).digest()).decode()
