import Foundation
import Testing

/// RBDSR through the built binary against a real single-node Ceph cluster on 127.0.0.1 that the
/// suite brings up itself (`CephCluster`, Tests/ceph/cluster.sh). The `rbd` command line, run
/// as client.admin by the test, is the oracle; guest data goes through librbd (python3-rbd,
/// Tests/ceph/rbd-data.py). The host kernel has no rbd module: krbd map/unmap is the VM lane's
/// (Tests/vm/groups/rbd.sh); here vdi_attach must say so.
@Suite(.serialized) struct RBDSRTests {
    static let gibibyte: UInt64 = 1 << 30

    /// Every SR verb and the plain VDI verbs, each checked against `rbd`: the SR is a namespace
    /// named by its UUID, a VDI a format 2 image with layering, exclusive-lock, object-map and
    /// fast-diff; the non-idempotent verbs answer EEXIST a second time, the idempotent ones succeed.
    @Test(.timeLimit(.minutes(3))) func lifecycle() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.ok("sr_create", f.sr, "0")
        try f.fails(17, "EEXIST", "sr_create", f.sr, "0")
        let namespaces = try f.cluster.rbdJSON(["namespace", "ls", "sm"]) as? [[String: Any]] ?? []
        #expect(namespaces.contains { $0["name"] as? String == f.sr }, "the SR is the namespace sm/<SR-UUID>")
        try f.fails(19, "ENODEV", "sr_scan", f.sr)
        try f.ok("sr_attach", f.sr)
        try f.ok("sr_attach", f.sr)
        #expect(try ResultXML(try f.ok("sr_content_type", f.sr).standardOutput).value("type") == "aio")

        let vdi = newUUID()
        let odd = newUUID()
        try f.ok("vdi_create", f.sr, vdi, String(Self.gibibyte))
        try f.ok("vdi_create", f.sr, odd, "1000")
        try f.fails(17, "EEXIST", "vdi_create", f.sr, vdi, "1048576")
        let info = try f.cluster.rbdJSON(["info", "--namespace", f.sr, "sm/\(vdi)"]) as? [String: Any] ?? [:]
        #expect(info["format"] as? Int == 2)
        let features = Set(info["features"] as? [String] ?? [])
        #expect(features.isSuperset(of: ["layering", "exclusive-lock", "object-map", "fast-diff"]), "\(features)")
        var scan = try f.scan()
        #expect(Set(scan.keys) == [vdi, odd])
        #expect(scan[vdi]?["size"] == String(Self.gibibyte))
        #expect(scan[odd]?["size"] == "1024", "sizes round up to whole 512-byte sectors")
        #expect(scan[vdi]?["read_only"] == "False" && scan[vdi]?["parent"] == nil)
        #expect(scan[vdi]?["utilisation"] == "0", "a new image has no object")

        try f.cluster.write(namespace: f.sr, image: vdi, offset: 0, value: 7, length: 1 << 20)
        scan = try f.scan()
        #expect(scan[vdi]?["utilisation"] == String(4 << 20), "one written 4 MiB object, from fast-diff")

        try f.ok("vdi_resize", f.sr, vdi, String(2 * Self.gibibyte))
        try f.ok("vdi_resize", f.sr, vdi, String(2 * Self.gibibyte))
        try f.fails(22, "EINVAL", "vdi_resize", f.sr, vdi, String(Self.gibibyte))
        let resized = try f.cluster.rbdJSON(["info", "--namespace", f.sr, "sm/\(vdi)"]) as? [String: Any] ?? [:]
        #expect((resized["size"] as? NSNumber)?.uint64Value == 2 * Self.gibibyte)
        try f.fails(19, "ENODEV", "vdi_resize", f.sr, newUUID(), "1048576")

        try f.fails(16, "EBUSY", "sr_delete", f.sr)
        try f.ok("vdi_delete", f.sr, vdi)
        try f.ok("vdi_delete", f.sr, vdi)
        try f.ok("vdi_delete", f.sr, odd)
        #expect(try f.rbdNames().isEmpty)
        #expect(try f.scan().isEmpty)
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_detach", f.sr)
        try f.fails(19, "ENODEV", "vdi_create", f.sr, newUUID(), "1048576")
        try f.ok("sr_delete", f.sr)
        let after = try f.cluster.rbdJSON(["namespace", "ls", "sm"]) as? [[String: Any]] ?? []
        #expect(!after.contains { $0["name"] as? String == f.sr }, "sr_delete removes the namespace")
        try f.ok("sr_delete", f.sr)
        try f.fails(19, "ENODEV", "sr_attach", f.sr)
    }

    /// vdi_snapshot and vdi_clone are RBD snapshots and clones (no data copied): data written
    /// before a snapshot reads back from the snapshot and from clones after the source changed,
    /// and sr_scan shows the file SR's picture (source's parent the snapshot; a clone's base copy
    /// read-only, labelled, parent of both the source and the clone).
    @Test(.timeLimit(.minutes(3))) func snapshotAndCloneKeepData() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let source = newUUID()
        let snapshot = newUUID()
        let fromSnapshot = newUUID()
        let clone = newUUID()
        let length = 1 << 20
        try f.ok("vdi_create", f.sr, source, String(Self.gibibyte))
        try f.cluster.write(namespace: f.sr, image: source, offset: 0, value: 0x41, length: length)
        try f.ok("vdi_snapshot", f.sr, source, snapshot)
        #expect(try f.rbdNames() == [source, "\(source)@\(snapshot)"], "the snapshot is an RBD snapshot named by its UUID")
        try f.cluster.write(namespace: f.sr, image: source, offset: 0, value: 0x42, length: length)

        let first = try CephCluster.digest(of: 0x41, length: length)
        let second = try CephCluster.digest(of: 0x42, length: length)
        #expect(try f.cluster.digest(namespace: f.sr, image: "\(source)@\(snapshot)", offset: 0, length: length) == first)
        #expect(try f.cluster.digest(namespace: f.sr, image: source, offset: 0, length: length) == second)

        try f.ok("vdi_clone", f.sr, snapshot, fromSnapshot)
        #expect(try f.cluster.digest(namespace: f.sr, image: fromSnapshot, offset: 0, length: length) == first)
        try f.ok("vdi_clone", f.sr, source, clone)
        try f.cluster.write(namespace: f.sr, image: source, offset: 0, value: 0x43, length: length)
        #expect(
            try f.cluster.digest(namespace: f.sr, image: clone, offset: 0, length: length) == second,
            "the clone keeps what the source held when it was made")
        #expect(try f.cluster.digest(namespace: f.sr, image: "\(source)@\(snapshot)", offset: 0, length: length) == first)

        let scan = try f.scan()
        let base = try #require(scan[source]?["parent"])
        #expect(Set(scan.keys) == [source, snapshot, fromSnapshot, clone, base])
        #expect(scan[base]?["label"] == "base copy" && scan[base]?["read_only"] == "True")
        #expect(scan[base]?["parent"] == snapshot)
        #expect(scan[clone]?["parent"] == base && scan[clone]?["read_only"] == "False")
        #expect(scan[snapshot]?["read_only"] == "True" && scan[snapshot]?["parent"] == nil)
        #expect(scan[fromSnapshot]?["parent"] == snapshot)
        #expect(scan[snapshot]?["utilisation"] == String(4 << 20), "the snapshot holds one object of its own")
        #expect(scan[clone]?["utilisation"] == "0", "a clone holds nothing of its own: no data was copied")

        try f.fails(1, "EPERM", "vdi_snapshot", f.sr, snapshot, newUUID())
        try f.fails(1, "EPERM", "vdi_resize", f.sr, snapshot, String(2 * Self.gibibyte))
        try f.fails(17, "EEXIST", "vdi_snapshot", f.sr, source, clone)
        try f.fails(17, "EEXIST", "vdi_clone", f.sr, source, snapshot)
        try f.fails(19, "ENODEV", "vdi_clone", f.sr, newUUID(), newUUID())
    }

    /// Snapshot and clone take the same time for 1 GiB and 1 TiB (O(1): metadata only).
    @Test(.timeLimit(.minutes(3))) func snapshotAndCloneAreConstantTime() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        var seconds: [UInt64: Double] = [:]
        for size in [Self.gibibyte, 1024 * Self.gibibyte] {
            let vdi = newUUID()
            try f.ok("vdi_create", f.sr, vdi, String(size))
            try f.cluster.write(namespace: f.sr, image: vdi, offset: Int(size) - 4096, value: 9, length: 4096)
            let start = Date()
            try f.ok("vdi_snapshot", f.sr, vdi, newUUID())
            try f.ok("vdi_clone", f.sr, vdi, newUUID())
            seconds[size] = Date().timeIntervalSince(start)
        }
        let small = try #require(seconds[Self.gibibyte])
        let large = try #require(seconds[1024 * Self.gibibyte])
        #expect(large < max(3 * small, 2), "1 GiB: \(small) s, 1 TiB: \(large) s")
    }

    /// vdi_delete of a VDI others depend on hides it (gone from sr_scan, kept on the cluster)
    /// and it goes with the last dependant: a snapshot with a clone, an image with snapshots.
    @Test(.timeLimit(.minutes(3))) func deleteHidesWhatOthersNeed() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let source = try f.createVDI(filledWith: 0x51, length: 65536)
        let snapshot = newUUID()
        let clone = newUUID()
        try f.ok("vdi_snapshot", f.sr, source, snapshot)
        try f.ok("vdi_clone", f.sr, snapshot, clone)

        try f.ok("vdi_delete", f.sr, snapshot)
        #expect(try f.scan().keys.sorted() == [clone, source].sorted())
        #expect(try f.scan()[clone]?["parent"] == nil, "no listed ancestor is left")
        #expect(try f.rbdNames().contains("\(source)@\(snapshot)"), "the clone still needs the snapshot")
        try f.ok("vdi_delete", f.sr, snapshot)
        try f.fails(19, "ENODEV", "vdi_clone", f.sr, snapshot, newUUID())
        try f.fails(17, "EEXIST", "vdi_create", f.sr, snapshot, "1048576")
        #expect(
            try f.cluster.digest(namespace: f.sr, image: clone, offset: 0, length: 65536)
                == CephCluster.digest(of: 0x51, length: 65536))

        try f.ok("vdi_delete", f.sr, source)
        #expect(try f.scan().keys.sorted() == [clone])
        #expect(try f.rbdNames().contains(source), "the image stays for its snapshot")
        try f.ok("vdi_delete", f.sr, clone)
        #expect(try f.rbdNames().isEmpty, "the last dependant took the hidden snapshot and image with it")
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_delete", f.sr)
    }

    /// RBD copies an image's metadata into its clones: a clone of a snapshot whose image is
    /// hidden must not inherit the hidden mark (it names the image it belongs to).
    @Test(.timeLimit(.minutes(3))) func cloneOfHiddenImagesSnapshotIsListed() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let source = newUUID()
        let snapshot = newUUID()
        let clone = newUUID()
        try f.ok("vdi_create", f.sr, source, "4194304")
        try f.ok("vdi_snapshot", f.sr, source, snapshot)
        try f.ok("vdi_delete", f.sr, source)
        try f.ok("vdi_clone", f.sr, snapshot, clone)
        let scan = try f.scan()
        #expect(scan.keys.sorted() == [clone, snapshot].sorted())
        #expect(scan[clone]?["parent"] == snapshot)
        try f.ok("vdi_delete", f.sr, clone)
        try f.ok("vdi_delete", f.sr, snapshot)
        #expect(try f.rbdNames().isEmpty, "the hidden image went with its last snapshot")
    }

    /// What a delete interrupted before reclaiming leaves (a hidden snapshot without clones, made
    /// here with `rbd image-meta set` as the crash would leave it) goes at sr_delete, which then
    /// finds the SR empty.
    @Test(.timeLimit(.minutes(3))) func interruptedDeleteLeftoversAreReclaimed() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let image = newUUID()
        let snapshot = newUUID()
        let other = newUUID()
        try f.ok("vdi_create", f.sr, image, "4194304")
        try f.ok("vdi_snapshot", f.sr, image, snapshot)
        try f.ok("vdi_create", f.sr, other, "4194304")
        try f.ok("vdi_delete", f.sr, image)
        #expect(try f.rbdNames().contains(image), "the image is hidden, kept for its snapshot")
        let meta = try f.cluster.rbd(["image-meta", "set", "--namespace", f.sr, "sm/\(image)", "sm.hidden.\(snapshot)", "1"])
        #expect(meta.status == 0, "\(meta)")
        #expect(try f.scan().keys.sorted() == [other])
        try f.ok("vdi_delete", f.sr, other)
        #expect(try f.rbdNames() == [image, "\(image)@\(snapshot)"], "an unrelated delete reads only its own chain")
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_delete", f.sr)
        let namespaces = try f.cluster.rbdJSON(["namespace", "ls", "sm"]) as? [[String: Any]] ?? []
        #expect(
            !namespaces.contains { $0["name"] as? String == f.sr },
            "the hidden snapshot and then its hidden image were reclaimed, and the SR went")
    }

    /// dconf `namespace`: the SR lives in an operator's namespace, found by its marker; another
    /// SR UUID there is ENODEV; sr_delete leaves the namespace to the operator.
    @Test(.timeLimit(.minutes(3))) func operatorNamespace() throws {
        let f = try RBDSRFixture()
        let namespace = "ops-\(f.sr.prefix(8))"
        defer {
            f.tearDown()
            _ = try? Product.runProgram("rados", ["-c", f.cluster.configuration, "-p", "sm", "-N", namespace, "rm", "sm-sr"])
            _ = try? f.cluster.rbd(["namespace", "remove", "sm/\(namespace)"])
        }
        #expect(try f.cluster.rbd(["namespace", "create", "sm/\(namespace)"]).status == 0)
        f.dconf = f.dconf.replacingOccurrences(of: "</dconf>", with: "<namespace>\(namespace)</namespace></dconf>")
        try f.createAndAttach()
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "4194304")
        let images = try f.cluster.rbdJSON(["ls", "--namespace", namespace, "sm"]) as? [String] ?? []
        #expect(images == [vdi])
        let stranger = newUUID()
        try f.fails(19, "ENODEV", "sr_attach", stranger)
        try f.fails(17, "EEXIST", "sr_create", stranger, "0")
        try f.ok("vdi_delete", f.sr, vdi)
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_delete", f.sr)
        let namespaces = try f.cluster.rbdJSON(["namespace", "ls", "sm"]) as? [[String: Any]] ?? []
        #expect(namespaces.contains { $0["name"] as? String == namespace }, "the operator's namespace stays")
        try f.fails(19, "ENODEV", "sr_attach", f.sr)
    }

    /// vdi_delete of an image another client has open (a librbd writer here, a krbd map on some
    /// host in practice) is EBUSY and removes nothing; once it is closed the delete goes through.
    @Test(.timeLimit(.minutes(2))) func deleteWhileOpenElsewhereIsEBUSY() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "4194304")
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = [CephCluster.dataHelper, f.cluster.configuration, "sm", f.sr, vdi, "hold"]
        let input = Pipe()
        let output = Pipe()
        holder.standardInput = input
        holder.standardOutput = output
        try holder.run()
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        #expect(line.hasPrefix("held"), "the helper opened the image: \(line)")
        let refused = try f.fails(16, "EBUSY", "vdi_delete", f.sr, vdi)
        #expect(refused.reason.contains("open by another client"))
        try input.fileHandleForWriting.close()
        holder.waitUntilExit()
        #expect(try f.rbdNames() == [vdi])
        try f.ok("vdi_delete", f.sr, vdi)
        #expect(try f.rbdNames().isEmpty)
    }

    /// vdi_lock is a Ceph lock on the image header with the user string as cookie: a reassert
    /// succeeds, another user gets ENOLCK until Force, unlock by the wrong user is ENOLCK,
    /// unlocking twice succeeds, sr_scan reports it, a locked VDI cannot be snapshotted (EBUSY),
    /// and the VDI's data path (the exclusive-lock feature) is not blocked by it.
    @Test(.timeLimit(.minutes(3))) func locks() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "67108864")
        try f.ok("vdi_lock", f.sr, vdi, "FALSE", "host1")
        try f.ok("vdi_lock", f.sr, vdi, "FALSE", "host1")
        #expect(try f.scan()[vdi]?["locked"] == "True")
        try f.fails(37, "ENOLCK", "vdi_lock", f.sr, vdi, "FALSE", "host2")
        try f.fails(37, "ENOLCK", "vdi_unlock", f.sr, vdi, "host2")
        try f.fails(16, "EBUSY", "vdi_snapshot", f.sr, vdi, newUUID())
        try f.cluster.write(namespace: f.sr, image: vdi, offset: 0, value: 1, length: 4096)
        try f.ok("vdi_lock", f.sr, vdi, "TRUE", "host2")
        let lockers = try f.cluster.rbd(["lock", "ls", "--namespace", f.sr, "sm/\(vdi)"])
        #expect(!lockers.standardOutput.contains("host2"), "not an `rbd lock` (that one would block the exclusive-lock feature)")
        try f.fails(37, "ENOLCK", "vdi_unlock", f.sr, vdi, "host1")
        try f.ok("vdi_unlock", f.sr, vdi, "host2")
        try f.ok("vdi_unlock", f.sr, vdi, "host2")
        #expect(try f.scan()[vdi]?["locked"] == "False")
        try f.fails(19, "ENODEV", "vdi_lock", f.sr, newUUID(), "FALSE", "host1")
        try f.ok("vdi_snapshot", f.sr, vdi, newUUID())
    }

    /// Every refusal before the cluster is touched or from it: a wrong key (EIO, at once), an
    /// unknown user, an absent pool (ENODEV), an unreachable monitor (ENODEV within the dconf
    /// timeout), malformed dconf (EINVAL without echoing the key), and no krbd on this host.
    @Test(.timeLimit(.minutes(3))) func errors() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        try f.createAndAttach()
        let good = f.dconf
        let wrongKey = try Product.runProgram("ceph-authtool", ["--gen-print-key"]).standardOutput
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let base = "<monitors>\(f.cluster.monitor)</monitors><pool>sm</pool>"
        f.viaStandardInput = true

        f.dconf = "<dconf>\(base)<user>smtest</user><key>\(wrongKey)</key></dconf>"
        var start = Date()
        var result = try f.fails(5, "EIO", "sr_attach", f.sr)
        #expect(Date().timeIntervalSince(start) < 5, "cephx refuses at once")
        #expect(!result.standardError.contains(wrongKey))
        f.dconf = "<dconf>\(base)<user>nobody</user><key>\(f.cluster.key)</key></dconf>"
        try f.fails(5, "EIO", "sr_attach", f.sr)
        f.dconf =
            "<dconf><monitors>\(f.cluster.monitor)</monitors><pool>absent</pool><user>smtest</user><key>\(f.cluster.key)</key></dconf>"
        result = try f.fails(19, "ENODEV", "sr_attach", f.sr)
        #expect(result.reason.contains("pool absent does not exist"))

        let listener = try Product.runProgram(
            "/usr/bin/python3",
            [
                "-c",
                "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
            ])
        let deadPort = listener.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        f.dconf =
            "<dconf><monitors>127.0.0.1:\(deadPort)</monitors><pool>sm</pool><user>smtest</user><key>\(f.cluster.key)</key><timeout>3</timeout></dconf>"
        start = Date()
        result = try f.fails(19, "ENODEV", "sr_attach", f.sr)
        let waited = Date().timeIntervalSince(start)
        #expect(waited >= 2.5 && waited < 15, "bounded by dconf timeout 3 s: \(waited) s")

        for (dconf, words) in [
            ("<dconf>\(base)<user>smtest</user><key>not!a&amp;key==</key></dconf>", "not a cephx secret"),
            ("<dconf>\(base)<user>smtest</user></dconf>", "one of 'keyring'"),
            ("<dconf>\(base)<user>smtest</user><key>\(f.cluster.key)</key><keyring>\(f.cluster.keyring)</keyring></dconf>", "both"),
            ("<dconf>\(base)<user>smtest</user><keyring>/nonexistent/keyring</keyring></dconf>", "does not exist"),
            ("<dconf>\(base)<user>a b</user><key>\(f.cluster.key)</key></dconf>", "user"),
            ("<dconf><pool>sm</pool><user>smtest</user><key>\(f.cluster.key)</key></dconf>", "monitors"),
            ("<dconf>\(base)<user>smtest</user><key>\(f.cluster.key)</key><timeout>0</timeout></dconf>", "timeout")
        ] {
            f.dconf = dconf
            let refused = try f.fails(22, "EINVAL", "sr_attach", f.sr)
            #expect(refused.reason.contains(words), "\(refused.reason)")
            #expect(!refused.standardError.contains(f.cluster.key) && !refused.standardError.contains("not!a"))
        }

        f.dconf = good
        f.viaStandardInput = false
        try f.fails(19, "ENODEV", "vdi_attach", f.sr, newUUID())
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "1048576")
        if !FileManager.default.fileExists(atPath: "/sys/bus/rbd") {
            // This host's kernel has no rbd module (the VM lane maps for real).
            result = try f.fails(19, "ENODEV", "vdi_attach", f.sr, vdi)
            #expect(result.reason.contains("no RBD client"))
        }
        try f.ok("vdi_detach", f.sr, vdi)
        let other = newUUID()
        try f.fails(19, "ENODEV", "sr_attach", other)
        try f.fails(19, "ENODEV", "sr_scan", other)
    }

    /// dconf `conf`: a ceph.conf that gives the monitors stands in for dconf `monitors`. A conf
    /// path that is missing, relative or a directory, a conf librados cannot parse, and a conf
    /// naming no monitor are EINVAL, and nothing is made on the cluster.
    @Test(.timeLimit(.minutes(3))) func configurationFile() throws {
        let f = try RBDSRFixture()
        defer { f.tearDown() }
        let conf = f.scratch.path("client.conf")
        try "[global]\nmon host = v2:127.0.0.1:\(f.cluster.port)\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let credentials = "<pool>sm</pool><user>smtest</user><keyring>\(f.cluster.keyring)</keyring>"
        f.dconf = "<dconf><conf>\(conf)</conf>\(credentials)</dconf>"
        try f.createAndAttach()
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, "4194304")
        #expect(try f.scan().keys.sorted() == [vdi])
        #expect(try f.rbdNames() == [vdi])

        let garbage = f.scratch.path("garbage.conf")
        let empty = f.scratch.path("empty.conf")
        try "[global\nmon host = = =\n\u{0}".write(toFile: garbage, atomically: true, encoding: .utf8)
        try "[global]\nlog to stderr = false\n".write(toFile: empty, atomically: true, encoding: .utf8)
        let other = newUUID()
        for (path, words) in [
            ("/nonexistent/ceph.conf", "not an existing absolute path"), ("client.conf", "not an existing absolute path"),
            (f.scratch.path("data"), "not an existing absolute path"), (garbage, "could not read"),
            (empty, "names none")
        ] {
            f.dconf = "<dconf><conf>\(path)</conf>\(credentials)</dconf>"
            let refused = try f.fails(22, "EINVAL", "sr_create", other, "0")
            #expect(refused.reason.contains(words), "\(path): \(refused.reason)")
        }
        let namespaces = try f.cluster.rbdJSON(["namespace", "ls", "sm"]) as? [[String: Any]] ?? []
        #expect(!namespaces.contains { $0["name"] as? String == other }, "a refused sr_create made nothing")
        f.dconf = "<dconf><conf>\(conf)</conf>\(credentials)</dconf>"
        try f.ok("vdi_delete", f.sr, vdi)
        try f.ok("sr_detach", f.sr)
        try f.ok("sr_delete", f.sr)
    }

    /// A pool byte quota bounds provisioning: vdi_create, vdi_resize, vdi_clone and sr_create
    /// past it are ENOSPC and change nothing. (Without a manager the monitors never flag a pool
    /// full, so the driver enforces the quota against what the SR provisions.)
    @Test(.timeLimit(.minutes(3))) func poolQuotaIsENOSPC() throws {
        let f = try RBDSRFixture()
        defer {
            _ = try? f.cluster.ceph(["osd", "pool", "set-quota", "sm", "max_bytes", "0"])
            f.tearDown()
        }
        try f.createAndAttach()
        try f.cluster.ceph(["osd", "pool", "set-quota", "sm", "max_bytes", String(3 * Self.gibibyte)])
        let vdi = newUUID()
        try f.ok("vdi_create", f.sr, vdi, String(2 * Self.gibibyte))
        let refused = try f.fails(28, "ENOSPC", "vdi_create", f.sr, newUUID(), String(2 * Self.gibibyte))
        #expect(refused.reason.contains("quota"))
        try f.fails(28, "ENOSPC", "vdi_resize", f.sr, vdi, String(4 * Self.gibibyte))
        try f.fails(28, "ENOSPC", "vdi_clone", f.sr, vdi, newUUID())
        try f.fails(28, "ENOSPC", "sr_create", newUUID(), String(4 * Self.gibibyte))
        #expect(try f.rbdNames() == [vdi], "nothing was made")
        let scan = try ResultXML(try f.ok("sr_scan", f.sr).standardOutput)
        #expect(scan.value("physical_size") == String(3 * Self.gibibyte), "physical_size is the quota")
        try f.ok("vdi_resize", f.sr, vdi, String(3 * Self.gibibyte))
    }

    /// With the key in the dconf (given on stdin) and --verbose, the secret appears in no
    /// process's argv or environment (the driver's and every child's, traced with strace), in
    /// no output, and not in SMlog.
    @Test(.timeLimit(.minutes(3))) func secretAppearsNowhere() throws {
        let f = try RBDSRFixture(secretInDconf: true)
        defer { f.tearDown() }
        let trace = f.scratch.path("execve.trace")
        let vdi = newUUID()
        let snapshot = newUUID()
        var outputs = ""
        for (verb, arguments) in [
            ("sr_create", [f.sr, "0"]), ("sr_attach", [f.sr]), ("vdi_create", [vdi, "4194304"]),
            ("vdi_snapshot", [vdi, snapshot]), ("vdi_attach", [vdi]), ("vdi_lock", [vdi, "FALSE", "u1"]),
            ("sr_scan", [f.sr]), ("vdi_unlock", [vdi, "u1"])
        ] {
            let fullArguments = verb.hasPrefix("sr_") ? arguments : [f.sr] + arguments
            let result = try Product.runProgram(
                "strace",
                [
                    "-f", "-v", "-s", "65536", "-e", "trace=execve", "-o",
                    "\(trace).\(verb)", Product.path("RBDSR"), "--verbose", "@-", verb
                ]
                    + fullArguments,
                environment: f.scratch.environment, input: Data(f.dconf.utf8))
            outputs += result.standardOutput + result.standardError
            let traced = try String(contentsOfFile: "\(trace).\(verb)", encoding: .utf8)
            #expect(traced.contains("execve("), "strace recorded \(verb)")
            #expect(!traced.contains(f.cluster.key), "\(verb): the key is in an argv or environment")
        }
        #expect(outputs.contains("dconf:"), "--verbose wrote its diagnostics")
        #expect(!outputs.contains(f.cluster.key))
        let log = try String(contentsOfFile: f.scratch.path("SMlog"), encoding: .utf8)
        #expect(log.contains("vdi_snapshot"))
        #expect(!log.contains(f.cluster.key))
    }
}
