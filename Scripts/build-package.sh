#!/bin/bash
# Builds the Debian package of the storage manager from a release build (Swift runtime linked
# statically, so no Swift toolchain is needed where it is installed) and prints its path.
#
#   Scripts/build-package.sh [OUTPUT-DIRECTORY]      # default: .build/package
#
# What goes where (Docs/package.md says why):
#   /usr/libexec/sm/<Driver>          every driver: the directory the host agent runs them from
#   /usr/sbin/<Driver>                a link to it, for administrators (and `man <Driver>`)
#   /usr/sbin/lock-util               the NFS-safe lock utility, where the spec says it is
#   /usr/sbin/sm-vhd                  the VHD engine from the command line
#   /etc/sm/sm.conf                   host settings, every key commented out (a conffile)
#   /etc/logrotate.d/storage-manager  rotation of the operations log /var/log/SMlog
#   /usr/share/man/man8/*.8.gz        one page per executable, generated from its own --help
#   /usr/share/bash-completion/completions/<Driver>   verbs completed from the driver's --help
# Shared-library dependencies are computed by dpkg-shlibdeps from the executables themselves; the
# executables that Package.swift links fully static (Docs/performance.md: start-up) have none, and
# the package names what they contain in Built-Using, so that a security update of one of those
# libraries is known to need a rebuild (Docs/package.md).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
output=${1:-$repo/.build/package}
package=storage-manager
maintainer="Storage Manager developers <sm-dev@lists.example.org>"

swift build -c release --static-swift-stdlib >&2
bin=$(swift build -c release --static-swift-stdlib --show-bin-path)
# The drivers are the products Package.swift lists beside lock-util and sm-vhd.
mapfile -t drivers < <(swift package dump-package | python3 -c '
import json, sys
for product in json.load(sys.stdin)["products"]:
    if "executable" in product["type"] and product["name"] not in ("lock-util", "sm-vhd", "sm-drivers", "sm-dynamic-drivers"):
        print(product["name"])')
[ ${#drivers[@]} -ge 7 ] || { echo "build-package.sh: cannot read the driver list from Package.swift" >&2; exit 1; }
multicall=(sm-drivers sm-dynamic-drivers)
for executable in "${drivers[@]}" lock-util sm-vhd "${multicall[@]}"; do
    [ -x "$bin/$executable" ] || { echo "build-package.sh: $bin/$executable was not built" >&2; exit 1; }
done

# Version: 0.1.<commits>, from git (a package built outside git is 0.1.0).
commits=$(git -C "$repo" rev-list --count HEAD 2>/dev/null || echo 0)
version=0.1.$commits
architecture=$(dpkg --print-architecture)

stage=$(mktemp -d "${TMPDIR:-/tmp}/sm-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d -m 755 "$root"/{DEBIAN,usr/libexec/sm,usr/sbin,usr/share/man/man8,etc/sm,etc/logrotate.d} \
    "$root/usr/share/doc/$package" "$root/usr/share/bash-completion/completions"

# A driver that a multi-call executable holds is installed as a link to it: sm-drivers (fully
# static) holds the drivers that need only SMCore, sm-dynamic-drivers the LVM drivers and RBDSR
# (each copy would carry libxml2 and ICU's data again); a driver neither holds, as itself.
for executable in "${multicall[@]}"; do install -m 755 -s "$bin/$executable" "$root/usr/libexec/sm/$executable"; done
for driver in "${drivers[@]}"; do
    holder=""
    for executable in "${multicall[@]}"; do
        ln -s "$executable" "$root/usr/libexec/sm/$driver"
        if cmp -s <("$bin/$driver" --help) <("$root/usr/libexec/sm/$driver" --help 2>/dev/null); then
            holder=$executable
            break
        fi
        rm "$root/usr/libexec/sm/$driver"
    done
    if [ -z "$holder" ]; then
        readelf -d "$bin/$driver" | grep -q NEEDED \
            || { echo "build-package.sh: $driver is static but no multi-call executable holds it (Sources/sm-drivers?)" >&2; exit 1; }
        install -m 755 -s "$bin/$driver" "$root/usr/libexec/sm/$driver"
    fi
    ln -s "../libexec/sm/$driver" "$root/usr/sbin/$driver"
    ln -s "$package" "$root/usr/share/bash-completion/completions/$driver"
done
# lock-util and sm-vhd are sm-drivers run by those names (Sources/sm-drivers): fully static like
# the drivers, where their own executables would load libxml2 and ICU at every call.
for tool in lock-util sm-vhd; do
    ln -s ../libexec/sm/sm-drivers "$root/usr/sbin/$tool"
    cmp -s <("$bin/$tool" --help) <("$root/usr/sbin/$tool" --help) \
        || { echo "build-package.sh: sm-drivers does not answer as $tool" >&2; exit 1; }
done
install -m 644 packaging/bash-completion "$root/usr/share/bash-completion/completions/$package"
install -m 644 packaging/sm.conf "$root/etc/sm/sm.conf"
install -m 644 packaging/logrotate "$root/etc/logrotate.d/$package"
install -m 644 packaging/copyright "$root/usr/share/doc/$package/copyright"
install -d -m 755 "$root/usr/share/lintian/overrides"

# Manual pages from each executable's own --help (Scripts/help-to-man.py): one source for the
# terminal and for man.
date=$(date -u -d "@$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)" +%Y-%m-%d)
for executable in "${drivers[@]}" lock-util sm-vhd; do
    "$bin/$executable" --help | Scripts/help-to-man.py "$executable" "$version" "$package" "$date" \
        | gzip -9n > "$root/usr/share/man/man8/$executable.8.gz"
done

# The changelog of a native package: this version, from the last commit.
{
    echo "$package ($version) unstable; urgency=medium"
    echo
    echo "  * Built from $(git -C "$repo" log -1 --format='commit %h: %s' 2>/dev/null | cut -c1-60 || echo 'a source tree')."
    echo
    echo " -- $maintainer  $(date -R -d "@$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n > "$root/usr/share/doc/$package/changelog.gz"
chmod 644 "$root/usr/share/doc/$package/changelog.gz" "$root"/usr/share/man/man8/*.gz

# Shared libraries: dpkg-shlibdeps reads the executables' NEEDED entries and maps them to the
# Debian packages that provide them (it needs a debian/control to run from).
mkdir -p "$stage/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" > "$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O -e"root/usr/libexec/sm/${drivers[0]}" \
    $(for executable in "${drivers[@]:1}"; do printf -- '-eroot/usr/libexec/sm/%s ' "$executable"; done) \
    -eroot/usr/sbin/lock-util -eroot/usr/sbin/sm-vhd 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-package.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
# The LVM drivers load liblvm2cmd with dlopen (Sources/SMLVM/LVM/LVM2Library.swift), RBDSR
# librados and librbd (Sources/CRBD), which dpkg-shlibdeps cannot see: the package of each
# soname, by name.
for soname in liblvm2cmd.so.2.03 librados.so.2 librbd.so.1; do
    provider=$(dpkg-query -S "$soname" | head -1 | cut -d: -f1)
    [ -n "$provider" ] || { echo "build-package.sh: no installed package has $soname" >&2; exit 1; }
    depends="$depends, $provider"
done

# Executables with static archives in them (every executable links libxml2 through SMCore; one
# that does not load libxml2.so carries it): lintian overrides for each (the reason is in
# Docs/package.md), and Built-Using for the Debian source packages whose archives they contain.
embedding=()
for executable in "$root"/usr/libexec/sm/* "$root"/usr/sbin/lock-util "$root"/usr/sbin/sm-vhd; do
    [ -L "$executable" ] && continue
    if ! readelf -d "$executable" 2>/dev/null | grep -q "NEEDED.*libxml2"; then embedding+=("${executable#"$root"/}"); fi
done
built_using=""
if [ ${#embedding[@]} -gt 0 ]; then
    for executable in "${embedding[@]}"; do
        if ! readelf -d "$root/$executable" 2>/dev/null | grep -q NEEDED; then
            echo "$package: statically-linked-binary [$executable]"
        elif readelf -h "$root/$executable" | grep -q "Type: *EXEC"; then
            echo "$package: hardening-no-pie [$executable]"   # sm-dynamic-drivers: Docs/package.md
        fi
        echo "$package: embedded-library libxml2 [$executable]"
        echo "$package: embedded-library zlib [$executable]"
    done > "$root/usr/share/lintian/overrides/$package"
    chmod 644 "$root/usr/share/lintian/overrides/$package"
    built_using=$(for dev in libxml2-dev libicu-dev liblzma-dev zlib1g-dev libblkid-dev uuid-dev nettle-dev libstdc++-12-dev libc6-dev; do
        dpkg-query -W -f='${source:Package} (= ${source:Version})\n' "$dev"
    done | sort -u | paste -sd, | sed 's/,/, /g')
fi
echo /etc/sm/sm.conf > "$root/DEBIAN/conffiles"
echo /etc/logrotate.d/$package >> "$root/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $architecture
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
${built_using:+Built-Using: $built_using
}Recommends: lvm2, e2fsprogs, nfs-common, open-iscsi
Section: admin
Priority: optional
Homepage: https://github.com/storage-manager/storage-manager
Description: storage manager for Linux virtualisation hosts
 The Storage Manager (SM) API: one interface of SR (storage repository) and
 VDI (virtual disk) verbs over local directories, ext4, NFS, LVM and iSCSI,
 for a host agent that runs <Driver> <dconf-xml> <verb> <args...> and reads
 errno exit codes and XML. Includes lock-util, the NFS-safe persistent lock
 utility, and sm-vhd, the VHD engine from the command line.
EOF

mkdir -p "$output"
deb="$output/${package}_${version}_$architecture.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
