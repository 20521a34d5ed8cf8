#!/bin/sh
# boot_systemd.sh ROOT UNITS - inside fresh PID, mount and cgroup namespaces
# (unshare): systemd as PID 1 with only the units in UNITS, the extracted
# package ROOT at /opt/bosh, and its own /run, /var/lib, /var/log and /opt,
# so nothing it does reaches the machine's. Used by systemd_cases.py.
set -eu
root=$1 units=$2
mount --make-rprivate /
# cgroup hierarchies seen from our cgroup namespace: systemd's slices go
# below the test's own cgroup, not the machine's root.
mounts=$(awk '$9 == "cgroup" || $9 == "cgroup2" {print $5 " " $9 " " $NF}' /proc/self/mountinfo)
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
echo "$mounts" | while read -r dir type opts; do
	mkdir -p "$dir"
	if [ "$type" = cgroup2 ]; then
		mount -t cgroup2 cgroup2 "$dir"
	else
		# the options name the controller (or name=systemd); rw is the mount's
		mount -t cgroup -o "$(echo "$opts" | sed 's/^rw,//')" cgroup "$dir"
	fi
done
for d in /run /var/lib /var/log /opt; do
	mount -t tmpfs -o mode=755 tmpfs "$d"
done
mkdir -p /run/lock /opt/bosh
cp -a "$root"/. /opt/bosh/
export SYSTEMD_UNIT_PATH="$units" container=bosh-test
exec /lib/systemd/systemd --system --unit=bosh-test.target --log-target=null
