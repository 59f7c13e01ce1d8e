import Testing

@testable import SMCore

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct MountTableTests {
    static let sample = """
        22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
        36 22 7:3 / /run/sr-mount/with\\040space rw,relatime shared:5 master:2 - ext4 /dev/loop3 rw
        37 22 0:52 /export /mnt/nfs ro,relatime - nfs server:/export ro,vers=3
        garbage line
        38 22 7:3 / /run/sr-mount/with\\040space ro - ext4 /dev/loop3 ro
        """

    /// mountinfo lines parse with optional fields, octal escapes and network sources; junk is skipped.
    @Test func parsesMountinfo() {
        let table = MountTable(mountinfo: Self.sample)
        #expect(table.entries.count == 4)
        let nfs = table.entries[2]
        #expect(nfs.device == DeviceNumber(major: 0, minor: 52) && nfs.root == "/export" && nfs.source == "server:/export")
        #expect(nfs.fileSystemType == "nfs" && nfs.isReadOnly)
        // The topmost of two stacked mounts wins.
        #expect(table.entry(at: "/run/sr-mount/with space")?.isReadOnly == true)
        #expect(table.entries(on: DeviceNumber(major: 7, minor: 3)).count == 2)
        #expect(table.entry(at: "/run/sr-mount/absent") == nil)
    }

    /// A mount with an empty source (`mount -t tmpfs "" /x`) prints two spaces before the super
    /// options; it is still an entry, with an empty source, not a line to skip.
    @Test func parsesEmptySource() {
        let table = MountTable(mountinfo: "42 27 0:39 / /run/sr-mount/empty rw,relatime - tmpfs  rw\n")
        #expect(table.entries.count == 1)
        #expect(table.entries.first?.source == "" && table.entries.first?.fileSystemType == "tmpfs")
        #expect(table.entry(at: "/run/sr-mount/empty") != nil)
    }

    /// dev_t splits as glibc's major()/minor() do, including numbers wider than 12 and 8 bits.
    @Test func splitsDeviceNumbers() {
        #expect(DeviceNumber(dev_t(0x0703)).description == "7:3")
        let major: UInt64 = 0x12345
        let minor: UInt64 = 0x6789a
        // glibc's makedev().
        let packed = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)
        #expect(DeviceNumber(dev_t(packed)) == DeviceNumber(major: UInt32(major), minor: UInt32(minor)))
    }

    /// A signature names its type, kind, UUID and label, with control characters made printable.
    @Test func describesSignatures() {
        let signature = Signature(type: "ext4", kind: .filesystem, uuid: "u", label: "a\u{1}b")
        #expect(signature.description == "ext4 filesystem (UUID u, label \"a?b\")")
        #expect(Signature(type: "gpt", kind: .partitionTable).description == "gpt partition table")
    }
}
