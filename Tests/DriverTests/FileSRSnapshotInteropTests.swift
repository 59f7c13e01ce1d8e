import Foundation
import SMCore
import Testing

/// What other tools make of the chains FileSR builds: libvhdi (`vhdiinfo`, `vhdimount`) and
/// qemu (`qemu-img compare`, single files only), and damaged files: sr_check reports them,
/// sr_scan lists every other VDI.
@Suite(.serialized) struct FileSRSnapshotInteropTests {
    /// Builds: base <- snapshot, a clone pair under a base copy, and a second snapshot, with
    /// 4 KiB-aligned writes at every level (libvhdi's caveat). Returns the model.
    func buildTree(_ sr: CopyOnWriteSR) throws -> [String: [UInt8]] {
        let vdi = try sr.create(size: 6 << 20)
        var data = pattern(6 << 20, seed: 60)
        try sr.write(vdi, at: 0, data)
        var model: [String: [UInt8]] = [:]
        let first = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, first)
        model[first] = data
        let patch = pattern(3 * 4096, seed: 61)
        try sr.write(vdi, at: 2 << 20 - 4096, patch)
        data.replaceSubrange((2 << 20 - 4096)..<(2 << 20 + 8192), with: patch)
        let clone = newUUID()
        try sr.expectOK("vdi_clone", sr.sr, vdi, clone)
        var cloneData = data
        let clonePatch = pattern(8192, seed: 62)
        try sr.write(clone, at: 40960, clonePatch)
        cloneData.replaceSubrange(40960..<49152, with: clonePatch)
        model[clone] = cloneData
        let base = try #require(try sr.listed().values.first { $0.label == "base copy" })
        model[base.uuid] = data
        let second = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdi, second)
        model[second] = data
        try sr.write(vdi, at: 5 << 20, [UInt8](repeating: 0xEE, count: 4096))
        data.replaceSubrange((5 << 20)..<(5 << 20 + 4096), with: [UInt8](repeating: 0xEE, count: 4096))
        model[vdi] = data
        return model
    }

    /// vhdiinfo shows each differencing disk's parent by unique id and file name; vhdimount reads
    /// every leaf equal to its model; qemu-img compare agrees on the base file.
    @Test(.timeLimit(.minutes(2))) func librariesReadTheChains() throws {
        let sr = try CopyOnWriteSR("sm-interop")
        let model = try buildTree(sr)
        let listed = try sr.listed()
        #expect(Set(listed.keys) == Set(model.keys))
        for vdi in try sr.files() {
            let image = try VHDImage.open(sr.path(vdi))
            let info = try Product.runProgram("vhdiinfo", [sr.path(vdi)])
            #expect(info.status == 0, "\(info)")
            guard image.isDifferencing else {
                let raw = sr.scratch.path("\(vdi).raw")
                try Data(try sr.read(vdi)).write(to: URL(fileURLWithPath: raw))
                let compare = try Product.runProgram("qemu-img", ["compare", "-f", "vpc", "-F", "raw", sr.path(vdi), raw])
                #expect(compare.status == 0, "\(compare)")
                continue
            }
            let parent = try VHDImage.open(try VHDChain.resolveParent(of: image))
            #expect(info.standardOutput.contains("Parent identifier\t: \(parent.uniqueID)"), "\(info.standardOutput)")
            #expect(info.standardOutput.contains("Parent filename\t\t: \(image.header.parentName)"), "\(info.standardOutput)")
            #expect(image.header.parentName == listedParentFile(sr, image))
        }
        let mountPoint = sr.scratch.path("mount/vhdi")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        for (vdi, expected) in model where listed[vdi] != nil {
            // vhdimount leaves a daemon behind: run it through system(3), which reaps the foreground
            // process (Foundation's Process was seen to hang on it), with its output discarded.
            let mounted = system("vhdimount '\(sr.path(vdi))' '\(mountPoint)' >/dev/null 2>&1")
            #expect(mounted == 0, "vhdimount \(vdi) exited \(mounted)")
            defer { _ = system("umount '\(mountPoint)'") }
            // vhdimount lists the chain base first: vhdi1 is the base, the highest number the leaf.
            let images = try FileManager.default.contentsOfDirectory(atPath: mountPoint).compactMap { Int($0.dropFirst(4)) }
            let leaf = try #require(images.max())
            #expect(leaf == (try VHDChain.open(sr.path(vdi)).length))
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(mountPoint)/vhdi\(leaf)")))
            let engine = try sr.read(vdi)
            let firstDifference = zip(bytes, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(
                bytes.count == expected.count && firstDifference == nil,
                "vhdimount reads VDI \(vdi) differently from offset \(firstDifference ?? -1) (engine agrees with the model: \(engine == expected))"
            )
        }
        try sr.expectClean()
    }

    func listedParentFile(_ sr: CopyOnWriteSR, _ image: VHDImage) -> String {
        (try? VHDChain.resolveParent(of: image)).map { ($0 as NSString).lastPathComponent } ?? "?"
    }

    /// A flipped footer checksum, a BAT entry past the end and a truncated file: sr_check names
    /// each (EIO), sr_scan still lists every VDI it can read and exits 0, nothing crashes.
    @Test(.timeLimit(.minutes(1))) func damagedFiles() throws {
        let sr = try CopyOnWriteSR("sm-damage")
        var vdis: [String] = []
        for seed in 0..<5 {
            let vdi = try sr.create()
            try sr.write(vdi, at: 0, pattern(3 << 20, seed: UInt64(70 + seed)))
            vdis.append(vdi)
        }
        let snapshot = newUUID()
        try sr.expectOK("vdi_snapshot", sr.sr, vdis[0], snapshot)
        try sr.expectClean()
        // 1: the footer at the end gets a flipped checksum byte (the copy at 0 stays valid).
        let footerFile = try FileHandle(forUpdating: URL(fileURLWithPath: sr.path(vdis[1])))
        let end = try footerFile.seekToEnd()
        try footerFile.seek(toOffset: end - 512 + 64)
        let byte = try #require(try footerFile.read(upToCount: 1)?.first)
        try footerFile.seek(toOffset: end - 512 + 64)
        try footerFile.write(contentsOf: [byte ^ 0xFF])
        try footerFile.close()
        // 2: the first BAT entry points far past the end of the file.
        let image = try VHDImage.open(sr.path(vdis[2]))
        let batFile = try FileHandle(forUpdating: URL(fileURLWithPath: sr.path(vdis[2])))
        try batFile.seek(toOffset: image.header.tableOffset)
        try batFile.write(contentsOf: [0x00, 0xFF, 0xFF, 0x00])
        try batFile.close()
        // 3: truncated in the middle of its data.
        #expect(truncate(sr.path(vdis[3]), 1 << 20) == 0)
        // 4: cut to less than a footer and a header.
        #expect(truncate(sr.path(vdis[4]), 1000) == 0)
        let check = try sr.run("sr_check", sr.sr)
        #expect(check.status == 5 && check.reason.hasPrefix("EIO:"), "\(check)")
        for damaged in vdis[1...4] { #expect(check.standardOutput.contains("<vdi>\(damaged)</vdi>"), "\(damaged): \(check)") }
        #expect(!check.standardOutput.contains("<vdi>\(vdis[0])</vdi>") && !check.standardOutput.contains("<vdi>\(snapshot)</vdi>"))
        #expect(check.standardOutput.contains("footer"))
        #expect(check.standardOutput.contains("past the end"))
        let listed = try sr.listed()
        #expect(listed[vdis[0]] != nil && listed[snapshot] != nil && listed[vdis[1]] != nil)
        #expect(listed[vdis[4]] == nil)
        #expect(try sr.read(vdis[0]) == pattern(3 << 20, seed: 70) + [UInt8](repeating: 0, count: 1 << 20))
        // Reading the damaged VDIs fails cleanly (an error, not a trap).
        #expect(throws: StorageError.self) { _ = try sr.read(vdis[2]) }
        #expect(throws: StorageError.self) { _ = try sr.read(vdis[3]) }
        // Verbs on them answer one errno, never a crash.
        for verb in ["vdi_snapshot", "vdi_clone"] {
            for damaged in vdis[3...4] {
                let result = try sr.run(verb, sr.sr, damaged, newUUID())
                #expect(result.status == 5 && result.reason.hasPrefix("EIO:"), "\(verb) of a truncated VDI: \(result)")
            }
        }
    }
}
