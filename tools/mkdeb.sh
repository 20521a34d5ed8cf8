#!/bin/sh
# mkdeb.sh BUILD_DIR - the Debian package (debian/), built by dpkg-buildpackage
# from a copy of the source in BUILD_DIR/deb/ (the package build runs `make
# clean`, which must not remove this tree's build folder), then checked with
# lintian: errors fail, warnings are printed. The .deb lands in BUILD_DIR.
set -eu
out=$(cd "$1" 2>/dev/null && pwd || { mkdir -p "$1" && cd "$1" && pwd; })
top=$(cd "$(dirname "$0")/.." && pwd)
version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
src="$out/deb/bosh-cm-$version"
rm -rf "$out/deb"
mkdir -p "$src"
# The files of the project (tracked, or new and not ignored), not build output.
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do [ -e "$f" ] || [ -L "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf -) | tar -xf - -C "$src"
else
	(cd "$top" && tar --exclude=./build --exclude=./run --exclude=./.git \
		--exclude=node_modules -cf - .) | tar -xf - -C "$src"
fi
echo "dpkg-buildpackage in $src (log: $out/deb/build.log)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -j2) > "$out/deb/build.log" 2>&1; then
	tail -40 "$out/deb/build.log" >&2
	echo "mkdeb: dpkg-buildpackage failed; whole log: $out/deb/build.log" >&2
	exit 1
fi
deb=$(ls "$out"/deb/bosh-cm_"$version"_*.deb)
rm -f "$out"/bosh-cm_*.deb
cp "$deb" "$out/"
deb="$out/$(basename "$deb")"
echo "built $deb"
# lintian: no error allowed; warnings and the rest are shown.
lintian --fail-on error "$out"/deb/bosh-cm_"$version"_*.changes | tee "$out/deb/lintian.txt"
