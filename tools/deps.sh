#!/bin/sh
# deps.sh PKG... - make sure these Debian packages are installed.
# As root, installs the missing ones; otherwise names them and fails.
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "Missing Debian packages:$missing" >&2
	echo "Install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "Installing missing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1; then
	apt-get update -q >/dev/null 2>&1
	apt-get install -y -q --no-install-recommends $missing || {
		echo "apt-get could not install:$missing" >&2
		exit 1
	}
fi
# A package's postinst may start its service (nginx, prosody, apache2): we run our own.
# prometheus comes only for promtool (the tests check our metrics with it), and
# ejabberd for make bench (peers.sh starts its own): their servers are stopped.
for svc in nginx prosody apache2 prometheus ejabberd; do
	case " $missing " in *" $svc "*) (service "$svc" stop || systemctl stop "$svc") >/dev/null 2>&1 ;; esac
done
for svc in prometheus ejabberd; do
	case " $missing " in *" $svc "*) systemctl disable "$svc" >/dev/null 2>&1 ;; esac
done
exit 0
